// Command sipbridge is our SIP bridge for livekit-server: it registers over Redis
// (psrpc) as the SIP service, so the server's SIP API (CreateSIPParticipant) reaches
// it, and bridges calls between SIP/RTP (G.711 over UDP) and LiveKit rooms.
//
//	sipbridge --config sip.yaml      # keys from LIVEKIT_API_KEY / LIVEKIT_API_SECRET
//
// Flags override the file; see -h.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/livekit/protocol/rpc"
	"github.com/livekit/psrpc"
	"github.com/redis/go-redis/v9"

	"salesagent/sipbridge/internal/bridge"
	"salesagent/sipbridge/internal/config"
	"salesagent/sipbridge/internal/sipua"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sipbridge:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := loadConfig(os.Args[1:])
	if err != nil {
		return err
	}
	log := newLogger(cfg.Logging.Level)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	bus, closeRedis, err := connectRedis(ctx, cfg.Redis)
	if err != nil {
		return err
	}
	defer closeRedis()
	ioClient, err := rpc.NewIOInfoClient(bus)
	if err != nil {
		return fmt.Errorf("psrpc IOInfo client: %w", err)
	}

	first, last, _ := cfg.RTPRange()
	sipua.SetRTPPortRange(first, last)

	// The UA outlives ctx a little: calls are hung up (BYE) after the signal arrives.
	uaCtx, stopUA := context.WithCancel(context.Background())
	defer stopUA()
	var invites bridge.InviteRouter
	ua, err := sipua.Start(uaCtx, sipua.Config{
		Host:    cfg.ListenIP,
		Port:    cfg.SIPPort,
		Name:    "sipbridge",
		AlsoTCP: true,
		Logger:  log.With("component", "sip"),
	}, invites.Handle)
	if err != nil {
		return err
	}
	svc := bridge.NewService(bridge.Settings{
		WsURL:     cfg.WsURL,
		APIKey:    cfg.APIKey,
		APISecret: cfg.APISecret,
		ClusterID: cfg.ClusterID,
		AgentWait: cfg.AgentWait,
	}, ua, ioClient, log)
	if err := svc.Register(bus); err != nil {
		return err
	}
	invites.Set(svc)
	log.Info("SIP bridge ready", "sip", ua.Addr(), "rtp", cfg.RTPPort, "redis", cfg.Redis.Address, "ws_url", cfg.WsURL)

	<-ctx.Done()
	log.Info("shutting down", "activeCalls", svc.ActiveCalls())
	done := make(chan struct{})
	go func() {
		svc.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		log.Warn("calls did not end within 10 s; exiting anyway")
	}
	return nil
}

// loadConfig reads --config (if any), then the environment, then flags that were set.
func loadConfig(args []string) (config.Config, error) {
	fs := flag.NewFlagSet("sipbridge", flag.ContinueOnError)
	path := fs.String("config", os.Getenv("SIP_CONFIG_FILE"), "YAML config file (livekit-sip key names)")
	redisAddr := fs.String("redis", "", "redis address host:port (redis.address)")
	wsURL := fs.String("ws-url", "", "livekit-server WebSocket URL (ws_url)")
	apiKey := fs.String("api-key", "", "LiveKit API key (default $LIVEKIT_API_KEY)")
	apiSecret := fs.String("api-secret", "", "LiveKit API secret (default $LIVEKIT_API_SECRET)")
	listenIP := fs.String("sip-ip", "", "IP for SIP and RTP, loopback here (listen_ip)")
	sipPort := fs.Int("sip-port", 0, "SIP port, UDP and TCP (sip_port)")
	rtpPorts := fs.String("rtp-ports", "", "RTP port range first-last (rtp_port)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (logging.level)")
	if err := fs.Parse(args); err != nil {
		return config.Config{}, err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return cfg, err
	}
	cfg.ApplyEnv(os.Getenv)
	setIf(&cfg.Redis.Address, *redisAddr)
	setIf(&cfg.WsURL, *wsURL)
	setIf(&cfg.APIKey, *apiKey)
	setIf(&cfg.APISecret, *apiSecret)
	setIf(&cfg.ListenIP, *listenIP)
	setIf(&cfg.RTPPort, *rtpPorts)
	setIf(&cfg.Logging.Level, *logLevel)
	if *sipPort != 0 {
		cfg.SIPPort = *sipPort
	}
	return cfg, cfg.Validate()
}

func setIf(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// connectRedis opens the psrpc bus, failing early if redis does not answer.
func connectRedis(ctx context.Context, r config.Redis) (psrpc.MessageBus, func(), error) {
	rc := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:    []string{r.Address},
		Username: r.Username,
		Password: r.Password,
		DB:       r.DB,
	})
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rc.Ping(pingCtx).Err(); err != nil {
		rc.Close()
		return nil, nil, fmt.Errorf("redis %s: %w", r.Address, err)
	}
	return psrpc.NewRedisMessageBus(rc), func() { rc.Close() }, nil
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "warn", "warning":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
