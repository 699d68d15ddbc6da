package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	if got := c.NodeID(); got != "127.0.0.1_11211" {
		t.Errorf("NodeID = %q", got)
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	cases := []struct {
		key    string
		mutate func(*Config)
	}{
		{"port", func(c *Config) { c.Port = 70000 }},
		{"port", func(c *Config) { c.Port = 0 }},
		{"engine", func(c *Config) { c.Engine = "rocks" }},
		{"addr", func(c *Config) { c.Addr = "" }},
		{"addr", func(c *Config) { c.Addr = "bad host!" }},
		{"name", func(c *Config) { c.Name = "has space" }},
		{"div_bits", func(c *Config) { c.DivBits = 17 }},
		{"max_item_size", func(c *Config) { c.MaxItemSize = 0 }},
		{"max_connections", func(c *Config) { c.MaxConnections = 0 }},
		{"idle_timeout", func(c *Config) { c.IdleTimeout = -1 }},
		{"max_line_length", func(c *Config) { c.MaxLineLength = 10 }},
		{"max_pending_value_bytes", func(c *Config) { c.MaxPendingValueBytes = 1 }},
		{"durability", func(c *Config) { c.Durability = "never" }},
		{"sync_interval", func(c *Config) { c.SyncInterval = 0 }},
		{"changelog_retain_entries", func(c *Config) { c.ChangeLogRetainEntries = 0 }},
		{"log_level", func(c *Config) { c.LogLevel = "loud" }},
		{"threads", func(c *Config) { c.Threads = -1 }},
		{"data", func(c *Config) { c.Data = "" }},
		{"event_handler[1]", func(c *Config) { c.EventHandlers = []string{"./ok.sh", "member-joined=x.sh"} }},
		{"event_handler_timeout", func(c *Config) { c.EventHandlerTimeout = 0 }},
		{"live_nodes_file", func(c *Config) { c.LiveNodesFile = "/nonexistent-dir/live.json" }},
		{"live_nodes_file", func(c *Config) { c.LiveNodesFile = "/tmp" }},
		{"role", func(c *Config) { c.Role = "a b" }},
	}
	for _, tc := range cases {
		c := Default()
		tc.mutate(&c)
		err := c.Validate()
		if err == nil {
			t.Errorf("%s: Validate accepted a bad value", tc.key)
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error %v is not ErrInvalid", tc.key, err)
		}
		if !strings.Contains(err.Error(), tc.key+":") {
			t.Errorf("%s: error %q does not name the key", tc.key, err)
		}
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.Port = -1
	c.Engine = "x"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "port:") || !strings.Contains(err.Error(), "engine:") {
		t.Fatalf("want both port and engine named, got %v", err)
	}
}

func TestDecodeOverlaysDefaults(t *testing.T) {
	c := Default()
	err := c.Decode(strings.NewReader("port: 12000\nengine: memory\nidle_timeout: 30s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 12000 || c.Engine != EngineMemory || time.Duration(c.IdleTimeout) != 30*time.Second {
		t.Fatalf("decoded %+v", c)
	}
	if c.Name != "sonae" || c.Addr != "127.0.0.1" {
		t.Fatalf("absent keys lost their defaults: %+v", c)
	}
}

func TestDecodeRefusesUnknownKeysAndBadTypes(t *testing.T) {
	for _, in := range []string{"prot: 1\n", "port: abc\n", "idle_timeout: soon\n"} {
		c := Default()
		err := c.Decode(strings.NewReader(in))
		if err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("Decode(%q) = %v, want ErrInvalid", in, err)
		}
	}
	c := Default()
	err := c.Decode(strings.NewReader("prot: 1\n"))
	if !strings.Contains(err.Error(), "prot") {
		t.Errorf("unknown key not named: %v", err)
	}
}

func TestEmptyFileIsValid(t *testing.T) {
	c := Default()
	if err := c.Decode(strings.NewReader("")); err != nil {
		t.Fatal(err)
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	c := Default()
	c.Port = 1234
	c.SyncInterval = Duration(7 * time.Millisecond)
	c.EventHandlers = []string{"member-join,member-failed=./lb.sh", "user:deploy=./deploy.sh"}
	d := Default()
	if err := d.Decode(strings.NewReader(string(c.YAML()))); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d, c) {
		t.Fatalf("round trip: got %+v want %+v", d, c)
	}
}

func TestEffectiveThreads(t *testing.T) {
	c := Default()
	if got := c.EffectiveThreads(6); got != 6 {
		t.Errorf("default = %d, want the runtime's 6", got)
	}
	c.Threads = 3
	if got := c.EffectiveThreads(16); got != 3 {
		t.Errorf("explicit 3 = %d", got)
	}
}

func TestOverrideCopiesOneKey(t *testing.T) {
	c, src := Default(), Default()
	src.Port, src.Name = 1, "other"
	if err := c.Override("port", &src); err != nil {
		t.Fatal(err)
	}
	if c.Port != 1 || c.Name != "sonae" {
		t.Fatalf("Override(port) gave port %d name %q", c.Port, c.Name)
	}
	if err := c.Override("nope", &src); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("Override of an unknown key: %v", err)
	}
}
