package bridge

import (
	"context"
	"errors"
	"maps"
	"net"
	"sync/atomic"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/sipgo/sip"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/rpc"
	"github.com/livekit/protocol/utils"
	"github.com/livekit/protocol/utils/guid"

	"salesagent/sipbridge/internal/lkroom"
	"salesagent/sipbridge/internal/sipua"
)

// defaultInboundRingingTimeout is how long a caller rings, waiting for someone (the
// agent) in the room, when the trunk sets no ringing_timeout: LiveKit's default.
const defaultInboundRingingTimeout = 3 * time.Minute

// rpcTimeout bounds each question to livekit-server about an incoming call.
const rpcTimeout = 5 * time.Second

// inboundCall is one incoming INVITE, from the first question to livekit-server to
// the end of the call.
type inboundCall struct {
	*callCore
	d    *diago.DialogServerSession
	call *rpc.SIPCall
}

// HandleInvite takes one incoming INVITE, the way LiveKit's SIP service does, and
// returns when the call is over:
//
//  1. 100, then IOInfo.GetSIPTrunkAuthentication: the trunk matched by called
//     number, calling number and source address. If it has credentials, the caller
//     must answer a digest challenge (407).
//  2. 180, then IOInfo.EvaluateSIPDispatchRules: which room, as whom, with which
//     room configuration (agent dispatches). No trunk or rule: 404.
//  3. The SIP participant joins the room (sip.callStatus "ringing") with a token
//     carrying the rule's room configuration, so that the server creates the room
//     with the rule's agent dispatches.
//  4. Once an audio track of someone in the room is subscribed (the agent is there
//     and speaking), 200 OK with our SDP; the status becomes "active". Nobody within
//     the ringing timeout: 480. If the rule dispatches an agent and none has joined,
//     the call is offered to it again every 2 s, and after Settings.AgentWait: 486
//     (ours; LiveKit's SIP rings on).
//  5. Audio and DTMF are bridged until one side hangs up.
func (s *Service) HandleInvite(d *diago.DialogServerSession) {
	s.mu.Lock()
	if s.ctx.Err() != nil || s.io == nil {
		s.mu.Unlock()
		_ = d.Respond(sip.StatusServiceUnavailable, "Service Unavailable", nil)
		return
	}
	s.wg.Add(1) // under mu, so that Close cannot be waiting already
	s.mu.Unlock()
	defer s.wg.Done()
	c := newInboundCall(s, d)
	c.handle()
}

// InviteRouter hands incoming INVITEs to a Service that may be set after the SIP
// listener started (the service needs the listener to place calls). Until then, and
// without one, INVITEs get 503.
type InviteRouter struct{ svc atomic.Pointer[Service] }

// Set routes INVITEs to s from now on.
func (r *InviteRouter) Set(s *Service) { r.svc.Store(s) }

// Handle is a sipua.IncomingFunc.
func (r *InviteRouter) Handle(d *diago.DialogServerSession) {
	if s := r.svc.Load(); s != nil {
		s.HandleInvite(d)
		return
	}
	_ = d.Respond(sip.StatusServiceUnavailable, "Service Unavailable", nil)
}

func newInboundCall(s *Service, d *diago.DialogServerSession) *inboundCall {
	req := d.InviteRequest
	srcIP := req.Source()
	if host, _, err := net.SplitHostPort(srcIP); err == nil {
		srcIP = host
	}
	from, to := req.From().Address, req.To().Address
	lkCallID := guid.New(utils.SIPCallPrefix)
	sipCallID := ""
	if h := req.CallID(); h != nil {
		sipCallID = h.Value()
	}
	call := &rpc.SIPCall{
		LkCallId:  lkCallID,
		SipCallId: sipCallID,
		SourceIp:  srcIP,
		Address:   sipURI(req.Recipient),
		From:      sipURI(from),
		To:        sipURI(to),
	}
	for _, via := range req.GetHeaders("Via") {
		if v, ok := via.(*sip.ViaHeader); ok {
			call.Via = append(call.Via, &livekit.SIPUri{Host: v.Host, Port: uint32(v.Port)})
		}
	}
	log := s.log.With("callID", lkCallID, "sipCallID", sipCallID, "from", from.User, "to", to.User, "src", req.Source())
	state := &livekit.SIPCallInfo{
		CallId:        lkCallID,
		SipCallId:     sipCallID,
		FromUri:       &livekit.SIPUri{User: from.User, Host: srcIP},
		ToUri:         &livekit.SIPUri{User: to.User, Host: to.Host},
		CallStatus:    livekit.SIPCallStatus_SCS_CALL_INCOMING,
		CallDirection: livekit.SIPCallDirection_SCD_INBOUND,
		CreatedAtNs:   time.Now().UnixNano(),
	}
	return &inboundCall{callCore: newCallCore(s, lkCallID, log, state), d: d, call: call}
}

