package bridge

import (
	"errors"
	"fmt"

	"github.com/livekit/protocol/livekit"
	"github.com/livekit/psrpc"

	"salesagent/sipbridge/internal/sipua"
)

// The values of the sip.callStatus attribute, as LiveKit's SIP service sets them.
const (
	statusDialing    = "dialing"
	statusRinging    = "ringing"
	statusAutomation = "automation" // sending the requested DTMF after the answer
	statusActive     = "active"
	statusHangup     = "hangup"
)

// attrSIPCallIDFull carries the SIP Call-ID of the dialog (LiveKit sets it too).
const attrSIPCallIDFull = livekit.AttrSIPPrefix + "callIDFull"

// callFailedError is the RPC error for an INVITE that did not become a call.
//
// It is a psrpc error whose details carry a livekit.SIPStatus. livekit-server hands
// the details to its Twirp layer, which turns a SIPStatus into the error metadata
// sip_status_code and sip_status; LiveKit's API clients read those (Python's
// livekit-api raises SipCallError). The psrpc code follows protocol's own mapping of
// SIP statuses to gRPC codes (486 -> resource exhausted, 404 -> not found, ...).
func callFailedError(f *sipua.CallFailure) error {
	st := &livekit.SIPStatus{Code: livekit.SIPStatusCode(f.Code), Status: f.Reason}
	code := psrpc.ErrorCodeFromGRPC(st.GRPCStatus().Code())
	return psrpc.NewError(code, fmt.Errorf("sip status %d: %s", f.Code, f.Reason), st)
}

// dialError converts what dialling returned into the RPC error to send back.
func dialError(err error) error {
	var failed *sipua.CallFailure
	if errors.As(err, &failed) {
		return callFailedError(failed)
	}
	var perr psrpc.Error
	if errors.As(err, &perr) {
		return err
	}
	// No SIP response at all (unreachable address, no final response in time).
	return psrpc.NewError(psrpc.Unavailable, err)
}
