package sipua

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/diago/media"

	"salesagent/sipbridge/internal/audio"
	"salesagent/sipbridge/internal/dtmf"
	"salesagent/sipbridge/internal/g711"
)

// Media is the G.711 audio of one established call, as PCM frames in both directions
// plus RFC 4733 key presses.
type Media struct {
	dm      *diago.DialogMedia
	codec   g711.Codec
	eventPT int // negotiated telephone-event payload type, -1 if none

	// writeMu keeps audio frames and DTMF events from interleaving on the one RTP stream.
	writeMu sync.Mutex
	// lastPacket is when the last RTP packet arrived (unix ns), 0 before the first.
	lastPacket atomic.Int64
}

// NewMedia wraps the media of an answered call. It fails if the peer negotiated
// anything but PCMU or PCMA.
func NewMedia(dm *diago.DialogMedia) (*Media, error) {
	sess := dm.MediaSession()
	if sess == nil {
		return nil, errors.New("call has no media session")
	}
	negotiated := media.CodecAudioFromSession(sess)
	codec := g711.ByName(strings.ToUpper(negotiated.Name))
	if codec == nil {
		return nil, fmt.Errorf("negotiated codec %q is not G.711", negotiated.Name)
	}
	m := &Media{dm: dm, codec: codec, eventPT: -1}
	for _, c := range sess.CommonCodecs() {
		if c.Matches(media.CodecTelephoneEvent8000) {
			m.eventPT = int(c.PayloadType)
		}
	}
	return m, nil
}

// Codec is the negotiated G.711 law.
func (m *Media) Codec() g711.Codec { return m.codec }

// HasDTMF says whether the peer accepted RFC 4733 telephone events.
func (m *Media) HasDTMF() bool { return m.eventPT >= 0 }

// Receive reads RTP until the call's media closes, passing decoded audio to onAudio
// and finished key presses (as '0'-'9', '*', '#', 'A'-'D') to onDigit. It returns nil
// when the media ends normally (hang-up).
func (m *Media) Receive(onAudio func(pcm []int16), onDigit func(digit byte)) error {
	reader := m.dm.RTPPacketReader
	buf := make([]byte, media.RTPBufSize)
	pcm := make([]int16, 0, 4*audio.FrameSamples)
	var keys dtmf.Detector
	for {
		n, err := reader.Read(buf)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if n == 0 {
			continue
		}
		m.lastPacket.Store(time.Now().UnixNano())
		hdr := reader.PacketHeader
		switch {
		case m.eventPT >= 0 && int(hdr.PayloadType) == m.eventPT:
			if code, pressed := keys.Packet(hdr.Timestamp, buf[:n]); pressed && onDigit != nil {
				if d := dtmf.Digit(code); d != 0 {
					onDigit(d)
				}
			}
		case hdr.PayloadType == m.codec.PayloadType():
			pcm = g711.Decode(m.codec, pcm[:0], buf[:n])
			if onAudio != nil {
				onAudio(pcm)
			}
		default:
			// Comfort noise or a payload type we did not offer: nothing to play.
		}
	}
}

// LastPacket is when the last RTP packet from the peer arrived (zero before the
// first one, or when nothing is reading).
func (m *Media) LastPacket() time.Time {
	if ns := m.lastPacket.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// WriteFrame encodes one frame of PCM and sends it. It blocks until the next packet
// slot (diago's writer keeps a 20 ms clock), which is what paces our outgoing audio.
func (m *Media) WriteFrame(pcm []int16) error {
	payload := g711.Encode(m.codec, make([]byte, 0, len(pcm)), pcm)
	m.writeMu.Lock()
	defer m.writeMu.Unlock()
	_, err := m.dm.RTPPacketWriter.Write(payload)
	return err
}

// Key presses last 100 ms of tone; the end is sent three times (RFC 4733 2.5.1.4),
// since a lost end packet would make the far end hear a very long press.
const (
	digitPackets    = 5
	digitEndRepeats = 3
	digitVolume     = 10 // -10 dBm0
)

// SendDigit sends one key press as RFC 4733 events on the audio stream. Audio frames
// wait while it is sent (about 100 ms).
func (m *Media) SendDigit(digit byte) error {
	if m.eventPT < 0 {
		return errors.New("peer did not negotiate telephone-event")
	}
	code, ok := dtmf.Code(digit)
	if !ok {
		return fmt.Errorf("%q is not a DTMF digit", digit)
	}
	m.writeMu.Lock()
	defer m.writeMu.Unlock()
	w := m.dm.RTPPacketWriter
	pt := uint8(m.eventPT)
	step := uint16(audio.FrameSamples) // each event packet covers one 20 ms slot
	tick := time.NewTicker(audio.FrameDuration)
	defer tick.Stop()
	// All packets of one event carry the event's start timestamp (increment 0).
	for i := 1; i <= digitPackets; i++ {
		ev := dtmf.Event{Code: code, Volume: digitVolume, Duration: uint16(i) * step}
		if _, err := w.WriteSamples(ev.Marshal(), 0, i == 1, pt); err != nil {
			return err
		}
		<-tick.C
	}
	end := dtmf.Event{Code: code, End: true, Volume: digitVolume, Duration: digitPackets * step}
	for range digitEndRepeats {
		if _, err := w.WriteSamples(end.Marshal(), 0, false, pt); err != nil {
			return err
		}
	}
	// Audio resumes after the span the event covered.
	w.DelayTimestamp(uint32(digitPackets) * uint32(step))
	return nil
}

// Close ends the media (the RTP socket).
func (m *Media) Close() error { return m.dm.Close() }
