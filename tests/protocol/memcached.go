package protocoltest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"testing"
	"time"
)

// StartMemcached starts a private memcached (-U 0 -m 64 -I 1m) on a free
// loopback port, waits until it accepts connections and returns its
// address. The process is killed on test cleanup. The test is skipped if no
// memcached binary is found (see FindMemcached).
func StartMemcached(t testing.TB) string {
	t.Helper()
	bin := FindMemcached()
	if bin == "" {
		t.Skip("memcached not found (looked at $MEMCACHED, /usr/bin/memcached, $PATH); install memcached 1.6 to run the reference protocol tests")
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr, err := startMemcached(t, bin)
		if err == nil {
			return addr
		}
		lastErr = err // most likely lost a race for the port; retry
	}
	t.Fatalf("starting %s: %v", bin, lastErr)
	return ""
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startMemcached(t testing.TB, bin string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	args := []string{"-U", "0", "-l", "127.0.0.1", "-p", strconv.Itoa(port), "-m", "64", "-I", "1m"}
	if os.Geteuid() == 0 {
		// memcached refuses to run as root without -u.
		name := "root"
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
		args = append(args, "-u", name)
	}
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			return "", fmt.Errorf("memcached exited early (%v): %s", err, stderr.String())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return "", fmt.Errorf("memcached did not accept connections on %s within 10s: %v", addr, err)
		}
		// Poll again; a short pause keeps the loop from spinning.
		select {
		case err := <-exited:
			return "", fmt.Errorf("memcached exited early (%v): %s", err, stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	return addr, nil
}
