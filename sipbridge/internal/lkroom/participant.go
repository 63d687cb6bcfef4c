// Package lkroom is the LiveKit side of a call: the SIP participant in the room. It
// joins with a token of kind SIP, publishes the phone's audio as an Opus track, mixes
// the room's audio tracks down to 8 kHz telephone frames, and carries DTMF as LiveKit
// SipDTMF data packets.
package lkroom

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"gopkg.in/hraban/opus.v2"

	"salesagent/sipbridge/internal/audio"
	"salesagent/sipbridge/internal/dtmf"
)

// JoinParams say which room to join and as whom.
type JoinParams struct {
	WsURL, APIKey, APISecret string
	// Token, if set, is used as it is instead of one signed with the key (a caller that
	// signs its own SIP tokens).
	Token                    string
	Room                     string
	Identity, Name, Metadata string
	Attributes               map[string]string
	// RoomPreset and RoomConfig go into the token. If the join creates the room,
	// livekit-server creates it with this configuration, including the explicit agent
	// dispatches of RoomConfig.Agents (what a dispatch rule's room_config asks for).
	RoomPreset string
	RoomConfig *livekit.RoomConfiguration
}

// Hooks are called from the room's goroutines.
type Hooks struct {
	// OnDigit is a DTMF key a room participant sent (a SipDTMF data packet).
	OnDigit func(digit byte)
}

// Participant is the SIP participant of one call.
type Participant struct {
	room    *lksdk.Room
	track   *lksdk.LocalTrack
	mixer   *audio.Mixer
	log     *slog.Logger
	encoder *opus.Encoder
	opusBuf []byte

	left      chan struct{}
	leaveOnce sync.Once
	reason    string

	// subscribed is closed once an audio track of another participant is subscribed.
	subscribed     chan struct{}
	subscribedOnce sync.Once
	// agent is closed once an agent participant is in the room.
	agent     chan struct{}
	agentOnce sync.Once
}

// roomQueue bounds how far the room's audio may run ahead of the phone (per track).
const roomQueue = 10 * audio.FrameSamples // 200 ms

// Token signs a join token for a SIP participant, the way LiveKit's own SIP service
// does: kind SIP, allowed to publish, subscribe, send data and update its attributes.
func Token(p JoinParams) (string, error) {
	yes := true
	at := auth.NewAccessToken(p.APIKey, p.APISecret).
		SetRoomPreset(p.RoomPreset).
		SetRoomConfig(p.RoomConfig).
		// The token never leaves the bridge, so a room config that carries egress
		// credentials may go in it.
		SetAllowSensitiveCredentials(true).
		SetVideoGrant(&auth.VideoGrant{
			RoomJoin:             true,
			Room:                 p.Room,
			CanPublish:           &yes,
			CanSubscribe:         &yes,
			CanPublishData:       &yes,
			CanUpdateOwnMetadata: &yes,
		}).
		SetIdentity(p.Identity).
		SetName(p.Name).
		SetMetadata(p.Metadata).
		SetAttributes(p.Attributes).
		SetKind(livekit.ParticipantInfo_SIP).
		SetValidFor(24 * time.Hour)
	return at.ToJWT()
}

// Join connects to the room and publishes the (still silent) phone track.
func Join(ctx context.Context, p JoinParams, hooks Hooks, log *slog.Logger) (*Participant, error) {
	token := p.Token
	if token == "" {
		var err error
		if token, err = Token(p); err != nil {
			return nil, fmt.Errorf("sign token: %w", err)
		}
	}
	// Opus straight from 8 kHz: libopus takes narrowband input and the RTP clock stays
	// 48 kHz, so no resampling is needed on this side.
	enc, err := opus.NewEncoder(audio.SampleRate, 1, opus.AppVoIP)
	if err != nil {
		return nil, fmt.Errorf("opus encoder: %w", err)
	}
	part := &Participant{
		mixer:      audio.NewMixer(roomQueue),
		log:        log,
		encoder:    enc,
		opusBuf:    make([]byte, 1500),
		left:       make(chan struct{}),
		subscribed: make(chan struct{}),
		agent:      make(chan struct{}),
	}
	cb := lksdk.NewRoomCallback()
	cb.OnTrackSubscribed = part.onTrackSubscribed
	cb.OnParticipantConnected = part.onParticipantConnected
	cb.OnDataPacket = func(data lksdk.DataPacket, _ lksdk.DataReceiveParams) {
		if d, ok := data.(*livekit.SipDTMF); ok && hooks.OnDigit != nil && d.Digit != "" {
			hooks.OnDigit(d.Digit[0])
		}
	}
	cb.OnDisconnectedWithReason = func(reason lksdk.DisconnectionReason) {
		part.markLeft(fmt.Sprintf("disconnected: %v", reason))
	}
	room := lksdk.NewRoom(cb)
	if err := room.JoinWithContextAndToken(ctx, p.WsURL, token, lksdk.WithAutoSubscribe(true)); err != nil {
		return nil, fmt.Errorf("join room %q: %w", p.Room, err)
	}
	part.room = room
	for _, rp := range room.GetRemoteParticipants() { // in the room before us
		part.onParticipantConnected(rp)
	}
	if err := part.publishPhoneTrack(); err != nil {
		room.Disconnect()
		return nil, err
	}
	return part, nil
}

