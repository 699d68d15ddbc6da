package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/clock"
	"github.com/sonae-kv/sonae/internal/testutil"
)

// TestPipelinedAndSplitWrites sends one script as a single write, then one
// byte per write, and expects identical replies.
func TestPipelinedAndSplitWrites(t *testing.T) {
	n := startNode(t, nil, nil, nil)
	script := "set p 7 0 5\r\nhello\r\nget p\r\nappend p 0 0 1 noreply\r\n!\r\ngets nope\r\n" +
		"incr p 1\r\nset bad 0 0 1\r\nxx\r\ndelete p\r\nbogus\r\nversion\r\n"
	run := func(byteByByte bool) string {
		c := dialRaw(t, n.addr)
		c.roundTrip("flush_all\r\n", "OK\r\n")
		if byteByByte {
			for i := range len(script) {
				c.send(script[i : i+1])
			}
		} else {
			c.send(script)
		}
		var out []string
		for {
			l := c.line()
			out = append(out, l)
			if strings.HasPrefix(l, "VERSION ") {
				return strings.Join(out, "\n")
			}
		}
	}
	whole := run(false)
	want := strings.Join([]string{
		"STORED", "VALUE p 7 5", "hello", "END", "END",
		"CLIENT_ERROR cannot increment or decrement non-numeric value",
		"CLIENT_ERROR bad data chunk", "ERROR", "DELETED", "ERROR",
	}, "\n")
	if !strings.HasPrefix(whole, want) {
		t.Fatalf("pipelined replies:\n%s\nwant prefix:\n%s", whole, want)
	}
	if split := run(true); split != whole {
		t.Fatalf("byte-by-byte replies differ:\n%s\nwhole:\n%s", split, whole)
	}
}

func TestKeysAreChecked(t *testing.T) {
	n := startNode(t, nil, nil, nil)
	c := dialRaw(t, n.addr)
	k250 := strings.Repeat("k", 250)
	c.roundTrip("set "+k250+" 0 0 1\r\nv\r\n", "STORED\r\n")
	c.roundTrip("get "+k250+"\r\n", "VALUE "+k250+" 0 1\r\nv\r\nEND\r\n")
	c.roundTrip("get "+k250+"k\r\n", "CLIENT_ERROR bad command line format\r\n")
	// Control characters are refused (memcached would store them), like a
	// key that is too long: the block is not consumed and runs as a command.
	c.roundTrip("set a\x01b 0 0 1\r\nv\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n")
	c.roundTrip("get ok a\x7fb\r\n", "CLIENT_ERROR bad command line format\r\n")
	c.roundTrip("version\r\n", fmt.Sprintf("VERSION %s\r\n", versionString()))
}

func TestLineTooLongClosesWithError(t *testing.T) {
	n := startNode(t, nil, nil, func(c *configT) { c.MaxLineLength = 1024 })
	c := dialRaw(t, n.addr)
	c.send("get " + strings.Repeat("k ", 600) + "\r\n")
	c.expect("CLIENT_ERROR line too long\r\n")
	c.expectClosed(5 * time.Second)
}

func TestMaxConnections(t *testing.T) {
	n := startNode(t, nil, nil, func(c *configT) { c.MaxConnections = 2 })
	a, b := dialRaw(t, n.addr), dialRaw(t, n.addr)
	a.roundTrip("version\r\n", "VERSION "+versionString()+"\r\n")
	b.roundTrip("version\r\n", "VERSION "+versionString()+"\r\n")
	c := dialRaw(t, n.addr)
	c.expect("ERROR Too many open connections\r\n")
	c.expectClosed(5 * time.Second)
	a.nc.Close()
	eventually(t, 5*time.Second, "a freed connection slot", func() bool {
		d := dialRaw(t, n.addr)
		d.send("version\r\n")
		return d.line() == "VERSION "+versionString()
	})
}

func TestIdleTimeoutClosesStalledClients(t *testing.T) {
	const idle = 300 * time.Millisecond
	n := startNode(t, nil, nil, func(c *configT) { c.IdleTimeout = durationT(idle) })
	idleConn := dialRaw(t, n.addr)
	stalled := dialRaw(t, n.addr)
	stalled.send("set k 0 0 10\r\nabc") // half a command, then nothing
	busy := dialRaw(t, n.addr)
	start := time.Now()
	// The busy client keeps talking until the other two are closed, and for
	// three idle timeouts at least: it must never be closed.
	for time.Since(start) < 3*idle || !idleConn.closedNow() || !stalled.closedNow() {
		busy.roundTrip("version\r\n", "VERSION "+versionString()+"\r\n")
		if time.Since(start) > 10*time.Second {
			t.Fatal("the idle and stalled connections were not closed within 10s")
		}
	}
	busy.roundTrip("version\r\n", "VERSION "+versionString()+"\r\n")
	// A closed connection's goroutine unregisters just after the close.
	testutil.Eventually(t, 5*time.Second, "only the busy connection open", func() error {
		if c := n.Server.CurrentConnections(); c != 1 {
			return fmt.Errorf("%d connections open", c)
		}
		return nil
	})
}

// TestIdleSweepUsesTheInjectedClock shows the sweeper closes by the node's
// clock: nothing happens until the fake clock passes the timeout.
func TestIdleSweepUsesTheInjectedClock(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	n := startNode(t, clk, nil, func(c *configT) { c.IdleTimeout = durationT(4 * time.Second) })
	c := dialRaw(t, n.addr)
	c.roundTrip("version\r\n", "VERSION "+versionString()+"\r\n")
	eventually(t, 5*time.Second, "the sweeper to see the connection", func() bool { return n.Server.CurrentConnections() == 1 })
	clk.Advance(3 * time.Second)
	c.roundTrip("version\r\n", "VERSION "+versionString()+"\r\n") // still open
	eventually(t, 10*time.Second, "the idle connection to be closed", func() bool {
		clk.Advance(time.Second)
		return n.Server.CurrentConnections() == 0
	})
	c.expectClosed(5 * time.Second)
}
