package sipua

import (
	"errors"
	"testing"
)

func TestOfferHasG711(t *testing.T) {
	cases := []struct {
		name string
		sdp  string
		ok   bool
	}{
		{"pcmu static", "v=0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n", true},
		{"pcma by name", "v=0\r\nm=audio 4000 RTP/AVP 96\r\na=rtpmap:96 PCMA/8000\r\n", true},
		{"opus only", "v=0\r\nm=audio 4000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n", false},
		{"srtp only", "v=0\r\nm=audio 4000 RTP/SAVP 0\r\n", false},
		{"disabled stream", "v=0\r\nm=audio 0 RTP/AVP 0\r\n", false},
		{"pcmu on video", "v=0\r\nm=video 4000 RTP/AVP 0\r\n", false},
		{"empty", "", false},
	}
	for _, c := range cases {
		err := OfferHasG711([]byte(c.sdp))
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok=%v", c.name, err, c.ok)
		}
		if c.sdp != "" && !c.ok && !errors.Is(err, ErrNoG711) {
			t.Errorf("%s: %v, want ErrNoG711", c.name, err)
		}
	}
}

func TestParseSipfrag(t *testing.T) {
	cases := []struct {
		body   string
		code   int
		reason string
		ok     bool
	}{
		{"SIP/2.0 200 OK\r\n", 200, "OK", true},
		{"SIP/2.0 100 Trying", 100, "Trying", true},
		{"SIP/2.0 486 Busy Here\r\nContent-Length: 0\r\n", 486, "Busy Here", true},
		{"SIP/2.0 603", 603, "", true},
		{"HTTP/1.1 200 OK", 0, "", false},
		{"SIP/2.0 abc nope", 0, "", false},
		{"", 0, "", false},
	}
	for _, c := range cases {
		code, reason, ok := parseSipfrag([]byte(c.body))
		if code != c.code || reason != c.reason || ok != c.ok {
			t.Errorf("%q: %d %q %v, want %d %q %v", c.body, code, reason, ok, c.code, c.reason, c.ok)
		}
	}
}
