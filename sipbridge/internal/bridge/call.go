package bridge

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/rpc"
	"google.golang.org/protobuf/proto"

	"salesagent/sipbridge/internal/audio"
	"salesagent/sipbridge/internal/lkroom"
	"salesagent/sipbridge/internal/sipua"
)

// outboundCall is one CreateSIPParticipant: a room participant and the phone call
// behind it.
type outboundCall struct {
	svc    *Service
	req    *rpc.InternalCreateSIPParticipantRequest
	target sip.Uri
	log    *slog.Logger

	part  *lkroom.Participant
	phone *sipua.OutboundCall
	// roomDigits are keys sent by the room (SipDTMF packets) waiting to be played to
	// the phone; the media loop sends them between audio frames.
	roomDigits chan byte

	stateMu sync.Mutex
	state   *livekit.SIPCallInfo
}

func newOutboundCall(s *Service, req *rpc.InternalCreateSIPParticipantRequest, target sip.Uri, log *slog.Logger) *outboundCall {
	c := &outboundCall{
		svc:        s,
		req:        req,
		target:     target,
		log:        log,
		roomDigits: make(chan byte, 32),
	}
	c.state = &livekit.SIPCallInfo{
		CallId:              req.SipCallId,
		TrunkId:             req.SipTrunkId,
		RoomName:            req.RoomName,
		ParticipantIdentity: req.ParticipantIdentity,
		FromUri:             &livekit.SIPUri{User: req.Number, Host: req.Hostname},
		ToUri:               &livekit.SIPUri{User: req.CallTo, Host: req.Address},
		CallDirection:       livekit.SIPCallDirection_SCD_OUTBOUND,
		CallStatus:          livekit.SIPCallStatus_SCS_CALL_INCOMING,
		CreatedAtNs:         time.Now().UnixNano(),
	}
	return c
}

// joinRoom puts the SIP participant in the room with status "dialing".
func (c *outboundCall) joinRoom(ctx context.Context) error {
	attrs := maps.Clone(c.req.ParticipantAttributes)
	if attrs == nil {
		attrs = map[string]string{}
	}
	attrs[livekit.AttrSIPCallStatus] = statusDialing
	wsURL := c.req.WsUrl
	if wsURL == "" {
		wsURL = c.svc.settings.WsURL
	}
	part, err := lkroom.Join(ctx, lkroom.JoinParams{
		WsURL:      wsURL,
		APIKey:     c.svc.settings.APIKey,
		APISecret:  c.svc.settings.APISecret,
		Token:      c.req.Token,
		Room:       c.req.RoomName,
		Identity:   c.req.ParticipantIdentity,
		Name:       c.req.ParticipantName,
		Metadata:   c.req.ParticipantMetadata,
		Attributes: attrs,
	}, lkroom.Hooks{OnDigit: c.queueRoomDigit}, c.log)
	if err != nil {
		return err
	}
	c.part = part
	c.report(func(info *livekit.SIPCallInfo) {
		info.CallStatus = livekit.SIPCallStatus_SCS_PARTICIPANT_JOINED
		info.RoomId = part.RoomSID()
		info.ParticipantAttributes = attrs
	})
	return nil
}

