package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The repository's sip.yaml (written for livekit-sip) must load as it is.
func TestLoadsLivekitSipStyleFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sip.yaml")
	body := `ws_url: ws://127.0.0.1:7999
redis:
  address: 127.0.0.1:6999
listen_ip: 127.0.0.1
sip_port: 5099
nat_1_to_1_ip: 127.0.0.1
use_external_ip: false
rtp_port: 12000-12020
max_cpu_utilization: 0.99
logging:
  level: debug
agent_wait: 4.5s
`
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ApplyEnv(env{"LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s"}.get)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	first, last, _ := cfg.RTPRange()
	if cfg.WsURL != "ws://127.0.0.1:7999" || cfg.Redis.Address != "127.0.0.1:6999" || cfg.SIPPort != 5099 ||
		first != 12000 || last != 12020 || cfg.Logging.Level != "debug" || cfg.APIKey != "k" || cfg.APISecret != "s" ||
		cfg.AgentWait != 4500*time.Millisecond {
		t.Fatalf("loaded %+v", cfg)
	}
}

func TestRejectsTyposAndBadValues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("sip_prot: 5060\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil {
		t.Fatal("unknown key accepted")
	}
	cfg := Defaults()
	cfg.APIKey, cfg.APISecret = "k", "s"
	for name, mutate := range map[string]func(*Config){
		"rtp range":  func(c *Config) { c.RTPPort = "10100-10000" },
		"listen ip":  func(c *Config) { c.ListenIP = "localhost" },
		"nat":        func(c *Config) { c.NAT1To1IP = "203.0.113.1" },
		"no secret":  func(c *Config) { c.APISecret = "" },
		"no ws url":  func(c *Config) { c.WsURL = "" },
		"no redis":   func(c *Config) { c.Redis.Address = "" },
		"bad sip pt": func(c *Config) { c.SIPPort = 70000 },
		"agent wait": func(c *Config) { c.AgentWait = -time.Second },
	} {
		c := cfg
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: invalid config accepted", name)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults with keys: %v", err)
	}
}

type env map[string]string

func (e env) get(k string) string { return e[k] }
