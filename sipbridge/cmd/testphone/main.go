// Command testphone is a SIP phone for tests. It listens on UDP, rings and answers
// incoming calls (or rejects them with a given status), plays a WAV file into each
// call and records what it hears; with -call it places one call instead and exits
// when it is over. It prints one JSON object per line on stdout for everything that
// happens; sipbridge/README.md lists the flags and events.
//
//	testphone -port 5070 -ring 1s -play hello.wav -record heard.wav
//	testphone -port 5070 -reject 486
//	testphone -port 5071 -call sip:+14155550199@127.0.0.1:5060 -from +15550123 \
//	    -play hello.wav -record heard.wav -hangup-after 30s -control-stdin
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"salesagent/sipbridge/internal/sipua"
	"salesagent/sipbridge/internal/testphone"
)

// Exit codes of -call mode.
const (
	exitAnswered   = 0 // the call was answered (whoever hung up, however)
	exitError      = 1 // bad flags, cannot listen, ...
	exitUnanswered = 2 // rejected, not answered in time, or no response at all
)

func main() {
	code, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testphone:", err)
	}
	os.Exit(code)
}

func run() (int, error) {
	host := flag.String("host", "127.0.0.1", "IP to listen on and advertise")
	port := flag.Int("port", 5070, "SIP UDP port (0: any free port, reported in the listening event)")
	ringAfter := flag.Duration("ring-after", 0, "incoming calls: delay before sending 180 Ringing")
	ring := flag.Duration("ring", 0, "incoming calls: how long to ring (180) before answering")
	reject := flag.Int("reject", 0, "incoming calls: reject with this SIP status (e.g. 486, 480, 404, 603)")
	play := flag.String("play", "", "8 kHz mono 16-bit WAV to play into each call (then silence)")
	record := flag.String("record", "", "WAV file to record each call into (8 kHz mono)")
	audioSocket := flag.String("audio-socket", "", "unix socket to speak and listen through: per call, a JSON header line, then 16-bit LE 8 kHz PCM both ways")
	digits := flag.String("digits", "", "DTMF digits to send 1 s into each call")
	hangupAfter := flag.Duration("hangup-after", 0, "hang up this long after the call is up (0: wait for the other side)")
	authUser := flag.String("auth-user", "", "incoming calls: demand digest auth with this user; -call: answer challenges with it")
	authPassword := flag.String("auth-password", "", "password for -auth-user")
	call := flag.String("call", "", "place one call to this SIP URI, then exit")
	from := flag.String("from", "testphone", "-call: calling number (From user)")
	answerTimeout := flag.Duration("answer-timeout", 0, "-call: give up (CANCEL) if not answered within this (default 60s)")
	referReject := flag.Int("refer-reject", 0, "answer REFER with this status instead of 202")
	referResult := flag.Int("refer-result", 200, "status of the final NOTIFY after a REFER (200: transferred; e.g. 486, 603: failed)")
	referDelay := flag.Duration("refer-delay", 0, "time between NOTIFY 100 and the final NOTIFY")
	controlStdin := flag.Bool("control-stdin", false, "read commands on stdin: 'hangup', 'dtmf <digits>'; end of input hangs up")
	rtpPorts := flag.String("rtp-ports", "", "RTP port range first-last (default: any free port)")
	verbose := flag.Bool("v", false, "log SIP details on stderr")
	flag.Parse()

	logOut := io.Discard
	if *verbose {
		logOut = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(logOut, nil))
	if *rtpPorts != "" {
		var first, last int
		if _, err := fmt.Sscanf(*rtpPorts, "%d-%d", &first, &last); err != nil || last <= first {
			return exitError, fmt.Errorf("-rtp-ports %q: want first-last", *rtpPorts)
		}
		sipua.SetRTPPortRange(first, last)
	}
	if *port == 0 {
		p, err := sipua.FreeUDPPort(*host)
		if err != nil {
			return exitError, err
		}
		*port = p
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg := testphone.Config{
		SIP:           sipua.Config{Host: *host, Port: *port, Name: "testphone", Logger: log},
		RejectStatus:  *reject,
		RingAfter:     *ringAfter,
		RingFor:       *ring,
		PlayWAV:       *play,
		RecordWAV:     *record,
		AudioSocket:   *audioSocket,
		SendDigits:    *digits,
		HangUpAfter:   *hangupAfter,
		AnswerTimeout: *answerTimeout,
		ReferReject:   *referReject,
		ReferResult:   *referResult,
		ReferDelay:    *referDelay,
		Events:        os.Stdout,
		Logger:        log,
	}
	if *call != "" {
		cfg.DialUser, cfg.DialPassword = *authUser, *authPassword
	} else {
		cfg.AuthUser, cfg.AuthPassword = *authUser, *authPassword
	}
	// Signals hang up first (BYE or CANCEL), then the phone stops.
	phoneCtx, stopPhone := context.WithCancel(context.Background())
	defer stopPhone()
	phone, err := testphone.Start(phoneCtx, cfg)
	if err != nil {
		return exitError, err
	}
	go func() {
		<-ctx.Done()
		phone.HangUp()
	}()
	if *controlStdin {
		go readCommands(os.Stdin, phone, log)
	}
	if *call != "" {
		err := phone.Call(phoneCtx, *call, *from)
		var failed *sipua.CallFailure
		switch {
		case err == nil:
			return exitAnswered, nil
		case errors.As(err, &failed):
			return exitUnanswered, nil // the events say why
		default:
			return exitUnanswered, err
		}
	}
	<-ctx.Done()
	phone.HangUp()
	return 0, nil
}

// readCommands takes one command per line: "hangup", or "dtmf <digits>". The end of
// input (the harness closed our stdin, or exited) hangs up.
func readCommands(r io.Reader, phone *testphone.Phone, log *slog.Logger) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		switch strings.ToLower(cmd) {
		case "":
		case "hangup", "bye":
			phone.HangUp()
		case "dtmf":
			if n := phone.SendDigits(strings.TrimSpace(arg)); n == 0 {
				fmt.Fprintln(os.Stderr, "testphone: dtmf: no call in progress")
			}
		default:
			fmt.Fprintf(os.Stderr, "testphone: unknown command %q (want hangup, dtmf <digits>)\n", cmd)
		}
	}
	log.Debug("stdin closed; hanging up")
	phone.HangUp()
}
