package testphone

import (
	"context"
	"errors"
	"math"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"salesagent/sipbridge/internal/audio"
	"salesagent/sipbridge/internal/sipua"
	"salesagent/sipbridge/internal/wav"
)

// events collects a phone's events for assertions.
type events struct {
	mu   sync.Mutex
	list []Event
	ch   chan Event
}

func newEvents() *events { return &events{ch: make(chan Event, 100)} }

func (e *events) add(ev Event) {
	e.mu.Lock()
	e.list = append(e.list, ev)
	e.mu.Unlock()
	e.ch <- ev
}

// waitFor returns the next event named name, failing the test after timeout.
func (e *events) waitFor(t *testing.T, name string, timeout time.Duration) Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-e.ch:
			if ev.Event == name {
				return ev
			}
		case <-deadline:
			e.mu.Lock()
			defer e.mu.Unlock()
			t.Fatalf("no %q event within %v; got %+v", name, timeout, e.list)
		}
	}
}

func startPhone(t *testing.T, ctx context.Context, cfg Config) (*Phone, *events) {
	t.Helper()
	port, err := sipua.FreeUDPPort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	evs := newEvents()
	cfg.SIP = sipua.Config{Host: "127.0.0.1", Port: port, Name: "testphone"}
	cfg.OnEvent = evs.add
	p, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, evs
}

