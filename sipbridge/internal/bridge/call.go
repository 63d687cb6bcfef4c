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

	"salesagent/sipbridge/internal/lkroom"
	"salesagent/sipbridge/internal/sipua"
)

// outboundCall is one CreateSIPParticipant: a room participant and the phone call
// behind it.
type outboundCall struct {
	*callCore
	req    *rpc.InternalCreateSIPParticipantRequest
	target sip.Uri
	phone  *sipua.OutboundCall
}

func newOutboundCall(s *Service, req *rpc.InternalCreateSIPParticipantRequest, target sip.Uri, log *slog.Logger) *outboundCall {
	state := &livekit.SIPCallInfo{
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
	return &outboundCall{
		callCore: newCallCore(s, req.SipCallId, log, state),
		req:      req,
		target:   target,
	}
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
	phone, err := c.svc.sip.Dial(ringCtx, c.target, sipua.DialOptions{
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
	c.established(phone.Media, phone.Dialog, phone.CallID(), phone.Done(), phone.Hangup)
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

// run bridges the answered call until either side hangs up.
func (c *outboundCall) run(ctx context.Context) {
	maxFor := defaultMaxCallDuration
	if d := c.req.MaxCallDuration.AsDuration(); c.req.MaxCallDuration != nil && d > 0 {
		maxFor = d
	}
	c.bridgeUntilHangup(ctx, maxFor)
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
