package testcluster

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/testutil"
)

func TestFinalLine(t *testing.T) {
	for line, want := range map[string]bool{
		"END": true, "STORED": true, "VERSION 1.6.18-sonae": true, "SERVER_ERROR vnode 3 unavailable: x": true,
		"CLIENT_ERROR bad data chunk": true, "ERROR": true, "OK": true,
		"VALUE k 0 1": false, "routing.nodes.length 3": false, "ENDX": false, "": false,
	} {
		if got := finalLine(line); got != want {
			t.Errorf("finalLine(%q) = %v, want %v", line, got, want)
		}
	}
}

func TestLoopbackHost(t *testing.T) {
	h0, h1 := LoopbackHost(0), LoopbackHost(1)
	if h0 == "127.0.0.1" {
		if h1 != h0 {
			t.Fatalf("LoopbackHost(1) = %s, want the 127.0.0.1 fallback too", h1)
		}
		t.Log("127/8 beyond 127.0.0.1 is not bindable here: nodes share 127.0.0.1")
		return
	}
	if h0 != "127.0.0.10" || h1 != "127.0.0.11" || LoopbackHost(300) != "127.0.0.1" {
		t.Fatalf("LoopbackHost = %s, %s, %s", h0, h1, LoopbackHost(300))
	}
}

// TestSingleNodeLifecycle runs one real sonaed on its own loopback address:
// a value stored over the text protocol survives kill -9 and a restart on
// the same data directory, a paused node stops answering until resumed, and
// the output of every launch is kept.
func TestSingleNodeLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs sonaed")
	}
	c := NewCluster(t, 1, ClusterOptions{Engine: "pebble"})
	p := c.Node(0)
	if want := LoopbackHost(0); p.Host != want || !strings.HasPrefix(p.NodeID(), want+"_") {
		t.Fatalf("node 0 on %s (id %s), want host %s", p.Host, p.NodeID(), want)
	}
	addr := p.Addr()
	expect(t, addr, "set greeting 7 0 5\r\nhello", "STORED")
	expect(t, addr, "get greeting", "VALUE greeting 7 5|hello|END")
	c.WaitMembers(t, 1, 10*time.Second)

	c.Pause(0)
	if !p.Paused() || len(c.Live()) != 0 {
		t.Fatalf("after Pause: paused=%v live=%v", p.Paused(), c.Live())
	}
	if _, err := Command(addr, "version"); err == nil {
		t.Fatal("a paused node answered")
	}
	c.Resume(0)
	expect(t, addr, "get greeting", "VALUE greeting 7 5|hello|END")

	c.Kill9(0)
	if p.Running() {
		t.Fatal("Running after Kill9")
	}
	testutil.Eventually(t, 5*time.Second, "the killed node's port to refuse", func() error {
		if _, err := Command(addr, "version"); err == nil {
			return errors.New("still answering")
		}
		return nil
	})
	c.Restart(0)
	if got := p.Addr(); got != addr {
		t.Fatalf("restarted on %s, want %s", got, addr)
	}
	expect(t, addr, "get greeting", "VALUE greeting 7 5|hello|END")

	// A running node restarts gracefully.
	c.Restart(0)
	expect(t, addr, "get greeting", "VALUE greeting 7 5|hello|END")
	if log := p.Log(); strings.Count(log, "--- testcluster: launch ") != 3 {
		t.Fatalf("log does not hold all three launches:\n%s", log)
	}
}