func startCaller(t *testing.T, ctx context.Context) *sipua.UA {
	t.Helper()
	port, err := sipua.FreeUDPPort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ua, err := sipua.Start(ctx, sipua.Config{Host: "127.0.0.1", Port: port, Name: "caller"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ua
}

func phoneURI(t *testing.T, p *Phone) sip.Uri {
	t.Helper()
	var u sip.Uri
	if err := sip.ParseUri("sip:+15550100@"+p.Addr(), &u); err != nil {
		t.Fatal(err)
	}
	return u
}

func tone(freq float64, seconds float64) []int16 {
	pcm := make([]int16, int(seconds*audio.SampleRate))
	for i := range pcm {
		pcm[i] = int16(8000 * math.Sin(2*math.Pi*freq*float64(i)/audio.SampleRate))
	}
	return pcm
}

// toneShare is the share of pcm's energy at freq (Goertzel), 0..1. A clean tone
// scores near 1, silence or another tone near 0.
func toneShare(pcm []int16, freq float64) float64 {
	if len(pcm) == 0 {
		return 0
	}
	w := 2 * math.Pi * freq / audio.SampleRate
	coeff := 2 * math.Cos(w)
	var s1, s2, total float64
	for _, v := range pcm {
		x := float64(v)
		total += x * x
		s0 := x + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	power := s1*s1 + s2*s2 - coeff*s1*s2
	if total == 0 {
		return 0
	}
	return 2 * power / (float64(len(pcm)) * total)
}

func TestAnsweredCallCarriesAudioBothWaysAndCallerHangsUp(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	play := filepath.Join(dir, "play.wav")
	if err := wav.WriteFile(play, audio.SampleRate, tone(1000, 3)); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(dir, "heard.wav")
	phone, evs := startPhone(t, ctx, Config{RingFor: 300 * time.Millisecond, PlayWAV: play, RecordWAV: record})
	caller := startCaller(t, ctx)

	var progress []int
	var mu sync.Mutex
	call, err := caller.Dial(ctx, phoneURI(t, phone), sipua.DialOptions{
		FromUser: "+15550199",
		OnProgress: func(code int, _ string) {
			mu.Lock()
			progress = append(progress, code)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	invite := evs.waitFor(t, "invite", time.Second)
	if invite.From == "" || invite.CallID != call.CallID() {
		t.Fatalf("invite event %+v does not match call %s", invite, call.CallID())
	}
	evs.waitFor(t, "answered", time.Second)
	mu.Lock()
	sawRinging := false
	for _, c := range progress {
		sawRinging = sawRinging || c == sip.StatusRinging
	}
	mu.Unlock()
	if !sawRinging {
		t.Fatalf("no 180 Ringing before the answer; provisional responses %v", progress)
	}
	if call.Media.Codec().Name() != "PCMU" {
		t.Fatalf("negotiated %s, want PCMU (first offered)", call.Media.Codec().Name())
	}

	// Caller side: record what the phone plays, and play 440 Hz back for ~1 s.
	var heard []int16
	var heardMu sync.Mutex
	go call.Media.Receive(func(pcm []int16) {
		heardMu.Lock()
		heard = append(heard, pcm...)
		heardMu.Unlock()
	}, nil)
	out := tone(440, 1.2)
	for i := 0; i+audio.FrameSamples <= len(out); i += audio.FrameSamples {
		if err := call.Media.WriteFrame(out[i : i+audio.FrameSamples]); err != nil {
			t.Fatalf("write frame: %v", err)
		}
	}
	if err := call.Hangup(ctx); err != nil {
		t.Fatalf("hang up: %v", err)
	}
	if ev := evs.waitFor(t, "hangup", 2*time.Second); ev.By != "remote" {
		t.Fatalf("phone says %q hung up, want remote", ev.By)
	}
	rec := evs.waitFor(t, "recorded", 2*time.Second)

	heardMu.Lock()
	defer heardMu.Unlock()
	if len(heard) < audio.SampleRate/2 {
		t.Fatalf("caller heard only %d samples", len(heard))
	}
	if s := toneShare(heard, 1000); s < 0.8 {
		t.Fatalf("caller heard the phone's 1 kHz tone at only %.2f of its energy", s)
	}
	got, err := wav.ReadFile(rec.Path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Samples) != rec.Samples || len(got.Samples) < audio.SampleRate/2 {
		t.Fatalf("recording has %d samples (event says %d)", len(got.Samples), rec.Samples)
	}
	if s := toneShare(got.Samples, 440); s < 0.8 {
		t.Fatalf("phone recorded the caller's 440 Hz tone at only %.2f of its energy", s)
	}
	if s := toneShare(got.Samples, 1000); s > 0.1 {
		t.Fatalf("recording has %.2f of its energy at 1 kHz: the phone hears itself", s)
	}
}

func TestPhoneHangsUpAndCallerSeesBye(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	phone, evs := startPhone(t, ctx, Config{HangUpAfter: 400 * time.Millisecond})
	caller := startCaller(t, ctx)
	call, err := caller.Dial(ctx, phoneURI(t, phone), sipua.DialOptions{FromUser: "alice"})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer call.Hangup(ctx)
	select {
	case <-call.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("caller's dialog still up 3 s after the phone should have sent BYE")
	}
	if ev := evs.waitFor(t, "hangup", time.Second); ev.By != "local" {
		t.Fatalf("phone says %q hung up, want local", ev.By)
	}
}

func TestRejectedCallsReturnTheirStatus(t *testing.T) {
	for _, code := range []int{486, 480, 404, 603} {
		t.Run(sipua.ReasonPhrase(code), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			phone, evs := startPhone(t, ctx, Config{RejectStatus: code})
			caller := startCaller(t, ctx)
			_, err := caller.Dial(ctx, phoneURI(t, phone), sipua.DialOptions{FromUser: "alice"})
			var failed *sipua.CallFailure
			if !errors.As(err, &failed) {
				t.Fatalf("dial error %v, want a CallFailure", err)
			}
			if failed.Code != code || failed.Local || failed.Reason != sipua.ReasonPhrase(code) {
				t.Fatalf("failure %+v, want %d %q from the phone", failed, code, sipua.ReasonPhrase(code))
			}
			if ev := evs.waitFor(t, "rejected", time.Second); ev.Status != code {
				t.Fatalf("phone event %+v", ev)
			}
		})
	}
}

func TestUnansweredCallTimesOutWith408AndIsCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	phone, evs := startPhone(t, ctx, Config{RingFor: 10 * time.Second})
	caller := startCaller(t, ctx)
	dialCtx, dialCancel := context.WithTimeout(ctx, 700*time.Millisecond)
	defer dialCancel()
	start := time.Now()
	_, err := caller.Dial(dialCtx, phoneURI(t, phone), sipua.DialOptions{FromUser: "alice"})
	var failed *sipua.CallFailure
	if !errors.As(err, &failed) || failed.Code != 408 || !failed.Local {
		t.Fatalf("dial error %v, want a local 408", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("giving up took %v", took)
	}
	evs.waitFor(t, "ringing", time.Second)
	// The CANCEL must reach the phone: it stops ringing well before its 10 s.
	if ev := evs.waitFor(t, "hangup", 12*time.Second); ev.By != "remote" {
		t.Fatalf("phone hangup event %+v", ev)
	}
}

func TestPhoneDigitsReachCallerAsDTMF(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	phone, _ := startPhone(t, ctx, Config{SendDigits: "12#"})
	caller := startCaller(t, ctx)
	call, err := caller.Dial(ctx, phoneURI(t, phone), sipua.DialOptions{FromUser: "alice"})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer call.Hangup(ctx)
	if !call.Media.HasDTMF() {
		t.Fatal("telephone-event not negotiated")
	}
	digits := make(chan byte, 10)
	go call.Media.Receive(nil, func(d byte) { digits <- d })
	var got []byte
	timeout := time.After(4 * time.Second)
	for len(got) < 3 {
		select {
		case d := <-digits:
			got = append(got, d)
		case <-timeout:
			t.Fatalf("received digits %q, want \"12#\"", got)
		}
	}
	if string(got) != "12#" {
		t.Fatalf("received digits %q, want \"12#\"", got)
	}
}

// A phone that demands digest auth: the caller answers the 401 challenge with its
// credentials and gets through; with a wrong password the call fails with 401.
func TestDigestAuthChallengeIsAnswered(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	phone, evs := startPhone(t, ctx, Config{AuthUser: "trunkuser", AuthPassword: "s3cret"})
	caller := startCaller(t, ctx)

	_, err := caller.Dial(ctx, phoneURI(t, phone), sipua.DialOptions{FromUser: "alice", Username: "trunkuser", Password: "wrong"})
	var failed *sipua.CallFailure
	if !errors.As(err, &failed) || failed.Code != 401 {
		t.Fatalf("wrong password: %v, want a 401 failure", err)
	}

	call, err := caller.Dial(ctx, phoneURI(t, phone), sipua.DialOptions{FromUser: "alice", Username: "trunkuser", Password: "s3cret"})
	if err != nil {
		t.Fatalf("dial with credentials: %v", err)
	}
	defer call.Hangup(ctx)
	evs.waitFor(t, "challenged", time.Second)
	evs.waitFor(t, "answered", 2*time.Second)
}

// A call to an address where nothing answers gives up when asked to, not after
// SIP's 32 s transaction timeout.
func TestCallToNobodyGivesUpPromptly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	phone, evs := startPhone(t, ctx, Config{AnswerTimeout: 500 * time.Millisecond})
	start := time.Now()
	err = phone.Call(ctx, "sip:+15550100@"+sink.LocalAddr().String(), "alice")
	var failed *sipua.CallFailure
	if !errors.As(err, &failed) || failed.Code != 408 || !failed.Local {
		t.Fatalf("call error %v, want a local 408", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("giving up took %v", took)
	}
	if ev := evs.waitFor(t, "hangup", time.Second); ev.Status != 408 || ev.By != "local" {
		t.Fatalf("hangup event %+v", ev)
	}
}
