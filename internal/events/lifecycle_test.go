package events

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/testutil"
)

func TestDispatchNeverBlocksOnAHungHandler(t *testing.T) {
	dir := t.TempDir()
	cfg := fastConfig()
	cfg.Timeout = time.Minute
	cfg.QueueSize = 10
	hang := script(t, dir, "hang.sh", `echo $$ > "`+dir+`/pid"; exec sleep 60`)
	r, _ := start(t, cfg, Self{Name: "n"}, "user:hang="+hang)
	r.Dispatch(Event{Kind: User, Name: "hang"}, nil)
	pid := readPid(t, filepath.Join(dir, "pid"))

	const n = 10000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			r.Dispatch(Event{Kind: User, Name: fmt.Sprintf("e%d", i)}, nil)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Dispatch blocked behind a hung handler")
	}
	if s := r.Stats(); s.Dropped != uint64(n-cfg.QueueSize) || s.Ran != 0 {
		t.Fatalf("stats %+v, want %d dropped and nothing finished", s, n-cfg.QueueSize)
	}
	closed := make(chan struct{})
	go func() { r.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return while a handler hung")
	}
	// SIGKILL is asynchronous: a process the shell forked (the script) may
	// still be exiting when the shell has been reaped.
	testutil.Eventually(t, 5*time.Second, "the hung handler to die after Close", func() error { return gone(pid) })
	if s := r.Stats(); s.Ran != 1 || s.Failed != 1 || s.TimedOut != 0 {
		t.Fatalf("stats after Close %+v, want the killed run counted as failed, and the queue discarded", s)
	}
}

func TestQueueOverflowDropsTheOldest(t *testing.T) {
	dir := t.TempDir()
	cfg := fastConfig()
	cfg.QueueSize = 3
	out, gate := filepath.Join(dir, "order"), filepath.Join(dir, "gate")
	r, logs := start(t, cfg, Self{Name: "n"},
		"user="+script(t, dir, "record.sh", `echo "$SERF_USER_EVENT" >> "`+out+`"`),
		"user:block="+script(t, dir, "block.sh", `while [ ! -e "`+gate+`" ]; do sleep 0.01; done`),
	)
	r.Dispatch(Event{Kind: User, Name: "block"}, nil)
	readFile(t, out) // the worker took "block": the queue is empty
	for i := 1; i <= 5; i++ {
		r.Dispatch(Event{Kind: User, Name: fmt.Sprintf("e%d", i)}, nil)
	}
	if d := r.Stats().Dropped; d != 2 {
		t.Fatalf("dropped %d, want 2", d)
	}
	logs.waitFor(t, "level=WARN", "dropped the oldest", `dropped="user e1`, "dropped_total=1", "queue_size=3")
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitRan(t, r, 5)
	if got, _ := os.ReadFile(out); string(got) != "block\ne3\ne4\ne5\n" {
		t.Fatalf("ran %q, want block then e3..e5", got)
	}
}

func TestCloseKillsTheRunningHandlersGroup(t *testing.T) {
	dir := t.TempDir()
	cfg := fastConfig()
	cfg.Timeout = time.Minute
	hang := script(t, dir, "hang.sh", `sleep 60 & echo $! > "`+dir+`/pid"; wait`)
	never := script(t, dir, "never.sh", `echo ran > "`+dir+`/never"`)
	r, logs := start(t, cfg, Self{Name: "n"}, "member-join="+hang, "member-join="+never, "user="+never)
	r.Dispatch(Event{Kind: MemberJoin, Members: []Member{{Name: "n1"}}}, nil)
	r.Dispatch(Event{Kind: User, Name: "queued"}, nil)
	child := readPid(t, filepath.Join(dir, "pid"))
	r.Close()
	testutil.Eventually(t, 5*time.Second, "the handler's child to die", func() error { return gone(child) })
	if _, err := os.Stat(filepath.Join(dir, "never")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a handler ran after Close (%v)", err)
	}
	logs.waitFor(t, "level=WARN", "handler failed", "runner closed", `status="signal: killed"`)
	logs.waitFor(t, "discarded waiting events", "discarded=1")

	r.Dispatch(Event{Kind: User, Name: "late"}, nil) // ignored, no panic
	r.Close()                                        // idempotent
	if s := r.Stats(); s.Ran != 1 || s.Failed != 1 {
		t.Fatalf("stats %+v, want only the killed run", s)
	}
}

func TestUnknownKindIgnored(t *testing.T) {
	dir := t.TempDir()
	r, logs := start(t, fastConfig(), Self{Name: "n"}, script(t, dir, "all.sh", `echo ran`))
	r.Dispatch(Event{Kind: "member-joined"}, nil)
	logs.waitFor(t, "level=WARN", "unknown kind")
	r.Dispatch(Event{Kind: MemberJoin}, nil)
	waitRan(t, r, 1)
	if s := r.Stats(); s.Ran != 1 {
		t.Fatalf("stats %+v, want only the member-join run", s)
	}
}

func TestConfigValidate(t *testing.T) {
	def := Default()
	if err := def.Validate(); err != nil {
		t.Fatalf("Default() invalid: %v", err)
	}
	if def.Timeout != 30*time.Second || def.QueueSize != 1024 || def.Shell != "/bin/sh" || def.MaxOutput != 1024 {
		t.Fatalf("Default() = %+v", def)
	}
	bad := Config{Timeout: -time.Second, Handlers: []Handler{mustHandler(t, "x"), {}}}
	err := bad.Validate()
	if !errors.Is(err, ErrBadConfig) {
		t.Fatalf("Validate() = %v, want ErrBadConfig", err)
	}
	for _, want := range []string{
		"events: Config.Timeout is -1s", "events: Config.QueueSize is 0", "events: Config.Shell is empty",
		"events: Config.MaxOutput is 0", "events: Config.Handlers[1] is empty",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %q, missing %q", err, want)
		}
	}
	if _, err := NewRunner(bad, func() Self { return Self{} }); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("NewRunner(bad) = %v", err)
	}
	noShell := Default()
	noShell.Shell = "/nonexistent/sh"
	if _, err := NewRunner(noShell, func() Self { return Self{} }); !errors.Is(err, ErrBadConfig) ||
		!strings.Contains(err.Error(), "Config.Shell") {
		t.Fatalf("NewRunner(missing shell) = %v", err)
	}
	if _, err := NewRunner(Default(), nil); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("NewRunner(nil self) = %v", err)
	}
}
