package integration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/livekit/protocol/rpc"
	"github.com/livekit/psrpc"
	"github.com/redis/go-redis/v9"

	"salesagent/sipbridge/internal/bridge"
	"salesagent/sipbridge/internal/sipua"
)

const (
	apiKey    = "devkey"
	apiSecret = "devsecret-for-loopback-use-only-0000"
)

// stack is redis + livekit-server + our bridge, all on loopback, for one test binary.
type stack struct {
	httpURL, wsURL string
	bridgeAddr     string
	service        *bridge.Service
}

var shared *stack

// skipReason is why the stack could not be started (binaries missing).
var skipReason string

func TestMain(m *testing.M) {
	code := func() int {
		st, cleanup, err := startStack()
		if cleanup != nil {
			defer cleanup()
		}
		var missing *missingBinary
		switch {
		case errors.As(err, &missing):
			skipReason = err.Error()
		case err != nil:
			fmt.Fprintln(os.Stderr, "integration stack:", err)
			return 1
		}
		shared = st
		return m.Run()
	}()
	os.Exit(code)
}

func needStack(t *testing.T) *stack {
	t.Helper()
	if shared == nil {
		t.Skip(skipReason)
	}
	return shared
}

type missingBinary struct{ name, hint string }

func (e *missingBinary) Error() string { return e.name + " not found (" + e.hint + ")" }

// livekitServerBinary finds livekit-server where scripts/install-stack.sh puts it.
func livekitServerBinary() (string, error) {
	candidates := []string{os.Getenv("LIVEKIT_SERVER_BIN")}
	if cache := os.Getenv("STACK_CACHE"); cache != "" {
		candidates = append(candidates, filepath.Join(cache, "bin", "livekit-server"))
	}
	_, here, _, _ := runtime.Caller(0)
	repoRoot := filepath.Join(filepath.Dir(here), "..", "..", "..")
	candidates = append(candidates, filepath.Join(repoRoot, ".stack", "bin", "livekit-server"))
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if fi, err := os.Stat(c); err == nil && fi.Mode()&0o111 != 0 {
			return c, nil
		}
	}
	if p, err := exec.LookPath("livekit-server"); err == nil {
		return p, nil
	}
	return "", &missingBinary{"livekit-server", "run scripts/install-stack.sh, or set LIVEKIT_SERVER_BIN"}
}

func startStack() (*stack, func(), error) {
	redisBin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, nil, &missingBinary{"redis-server", "apt-get install redis-server"}
	}
	lkBin, err := livekitServerBinary()
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "sipbridge-it-")
	if err != nil {
		return nil, nil, err
	}
	var stops []func()
	cleanup := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
		os.RemoveAll(dir)
	}

	redisPort, httpPort, err := freeTCPPorts()
	if err != nil {
		return nil, cleanup, err
	}
	rtcPort, err1 := sipua.FreeUDPPort("127.0.0.1")
	sipPort, err2 := sipua.FreeUDPPort("127.0.0.1")
	if err := errors.Join(err1, err2); err != nil {
		return nil, cleanup, err
	}
	// A UDP socket that never answers stands in for STUN: without stun_servers the
	// server would hand clients public STUN servers, and we stay on loopback.
	stunSink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, cleanup, err
	}
	stops = append(stops, func() { stunSink.Close() })

	redisCmd := exec.Command(redisBin, "--bind", "127.0.0.1", "--port", strconv.Itoa(redisPort),
		"--save", "", "--appendonly", "no", "--dir", dir)
	if err := startProcess(redisCmd, filepath.Join(dir, "redis.log"), &stops); err != nil {
		return nil, cleanup, err
	}
	redisAddr := fmt.Sprintf("127.0.0.1:%d", redisPort)
	rc := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{redisAddr}})
	stops = append(stops, func() { rc.Close() })
	if err := waitFor(10*time.Second, func() bool { return rc.Ping(context.Background()).Err() == nil }); err != nil {
		return nil, cleanup, fmt.Errorf("redis did not answer: %w", err)
	}

	conf := filepath.Join(dir, "livekit.yaml")
	if err := os.WriteFile(conf, []byte(livekitYAML(httpPort, redisAddr, rtcPort, stunSink.LocalAddr().String())), 0o600); err != nil {
		return nil, cleanup, err
	}
	lkCmd := exec.Command(lkBin, "--config", conf)
	lkCmd.Env = append(os.Environ(), "LIVEKIT_KEYS="+apiKey+": "+apiSecret)
	if err := startProcess(lkCmd, filepath.Join(dir, "livekit-server.log"), &stops); err != nil {
		return nil, cleanup, err
	}
	httpURL := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	if err := waitFor(30*time.Second, func() bool {
		res, err := http.Get(httpURL)
		if err == nil {
			res.Body.Close()
		}
		return err == nil
	}); err != nil {
		return nil, cleanup, fmt.Errorf("livekit-server did not answer (log in %s): %w", dir, err)
	}

	// Our bridge, in this process.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	bus := psrpc.NewRedisMessageBus(rc)
	ioClient, err := rpc.NewIOInfoClient(bus)
	if err != nil {
		return nil, cleanup, err
	}
	uaCtx, stopUA := context.WithCancel(context.Background())
	stops = append(stops, stopUA)
	var invites bridge.InviteRouter
	ua, err := sipua.Start(uaCtx, sipua.Config{Host: "127.0.0.1", Port: sipPort, Name: "sipbridge", Logger: log}, invites.Handle)
	if err != nil {
		return nil, cleanup, err
	}
	wsURL := fmt.Sprintf("ws://127.0.0.1:%d", httpPort)
	svc := bridge.NewService(bridge.Settings{WsURL: wsURL, APIKey: apiKey, APISecret: apiSecret, AgentWait: agentWait}, ua, ioClient, log)
	if err := svc.Register(bus); err != nil {
		return nil, cleanup, err
	}
	invites.Set(svc)
	stops = append(stops, svc.Close)
	return &stack{httpURL: httpURL, wsURL: wsURL, bridgeAddr: ua.Addr(), service: svc}, cleanup, nil
}

func livekitYAML(httpPort int, redisAddr string, rtcPort int, stun string) string {
	return fmt.Sprintf(`port: %d
bind_addresses: [127.0.0.1]
redis:
  address: %s
rtc:
  udp_port: %d
  tcp_port: 0
  node_ip: 127.0.0.1
  use_external_ip: false
  enable_loopback_candidate: true
  ips:
    includes: [127.0.0.1/32]
  use_mdns: false
  stun_servers: [%s]
turn:
  enabled: false
logging:
  level: info
  pion_level: error
`, httpPort, redisAddr, rtcPort, stun)
}

func startProcess(cmd *exec.Cmd, logPath string, stops *[]func()) error {
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	*stops = append(*stops, func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
	})
	return nil
}

func freeTCPPorts() (int, int, error) {
	a, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	defer a.Close()
	b, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	defer b.Close()
	return a.Addr().(*net.TCPAddr).Port, b.Addr().(*net.TCPAddr).Port, nil
}

func waitFor(limit time.Duration, ok func() bool) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if ok() {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v", limit)
}
