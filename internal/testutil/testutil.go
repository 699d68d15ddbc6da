package testutil

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// logWriter sends log lines to t.Log, so they show only on failure or with
// -v, and drops them once the test has finished: background goroutines
// (raft, serf, a server shutting down) may log a moment after the test ends,
// and t.Log then panics.
type logWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Helper()
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// Logger returns a debug-level logger writing to t.Log until t ends.
func Logger(t testing.TB) *slog.Logger {
	w := &logWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Eventually polls cond every few milliseconds until it returns nil, and
// fails the test with cond's last error once within has passed.
func Eventually(t testing.TB, within time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.After(within)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s: %v", within, what, err)
		case <-tick.C:
		}
	}
}