func sipURI(u sip.Uri) *livekit.SIPUri {
	return &livekit.SIPUri{User: u.User, Host: u.Host, Port: uint32(u.Port)}
}

// reject sends a final error response to the INVITE and reports the call as failed.
func (c *inboundCall) reject(code int, reason, why string) {
	c.log.Info("rejecting inbound call", "status", code, "reason", reason, "why", why)
	if err := c.d.Respond(code, reason, nil); err != nil {
		c.log.Debug("respond", "error", err)
	}
	c.report(func(info *livekit.SIPCallInfo) {
		info.CallStatus = livekit.SIPCallStatus_SCS_ERROR
		info.Error = why
		info.CallStatusCode = &livekit.SIPStatus{Code: livekit.SIPStatusCode(code), Status: reason}
		info.EndedAtNs = time.Now().UnixNano()
	})
}

func (c *inboundCall) handle() {
	req := c.d.InviteRequest
	_ = c.d.Respond(sip.StatusTrying, "Processing", nil)

	// 1. Which trunk, and does it want credentials?
	ctx, cancel := context.WithTimeout(c.svc.ctx, rpcTimeout)
	auth, err := c.svc.io.GetSIPTrunkAuthentication(ctx, &rpc.GetSIPTrunkAuthenticationRequest{
		Call:       c.call,
		SipCallId:  c.call.LkCallId,
		From:       c.call.From.User,
		FromHost:   c.call.From.Host,
		To:         c.call.To.User,
		ToHost:     c.call.To.Host,
		SrcAddress: c.call.SourceIp,
	})
	cancel()
	switch {
	case err != nil:
		c.reject(sip.StatusServiceUnavailable, "Try Again Later", "trunk authentication: "+err.Error())
		return
	case auth.ErrorCode == rpc.SIPTrunkAuthenticationError_SIP_TRUNK_AUTH_ERROR_QUOTA_EXCEEDED:
		c.reject(sip.StatusServiceUnavailable, "Service Temporarily Unavailable", "quota exceeded")
		return
	case auth.ErrorCode == rpc.SIPTrunkAuthenticationError_SIP_TRUNK_AUTH_ERROR_NO_TRUNK_FOUND:
		c.reject(sip.StatusNotFound, "No Trunk Found", "no trunk found")
		return
	case auth.Drop:
		// LiveKit's bridge sends nothing at all here (flood protection); on our loopback
		// stack a caller is better served by an answer.
		c.reject(sip.StatusNotFound, "Does Not Match Any SIP Trunks", "dropped by trunk configuration")
		return
	}
	c.report(func(info *livekit.SIPCallInfo) { info.TrunkId = auth.SipTrunkId })
	if auth.Username != "" && auth.Password != "" {
		result, res := c.svc.auth.check(req, auth.Username, auth.Password, auth.Realm)
		if result != authOK {
			if result == authChallenged {
				c.log.Info("inbound call challenged for credentials", "trunk", auth.SipTrunkId)
			} else {
				c.log.Info("inbound call with wrong credentials", "trunk", auth.SipTrunkId)
			}
			_ = c.d.WriteResponse(res)
			return
		}
	}

	// 2. Where does the call go?
	_ = c.d.Ringing()
	ctx, cancel = context.WithTimeout(c.svc.ctx, rpcTimeout)
	disp, err := c.svc.io.EvaluateSIPDispatchRules(ctx, &rpc.EvaluateSIPDispatchRulesRequest{
		SipTrunkId:    auth.SipTrunkId,
		Call:          c.call,
		SipCallId:     c.call.LkCallId,
		CallingNumber: c.call.From.User,
		CallingHost:   c.call.From.Host,
		CalledNumber:  c.call.To.User,
		CalledHost:    c.call.To.Host,
		SrcAddress:    c.call.SourceIp,
	})
	cancel()
	if err != nil {
		c.reject(sip.StatusServiceUnavailable, "Try Again Later", "dispatch rules: "+err.Error())
		return
	}
	disp.Upgrade()
	switch disp.Result {
	case rpc.SIPDispatchResult_ACCEPT:
	case rpc.SIPDispatchResult_LEGACY_ACCEPT_OR_PIN:
		if disp.RequestPin {
			c.reject(sip.StatusForbidden, "PIN Entry Not Supported", "the dispatch rule asks for a PIN; PIN prompts are not supported")
			return
		}
	case rpc.SIPDispatchResult_REQUEST_PIN:
		c.reject(sip.StatusForbidden, "PIN Entry Not Supported", "the dispatch rule asks for a PIN; PIN prompts are not supported")
		return
	case rpc.SIPDispatchResult_REJECT:
		c.reject(sip.StatusNotFound, "Does Not Match Trunks or Dispatch Rules", "rejected by dispatch rules")
		return
	case rpc.SIPDispatchResult_DROP:
		// As for auth.Drop: LiveKit stays silent, we answer.
		c.reject(sip.StatusNotFound, "Does Not Match Trunks or Dispatch Rules", "no trunk or dispatch rule matches")
		return
	default:
		c.reject(sip.StatusNotImplemented, "Not Implemented", "unknown dispatch result "+disp.Result.String())
		return
	}
	if disp.Media.GetEncryption() == livekit.SIPMediaEncryption_SIP_MEDIA_ENCRYPT_REQUIRE ||
		disp.MediaEncryption == livekit.SIPMediaEncryption_SIP_MEDIA_ENCRYPT_REQUIRE {
		c.reject(sip.StatusNotAcceptableHere, "Media Encryption Not Supported", "the trunk requires SRTP")
		return
	}
	if err := sipua.OfferHasG711(req.Body()); err != nil {
		c.reject(sip.StatusNotAcceptableHere, "Not Acceptable Here", err.Error())
		return
	}
	c.log = c.log.With("room", disp.RoomName, "trunk", disp.SipTrunkId, "rule", disp.SipDispatchRuleId)
	c.report(func(info *livekit.SIPCallInfo) {
		info.TrunkId = disp.SipTrunkId
		info.DispatchRuleId = disp.SipDispatchRuleId
		info.RoomName = disp.RoomName
		info.ParticipantIdentity = disp.ParticipantIdentity
	})

	// 3. Into the room, still ringing.
	ringFor := defaultInboundRingingTimeout
	if d := disp.RingingTimeout.AsDuration(); disp.RingingTimeout != nil && d > 0 {
		ringFor = d
	}
	maxFor := defaultMaxCallDuration
	if d := disp.MaxCallDuration.AsDuration(); disp.MaxCallDuration != nil && d > 0 {
		maxFor = d
	}
	callCtx, stopCall := context.WithTimeout(c.svc.ctx, maxFor)
	defer stopCall()
	ringCtx, stopRinging := context.WithTimeout(callCtx, ringFor)
	defer stopRinging()
	// The caller gives up (CANCEL): stop joining.
	context.AfterFunc(c.d.Context(), stopRinging)

	attrs := maps.Clone(disp.ParticipantAttributes)
	if attrs == nil {
		attrs = map[string]string{}
	}
	attrs[livekit.AttrSIPCallStatus] = statusRinging
	if c.call.SipCallId != "" {
		attrs[attrSIPCallIDFull] = c.call.SipCallId
	}
	wsURL := disp.WsUrl
	if wsURL == "" {
		wsURL = c.svc.settings.WsURL
	}
	part, err := lkroom.Join(ringCtx, lkroom.JoinParams{
		WsURL:      wsURL,
		APIKey:     c.svc.settings.APIKey,
		APISecret:  c.svc.settings.APISecret,
		Token:      disp.Token,
		Room:       disp.RoomName,
		Identity:   disp.ParticipantIdentity,
		Name:       disp.ParticipantName,
		Metadata:   disp.ParticipantMetadata,
		Attributes: attrs,
		RoomPreset: disp.RoomPreset,
		RoomConfig: disp.RoomConfig,
	}, lkroom.Hooks{OnDigit: c.queueRoomDigit}, c.log)
	if err != nil {
		if c.d.Context().Err() != nil {
			c.log.Info("caller hung up while joining the room")
			c.endedUnanswered(livekit.DisconnectReason_CLIENT_INITIATED, "")
			return
		}
		c.reject(sip.StatusServiceUnavailable, "Cannot Join Room", err.Error())
		return
	}
	c.part = part
	c.svc.track(c.callCore)
	defer c.svc.untrack(c.callCore)
	c.report(func(info *livekit.SIPCallInfo) { info.RoomId = part.RoomSID() })
	c.log.Info("inbound call in the room; ringing until someone is there")

	// 4. Answer once someone in the room can be heard. While the agent the dispatch rule
	// sends is not there, the call is offered to it again (reoffer.go); if it has not
	// joined within AgentWait it is not coming (every worker stayed full): busy, rather
	// than ringing out.
	var noAgent, again <-chan time.Time
	if wait := c.svc.settings.AgentWait; wait > 0 && len(disp.RoomConfig.GetAgents()) > 0 {
		timer, ticker := time.NewTimer(wait), time.NewTicker(reofferEvery)
		defer timer.Stop()
		defer ticker.Stop()
		noAgent, again = timer.C, ticker.C
	}
	agentJoined := part.AgentJoined()
	for ringing := true; ringing; {
		select {
		case <-agentJoined:
			agentJoined, noAgent, again = nil, nil, nil // it has the call: ring on until it speaks
		case <-again:
			offered, err := reoffer(ringCtx, c.svc.dispatch, disp.RoomName, disp.RoomConfig.GetAgents())
			if err != nil {
				c.log.Warn("cannot offer the call again", "error", err)
			} else if len(offered) > 0 {
				c.log.Info("no worker took the call: offered again", "agents", offered)
			}
		case <-noAgent:
			why := "no agent took the call within " + c.svc.settings.AgentWait.String()
			c.log.Info("not answering inbound call", "why", why)
			c.respondFinal(sip.StatusBusyHere, "Busy Here")
			c.hangUpRoom()
			c.endedUnanswered(livekit.DisconnectReason_USER_UNAVAILABLE, why)
			return
		case <-part.Subscribed():
			ringing = false
		case <-c.d.Context().Done():
			c.log.Info("caller hung up while ringing")
			c.hangUpRoom()
			c.endedUnanswered(livekit.DisconnectReason_CLIENT_INITIATED, "")
			return
		case <-part.Left():
			c.log.Info("participant left the room before the call was answered", "why", part.LeftReason())
			c.respondFinal(sip.StatusTemporarilyUnavailable, "Temporarily Unavailable")
			c.endedUnanswered(livekit.DisconnectReason_PARTICIPANT_REMOVED, "participant left the room before the answer")
			return
		case <-ringCtx.Done():
			why := "nobody in the room published audio within " + ringFor.String()
			if c.svc.ctx.Err() != nil {
				why = "the bridge is shutting down"
			}
			c.log.Info("not answering inbound call", "why", why)
			c.respondFinal(sip.StatusTemporarilyUnavailable, "Temporarily Unavailable")
			c.hangUpRoom()
			c.endedUnanswered(livekit.DisconnectReason_USER_UNAVAILABLE, why)
			return
		}
	}
	phone, err := sipua.Answer(c.d)
	if err != nil {
		c.log.Warn("cannot answer the call", "error", err)
		c.hangUpRoom()
		c.endedUnanswered(livekit.DisconnectReason_SIP_TRUNK_FAILURE, "answer: "+err.Error())
		return
	}
	c.established(phone.Media, c.d, phone.CallID(), phone.Done(), phone.Hangup)
	part.SetAttributes(map[string]string{livekit.AttrSIPCallStatus: statusActive})
	c.log.Info("inbound call answered", "codec", phone.Media.Codec().Name())
	c.report(func(info *livekit.SIPCallInfo) {
		info.CallStatus = livekit.SIPCallStatus_SCS_ACTIVE
		info.StartedAtNs = time.Now().UnixNano()
		info.AudioCodec = phone.Media.Codec().Name()
		info.RoomId = part.RoomSID()
	})

	// 5. Bridge until one side hangs up.
	c.bridgeUntilHangup(callCtx, maxFor)
}

// respondFinal ends a ringing INVITE with an error status, unless the caller already
// cancelled it.
func (c *inboundCall) respondFinal(code int, reason string) {
	if c.d.Context().Err() != nil {
		return
	}
	if err := c.d.Respond(code, reason, nil); err != nil && !errors.Is(err, context.Canceled) {
		c.log.Debug("respond", "status", code, "error", err)
	}
}

func (c *inboundCall) endedUnanswered(reason livekit.DisconnectReason, why string) {
	c.report(func(info *livekit.SIPCallInfo) {
		info.CallStatus = livekit.SIPCallStatus_SCS_DISCONNECTED
		if why != "" {
			info.CallStatus = livekit.SIPCallStatus_SCS_ERROR
			info.Error = why
		}
		info.DisconnectReason = reason
		info.EndedAtNs = time.Now().UnixNano()
	})
}
