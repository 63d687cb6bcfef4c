package bridge

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// digestRealm is the realm we challenge with when the trunk names none.
const digestRealm = "sipbridge"

// nonceLifetime bounds how long a challenge may be answered.
const nonceLifetime = time.Minute

// inboundAuth checks digest credentials on INVITEs for trunks that have them
// (RFC 2617 without qop, MD5, as LiveKit's bridge does). The challenge is a 407 with
// Proxy-Authenticate; the answer may come in Proxy-Authorization or Authorization.
type inboundAuth struct {
	mu     sync.Mutex
	nonces map[string]time.Time // nonce -> when it expires
}

func newInboundAuth() *inboundAuth { return &inboundAuth{nonces: map[string]time.Time{}} }

// authResult is what to do with an INVITE after looking at its credentials.
type authResult int

const (
	authOK         authResult = iota
	authChallenged            // 407 sent: the caller should retry with credentials
	authRejected              // wrong credentials: 403 sent
)

// check looks for valid credentials in req. Without any it returns the 407 challenge
// to send; with wrong ones a 403.
func (a *inboundAuth) check(req *sip.Request, user, password, realm string) (authResult, *sip.Response) {
	if realm == "" {
		realm = digestRealm
	}
	h := req.GetHeader("Proxy-Authorization")
	if h == nil {
		h = req.GetHeader("Authorization")
	}
	if h == nil {
		return authChallenged, a.challenge(req, realm)
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil {
		return authRejected, sip.NewResponseFromRequest(req, sip.StatusForbidden, "Bad Credentials", nil)
	}
	if !a.takeNonce(cred.Nonce) {
		// Unknown or expired nonce (e.g. a bridge restart): challenge again.
		return authChallenged, a.challenge(req, realm)
	}
	ha1 := md5hex(fmt.Sprintf("%s:%s:%s", user, realm, password))
	ha2 := md5hex(fmt.Sprintf("%s:%s", req.Method.String(), cred.URI))
	want := md5hex(fmt.Sprintf("%s:%s:%s", ha1, cred.Nonce, ha2))
	if cred.Username != user || cred.Realm != realm ||
		subtle.ConstantTimeCompare([]byte(want), []byte(cred.Response)) != 1 {
		return authRejected, sip.NewResponseFromRequest(req, sip.StatusForbidden, "Bad Credentials", nil)
	}
	return authOK, nil
}

func (a *inboundAuth) challenge(req *sip.Request, realm string) *sip.Response {
	buf := make([]byte, 16)
	_, _ = rand.Read(buf)
	nonce := hex.EncodeToString(buf)
	a.mu.Lock()
	now := time.Now()
	for n, exp := range a.nonces {
		if now.After(exp) {
			delete(a.nonces, n)
		}
	}
	a.nonces[nonce] = now.Add(nonceLifetime)
	a.mu.Unlock()
	res := sip.NewResponseFromRequest(req, sip.StatusProxyAuthRequired, "Proxy Authentication Required", nil)
	res.AppendHeader(sip.NewHeader("Proxy-Authenticate",
		fmt.Sprintf(`Digest realm="%s", nonce="%s", algorithm=MD5`, realm, nonce)))
	return res
}

// takeNonce consumes a nonce we issued: each answers one INVITE.
func (a *inboundAuth) takeNonce(nonce string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := a.nonces[nonce]
	delete(a.nonces, nonce)
	return ok && time.Now().Before(exp)
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
