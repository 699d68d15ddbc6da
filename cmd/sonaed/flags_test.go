package main

import (
	"io"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/sonae-kv/sonae/internal/config"
)

// TestEveryKeyHasAFlag keeps the flags and the YAML keys in step: every key
// has a flag of the same name (dashes for underscores), and every flag but
// --config sets a key.
func TestEveryKeyHasAFlag(t *testing.T) {
	help := captureUsage(t)
	for _, key := range config.Keys() {
		if !strings.Contains(help, "--"+strings.ReplaceAll(key, "_", "-")+" ") {
			t.Errorf("config key %s has no --%s flag", key, strings.ReplaceAll(key, "_", "-"))
		}
	}
	// Setting each flag must reach its field: Override fails on a flag whose
	// name is not a key.
	for _, key := range config.Keys() {
		flag := "--" + strings.ReplaceAll(key, "_", "-")
		val := map[string]string{
			"addr": "127.0.0.2", "data": "/tmp/x", "engine": "memory", "name": "n", "auth_token": "t",
			"durability": "fsync", "log_level": "warn", "log_format": "json",
			"advertise": "10.0.0.1", "join": "127.0.0.1_11311", "redundancy": "3", "replication_in_host": "true",
			"max_voters": "5", "gossip_key": "MDEyMzQ1Njc4OWFiY2RlZg==", "gossip_profile": "wan", "read_lease": "3s",
			"role": "web", "event_handler": "member-join=true", "event_handler_timeout": "45s", "live_nodes_file": os.TempDir() + "/live.json",
		}[key]
		if val == "" {
			val = "30s"
			if !strings.HasSuffix(key, "timeout") && !strings.HasSuffix(key, "interval") && !strings.HasSuffix(key, "_age") {
				val = "1024"
			}
		}
		if key == "div_bits" {
			val = "10"
		}
		switch key {
		case "threads":
			val = "3"
		case "max_pending_value_bytes":
			val = "536870912"
		}
		args := []string{flag, val}
		if key == "replication_in_host" {
			args = []string{flag + "=" + val}
		}
		cfg, err := loadConfig(args, io.Discard)
		if err != nil {
			t.Errorf("%s %s: %v", flag, val, err)
			continue
		}
		def := config.Default()
		if reflect.DeepEqual(cfg, def) {
			t.Errorf("%s %s changed nothing", flag, val)
		}
	}
}

func captureUsage(t *testing.T) string {
	var b strings.Builder
	_, err := loadConfig([]string{"--help"}, &b)
	if err != pflag.ErrHelp {
		t.Fatalf("--help: %v", err)
	}
	return b.String()
}
