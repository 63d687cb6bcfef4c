// Package testphone is a scriptable SIP phone for tests: it answers (after ringing for
// a while) or rejects incoming calls, plays a WAV file into the call, records what it
// hears, and can place calls itself. Everything it does is reported as Events.
package testphone

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/sipgo/sip"

	"salesagent/sipbridge/internal/audio"
	"salesagent/sipbridge/internal/sipua"
	"salesagent/sipbridge/internal/wav"
)

// Config is what the phone does with calls.
type Config struct {
	SIP sipua.Config
	// RejectStatus, if not 0, answers every INVITE with this final status (e.g. 486).
	RejectStatus int
	RejectReason string
	// AuthUser and AuthPassword, if set, make the phone demand digest authentication
	// (401 with a challenge) before it looks at an INVITE, like a carrier trunk.
	AuthUser, AuthPassword string
	// RingAfter delays the 180 Ringing after the INVITE (a slow network or exchange).
	RingAfter time.Duration
	// RingFor is how long the phone rings (180 Ringing sent first) before answering.
	RingFor time.Duration
	// PlayWAV is an 8 kHz mono 16-bit WAV played into each call once answered;
	// silence follows it. Empty: the phone sends silence.
	PlayWAV string
	// RecordWAV is where each call's received audio is written (8 kHz mono). The n-th
	// call after the first gets "-n" before the extension. Empty: nothing is recorded.
	RecordWAV string
	// AudioSocket is a unix socket a harness listens on to speak and listen through
	// each call: once a call is up the phone connects, writes a JSON StreamHeader line,
	// then streams what it hears as 16-bit little-endian 8 kHz PCM, and plays what it
	// reads (mixed with PlayWAV), one 20 ms frame per RTP slot.
	AudioSocket string
	// SendDigits are sent as RFC 4733 DTMF one second after the call is up.
	SendDigits string
	// HangUpAfter makes the phone hang up (BYE) this long after the call is up;
	// 0 waits for the other side to hang up.
	HangUpAfter time.Duration
	// DialUser and DialPassword answer a 401/407 challenge to the calls the phone
	// places (Call).
	DialUser, DialPassword string
	// AnswerTimeout bounds how long a call placed by the phone may ring before the
	// phone gives up (CANCEL). 0: 60 s.
	AnswerTimeout time.Duration
	// ReferReject, if not 0, answers a REFER with this status instead of 202.
	ReferReject int
	// ReferResult is the status the phone reports in its final NOTIFY after accepting
	// a REFER (it does not place the referred call): 0 means 200 (transfer succeeded);
	// e.g. 486 or 603 report a failed transfer. A NOTIFY 100 Trying comes first.
	ReferResult int
	// ReferDelay is how long the (pretend) transfer takes between the NOTIFYs.
	ReferDelay time.Duration
	// Events receives one JSON object per line for every Event (may be nil).
	Events io.Writer
	// OnEvent is called for every Event (may be nil); tests use it.
	OnEvent func(Event)
	Logger  *slog.Logger
}

