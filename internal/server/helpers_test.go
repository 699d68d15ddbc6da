package server_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/clock"
	"github.com/sonae-kv/sonae/internal/config"
	"github.com/sonae-kv/sonae/internal/server"
)

// testLogger writes to t.Log, so logs show only when a test fails.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type testNode struct {
	*server.Node
	addr string
	cfg  config.Config
}

// startNode runs a node on a loopback port with the memory engine unless
// mutate changes it. ln, when not nil, replaces the listener.
func startNode(t testing.TB, clk clock.Clock, ln net.Listener, mutate func(*config.Config)) *testNode {
	t.Helper()
	cfg := config.Default()
	cfg.Engine = config.EngineMemory
	cfg.Port = 1 // the listener is passed in; the port only names the node
	cfg.Data = t.TempDir()
	if mutate != nil {
		mutate(&cfg)
	}
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	if clk == nil {
		clk = clock.Real{}
	}
	n, err := server.Start(cfg, ln, clk, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return &testNode{Node: n, addr: ln.Addr().String(), cfg: cfg}
}

// rawConn is a client connection for exact byte-level exchanges.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// expect reads exactly len(want) bytes and compares them.
func (c *rawConn) expect(want string) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c.r, got); err != nil {
		c.t.Fatalf("reading %q: %v (got %q)", want, err, got)
	}
	if string(got) != want {
		c.t.Fatalf("got %q\nwant %q", got, want)
	}
}

// roundTrip sends s and expects want.
func (c *rawConn) roundTrip(s, want string) {
	c.t.Helper()
	c.send(s)
	c.expect(want)
}

// line reads one reply line.
func (c *rawConn) line() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read line: %v", err)
	}
	return strings.TrimRight(l, "\r\n")
}

// expectClosed waits until the server closes the connection.
func (c *rawConn) expectClosed(within time.Duration) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(within))
	for {
		_, err := c.r.ReadByte()
		if err == io.EOF {
			return
		}
		if err != nil {
			c.t.Fatalf("connection not closed by the server within %s: %v", within, err)
		}
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
