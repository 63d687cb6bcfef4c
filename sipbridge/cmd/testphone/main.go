// Command testphone is a SIP phone for tests. It listens on UDP, rings and answers
// incoming calls (or rejects them with a given status), plays a WAV file into each
// call and records what it hears; with -call it places a call instead. It prints one
// JSON object per line on stdout for everything that happens (listening, invite,
// ringing, answered, rejected, dtmf, hangup, recorded, failed).
//
//	testphone -port 5070 -ring 1s -play hello.wav -record heard.wav
//	testphone -port 5070 -reject 486
//	testphone -port 5071 -call sip:+15550100@127.0.0.1:5060 -play hello.wav -hangup-after 10s
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"salesagent/sipbridge/internal/sipua"
	"salesagent/sipbridge/internal/testphone"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "testphone:", err)
		os.Exit(1)
	}
}

func run() error {
	host := flag.String("host", "127.0.0.1", "IP to listen on and advertise")
	port := flag.Int("port", 5070, "SIP UDP port")
	ringAfter := flag.Duration("ring-after", 0, "delay before sending 180 Ringing")
	ring := flag.Duration("ring", 0, "how long to ring (180) before answering")
	reject := flag.Int("reject", 0, "reject every call with this SIP status (e.g. 486, 480, 404, 603)")
	play := flag.String("play", "", "8 kHz mono 16-bit WAV to play into each call")
	record := flag.String("record", "", "WAV file to record each call into")
	digits := flag.String("digits", "", "DTMF digits to send 1 s into each call")
	hangupAfter := flag.Duration("hangup-after", 0, "hang up this long after the call is up (0: wait for the other side)")
	authUser := flag.String("auth-user", "", "demand digest auth with this user name")
	authPassword := flag.String("auth-password", "", "password for -auth-user")
	call := flag.String("call", "", "place one call to this SIP URI, then exit")
	from := flag.String("from", "testphone", "calling number/user for -call")
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
			return fmt.Errorf("-rtp-ports %q: want first-last", *rtpPorts)
		}
		sipua.SetRTPPortRange(first, last)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	phone, err := testphone.Start(ctx, testphone.Config{
		SIP:          sipua.Config{Host: *host, Port: *port, Name: "testphone", Logger: log},
		RejectStatus: *reject,
		AuthUser:     *authUser,
		AuthPassword: *authPassword,
		RingAfter:    *ringAfter,
		RingFor:      *ring,
		PlayWAV:      *play,
		RecordWAV:    *record,
		SendDigits:   *digits,
		HangUpAfter:  *hangupAfter,
		Events:       os.Stdout,
		Logger:       log,
	})
	if err != nil {
		return err
	}
	if *call != "" {
		return phone.Call(ctx, *call, *from)
	}
	<-ctx.Done()
	return nil
}
