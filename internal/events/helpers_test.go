package events

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/testutil"
)

// logCapture keeps the text log lines so tests can check what was logged.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *logCapture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// waitFor polls until the log holds every one of parts on one line.
func (c *logCapture) waitFor(t *testing.T, parts ...string) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, "log line with "+strings.Join(parts, " "), func() error {
		for line := range strings.SplitSeq(c.String(), "\n") {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				return nil
			}
		}
		return errors.New("not logged yet")
	})
}

// testLogger logs to t.Log and to the returned capture.
func testLogger(t *testing.T) (*slog.Logger, *logCapture) {
	c := &logCapture{}
	h := slog.NewMultiHandler(testutil.Logger(t).Handler(),
		slog.NewTextHandler(c, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return slog.New(h), c
}

// script writes an executable /bin/sh script into dir and returns its path.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustHandler(t *testing.T, spec string) Handler {
	t.Helper()
	h, err := ParseHandler(spec)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// start starts a Runner over specs (handler values) with cfg's other
// fields, logging to the returned capture; Close runs at the test's end.
func start(t *testing.T, cfg Config, self Self, specs ...string) (*Runner, *logCapture) {
	t.Helper()
	log, capture := testLogger(t)
	cfg.Logger = log
	for _, s := range specs {
		cfg.Handlers = append(cfg.Handlers, mustHandler(t, s))
	}
	r, err := NewRunner(cfg, func() Self { return self })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, capture
}

// waitRan polls until r has finished n runs.
func waitRan(t *testing.T, r *Runner, n uint64) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, fmt.Sprintf("%d handler runs", n), func() error {
		if got := r.Stats().Ran; got < n {
			return fmt.Errorf("ran %d", got)
		}
		return nil
	})
}

// readFile polls until path exists and is not empty.
func readFile(t *testing.T, path string) string {
	t.Helper()
	var data []byte
	testutil.Eventually(t, 10*time.Second, "file "+filepath.Base(path), func() error {
		var err error
		data, err = os.ReadFile(path)
		if err == nil && len(data) == 0 {
			err = errors.New("empty")
		}
		return err
	})
	return string(data)
}

// readPid polls until the pid file a script writes is complete.
func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	testutil.Eventually(t, 10*time.Second, "pid file", func() error {
		data, err := os.ReadFile(path)
		if err != nil || !bytes.HasSuffix(data, []byte("\n")) {
			return fmt.Errorf("not written yet: %v", err)
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
		return err
	})
	return pid
}

// gone reports (nil) whether pid has died: kill -0 fails, or it is a
// zombie nobody reaped yet (a container's PID 1 may never reap orphans,
// and kill -0 succeeds on a zombie).
func gone(pid int) error {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return nil
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return nil
	}
	return fmt.Errorf("pid %d still alive", pid)
}

// fastConfig is Default with a short timeout for tests.
func fastConfig() Config {
	c := Default()
	c.Timeout = 10 * time.Second
	return c
}
