package integration

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"salesagent/sipbridge/internal/audio"
	"salesagent/sipbridge/internal/sipua"
	"salesagent/sipbridge/internal/testphone"
	"salesagent/sipbridge/internal/wav"
)

// buildTestphone builds cmd/testphone, as the Python e2e harness runs it.
func buildTestphone(t *testing.T) string {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	moduleRoot := filepath.Join(filepath.Dir(here), "..", "..")
	bin := filepath.Join(t.TempDir(), "testphone")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/testphone")
	cmd.Dir = moduleRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build testphone: %v\n%s", err, out)
	}
	return bin
}

// phoneProcess is the testphone binary running, with its JSON events.
type phoneProcess struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	evs   *phoneEvents
	done  chan struct{}
	code  int
}

func runTestphone(t *testing.T, bin string, args ...string) *phoneProcess {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &phoneProcess{cmd: cmd, stdin: stdin, evs: &phoneEvents{}, done: make(chan struct{})}
	var lines sync.WaitGroup
	lines.Go(func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev testphone.Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Errorf("stdout line is not a JSON event: %q", sc.Text())
				continue
			}
			p.evs.add(ev)
		}
	})
	go func() {
		lines.Wait()
		err := cmd.Wait()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			p.code = exit.ExitCode()
		}
		if stderr.Len() > 0 {
			t.Logf("testphone stderr: %s", stderr.String())
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *phoneProcess) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(limit):
		t.Fatalf("testphone still running after %v: %s", limit, p.evs)
		return -1
	}
}

// The testphone command in -call mode, driven like the Python harness drives it:
// flags, JSON events on stdout, commands on stdin, exit codes.
func TestTestphoneCommandCallsTheAgent(t *testing.T) {
	st := needStack(t)
	provisionInbound(t, st)
	bin := buildTestphone(t)
	dir := t.TempDir()
	play := filepath.Join(dir, "play.wav")
	if err := wav.WriteFile(play, audio.SampleRate, tone(1000, 30)); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(dir, "heard.wav")
	port, err := sipua.FreeUDPPort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	const caller = "+15550004001"
	identity := "sip_" + caller
	p := runTestphone(t, bin, "-port", strconv.Itoa(port), "-call", "sip:"+inboundNumber+"@"+st.bridgeAddr,
		"-from", caller, "-play", play, "-record", record, "-control-stdin")

	room := waitRoom(t, st, roomPrefix, caller, p.evs)
	w := joinWatcher(t, st, room)
	eventually(t, 10*time.Second, func() bool { _, ok := p.evs.find("answered"); return ok },
		func() string { return "not answered: " + p.evs.String() })
	if _, err := io.WriteString(p.stdin, "dtmf 42\n"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return slices.Equal(w.digits, []string{"4", "2"})
	}, func() string { return "room got no DTMF 42" })
	time.Sleep(time.Second)
	// Closing stdin hangs up.
	p.stdin.Close()
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d after an answered call: %s", code, p.evs)
	}
	eventually(t, 5*time.Second, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.left[identity]
	}, func() string { return "SIP participant still in the room" })

	want := []string{"listening", "dialing", "ringing", "answered", "hangup", "recorded"}
	var got []string
	p.evs.mu.Lock()
	for _, ev := range p.evs.list {
		got = append(got, ev.Event)
	}
	p.evs.mu.Unlock()
	if !isSubsequence(want, got) || got[len(got)-1] != "recorded" {
		t.Fatalf("events %v, want %v in that order, recorded last", got, want)
	}
	if ev, _ := p.evs.find("hangup"); ev.By != "local" {
		t.Fatalf("hangup %+v", ev)
	}
	rec, _ := p.evs.find("recorded")
	heard, err := wav.ReadFile(rec.Path)
	if err != nil || rec.Path != record {
		t.Fatalf("recording %q: %v", rec.Path, err)
	}
	if s := toneShare(heard.Samples, 440); len(heard.Samples) < audio.SampleRate || s < 0.5 {
		t.Fatalf("recorded %d samples, 440 Hz share %.2f", len(heard.Samples), s)
	}
}

// A refused call: hangup event with the status, exit code 2.
func TestTestphoneCommandRefusedCall(t *testing.T) {
	st := needStack(t)
	provisionInbound(t, st)
	bin := buildTestphone(t)
	port, err := sipua.FreeUDPPort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	p := runTestphone(t, bin, "-port", strconv.Itoa(port), "-call", "sip:+14155550000@"+st.bridgeAddr, "-from", "+15550004002")
	if code := p.wait(t, 10*time.Second); code != 2 {
		t.Fatalf("exit code %d, want 2: %s", code, p.evs)
	}
	ev, _ := p.evs.find("hangup")
	if ev.Status != 404 || ev.By != "remote" {
		t.Fatalf("hangup %+v, want status 404 by remote", ev)
	}
}
