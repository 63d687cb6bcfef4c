package testphone

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync"

	"salesagent/sipbridge/internal/audio"
)

// streamFrames is how much played audio the stream may hold ahead of the RTP clock:
// half a second. The harness keeps only a few frames ahead; the rest is slack for a
// harness that writes a burst.
const streamFrames = 25

// StreamHeader is the first line the phone writes on an audio stream, so a harness
// with several calls knows which call the stream belongs to.
type StreamHeader struct {
	CallID     string `json:"call_id"`
	SampleRate int    `json:"sample_rate"`
	Frame      int    `json:"frame_samples"`
}

// stream carries one call's audio over a connection to the harness: what the phone
// hears goes out as 16-bit little-endian PCM at 8 kHz, frame by frame as it arrives;
// what the harness writes is played into the call, one 20 ms frame per RTP slot.
type stream struct {
	conn   net.Conn
	played chan []int16 // frames from the harness, waiting for their slot
	heard  chan []byte  // frames for the harness, waiting to be written
	once   sync.Once
	done   chan struct{}
}

// openStream connects to the harness's unix socket at path and sends the header.
func openStream(path, callID string) (*stream, error) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return nil, fmt.Errorf("audio socket: %w", err)
	}
	header, _ := json.Marshal(StreamHeader{CallID: callID, SampleRate: audio.SampleRate, Frame: audio.FrameSamples})
	if _, err := conn.Write(append(header, '\n')); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("audio socket: %w", err)
	}
	s := &stream{
		conn:   conn,
		played: make(chan []int16, streamFrames),
		heard:  make(chan []byte, 4*streamFrames),
		done:   make(chan struct{}),
	}
	go s.readPlayed()
	go s.writeHeard()
	return s, nil
}

// readPlayed cuts what the harness writes into frames. When the harness runs more than
// streamFrames ahead, reading waits, and so does the harness.
func (s *stream) readPlayed() {
	defer close(s.played)
	framer := audio.NewFramer(audio.FrameSamples)
	buf := make([]byte, 2*audio.FrameSamples)
	for {
		n, err := io.ReadAtLeast(s.conn, buf, 2)
		if n >= 2 {
			pcm := make([]int16, n/2)
			for i := range pcm {
				pcm[i] = int16(binary.LittleEndian.Uint16(buf[2*i:]))
			}
			var stopped bool
			framer.Push(pcm, func(frame []int16) {
				select {
				case s.played <- append([]int16(nil), frame...):
				case <-s.done:
					stopped = true
				}
			})
			if stopped {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// next is the frame to play in this slot, or nil when the harness has none ready: the
// slot then carries silence (or the -play file), as a phone line would.
func (s *stream) next() []int16 {
	select {
	case frame := <-s.played:
		return frame
	default:
		return nil
	}
}

// hear queues a received frame for the harness without ever holding up the RTP
// reader: if the harness stops reading, frames are dropped.
func (s *stream) hear(pcm []int16) {
	out := make([]byte, 2*len(pcm))
	for i, v := range pcm {
		binary.LittleEndian.PutUint16(out[2*i:], uint16(v))
	}
	select {
	case s.heard <- out:
	default:
	}
}

func (s *stream) writeHeard() {
	for {
		select {
		case b := <-s.heard:
			if _, err := s.conn.Write(b); err != nil {
				return
			}
		case <-s.done:
			return
		}
	}
}

// close ends the stream; the harness sees end of file.
func (s *stream) close() {
	s.once.Do(func() {
		close(s.done)
		_ = s.conn.Close()
	})
}
