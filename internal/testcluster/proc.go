package testcluster

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/testutil"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary returns the path of a sonaed built from this checkout, building it
// on first use.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "sonaed-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "sonaed")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/sonaed")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building sonaed: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the sonae module")
	}
	return filepath.Dir(mod), nil
}

// FreePort returns a TCP port on host that was free a moment ago.
func FreePort(t testing.TB, host string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Proc is one sonaed process. Its data directory outlives restarts.
type Proc struct {
	t    testing.TB
	Host string
	Port int
	Data string
	Args []string // extra flags

	mu  sync.Mutex
	cmd *exec.Cmd
	// out collects the output of every launch, so a failure after a
	// restart still shows what the earlier runs printed.
	out      *lockedBuffer
	launches int
	paused   bool
	// exited is closed when the current process has been reaped.
	exited chan struct{}
	state  *os.ProcessState
}

// Addr is host:port of the client port.
func (p *Proc) Addr() string { return net.JoinHostPort(p.Host, strconv.Itoa(p.Port)) }

// NodeID is host_port.
func (p *Proc) NodeID() string { return fmt.Sprintf("%s_%d", p.Host, p.Port) }

// Start launches a node with the given extra flags on a fresh port and data
// directory, and waits until it answers. The process is killed when the test
// ends, and its output (every launch) is logged if the test failed.
func Start(t testing.TB, args ...string) *Proc {
	t.Helper()
	p := &Proc{t: t, Host: "127.0.0.1", Data: t.TempDir(), Args: args}
	p.Port = FreePort(t, p.Host)
	p.cleanupOnEnd()
	p.Launch()
	return p
}

// cleanupOnEnd registers, before anything is started, the kill and then the
// log dump (cleanups run last-in first-out, so the dump sees the whole log).
func (p *Proc) cleanupOnEnd() {
	p.t.Cleanup(p.logIfFailed)
	p.t.Cleanup(p.Kill)
}

// maxLogDump bounds how much of one process's output a failed test logs.
const maxLogDump = 1 << 20

func (p *Proc) logIfFailed() {
	if !p.t.Failed() {
		return
	}
	log := p.Log()
	if len(log) > maxLogDump {
		log = fmt.Sprintf("[... %d bytes cut ...]\n", len(log)-maxLogDump) + log[len(log)-maxLogDump:]
	}
	p.t.Logf("output of sonaed %s (%s):\n%s", p.NodeID(), p.Data, log)
}

// Launch starts the process (again) and waits until it is ready. The output
// of an earlier launch is kept: Log returns all of it.
func (p *Proc) Launch() {
	p.t.Helper()
	p.start()
	p.waitStarted(20 * time.Second)
}

// start runs the process without waiting for it to answer.
func (p *Proc) start() {
	p.t.Helper()
	if p.Running() {
		p.t.Fatalf("sonaed %s: launched while still running", p.NodeID())
	}
	p.mu.Lock()
	args := append([]string{"--addr", p.Host, "--port", strconv.Itoa(p.Port), "--data", p.Data, "--log-level", "debug"}, p.Args...)
	cmd := exec.Command(Binary(p.t), args...)
	if p.out == nil {
		p.out = &lockedBuffer{}
	}
	p.launches++
	fmt.Fprintf(p.out, "--- testcluster: launch %d: sonaed %s\n", p.launches, strings.Join(args, " "))
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		p.t.Fatalf("starting sonaed: %v", err)
	}
	p.cmd = cmd
	p.paused = false
	exited := make(chan struct{})
	p.exited = exited
	p.state = nil
	p.mu.Unlock()
	go func() {
		cmd.Wait()
		p.mu.Lock()
		p.state = cmd.ProcessState
		p.mu.Unlock()
		close(exited)
	}()
}

// waitStarted fails the test unless the process answers within d.
func (p *Proc) waitStarted(d time.Duration) {
	p.t.Helper()
	if err := p.WaitReady(d); err != nil {
		p.t.Fatalf("sonaed %s not ready: %v\nlog:\n%s", p.NodeID(), err, p.Log())
	}
}