// dial rings the phone until it answers, rejects, the ringing timeout passes, ctx
// ends, or the participant leaves the room. On failure the participant leaves.
func (c *outboundCall) dial(ctx context.Context) error {
	ringFor := defaultRingingTimeout
	if d := c.req.RingingTimeout.AsDuration(); c.req.RingingTimeout != nil && d > 0 {
		ringFor = d
	}
	ringCtx, cancel := context.WithTimeout(ctx, ringFor)
	defer cancel()
	// Nobody left to talk to: stop ringing (the phone gets a CANCEL).
	go func() {
		select {
		case <-c.part.Left():
			cancel()
		case <-ringCtx.Done():
		}
	}()

	var ringingOnce sync.Once
	phone, err := c.svc.dialer.Dial(ringCtx, c.target, sipua.DialOptions{
		FromUser: c.req.Number,
		FromHost: c.req.Hostname,
		FromName: derefString(c.req.DisplayName),
		Username: c.req.Username,
		Password: c.req.Password,
		Headers:  c.req.Headers,
		OnProgress: func(code int, _ string) {
			if code == sip.StatusRinging || code == sip.StatusSessionInProgress {
				ringingOnce.Do(func() { c.setCallStatus(statusRinging) })
			}
		},
	})
	if err != nil {
		c.log.Info("outbound call failed", "error", err)
		c.fail(err)
		return err
	}
	c.phone = phone
	c.log.Info("outbound call answered", "sipCallID", phone.CallID(), "codec", phone.Media.Codec().Name())
	if digits := c.req.Dtmf; digits != "" {
		c.setCallStatus(statusAutomation)
		c.sendInitialDigits(ctx, digits)
	}
	c.part.SetAttributes(map[string]string{
		livekit.AttrSIPCallStatus: statusActive,
		attrSIPCallIDFull:         phone.CallID(),
	})
	c.report(func(info *livekit.SIPCallInfo) {
		info.CallStatus = livekit.SIPCallStatus_SCS_ACTIVE
		info.StartedAtNs = time.Now().UnixNano()
		info.SipCallId = phone.CallID()
		info.AudioCodec = phone.Media.Codec().Name()
		info.RoomId = c.part.RoomSID()
	})
	return nil
}

// sendInitialDigits plays the request's DTMF string to the phone; 'w' is a half
// second pause, as in LiveKit's API.
func (c *outboundCall) sendInitialDigits(ctx context.Context, digits string) {
	for _, d := range []byte(digits) {
		if ctx.Err() != nil {
			return
		}
		if d == 'w' || d == 'W' {
			time.Sleep(500 * time.Millisecond)
			continue
		}
		if err := c.phone.Media.SendDigit(d); err != nil {
			c.log.Warn("initial DTMF", "digit", string(d), "error", err)
		}
	}
}

// fail ends a call that never got answered: the participant leaves the room.
func (c *outboundCall) fail(err error) {
	c.report(func(info *livekit.SIPCallInfo) {
		info.CallStatus = livekit.SIPCallStatus_SCS_ERROR
		info.Error = err.Error()
		info.EndedAtNs = time.Now().UnixNano()
		var failed *sipua.CallFailure
		if errors.As(err, &failed) {
			info.CallStatusCode = &livekit.SIPStatus{Code: livekit.SIPStatusCode(failed.Code), Status: failed.Reason}
			info.DisconnectReason = disconnectReasonFor(failed.Code)
		}
	})
	c.part.Leave()
}

// bridgeUntilHangup carries audio and DTMF both ways until one side hangs up, then
// ends the other side.
func (c *outboundCall) bridgeUntilHangup(ctx context.Context) {
	maxFor := defaultMaxCallDuration
	if d := c.req.MaxCallDuration.AsDuration(); c.req.MaxCallDuration != nil && d > 0 {
		maxFor = d
	}
	ctx, cancel := context.WithTimeout(ctx, maxFor)
	defer cancel()

	stopSending := make(chan struct{})
	var media sync.WaitGroup
	media.Go(c.phoneToRoom)
	media.Go(func() { c.roomToPhone(stopSending) })

	reason := livekit.DisconnectReason_CLIENT_INITIATED
	select {
	case <-c.phone.Done():
		c.log.Info("phone hung up")
		c.hangUpRoom()
	case <-c.part.Left():
		c.log.Info("participant left the room; hanging up the phone", "why", c.part.LeftReason())
		reason = livekit.DisconnectReason_PARTICIPANT_REMOVED
		c.hangUpPhone()
	case <-ctx.Done():
		c.log.Info("call ended by the bridge", "why", context.Cause(ctx))
		c.hangUpPhone()
		c.hangUpRoom()
	}
	close(stopSending)
	_ = c.phone.Media.Close()
	media.Wait()
	c.report(func(info *livekit.SIPCallInfo) {
		info.CallStatus = livekit.SIPCallStatus_SCS_DISCONNECTED
		info.DisconnectReason = reason
		info.EndedAtNs = time.Now().UnixNano()
	})
}