// Event is one thing that happened to the phone, printed as a JSON line.
type Event struct {
	Event   string `json:"event"` // listening, challenged, invite, dialing, ringing, rejected, answered, dtmf, refer, notify, hangup, recorded, failed
	Time    string `json:"time"`
	CallID  string `json:"call_id,omitempty"`
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
	Addr    string `json:"addr,omitempty"`
	Status  int    `json:"status,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Codec   string `json:"codec,omitempty"`
	Digit   string `json:"digit,omitempty"`
	ReferTo string `json:"refer_to,omitempty"`
	By      string `json:"by,omitempty"` // who hung up: "local" or "remote"
	Path    string `json:"path,omitempty"`
	Samples int    `json:"samples,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Phone is a running test phone.
type Phone struct {
	cfg   Config
	ua    *sipua.UA
	play  []int16
	calls atomic.Int32
	auth  *diago.DigestAuthServer

	// active are the calls in progress, by SIP Call-ID.
	activeMu sync.Mutex
	active   map[string]*activeCall
	// hangUp is closed by HangUp: every call in progress, and every later one, ends.
	hangUp     chan struct{}
	hangUpOnce sync.Once

	emitMu sync.Mutex
}

// activeCall is an established call of the phone.
type activeCall struct {
	dialog sipua.Dialog
	digits chan string // digits to send now (SendDigits)
}

// Start listens for calls until ctx ends.
func Start(ctx context.Context, cfg Config) (*Phone, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SIP.Logger == nil {
		cfg.SIP.Logger = cfg.Logger
	}
	p := &Phone{cfg: cfg, active: map[string]*activeCall{}, hangUp: make(chan struct{})}
	cfg.SIP.OnRefer = p.onRefer
	if cfg.AuthUser != "" {
		p.auth = diago.NewDigestServer()
		go func() {
			<-ctx.Done()
			p.auth.Close()
		}()
	}
	if cfg.PlayWAV != "" {
		a, err := wav.ReadFile(cfg.PlayWAV)
		if err != nil {
			return nil, fmt.Errorf("play file: %w", err)
		}
		if a.SampleRate != audio.SampleRate || a.Channels != 1 {
			return nil, fmt.Errorf("play file is %d Hz, %d channels; want 8000 Hz mono", a.SampleRate, a.Channels)
		}
		p.play = a.Samples
	}
	p.cfg = cfg
	ua, err := sipua.Start(ctx, cfg.SIP, func(d *diago.DialogServerSession) { p.answerOrReject(ctx, d) })
	if err != nil {
		return nil, err
	}
	p.ua = ua
	p.emit(Event{Event: "listening", Addr: ua.Addr()})
	return p, nil
}

// Addr is the phone's SIP address (host:port).
func (p *Phone) Addr() string { return p.ua.Addr() }

// HangUp ends every call in progress (BYE, or CANCEL while still ringing) and makes
// the phone refuse further ones.
func (p *Phone) HangUp() { p.hangUpOnce.Do(func() { close(p.hangUp) }) }

// SendDigits sends DTMF on every call in progress. It reports how many calls got it.
func (p *Phone) SendDigits(digits string) int {
	p.activeMu.Lock()
	defer p.activeMu.Unlock()
	n := 0
	for _, c := range p.active {
		select {
		case c.digits <- digits:
			n++
		default:
		}
	}
	return n
}

func (p *Phone) answerOrReject(ctx context.Context, d *diago.DialogServerSession) {
	callID := d.InviteRequest.CallID().Value()
	if p.auth != nil {
		res, err := p.auth.AuthorizeRequest(d.InviteRequest, diago.DigestAuth{Username: p.cfg.AuthUser, Password: p.cfg.AuthPassword, Realm: "testphone"})
		if res.StatusCode != sip.StatusOK {
			// No or wrong credentials: 401 (with a fresh challenge when there were none).
			_ = d.WriteResponse(res)
			reason := "challenge sent"
			if err != nil {
				reason = err.Error()
			}
			p.emit(Event{Event: "challenged", CallID: callID, Status: res.StatusCode, Reason: reason})
			return
		}
	}
	p.emit(Event{Event: "invite", CallID: callID, From: d.InviteRequest.From().Address.String(), To: d.InviteRequest.To().Address.String()})
	if p.cfg.RejectStatus != 0 {
		reason := p.cfg.RejectReason
		if reason == "" {
			reason = sipua.ReasonPhrase(p.cfg.RejectStatus)
		}
		if err := d.Respond(p.cfg.RejectStatus, reason, nil); err != nil {
			p.emit(Event{Event: "failed", CallID: callID, Error: err.Error()})
			return
		}
		p.emit(Event{Event: "rejected", CallID: callID, Status: p.cfg.RejectStatus, Reason: reason})
		return
	}
	if !p.wait(ctx, d, p.cfg.RingAfter) {
		p.emit(Event{Event: "hangup", CallID: callID, By: "remote", Reason: "cancelled before ringing"})
		return
	}
	if err := d.Ringing(); err != nil {
		p.emit(Event{Event: "failed", CallID: callID, Error: err.Error()})
		return
	}
	p.emit(Event{Event: "ringing", CallID: callID})
	if !p.wait(ctx, d, p.cfg.RingFor) {
		p.emit(Event{Event: "hangup", CallID: callID, By: "remote", Reason: "cancelled while ringing"})
		return
	}
	dm, err := d.Answer(diago.AnswerOptions{})
	if err != nil {
		// Most likely a CANCEL arrived while we were ringing.
		p.emit(Event{Event: "hangup", CallID: callID, By: "remote", Reason: "not answered: " + err.Error()})
		return
	}
	m, err := sipua.NewMedia(dm)
	if err != nil {
		p.emit(Event{Event: "failed", CallID: callID, Error: err.Error()})
		return
	}
	p.converse(ctx, callID, m, d, d.Context().Done(), func(ctx context.Context) error { return d.Hangup(ctx) })
}

// wait sleeps for d unless the caller cancels (or the phone stops) first.
func (p *Phone) wait(ctx context.Context, d *diago.DialogServerSession, dur time.Duration) bool {
	if dur <= 0 {
		return true
	}
	select {
	case <-time.After(dur):
		return true
	case <-d.Context().Done():
		return false
	case <-ctx.Done():
		return false
	}
}

// Call places a call to uri (e.g. "sip:+14155550199@127.0.0.1:5060") from the
// number from, and runs it like an answered incoming call: it plays, records, sends
// the digits, and ends when either side hangs up, HangUpAfter passes, HangUp is
// called or ctx ends. It returns nil if the call was answered, else a
// *sipua.CallFailure or another error. The last events are always "hangup" (for
// an unanswered call with the final status), then "recorded" if recording.
func (p *Phone) Call(ctx context.Context, uri string, from string) error {
	var to sip.Uri
	if err := sip.ParseUri(uri, &to); err != nil {
		return fmt.Errorf("call uri %q: %w", uri, err)
	}
	p.emit(Event{Event: "dialing", To: uri, From: from})
	dialCtx, cancel := context.WithTimeout(ctx, cmp.Or(p.cfg.AnswerTimeout, 60*time.Second))
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	go func() {
		select {
		case <-p.hangUp:
			cancel()
		case <-dialCtx.Done():
		}
	}()
	call, err := p.ua.Dial(dialCtx, to, sipua.DialOptions{
		FromUser: from,
		Username: p.cfg.DialUser,
		Password: p.cfg.DialPassword,
		OnProgress: func(code int, reason string) {
			if code == sip.StatusRinging || code == sip.StatusSessionInProgress {
				p.emit(Event{Event: "ringing", To: uri, Status: code, Reason: reason})
			}
		},
	})
	if err != nil {
		var failed *sipua.CallFailure
		switch {
		case errors.As(err, &failed) && failed.Local:
			// We gave up (timeout, hang-up request): CANCEL was sent.
			p.emit(Event{Event: "hangup", To: uri, By: "local", Status: failed.Code, Reason: failed.Reason})
		case errors.As(err, &failed):
			p.emit(Event{Event: "rejected", To: uri, Status: failed.Code, Reason: failed.Reason})
			p.emit(Event{Event: "hangup", To: uri, By: "remote", Status: failed.Code, Reason: failed.Reason})
		default:
			p.emit(Event{Event: "failed", To: uri, Error: err.Error()})
			p.emit(Event{Event: "hangup", To: uri, By: "local", Error: err.Error()})
		}
		return err
	}
	p.converse(ctx, call.CallID(), call.Media, call.Dialog, call.Done(), call.Hangup)
	_ = call.Dialog.Close()
	return nil
}

// converse runs an established call: plays, records, sends digits, and waits for a
// hang-up from either side.
func (p *Phone) converse(ctx context.Context, callID string, m *sipua.Media, d sipua.Dialog, remoteGone <-chan struct{}, hangUp func(context.Context) error) {
	p.emit(Event{Event: "answered", CallID: callID, Codec: m.Codec().Name()})
	n := p.calls.Add(1)
	ac := &activeCall{dialog: d, digits: make(chan string, 8)}
	p.activeMu.Lock()
	p.active[callID] = ac
	p.activeMu.Unlock()
	defer func() {
		p.activeMu.Lock()
		delete(p.active, callID)
		p.activeMu.Unlock()
	}()

	rec, recPath, err := p.openRecording(int(n))
	if err != nil {
		p.emit(Event{Event: "failed", CallID: callID, Error: err.Error()})
	}
	var st *stream
	if p.cfg.AudioSocket != "" {
		if st, err = openStream(p.cfg.AudioSocket, callID); err != nil {
			p.emit(Event{Event: "failed", CallID: callID, Error: err.Error()})
		} else {
			defer st.close()
		}
	}
	received := make(chan struct{})
	go func() {
		defer close(received)
		_ = m.Receive(func(pcm []int16) {
			if rec != nil {
				_ = rec.Write(pcm)
			}
			if st != nil {
				st.hear(pcm)
			}
		}, func(digit byte) {
			p.emit(Event{Event: "dtmf", CallID: callID, Digit: string(digit)})
		})
	}()

	stopSending := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		p.send(m, st, ac.digits, stopSending)
	}()

	var hangUpTimer <-chan time.Time
	if p.cfg.HangUpAfter > 0 {
		hangUpTimer = time.After(p.cfg.HangUpAfter)
	}
	by := "remote"
	select {
	case <-remoteGone:
	case <-hangUpTimer:
		by = "local"
	case <-p.hangUp:
		by = "local"
	case <-ctx.Done():
		by = "local"
	}
	close(stopSending)
	<-sent
	if by == "local" {
		byeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := hangUp(byeCtx); err != nil {
			p.cfg.Logger.Warn("hang up", "error", err)
		}
		cancel()
	}
	_ = m.Close()
	<-received
	p.emit(Event{Event: "hangup", CallID: callID, By: by})
	if rec != nil {
		samples := rec.Samples()
		if err := rec.Close(); err != nil {
			p.emit(Event{Event: "failed", CallID: callID, Error: err.Error()})
		}
		p.emit(Event{Event: "recorded", CallID: callID, Path: recPath, Samples: samples})
	}
}

