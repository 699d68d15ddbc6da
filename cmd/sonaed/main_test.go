package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/goleak"

	"github.com/sonae-kv/sonae/client"
	"github.com/sonae-kv/sonae/internal/config"
	"github.com/sonae-kv/sonae/internal/testcluster"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// writeConfig writes a YAML config file and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sonaed.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := loadConfig(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := config.Default(); !reflect.DeepEqual(cfg, want) {
		t.Errorf("no flags, no file:\n got %+v\nwant %+v", cfg, want)
	}
	if cfg.ConfigPath() != "" {
		t.Errorf("ConfigPath = %q without --config", cfg.ConfigPath())
	}
}

func TestLoadConfigFile(t *testing.T) {
	p := writeConfig(t, `
port: 12000
engine: memory
name: east
idle_timeout: 30s
durability: fsync
log_format: json
`)
	cfg, err := loadConfig([]string{"--config", p}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := config.Default()
	want.Port, want.Engine, want.Name = 12000, config.EngineMemory, "east"
	want.IdleTimeout = config.Duration(30 * time.Second)
	want.Durability, want.LogFormat = config.DurabilityFsync, "json"
	want.SetConfigPath(p)
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("from the file:\n got %+v\nwant %+v", cfg, want)
	}
	if cfg.ConfigPath() != p {
		t.Errorf("ConfigPath = %q, want %q", cfg.ConfigPath(), p)
	}
}

func TestLoadConfigFlagsWinOverFile(t *testing.T) {
	p := writeConfig(t, "port: 12000\nname: east\nidle_timeout: 30s\nlog_level: warn\n")
	// Flags before and after --config: order does not matter, flags win.
	cfg, err := loadConfig([]string{"-p", "13000", "--config", p, "--idle-timeout", "1m", "--name", "west"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 13000 || cfg.Name != "west" || time.Duration(cfg.IdleTimeout) != time.Minute {
		t.Errorf("flags did not win: port=%d name=%q idle_timeout=%s", cfg.Port, cfg.Name, time.Duration(cfg.IdleTimeout))
	}
	if cfg.LogLevel != "warn" {
		t.Errorf("log_level = %q: a key set only in the file must keep the file's value", cfg.LogLevel)
	}
	// A flag set to its default value still wins over the file.
	cfg, err = loadConfig([]string{"--config", p, "--port", "11211"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 11211 {
		t.Errorf("--port 11211 (the default) lost to the file's 12000: got %d", cfg.Port)
	}
}

func TestLoadConfigRefusesBadInput(t *testing.T) {
	cases := []struct {
		name string
		args []string
		yaml string // config file, if any
		want string // the error must contain this (the key it is about)
	}{
		{name: "port out of range", args: []string{"--port", "70000"}, want: "port"},
		{name: "unknown engine", args: []string{"--engine", "x"}, want: "engine"},
		{name: "unknown durability", args: []string{"--durability", "never"}, want: "durability"},
		{name: "bad log level", args: []string{"--log-level", "loud"}, want: "log_level"},
		{name: "unknown yaml key", yaml: "port: 12000\nbogus_key: 1\n", want: "bogus_key"},
		{name: "bad yaml type", yaml: "port: abc\n", want: "port"},
		{name: "bad yaml duration", yaml: "idle_timeout: soon\n", want: "idle_timeout"},
		{name: "bad value in file", yaml: "div_bits: 40\n", want: "div_bits"},
		{name: "not a flag value", args: []string{"--port", "many"}, want: "port"},
		{name: "unknown flag", args: []string{"--no-such-flag"}, want: "no-such-flag"},
		{name: "positional argument", args: []string{"serve"}, want: `unexpected argument "serve"`},
		{name: "missing config file", args: []string{"--config", "/nonexistent/sonaed.yaml"}, want: "/nonexistent/sonaed.yaml"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args, file := tc.args, ""
			if tc.yaml != "" {
				file = writeConfig(t, tc.yaml)
				args = append([]string{"--config", file}, args...)
			}
			// The file's path holds the test name: keep it out of the match.
			mentions := func(s string) bool {
				if file != "" {
					s = strings.ReplaceAll(s, file, "FILE")
				}
				return strings.Contains(s, tc.want)
			}
			var stderr bytes.Buffer
			_, err := loadConfig(args, &stderr)
			if err == nil {
				t.Fatalf("loadConfig(%q) accepted it", args)
			}
			if !mentions(err.Error()) {
				t.Errorf("loadConfig(%q) = %q: does not mention %q", args, err, tc.want)
			}
			// The daemon refuses to start with exit code 2 and says why.
			stderr.Reset()
			if code := run(args, &stderr); code != 2 {
				t.Errorf("run exit code = %d, want 2", code)
			}
			if !mentions(stderr.String()) {
				t.Errorf("stderr %q does not mention %q", stderr.String(), tc.want)
			}
		})
	}
}

func TestLoadConfigHelp(t *testing.T) {
	var stderr bytes.Buffer
	_, err := loadConfig([]string{"--help"}, &stderr)
	if !errors.Is(err, pflag.ErrHelp) {
		t.Fatalf("--help: err = %v, want pflag.ErrHelp", err)
	}
	for _, want := range []string{"Usage: sonaed", "--config", "--port", "--durability"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("usage does not mention %q:\n%s", want, stderr.String())
		}
	}
	stderr.Reset()
	if code := run([]string{"-h"}, &stderr); code != 0 {
		t.Errorf("run -h exit code = %d, want 0", code)
	}
}

// TestGracefulStopAndRestart runs the real binary: a key set through the
// client survives SIGTERM (exit code 0, "stopped" logged) and a restart on
// the same data directory, flags included.
func TestGracefulStopAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs sonaed")
	}
	p := testcluster.Start(t, "--engine", "pebble")
	c, err := client.Dial(p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Set("greeting", []byte("hello"), 0xdeadbeef, 0); err != nil {
		t.Fatal(err)
	}
	c.Close()

	if code := p.Stop(); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0\nlog:\n%s", code, p.Log())
	}
	log := p.Log()
	for _, want := range []string{`msg="shutting down"`, "signal=terminated", "msg=stopped"} {
		if !strings.Contains(log, want) {
			t.Errorf("log does not contain %q:\n%s", want, log)
		}
	}

	p.Launch()
	c, err = client.Dial(p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	it, err := c.Get("greeting")
	if err != nil {
		t.Fatalf("after restart: %v\nlog:\n%s", err, p.Log())
	}
	if string(it.Value) != "hello" || it.Flags != 0xdeadbeef {
		t.Errorf("after restart: value %q flags %#x, want \"hello\" 0xdeadbeef", it.Value, it.Flags)
	}
}
