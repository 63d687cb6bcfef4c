package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/rpc"
	"github.com/livekit/psrpc"
	"google.golang.org/protobuf/proto"

	"salesagent/sipbridge/internal/audio"
	"salesagent/sipbridge/internal/lkroom"
	"salesagent/sipbridge/internal/sipua"
)

// callCore is what every call has, inbound or outbound: the room participant, the
// phone call once it is up, the state reported to livekit-server, and the bridging
// of audio and DTMF between the two.
type callCore struct {
	svc *Service
	log *slog.Logger
	// lkCallID is LiveKit's call ID (SCL_...), the sip.callID attribute, and the psrpc
	// topic TransferSIPParticipant arrives on.
	lkCallID string

	part *lkroom.Participant
	// roomDigits are keys sent by the room (SipDTMF packets) waiting to be played to
	// the phone; the media loop sends them between audio frames.
	roomDigits chan byte

	// Set by established, once the phone call is up.
	upMu      sync.Mutex
	media     *sipua.Media
	dialog    sipua.Dialog
	sipCallID string
	phoneDone <-chan struct{}
	byePhone  func(ctx context.Context) error

	// endCall asks the bridging loop to end the call (after a transfer).
	endCall chan string
	// transferring is held while a REFER is in progress.
	transferring sync.Mutex

	stateMu sync.Mutex
	state   *livekit.SIPCallInfo
}

func newCallCore(s *Service, lkCallID string, log *slog.Logger, state *livekit.SIPCallInfo) *callCore {
	return &callCore{
		svc:        s,
		log:        log,
		lkCallID:   lkCallID,
		roomDigits: make(chan byte, 32),
		endCall:    make(chan string, 1),
		state:      state,
	}
}

// established records the phone side of a call that is now up.
func (c *callCore) established(m *sipua.Media, d sipua.Dialog, sipCallID string, done <-chan struct{}, bye func(context.Context) error) {
	c.upMu.Lock()
	defer c.upMu.Unlock()
	c.media, c.dialog, c.sipCallID, c.phoneDone, c.byePhone = m, d, sipCallID, done, bye
}

func (c *callCore) isUp() bool {
	c.upMu.Lock()
	defer c.upMu.Unlock()
	return c.media != nil
}

// mediaTimeout ends a call when the phone sends no RTP for this long (a phone that
// vanished without a BYE). LiveKit's bridge uses the same default.
const mediaTimeout = 15 * time.Second

// bridgeUntilHangup carries audio and DTMF both ways until one side hangs up, then
// ends the other side. maxFor bounds the call.
func (c *callCore) bridgeUntilHangup(ctx context.Context, maxFor time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, maxFor)
	defer cancel()

	stopSending := make(chan struct{})
	var media sync.WaitGroup
	media.Go(c.phoneToRoom)
	media.Go(func() { c.roomToPhone(stopSending) })

	started := time.Now()
	watchdog := time.NewTicker(time.Second)
	defer watchdog.Stop()

	reason := livekit.DisconnectReason_CLIENT_INITIATED
	var callErr string
loop:
	for {
		select {
		case <-c.phoneDone:
			c.log.Info("phone hung up")
			c.hangUpRoom()
			break loop
		case <-c.part.Left():
			c.log.Info("participant left the room; hanging up the phone", "why", c.part.LeftReason())
			reason = livekit.DisconnectReason_PARTICIPANT_REMOVED
			c.hangUpPhone()
			break loop
		case why := <-c.endCall:
			c.log.Info("ending the call", "why", why)
			c.hangUpPhone()
			c.hangUpRoom()
			break loop
		case <-watchdog.C:
			last := c.media.LastPacket()
			if last.IsZero() {
				last = started
			}
			if time.Since(last) > mediaTimeout {
				c.log.Warn("no RTP from the phone; hanging up", "silentFor", time.Since(last).Round(time.Second))
				callErr = "media timeout: no RTP from the phone"
				c.hangUpPhone()
				c.hangUpRoom()
				break loop
			}
		case <-ctx.Done():
			c.log.Info("call ended by the bridge", "why", context.Cause(ctx))
			c.hangUpPhone()
			c.hangUpRoom()
			break loop
		}
	}
	close(stopSending)
	_ = c.media.Close()
	media.Wait()
	c.report(func(info *livekit.SIPCallInfo) {
		info.CallStatus = livekit.SIPCallStatus_SCS_DISCONNECTED
		info.DisconnectReason = reason
		info.Error = callErr
		info.EndedAtNs = time.Now().UnixNano()
	})
}

// phoneToRoom publishes what the phone says, and the keys it presses.
func (c *callCore) phoneToRoom() {
	framer := audio.NewFramer(audio.FrameSamples)
	publish := func(frame []int16) {
		if err := c.part.WritePhoneFrame(frame); err != nil {
			c.log.Debug("publish phone audio", "error", err)
		}
	}
	err := c.media.Receive(
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
func (c *callCore) roomToPhone(stop <-chan struct{}) {
	frame := make([]int16, audio.FrameSamples)
	for {
		select {
		case <-stop:
			return
		case d := <-c.roomDigits:
			if err := c.media.SendDigit(d); err != nil {
				c.log.Warn("send DTMF to phone", "digit", string(d), "error", err)
			}
			continue
		default:
		}
		c.part.MixRoomFrame(frame)
		if err := c.media.WriteFrame(frame); err != nil {
			return
		}
	}
}

func (c *callCore) queueRoomDigit(digit byte) {
	select {
	case c.roomDigits <- digit:
	default:
		c.log.Warn("dropping DTMF from the room: too many queued", "digit", string(digit))
	}
}

// hangUpRoom marks the call as hung up for the room, then leaves. The status is set
// first and given a moment to reach the server, so that others see "hangup".
func (c *callCore) hangUpRoom() {
	c.part.SetAttributes(map[string]string{livekit.AttrSIPCallStatus: statusHangup})
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) && c.part.Attributes()[livekit.AttrSIPCallStatus] != statusHangup {
		time.Sleep(20 * time.Millisecond)
	}
	c.part.Leave()
}

func (c *callCore) hangUpPhone() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.byePhone(ctx); err != nil {
		c.log.Warn("BYE to phone", "error", err)
	}
}

