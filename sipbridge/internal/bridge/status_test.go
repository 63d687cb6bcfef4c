package bridge

import (
	"errors"
	"strconv"
	"testing"

	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/utils/xtwirp"
	"github.com/livekit/psrpc"
	"github.com/twitchtv/twirp"

	"salesagent/sipbridge/internal/sipua"
)

// A rejected INVITE must reach the API caller as LiveKit's does: a psrpc code from
// protocol's SIP mapping, and Twirp metadata sip_status_code / sip_status produced by
// the same conversion livekit-server applies (xtwirp) to the error details.
func TestCallFailureBecomesTwirpErrorWithSIPStatus(t *testing.T) {
	cases := []struct {
		code      int
		reason    string
		wantPsrpc psrpc.ErrorCode
	}{
		{486, "Busy Here", psrpc.ResourceExhausted},
		{480, "Temporarily Unavailable", psrpc.ResourceExhausted},
		{404, "Not Found", psrpc.NotFound},
		{603, "Decline", psrpc.PermissionDenied},
		{408, "Request Timeout", psrpc.DeadlineExceeded},
	}
	for _, c := range cases {
		err := callFailedError(&sipua.CallFailure{Code: c.code, Reason: c.reason})
		code, ok := psrpc.GetErrorCode(err)
		if !ok || code != c.wantPsrpc {
			t.Errorf("%d: psrpc code %q, want %q", c.code, code, c.wantPsrpc)
		}
		var perr psrpc.Error
		if !errors.As(err, &perr) {
			t.Fatalf("%d: not a psrpc error", c.code)
		}
		// What the psrpc client rebuilds on the server side from the wire response.
		wire := psrpc.NewErrorFromResponse(string(perr.Code()), perr.Error(), perr.DetailsProto()...)
		tw := xtwirp.WithDetailsFrom(twirp.NewError(twirp.Unknown, wire.Error()), wire)
		if got := tw.Meta("sip_status_code"); got != strconv.Itoa(c.code) {
			t.Errorf("%d: twirp sip_status_code %q", c.code, got)
		}
		if got := tw.Meta("sip_status"); got != c.reason {
			t.Errorf("%d: twirp sip_status %q, want %q", c.code, got, c.reason)
		}
		var st *livekit.SIPStatus
		for _, d := range perr.Details() {
			if s, ok := d.(*livekit.SIPStatus); ok {
				st = s
			}
		}
		if st == nil || int(st.Code) != c.code {
			t.Errorf("%d: details carry %v", c.code, st)
		}
	}
}

func TestDialErrorWithoutSIPStatusIsUnavailable(t *testing.T) {
	code, _ := psrpc.GetErrorCode(dialError(errors.New("no route")))
	if code != psrpc.Unavailable {
		t.Fatalf("code %q, want unavailable", code)
	}
}
