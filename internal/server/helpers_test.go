package server_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/clock"
	"github.com/sonae-kv/sonae/internal/config"
	"github.com/sonae-kv/sonae/internal/testcluster"
	"github.com/sonae-kv/sonae/internal/testutil"
)

type testNode struct {
	*testcluster.Node
	addr string
}

// startNode runs an in-process node (memory engine unless mutate changes it).
func startNode(t testing.TB, clk clock.Clock, ln net.Listener, mutate func(*config.Config)) *testNode {
	t.Helper()
	n := testcluster.StartInProcess(t, clk, ln, mutate)
	return &testNode{Node: n, addr: n.Addr}
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

// closedNow reports, without waiting, whether the server has closed the
// connection (it sends nothing else to these connections).
func (c *rawConn) closedNow() bool {
	c.nc.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := c.r.ReadByte()
	return err == io.EOF
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, within, what, func() error {
		if cond() {
			return nil
		}
		return errors.New("condition not met")
	})
}
