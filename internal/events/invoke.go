package events

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// warnSlow is when a still-running handler is logged as slow (serf's
	// value): later events wait for it.
	warnSlow = time.Second
	// waitDelay is how long a handler that has exited (or been killed) may
	// keep its output pipes open through a process it left behind.
	waitDelay = time.Second
)

// result is the outcome of one handler run.
type result struct {
	output   []byte // the first MaxOutput bytes of stdout+stderr
	total    int    // bytes written in all
	err      error  // nil on success
	status   string // "exit status 1", "signal: killed", "not started"
	duration time.Duration
}

// invoke runs h for ev and waits for it, at most Config.Timeout.
func (r *Runner) invoke(h Handler, self Self, ev Event) result {
	ctx, cancel := context.WithTimeoutCause(r.ctx, r.cfg.Timeout, ErrTimeout)
	defer cancel()

	out := &capBuffer{max: r.cfg.MaxOutput}
	cmd := exec.CommandContext(ctx, r.cfg.Shell, "-c", h.command)
	cmd.Env = environ(ev, self)
	cmd.Stdin = bytes.NewReader(stdin(ev))
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so a timeout kills what the script started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = waitDelay

	slow := time.AfterFunc(warnSlow, func() {
		r.log.Warn("events: handler slow, later events wait for it",
			"handler", h.String(), "event", ev.String(), "running_for", warnSlow, "timeout", r.cfg.Timeout)
	})
	start := time.Now()
	err := cmd.Run()
	slow.Stop()
	res := result{duration: time.Since(start)}
	res.output, res.total = out.result()

	switch {
	case cmd.ProcessState == nil:
		res.status, res.err = "not started", fmt.Errorf("events: start %s: %w", r.cfg.Shell, err)
	case cmd.ProcessState.Success() && (err == nil || errors.Is(err, exec.ErrWaitDelay)):
		if err != nil {
			r.log.Warn("events: handler exited but left a process holding its output; closed it "+
				"(redirect a background process's output: cmd >/dev/null 2>&1 &)",
				"handler", h.String(), "event", ev.String())
		}
		res.status = cmd.ProcessState.String()
	default:
		res.status, res.err = cmd.ProcessState.String(), err
		if ctx.Err() != nil {
			// Killed at the timeout (ErrTimeout) or at Close (ErrClosed).
			res.err = fmt.Errorf("%w: %w", context.Cause(ctx), err)
		}
	}
	return res
}

// killGroup kills the process group led by pid.
func killGroup(pid int) error {
	err := syscall.Kill(-pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// capBuffer keeps the first max bytes written to it and counts them all.
type capBuffer struct {
	mu    sync.Mutex
	max   int
	buf   []byte
	total int
}

func (b *capBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total += len(p)
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (b *capBuffer) result() ([]byte, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf, b.total
}

// firstLines returns up to n lines of out, for a log attribute.
func firstLines(out []byte, n int) string {
	lines := strings.SplitAfterN(string(out), "\n", n+1)
	if len(lines) > n {
		return strings.Join(lines[:n], "") + "..."
	}
	return string(out)
}
