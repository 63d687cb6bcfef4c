// Package config loads the bridge's settings. The YAML file uses the key names of
// LiveKit's livekit-sip (ws_url, redis.address, listen_ip, sip_port, rtp_port,
// logging.level, api_key/api_secret), so our existing sip.yaml works unchanged; keys
// that only livekit-sip understands are accepted and ignored.
package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is everything the bridge needs to run.
type Config struct {
	// WsURL is livekit-server's WebSocket URL the SIP participants join through.
	WsURL string `yaml:"ws_url"`
	// APIKey and APISecret sign the participants' join tokens. Usually from the
	// environment (LIVEKIT_API_KEY, LIVEKIT_API_SECRET) rather than the file.
	APIKey    string `yaml:"api_key"`
	APISecret string `yaml:"api_secret"`

	Redis Redis `yaml:"redis"`

	// ListenIP is where SIP and RTP bind, and what goes into SIP headers and SDP.
	ListenIP string `yaml:"listen_ip"`
	// SIPPort is the SIP port (UDP; TCP too, for probes).
	SIPPort int `yaml:"sip_port"`
	// RTPPort is the media port range "first-last".
	RTPPort string `yaml:"rtp_port"`
	// NAT1To1IP is livekit-sip's advertised address; we only accept it equal to ListenIP.
	NAT1To1IP string `yaml:"nat_1_to_1_ip"`

	// ClusterID is the psrpc topic livekit-server addresses CreateSIPParticipant to
	// ("" unless the server sets a cluster ID).
	ClusterID string `yaml:"cluster_id"`

	Logging Logging `yaml:"logging"`

	// AgentWait (ours, not livekit-sip's) is how long an incoming call whose dispatch
	// rule sends an agent may ring before one has joined the room; then 486 Busy Here.
	// livekit-server offers a call once and drops it when every worker is full, so an
	// agent that has not joined by now is not coming. 0: ring until ringing_timeout.
	AgentWait time.Duration `yaml:"agent_wait"`

	// Accepted for compatibility with livekit-sip configs; not used.
	UseExternalIP     bool    `yaml:"use_external_ip"`
	MaxCPUUtilization float64 `yaml:"max_cpu_utilization"`
}

// Redis is the redis livekit-server uses; psrpc runs over it.
type Redis struct {
	Address  string `yaml:"address"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	DB       int    `yaml:"db"`
}

// Logging sets the log level: debug, info, warn or error.
type Logging struct {
	Level string `yaml:"level"`
}

// Defaults are the values of our local stack (see the repository's sip.yaml).
func Defaults() Config {
	return Config{
		WsURL:     "ws://127.0.0.1:7880",
		Redis:     Redis{Address: "127.0.0.1:6390"},
		ListenIP:  "127.0.0.1",
		SIPPort:   5060,
		RTPPort:   "10000-10100",
		Logging:   Logging{Level: "info"},
		AgentWait: DefaultAgentWait,
	}
}

// DefaultAgentWait is above livekit-server's 10 s for a worker to answer a job request,
// and leaves a cold worker time to start a job process (a few seconds on a busy machine);
// a caller of a full worker hears about 3 rings, not 30 s to 3 min of them.
const DefaultAgentWait = 15 * time.Second

// Load reads a YAML file over the defaults; an empty path gives the defaults.
// Unknown keys are an error, so a typo does not silently fall back to a default.
func Load(path string) (Config, error) {
	cfg := Defaults()
	if path == "" {
		return cfg, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return cfg, err
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	// An empty file (io.EOF) means all defaults.
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ApplyEnv fills the API key and secret from LIVEKIT_API_KEY / LIVEKIT_API_SECRET
// where the file left them empty, as livekit-sip does.
func (c *Config) ApplyEnv(getenv func(string) string) {
	if c.APIKey == "" {
		c.APIKey = getenv("LIVEKIT_API_KEY")
	}
	if c.APISecret == "" {
		c.APISecret = getenv("LIVEKIT_API_SECRET")
	}
	if c.WsURL == "" {
		c.WsURL = getenv("LIVEKIT_WS_URL")
	}
}

// RTPRange parses RTPPort ("10000-10100").
func (c *Config) RTPRange() (first, last int, err error) {
	lo, hi, ok := strings.Cut(c.RTPPort, "-")
	if !ok {
		return 0, 0, fmt.Errorf("rtp_port %q: want first-last", c.RTPPort)
	}
	if first, err = strconv.Atoi(strings.TrimSpace(lo)); err != nil {
		return 0, 0, fmt.Errorf("rtp_port %q: %w", c.RTPPort, err)
	}
	if last, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil {
		return 0, 0, fmt.Errorf("rtp_port %q: %w", c.RTPPort, err)
	}
	if first <= 0 || last > 65535 || last <= first {
		return 0, 0, fmt.Errorf("rtp_port %q: not a port range", c.RTPPort)
	}
	return first, last, nil
}

// Validate reports the first setting the bridge cannot run with.
func (c *Config) Validate() error {
	switch {
	case c.WsURL == "":
		return errors.New("ws_url is required")
	case c.APIKey == "" || c.APISecret == "":
		return errors.New("API key and secret are required (api_key/api_secret, or LIVEKIT_API_KEY/LIVEKIT_API_SECRET)")
	case c.Redis.Address == "":
		return errors.New("redis.address is required")
	case net.ParseIP(c.ListenIP) == nil:
		return fmt.Errorf("listen_ip %q is not an IP address", c.ListenIP)
	case c.SIPPort <= 0 || c.SIPPort > 65535:
		return fmt.Errorf("sip_port %d is not a port", c.SIPPort)
	case c.AgentWait < 0:
		return fmt.Errorf("agent_wait %v is negative", c.AgentWait)
	case c.NAT1To1IP != "" && c.NAT1To1IP != c.ListenIP:
		return fmt.Errorf("nat_1_to_1_ip %q differs from listen_ip %q: NAT traversal is not supported", c.NAT1To1IP, c.ListenIP)
	}
	if _, _, err := c.RTPRange(); err != nil {
		return err
	}
	return nil
}