// phoneToRoom publishes what the phone says, and the keys it presses.
func (c *outboundCall) phoneToRoom() {
	framer := audio.NewFramer(audio.FrameSamples)
	publish := func(frame []int16) {
		if err := c.part.WritePhoneFrame(frame); err != nil {
			c.log.Debug("publish phone audio", "error", err)
		}
	}
	err := c.phone.Media.Receive(
		func(pcm []int16) { framer.Push(pcm, publish) },
		func(digit byte) {
			c.log.Info("phone pressed a key", "digit", string(digit))
			if err := c.part.SendDigit(digit); err != nil {
				c.log.Warn("publish DTMF", "error", err)
			}
		},
	)
	if err != nil {
		c.log.Debug("phone media ended", "error", err)
	}
}

// roomToPhone sends the room's mixed audio to the phone, one 20 ms frame per packet
// slot (silence when the room is quiet, so the phone gets a steady stream), with the
// room's DTMF keys in between.
func (c *outboundCall) roomToPhone(stop <-chan struct{}) {
	frame := make([]int16, audio.FrameSamples)
	for {
		select {
		case <-stop:
			return
		case d := <-c.roomDigits:
			if err := c.phone.Media.SendDigit(d); err != nil {
				c.log.Warn("send DTMF to phone", "digit", string(d), "error", err)
			}
			continue
		default:
		}
		c.part.MixRoomFrame(frame)
		if err := c.phone.Media.WriteFrame(frame); err != nil {
			return
		}
	}
}

func (c *outboundCall) queueRoomDigit(digit byte) {
	select {
	case c.roomDigits <- digit:
	default:
		c.log.Warn("dropping DTMF from the room: too many queued", "digit", string(digit))
	}
}

// hangUpRoom marks the call as hung up for the room, then leaves. The status is set
// first and given a moment to reach the server, so that others see "hangup".
func (c *outboundCall) hangUpRoom() {
	c.part.SetAttributes(map[string]string{livekit.AttrSIPCallStatus: statusHangup})
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) && c.part.Attributes()[livekit.AttrSIPCallStatus] != statusHangup {
		time.Sleep(20 * time.Millisecond)
	}
	c.part.Leave()
}

func (c *outboundCall) hangUpPhone() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.phone.Hangup(ctx); err != nil {
		c.log.Warn("BYE to phone", "error", err)
	}
}

// setCallStatus updates the participant's sip.callStatus attribute.
func (c *outboundCall) setCallStatus(status string) {
	c.part.SetAttributes(map[string]string{livekit.AttrSIPCallStatus: status})
}

// report updates the call's state and sends it to livekit-server (IOInfo
// UpdateSIPCallState). Best effort: a lost report does not affect the call.
func (c *outboundCall) report(update func(info *livekit.SIPCallInfo)) {
	c.stateMu.Lock()
	update(c.state)
	if c.part != nil {
		if attrs := c.part.Attributes(); len(attrs) > 0 {
			c.state.ParticipantAttributes = attrs
		}
	}
	snapshot := proto.CloneOf(c.state)
	c.stateMu.Unlock()
	if c.svc.io == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := c.svc.io.UpdateSIPCallState(ctx, &rpc.UpdateSIPCallStateRequest{CallInfo: snapshot}); err != nil {
		c.log.Debug("report call state", "error", err)
	}
}

// disconnectReasonFor maps a final SIP status to the room disconnect reason LiveKit uses.
func disconnectReasonFor(code int) livekit.DisconnectReason {
	switch code {
	case sip.StatusBusyHere, 600:
		return livekit.DisconnectReason_USER_REJECTED
	case sip.StatusTemporarilyUnavailable, sip.StatusRequestTimeout:
		return livekit.DisconnectReason_USER_UNAVAILABLE
	case 603:
		return livekit.DisconnectReason_USER_REJECTED
	}
	return livekit.DisconnectReason_SIP_TRUNK_FAILURE
}

func derefString(s *string) string {
	if s == nil {
		return ""
	}
	return strings.TrimSpace(*s)
}
