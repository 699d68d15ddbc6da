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
	out *lockedBuffer
	// exited is closed when the current process has been reaped.
	exited chan struct{}
	state  *os.ProcessState
}

// Addr is host:port of the client port.
func (p *Proc) Addr() string { return net.JoinHostPort(p.Host, strconv.Itoa(p.Port)) }

// NodeID is host_port.
func (p *Proc) NodeID() string { return fmt.Sprintf("%s_%d", p.Host, p.Port) }

// Start launches a node with the given extra flags on a fresh port and data
// directory, and waits until it answers.
func Start(t testing.TB, args ...string) *Proc {
	t.Helper()
	p := &Proc{t: t, Host: "127.0.0.1", Data: t.TempDir(), Args: args}
	p.Port = FreePort(t, p.Host)
	p.Launch()
	t.Cleanup(func() { p.Kill() })
	return p
}

// Launch starts the process (again) and waits until it is ready.
func (p *Proc) Launch() {
	p.t.Helper()
	p.mu.Lock()
	args := append([]string{"--addr", p.Host, "--port", strconv.Itoa(p.Port), "--data", p.Data, "--log-level", "debug"}, p.Args...)
	cmd := exec.Command(Binary(p.t), args...)
	p.out = &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		p.t.Fatalf("starting sonaed: %v", err)
	}
	p.cmd = cmd
	exited := make(chan struct{})
	p.exited = exited
	p.mu.Unlock()
	go func() {
		cmd.Wait()
		p.mu.Lock()
		p.state = cmd.ProcessState
		p.mu.Unlock()
		close(exited)
	}()
	if err := p.WaitReady(20 * time.Second); err != nil {
		p.t.Fatalf("sonaed %s not ready: %v\nlog:\n%s", p.NodeID(), err, p.Log())
	}
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

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("version\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "VERSION ") {
		return fmt.Errorf("unexpected reply %q", line)
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
}

// Kill is Kill9 for cleanup: it does nothing if the process already exited.
func (p *Proc) Kill() {
	select {
	case <-p.exitedCh():
	default:
		p.Kill9()
	}
}

// Stop sends SIGTERM and waits for a graceful exit; it returns the exit code.
func (p *Proc) Stop() int {
	p.signal(syscall.SIGTERM)
	p.waitExit(20 * time.Second)
	return p.exitState().ExitCode()
}

// Pause stops the process with SIGSTOP; Resume continues it.
func (p *Proc) Pause()  { p.signal(syscall.SIGSTOP) }
func (p *Proc) Resume() { p.signal(syscall.SIGCONT) }

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