func (p *Participant) publishPhoneTrack() error {
	track, err := lksdk.NewLocalSampleTrack(webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
	})
	if err != nil {
		return fmt.Errorf("phone track: %w", err)
	}
	if _, err := p.room.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{
		Name:   "phone",
		Source: livekit.TrackSource_MICROPHONE,
	}); err != nil {
		return fmt.Errorf("publish phone track: %w", err)
	}
	p.track = track
	return nil
}

// SID is the participant's server-assigned ID.
func (p *Participant) SID() string { return p.room.LocalParticipant.SID() }

// Identity is the participant's identity.
func (p *Participant) Identity() string { return p.room.LocalParticipant.Identity() }

// RoomSID is the room's server-assigned ID (it may arrive shortly after joining).
func (p *Participant) RoomSID() string { return p.room.SID() }

// SetAttributes updates (merges) the participant's attributes.
func (p *Participant) SetAttributes(attrs map[string]string) {
	p.room.LocalParticipant.SetAttributes(attrs)
}

// Attributes is the participant's attributes as the server last confirmed them.
func (p *Participant) Attributes() map[string]string {
	return p.room.LocalParticipant.Attributes()
}

// WritePhoneFrame publishes one 20 ms frame of the phone's audio.
func (p *Participant) WritePhoneFrame(pcm []int16) error {
	n, err := p.encoder.Encode(pcm, p.opusBuf)
	if err != nil {
		return fmt.Errorf("opus encode: %w", err)
	}
	return p.track.WriteSample(media.Sample{Data: p.opusBuf[:n], Duration: audio.FrameDuration}, nil)
}

// MixRoomFrame fills dst (one telephone frame) with the room's audio, reporting
// whether any track had audio for it.
func (p *Participant) MixRoomFrame(dst []int16) bool { return p.mixer.MixFrame(dst) }

// SendDigit publishes a key the phone pressed, as LiveKit's SIP service does.
func (p *Participant) SendDigit(digit byte) error {
	code, ok := dtmf.Code(digit)
	if !ok {
		return fmt.Errorf("%q is not a DTMF digit", digit)
	}
	return p.room.LocalParticipant.PublishDataPacket(
		&livekit.SipDTMF{Code: uint32(code), Digit: string(digit)},
		lksdk.WithDataPublishReliable(true),
	)
}

// Left is closed when the participant is no longer in the room for reasons not of our
// making: removed by the API, room deleted, connection lost.
func (p *Participant) Left() <-chan struct{} { return p.left }

// LeftReason says why Left was closed.
func (p *Participant) LeftReason() string {
	select {
	case <-p.left:
		return p.reason
	default:
		return ""
	}
}

func (p *Participant) markLeft(reason string) {
	p.leaveOnce.Do(func() {
		p.reason = reason
		close(p.left)
	})
}

// Leave disconnects from the room (idempotent).
func (p *Participant) Leave() {
	p.markLeft("left")
	if p.room != nil {
		p.room.Disconnect()
	}
}

// onTrackSubscribed starts decoding every audio track of the room into the mixer.
func (p *Participant) onTrackSubscribed(track *webrtc.TrackRemote, pub *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
	if track.Kind() != webrtc.RTPCodecTypeAudio {
		return
	}
	if track.Codec().MimeType != webrtc.MimeTypeOpus {
		p.log.Warn("room audio track is not Opus; not bridged", "participant", rp.Identity(), "mime", track.Codec().MimeType)
		return
	}
	p.subscribedOnce.Do(func() { close(p.subscribed) })
	go p.decodeRoomTrack(rp.Identity()+"/"+pub.SID(), track)
}

func (p *Participant) onParticipantConnected(rp *lksdk.RemoteParticipant) {
	if rp.Kind() == lksdk.ParticipantAgent {
		p.agentOnce.Do(func() { close(p.agent) })
	}
}

// AgentJoined is closed once an agent participant is in the room (it joins before it
// speaks: the job has been taken).
func (p *Participant) AgentJoined() <-chan struct{} { return p.agent }

// Subscribed is closed once the participant hears someone: an audio track of another
// participant (the agent) is subscribed.
func (p *Participant) Subscribed() <-chan struct{} { return p.subscribed }

// decodeRoomTrack decodes one room track until it ends. The Opus decoder runs at
// 8 kHz: libopus band-limits and resamples the 48 kHz stream itself.
func (p *Participant) decodeRoomTrack(id string, track *webrtc.TrackRemote) {
	defer p.mixer.Remove(id)
	dec, err := opus.NewDecoder(audio.SampleRate, 1)
	if err != nil {
		p.log.Error("opus decoder", "error", err)
		return
	}
	pcm := make([]int16, audio.SampleRate*120/1000) // the longest Opus packet is 120 ms
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			return // track unsubscribed or connection closed
		}
		if len(pkt.Payload) == 0 {
			continue
		}
		n, err := dec.Decode(pkt.Payload, pcm)
		if err != nil {
			p.log.Debug("opus decode", "track", id, "error", err)
			continue
		}
		p.mixer.Write(id, pcm[:n])
	}
}