// send plays the WAV, then silence, one paced 20 ms frame at a time, with the
// configured digits a second into the call. Audio from the harness's stream (if any)
// is mixed in as it arrives.
func (p *Phone) send(m *sipua.Media, st *stream, more <-chan string, stop <-chan struct{}) {
	frame := make([]int16, audio.FrameSamples)
	digitsAt := time.Now().Add(time.Second)
	digits := p.cfg.SendDigits
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case d := <-more:
			digits += d
		default:
		}
		if digits != "" && time.Now().After(digitsAt) {
			if err := m.SendDigit(digits[0]); err != nil {
				p.cfg.Logger.Warn("send digit", "error", err)
			}
			digits = digits[1:]
			continue
		}
		clear(frame)
		if start := i * audio.FrameSamples; start < len(p.play) {
			copy(frame, p.play[start:])
		}
		if st != nil {
			audio.MixInto(frame, st.next())
		}
		if err := m.WriteFrame(frame); err != nil {
			return
		}
	}
}

func (p *Phone) openRecording(n int) (*wav.Writer, string, error) {
	if p.cfg.RecordWAV == "" {
		return nil, "", nil
	}
	path := p.cfg.RecordWAV
	if n > 1 {
		ext := filepath.Ext(path)
		path = fmt.Sprintf("%s-%d%s", strings.TrimSuffix(path, ext), n, ext)
	}
	w, err := wav.Create(path, audio.SampleRate)
	if err != nil {
		return nil, "", err
	}
	return w, path, nil
}

