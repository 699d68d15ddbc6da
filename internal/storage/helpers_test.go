package storage

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(killChildEnv) != "" {
		// Child of TestKillDurability: it never returns normally.
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m)
}

// testLogWriter sends log lines to t.Log, so they show only on failure or
// with -v, and drops them once the test has finished.
type testLogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Helper()
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// testLogger returns a logger writing to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	w := &testLogWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testOptions are small engine options for tests.
func testOptions(t testing.TB, d Durability) Options {
	o := Default()
	o.Durability = d
	o.CacheSize = 8 << 20
	if t != nil {
		o.Logger = testLogger(t)
	} else {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

// engineKind names one engine configuration under test.
type engineKind struct {
	name       string
	persistent bool
	open       func(t testing.TB, dir string) Engine
}

var engineKinds = []engineKind{
	{"memory", false, func(t testing.TB, _ string) Engine { return NewMemory(testOptions(t, DurabilityInterval)) }},
	{"pebble-interval", true, func(t testing.TB, dir string) Engine { return mustOpenPebble(t, dir, DurabilityInterval) }},
	{"pebble-fsync", true, func(t testing.TB, dir string) Engine { return mustOpenPebble(t, dir, DurabilityFsync) }},
}

func mustOpenPebble(t testing.TB, dir string, d Durability) *Pebble {
	t.Helper()
	p, err := OpenPebble(dir, testOptions(t, d))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
