package testcluster

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/clock"
	"github.com/sonae-kv/sonae/internal/config"
	"github.com/sonae-kv/sonae/internal/server"
	"github.com/sonae-kv/sonae/internal/testutil"
)

// Node is a sonaed running inside the test process, for tests that need a
// real server on a real socket but not a separate process.
type Node struct {
	*server.Node
	// Addr is host:port of the client listener.
	Addr string
	Cfg  config.Config
}

// StartInProcess runs a node on a fresh loopback port with the memory engine,
// after mutate (if not nil) has adjusted the config. clk nil means the real
// clock; ln nil means a new listener on 127.0.0.1. Logs go to t.Log. The
// node is stopped when the test ends.
func StartInProcess(t testing.TB, clk clock.Clock, ln net.Listener, mutate func(*config.Config)) *Node {
	t.Helper()
	cfg := config.Default()
	cfg.Engine = config.EngineMemory
	cfg.Port = 1 // replaced by the listener's port
	cfg.GossipProfile = config.GossipLocal
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
	n, err := server.Start(cfg, ln, clk, testutil.Logger(t))
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
	select {
	case <-n.Ready():
	case <-time.After(30 * time.Second):
		t.Fatalf("node %s not ready after 30s", ln.Addr())
	}
	return &Node{Node: n, Addr: ln.Addr().String(), Cfg: cfg}
}
