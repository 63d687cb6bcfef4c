package testphone

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"salesagent/sipbridge/internal/audio"
	"salesagent/sipbridge/internal/sipua"
)

// The harness side of an audio stream: it hears the caller's 700 Hz tone through the
// socket and speaks a 1.2 kHz tone that the caller hears.
func TestAudioSocketStreamsWhatThePhoneHearsAndPlaysWhatItIsGiven(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock := filepath.Join(t.TempDir(), "audio.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	phone, evs := startPhone(t, ctx, Config{AudioSocket: sock})
	caller := startCaller(t, ctx)
	call, err := caller.Dial(ctx, phoneURI(t, phone), sipua.DialOptions{FromUser: "+15550199"})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	answered := evs.waitFor(t, "answered", time.Second)

	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	line, err := r.ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var header StreamHeader
	if err := json.Unmarshal(line, &header); err != nil {
		t.Fatalf("header %q: %v", line, err)
	}
	if header.CallID != answered.CallID || header.SampleRate != 8000 || header.Frame != 160 {
		t.Fatalf("header %+v for call %s", header, answered.CallID)
	}

	// The caller plays 700 Hz and records; the harness writes 1.2 kHz into the socket.
	var heard []int16
	var mu sync.Mutex
	go call.Media.Receive(func(pcm []int16) {
		mu.Lock()
		heard = append(heard, pcm...)
		mu.Unlock()
	}, nil)
	go func() {
		out := tone(700, 1.5)
		for i := 0; i+audio.FrameSamples <= len(out); i += audio.FrameSamples {
			if call.Media.WriteFrame(out[i:i+audio.FrameSamples]) != nil {
				return
			}
		}
	}()
	spoken := tone(1200, 1)
	payload := make([]byte, 2*len(spoken))
	for i, v := range spoken {
		binary.LittleEndian.PutUint16(payload[2*i:], uint16(v))
	}
	if _, err := conn.Write(payload); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2*audio.SampleRate) // 1 s of what the phone heard
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatalf("reading heard audio: %v", err)
	}
	pcm := make([]int16, len(got)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(got[2*i:]))
	}
	if s := toneShare(pcm[audio.SampleRate/4:], 700); s < 0.8 {
		t.Fatalf("the stream carried the caller's 700 Hz at only %.2f of its energy", s)
	}
	time.Sleep(700 * time.Millisecond)
	if err := call.Hangup(ctx); err != nil {
		t.Fatalf("hang up: %v", err)
	}
	evs.waitFor(t, "hangup", 2*time.Second)
	if _, err := r.ReadByte(); err == nil {
		// drain: the stream must end with the call
		if _, err := io.Copy(io.Discard, r); err != nil {
			t.Fatalf("stream did not end cleanly: %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if s := toneShare(heard, 1200); s < 0.5 {
		t.Fatalf("the caller heard the harness's 1.2 kHz at only %.2f of its energy (%d samples)", s, len(heard))
	}
}