func (p *Phone) emit(ev Event) {
	ev.Time = time.Now().UTC().Format(time.RFC3339Nano)
	p.emitMu.Lock()
	defer p.emitMu.Unlock()
	if p.cfg.Events != nil {
		line, _ := json.Marshal(ev)
		fmt.Fprintf(p.cfg.Events, "%s\n", line)
	}
	if p.cfg.OnEvent != nil {
		p.cfg.OnEvent(ev)
	}
}

// onRefer answers a REFER on one of the phone's calls, as a phone or carrier that
// does blind transfers would: 202 Accepted, NOTIFY 100 Trying, then after ReferDelay
// a final NOTIFY with ReferResult (200 by default). It does not place the referred
// call. With ReferReject the REFER itself is refused with that status.
func (p *Phone) onRefer(req *sip.Request, tx sip.ServerTransaction) {
	callID := ""
	if h := req.CallID(); h != nil {
		callID = h.Value()
	}
	referTo := ""
	if h := req.GetHeader("Refer-To"); h != nil {
		referTo = h.Value()
	}
	p.activeMu.Lock()
	call := p.active[callID]
	p.activeMu.Unlock()
	if call == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call Does Not Exist", nil))
		p.emit(Event{Event: "refer", CallID: callID, ReferTo: referTo, Status: sip.StatusCallTransactionDoesNotExists})
		return
	}
	if referTo == "" {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusBadRequest, "Missing Refer-To", nil))
		p.emit(Event{Event: "refer", CallID: callID, Status: sip.StatusBadRequest})
		return
	}
	if code := p.cfg.ReferReject; code != 0 {
		reason := sipua.ReasonPhrase(code)
		_ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
		p.emit(Event{Event: "refer", CallID: callID, ReferTo: referTo, Status: code, Reason: reason})
		return
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusAccepted, "Accepted", nil))
	p.emit(Event{Event: "refer", CallID: callID, ReferTo: referTo, Status: sip.StatusAccepted})

	target := call.dialog.RemoteContact().Address
	if c := req.Contact(); c != nil {
		target = c.Address
	}
	go func() {
		ctx, cancel := context.WithTimeout(call.dialog.Context(), 10*time.Second)
		defer cancel()
		notify := func(code int, final bool) bool {
			reason := sipua.ReasonPhrase(code)
			switch code {
			case sip.StatusTrying:
				reason = "Trying"
			case sip.StatusOK:
				reason = "OK"
			}
			err := sipua.SendNotify(ctx, call.dialog, target, code, reason, final)
			ev := Event{Event: "notify", CallID: callID, ReferTo: referTo, Status: code, Reason: reason}
			if err != nil {
				ev.Error = err.Error()
			}
			p.emit(ev)
			return err == nil
		}
		if !notify(sip.StatusTrying, false) {
			return
		}
		select {
		case <-time.After(p.cfg.ReferDelay):
		case <-ctx.Done():
			return
		}
		notify(cmp.Or(p.cfg.ReferResult, sip.StatusOK), true)
	}()
}
