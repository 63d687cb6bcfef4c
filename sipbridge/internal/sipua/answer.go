package sipua

import (
	"context"
	"errors"
	"strings"

	"github.com/emiago/diago"
)

// InboundCall is an answered incoming call.
type InboundCall struct {
	Dialog *diago.DialogServerSession
	Media  *Media
}

// Answer answers an incoming INVITE (200 with our SDP) and waits for the ACK. The
// offer must allow PCMU or PCMA (check with OfferHasG711 before ringing).
func Answer(d *diago.DialogServerSession) (*InboundCall, error) {
	dm, err := d.Answer(diago.AnswerOptions{})
	if err != nil {
		return nil, err
	}
	m, err := NewMedia(dm)
	if err != nil {
		_ = d.Hangup(context.Background())
		return nil, err
	}
	return &InboundCall{Dialog: d, Media: m}, nil
}

// CallID is the SIP Call-ID of the dialog.
func (c *InboundCall) CallID() string {
	if id := c.Dialog.InviteRequest.CallID(); id != nil {
		return id.Value()
	}
	return ""
}

// Done is closed when the dialog ends, whichever side hung up.
func (c *InboundCall) Done() <-chan struct{} { return c.Dialog.Context().Done() }

// Hangup sends BYE if the dialog is still up.
func (c *InboundCall) Hangup(ctx context.Context) error {
	select {
	case <-c.Done():
		return nil
	default:
	}
	return c.Dialog.Hangup(ctx)
}

// ErrNoG711 is an SDP offer without PCMU or PCMA over plain RTP.
var ErrNoG711 = errors.New("the offer has no PCMU or PCMA audio over RTP/AVP")

// OfferHasG711 checks an SDP offer for an RTP/AVP audio stream that allows PCMU
// (payload type 0) or PCMA (8), by number or by rtpmap name.
func OfferHasG711(sdp []byte) error {
	if len(sdp) == 0 {
		return errors.New("the INVITE has no SDP offer")
	}
	lines := strings.Split(strings.ReplaceAll(string(sdp), "\r\n", "\n"), "\n")
	inAudio := false
	var audioPTs []string
	for _, line := range lines {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "m=") {
			inAudio = false
			f := strings.Fields(strings.TrimPrefix(line, "m="))
			// m=audio <port> RTP/AVP <fmt>...
			if len(f) >= 4 && f[0] == "audio" && f[1] != "0" && f[2] == "RTP/AVP" {
				inAudio = true
				audioPTs = append(audioPTs, f[3:]...)
			}
			continue
		}
		if inAudio && strings.HasPrefix(line, "a=rtpmap:") {
			pt, enc, _ := strings.Cut(strings.TrimPrefix(line, "a=rtpmap:"), " ")
			name, _, _ := strings.Cut(enc, "/")
			if (strings.EqualFold(name, "PCMU") || strings.EqualFold(name, "PCMA")) && contains(audioPTs, pt) {
				return nil
			}
		}
	}
	if contains(audioPTs, "0") || contains(audioPTs, "8") {
		return nil
	}
	return ErrNoG711
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
