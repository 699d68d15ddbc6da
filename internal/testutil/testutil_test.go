package testutil

import (
	"errors"
	"testing"
	"time"
)

// recorder is a testing.TB that records failures instead of stopping.
type recorder struct {
	testing.TB
	failed bool
	logs   []string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = true
	panic(r) // stop Eventually as t.Fatalf would; the test recovers
}
func (r *recorder) Log(args ...any) { r.logs = append(r.logs, args[0].(string)) }

func TestEventuallyReturnsOnceCondHolds(t *testing.T) {
	calls := 0
	Eventually(t, 5*time.Second, "third call", func() error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if calls != 3 {
		t.Fatalf("cond called %d times, want 3", calls)
	}
}

func TestEventuallyFailsAfterDeadline(t *testing.T) {
	r := &recorder{TB: t}
	func() {
		defer func() { _ = recover() }()
		Eventually(r, 20*time.Millisecond, "never", func() error { return errors.New("no") })
	}()
	if !r.failed {
		t.Fatal("Eventually did not fail on a condition that never holds")
	}
}

func TestLoggerStopsAfterTheTest(t *testing.T) {
	r := &recorder{TB: t}
	var cleanup func()
	r.TB = cleanupTB{t, &cleanup}
	log := Logger(r)
	log.Info("during")
	cleanup()
	log.Info("after")
	if len(r.logs) != 1 {
		t.Fatalf("logged %d lines, want only the one before the test ended: %q", len(r.logs), r.logs)
	}
}

// cleanupTB captures the registered cleanup instead of running it at the end.
type cleanupTB struct {
	testing.TB
	fn *func()
}

func (c cleanupTB) Cleanup(f func()) { *c.fn = f }