// setCallStatus updates the participant's sip.callStatus attribute.
func (c *callCore) setCallStatus(status string) {
	c.part.SetAttributes(map[string]string{livekit.AttrSIPCallStatus: status})
}

// referByeDelay is how long the far end gets to hang up by itself after a
// successful transfer before we send the BYE (LiveKit waits the same).
const referByeDelay = time.Second

// transfer sends the phone a REFER to transferTo and waits for the outcome. After a
// successful transfer the call ends: the phone's BYE, or ours a second later.
func (c *callCore) transfer(ctx context.Context, transferTo string, headers map[string]string) error {
	c.upMu.Lock()
	d, sipCallID := c.dialog, c.sipCallID
	c.upMu.Unlock()
	if d == nil {
		return psrpc.NewErrorf(psrpc.FailedPrecondition, "can't transfer a call that is not established")
	}
	if !c.transferring.TryLock() {
		return psrpc.NewErrorf(psrpc.FailedPrecondition, "call is already being transferred")
	}
	defer c.transferring.Unlock()

	c.log.Info("transferring the call", "transferTo", transferTo)
	info := &livekit.SIPTransferInfo{
		TransferId:            fmt.Sprintf("%s-%d", c.lkCallID, time.Now().UnixNano()),
		CallId:                c.lkCallID,
		TransferTo:            transferTo,
		TransferInitiatedAtNs: time.Now().UnixNano(),
		TransferStatus:        livekit.SIPTransferStatus_STS_TRANSFER_ONGOING,
	}
	c.reportTransfer(info)

	err := c.svc.sip.Refer(ctx, d, sipCallID, transferTo, headers)
	if errors.Is(err, sipua.ErrDialogEnded) {
		// Accepted, then the phone hung up before telling us how it went: that is how
		// many carriers complete a blind transfer, and LiveKit counts it as done.
		err = nil
	}
	info.TransferCompletedAtNs = time.Now().UnixNano()
	if err != nil {
		c.log.Info("transfer failed", "transferTo", transferTo, "error", err)
		rpcErr := transferError(ctx, err)
		info.TransferStatus = livekit.SIPTransferStatus_STS_TRANSFER_FAILED
		info.Error = err.Error()
		var failed *sipua.TransferFailure
		if errors.As(err, &failed) {
			info.TransferStatusCode = &livekit.SIPStatus{Code: livekit.SIPStatusCode(failed.Code), Status: failed.Reason}
		}
		c.reportTransfer(info)
		return rpcErr
	}
	c.log.Info("call transferred", "transferTo", transferTo)
	info.TransferStatus = livekit.SIPTransferStatus_STS_TRANSFER_SUCCESSFUL
	c.reportTransfer(info)
	time.AfterFunc(referByeDelay, func() {
		select {
		case c.endCall <- "transferred to " + transferTo:
		default:
		}
	})
	return nil
}

// transferError is the RPC error for a failed transfer. A SIP status from the phone
// goes into the details as a livekit.SIPStatus, which livekit-server turns into the
// Twirp metadata sip_status_code / sip_status (Python's livekit-api then raises
// SipCallError), with the psrpc code LiveKit uses for it.
func transferError(ctx context.Context, err error) error {
	var failed *sipua.TransferFailure
	if errors.As(err, &failed) {
		st := &livekit.SIPStatus{Code: livekit.SIPStatusCode(failed.Code), Status: failed.Reason}
		code := psrpc.ErrorCodeFromGRPC(st.GRPCStatus().Code())
		if code == psrpc.Internal || code == psrpc.Unavailable {
			code = psrpc.UpstreamClientError
			if failed.Code >= 500 && failed.Code < 600 {
				code = psrpc.UpstreamServerError
			}
		}
		return psrpc.NewError(code, fmt.Errorf("call transfer failed: %w", err), st)
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return psrpc.NewErrorf(psrpc.DeadlineExceeded, "call transfer timed out: %v", err)
	case ctx.Err() != nil:
		return psrpc.NewErrorf(psrpc.Canceled, "call transfer canceled")
	}
	return psrpc.NewError(psrpc.Internal, fmt.Errorf("call transfer: %w", err))
}

// report updates the call's state and sends it to livekit-server (IOInfo
// UpdateSIPCallState). Best effort: a lost report does not affect the call.
func (c *callCore) report(update func(info *livekit.SIPCallInfo)) {
	c.stateMu.Lock()
	update(c.state)
	if c.part != nil {
		if attrs := c.part.Attributes(); len(attrs) > 0 {
			c.state.ParticipantAttributes = attrs
		}
	}
	snapshot := proto.CloneOf(c.state)
	c.stateMu.Unlock()
	c.send(&rpc.UpdateSIPCallStateRequest{CallInfo: snapshot})
}

func (c *callCore) reportTransfer(info *livekit.SIPTransferInfo) {
	c.send(&rpc.UpdateSIPCallStateRequest{TransferInfo: proto.CloneOf(info)})
}

func (c *callCore) send(req *rpc.UpdateSIPCallStateRequest) {
	if c.svc.io == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := c.svc.io.UpdateSIPCallState(ctx, req); err != nil {
		c.log.Debug("report call state", "error", err)
	}
}
