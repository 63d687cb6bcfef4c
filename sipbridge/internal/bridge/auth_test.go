package bridge

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

func inviteWith(t *testing.T, header, value string) *sip.Request {
	t.Helper()
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "+14155550177", Host: "127.0.0.1", Port: 5060})
	req.AppendHeader(sip.NewHeader("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1"))
	req.AppendHeader(sip.NewHeader("From", "<sip:alice@127.0.0.1>;tag=1"))
	req.AppendHeader(sip.NewHeader("To", "<sip:+14155550177@127.0.0.1>"))
	req.AppendHeader(sip.NewHeader("Call-ID", "abc"))
	req.AppendHeader(sip.NewHeader("CSeq", "1 INVITE"))
	if header != "" {
		req.AppendHeader(sip.NewHeader(header, value))
	}
	return req
}

// answer computes the client's digest answer to a 407 (RFC 2617, as a carrier would,
// with the icholy/digest client code rather than ours).
func answer(t *testing.T, res *sip.Response, user, password string) string {
	t.Helper()
	h := res.GetHeader("Proxy-Authenticate")
	if h == nil {
		t.Fatalf("challenge %d has no Proxy-Authenticate", res.StatusCode)
	}
	chal, err := digest.ParseChallenge(h.Value())
	if err != nil {
		t.Fatal(err)
	}
	cred, err := digest.Digest(chal, digest.Options{Method: "INVITE", URI: "sip:+14155550177@127.0.0.1:5060", Username: user, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	return cred.String()
}

func TestInboundDigestAuth(t *testing.T) {
	a := newInboundAuth()
	result, res := a.check(inviteWith(t, "", ""), "carrier", "pw", "")
	if result != authChallenged || res.StatusCode != 407 || !strings.Contains(res.GetHeader("Proxy-Authenticate").Value(), `realm="sipbridge"`) {
		t.Fatalf("no credentials: %v %v", result, res)
	}
	good := answer(t, res, "carrier", "pw")
	if result, res := a.check(inviteWith(t, "Proxy-Authorization", good), "carrier", "pw", ""); result != authOK {
		t.Fatalf("right credentials: %v %v", result, res)
	}
	// A nonce answers one INVITE only: replaying it gets a fresh challenge.
	if result, res := a.check(inviteWith(t, "Proxy-Authorization", good), "carrier", "pw", ""); result != authChallenged || res.StatusCode != 407 {
		t.Fatalf("replayed credentials: %v %v", result, res)
	}
	_, res = a.check(inviteWith(t, "", ""), "carrier", "pw", "")
	bad := answer(t, res, "carrier", "wrong")
	if result, res := a.check(inviteWith(t, "Proxy-Authorization", bad), "carrier", "pw", ""); result != authRejected || res.StatusCode != 403 {
		t.Fatalf("wrong password: %v %v", result, res)
	}
	_, res = a.check(inviteWith(t, "", ""), "carrier", "pw", "")
	other := answer(t, res, "someone", "pw")
	if result, _ := a.check(inviteWith(t, "Authorization", other), "carrier", "pw", ""); result != authRejected {
		t.Fatalf("wrong user: %v", result)
	}
}