// Running reports whether the process has been launched and not yet exited
// (a paused process is running).
func (p *Proc) Running() bool {
	ch := p.exitedCh()
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return false
	default:
		return true
	}
}

// Paused reports whether the process is stopped by Pause.
func (p *Proc) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

// WaitReady polls until the node answers "version" or the timeout passes.
func (p *Proc) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.exitedCh():
			return fmt.Errorf("process exited: %v", p.exitState())
		default:
		}
		if last = ping(p.Addr()); last == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return last
}

// ping succeeds once the node at addr is a member of an initialized
// cluster and serves data (cluster_info says ready).
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("cluster_info\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.Contains(line, `"ready":true`) {
		return fmt.Errorf("not ready: %s", strings.TrimSpace(line))
	}
	return nil
}

func (p *Proc) exitedCh() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

func (p *Proc) exitState() *os.ProcessState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

func (p *Proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		cmd.Process.Signal(sig)
	}
}

// Kill9 kills the process with SIGKILL and waits until it is gone.
func (p *Proc) Kill9() {
	p.signal(syscall.SIGCONT) // a stopped process must be able to die
	p.signal(syscall.SIGKILL)
	p.waitExit(10 * time.Second)
	p.setPaused(false)
}

// Kill is Kill9 for cleanup: it does nothing if the process never started
// or already exited.
func (p *Proc) Kill() {
	if p.Running() {
		p.Kill9()
	}
}

// Stop sends SIGTERM (after SIGCONT, should the process be paused) and
// waits for a graceful exit; it returns the exit code.
func (p *Proc) Stop() int {
	p.signal(syscall.SIGCONT)
	p.setPaused(false)
	p.signal(syscall.SIGTERM)
	p.waitExit(20 * time.Second)
	return p.exitState().ExitCode()
}

// Pause stops the process with SIGSTOP: its sockets stay open but nothing
// answers, as with a node stuck in a long GC pause or a frozen VM. On Linux
// it returns once every thread of the process has stopped (SIGSTOP takes
// effect asynchronously); elsewhere right after sending the signal.
func (p *Proc) Pause() {
	p.t.Helper()
	p.signal(syscall.SIGSTOP)
	p.setPaused(true)
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	testutil.Eventually(p.t, 5*time.Second, fmt.Sprintf("sonaed %s to stop on SIGSTOP", p.NodeID()), func() error {
		return stopped(cmd.Process.Pid)
	})
}

// stopped returns nil when every thread of pid is stopped, per
// /proc/PID/task/*/stat; without /proc it returns nil at once.
func stopped(pid int) error {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(tasks) == 0 {
		if _, statErr := os.Stat("/proc/self/stat"); statErr != nil {
			return nil // not Linux: nothing to look at
		}
		return fmt.Errorf("no threads of pid %d in /proc", pid)
	}
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		// pid (comm) STATE ...: comm may hold spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 >= len(s) {
			return fmt.Errorf("%s: unexpected %q", f, s)
		}
		if state := s[i+2]; state != 'T' && state != 't' {
			return fmt.Errorf("thread %s in state %c", filepath.Base(filepath.Dir(f)), state)
		}
	}
	return nil
}

// Resume continues a paused process with SIGCONT.
func (p *Proc) Resume() {
	p.signal(syscall.SIGCONT)
	p.setPaused(false)
}

func (p *Proc) setPaused(v bool) {
	p.mu.Lock()
	p.paused = v
	p.mu.Unlock()
}

func (p *Proc) waitExit(d time.Duration) {
	select {
	case <-p.exitedCh():
	case <-time.After(d):
		p.t.Fatalf("sonaed %s did not exit within %s\nlog:\n%s", p.NodeID(), d, p.Log())
	}
}

// Log returns everything the process printed.
func (p *Proc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out == nil {
		return ""
	}
	return p.out.String()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
