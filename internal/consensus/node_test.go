package consensus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := Default()
		c.ID, c.BindAddr, c.Dir = "127.0.0.1_11211", "127.0.0.1:7000", "/tmp/x"
		return c
	}
	c := valid()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults with ID, BindAddr and Dir: %v", err)
	}
	cases := []struct {
		field string
		edit  func(*Config)
	}{
		{"Config.ID", func(c *Config) { c.ID = "" }},
		{"Config.Dir", func(c *Config) { c.Dir = "" }},
		{"Config.BindAddr", func(c *Config) { c.BindAddr = "nohostport" }},
		{"Config.Advertise", func(c *Config) { c.BindAddr = "0.0.0.0:7000" }},
		{"Config.Advertise", func(c *Config) { c.BindAddr = ":7000" }},
		{"Config.Advertise", func(c *Config) { c.Advertise = "0.0.0.0:7000" }},
		{"Config.Advertise", func(c *Config) { c.Advertise = "10.0.0.1" }},
		{"Config.HeartbeatTimeout", func(c *Config) { c.HeartbeatTimeout = time.Millisecond }},
		{"Config.ElectionTimeout", func(c *Config) { c.ElectionTimeout = 0 }},
		{"Config.ElectionTimeout", func(c *Config) { c.ElectionTimeout = c.HeartbeatTimeout / 2 }},
		{"Config.LeaderLeaseTimeout", func(c *Config) { c.LeaderLeaseTimeout = 2 * c.HeartbeatTimeout }},
		{"Config.LeaderLeaseTimeout", func(c *Config) { c.LeaderLeaseTimeout = 0 }},
		{"Config.CommitTimeout", func(c *Config) { c.CommitTimeout = 0 }},
		{"Config.SnapshotInterval", func(c *Config) { c.SnapshotInterval = 0 }},
		{"Config.SnapshotThreshold", func(c *Config) { c.SnapshotThreshold = 0 }},
		{"Config.SnapshotRetain", func(c *Config) { c.SnapshotRetain = 0 }},
		{"Config.LockTimeout", func(c *Config) { c.LockTimeout = 0 }},
	}
	for _, tc := range cases {
		c := valid()
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: Validate = %v, want an error naming %s", c, err, tc.field)
		}
	}
	c = valid()
	c.BindAddr, c.Advertise = "0.0.0.0:7000", "10.0.0.5:7000"
	if err := c.Validate(); err != nil || c.AdvertiseAddr() != "10.0.0.5:7000" {
		t.Fatalf("wildcard bind with an advertise address: %v, AdvertiseAddr %q", err, c.AdvertiseAddr())
	}
}

// openSingle opens and bootstraps a one-node cluster on an inmem transport
// and waits until it leads.
func openSingle(t *testing.T, dir string) (*Node, *testFSM) {
	t.Helper()
	addr, trans := raft.NewInmemTransport("solo:7000")
	fsm := newTestFSM()
	n, err := Open(testConfig(t, "solo", string(addr), dir), fsm, trans)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown() })
	if err := n.Bootstrap(); err != nil && !errors.Is(err, ErrAlreadyBootstrapped) {
		t.Fatalf("bootstrap: %v", err)
	}
	eventually(t, 5*time.Second, "the single node to lead", func() error {
		if !n.IsLeader() {
			return errors.New("not leader yet")
		}
		return nil
	})
	return n, fsm
}

func TestNodeSingle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n, fsm := openSingle(t, dir)
	ctx := context.Background()
	if err := n.Bootstrap(); !errors.Is(err, ErrAlreadyBootstrapped) {
		t.Fatalf("second Bootstrap: %v, want ErrAlreadyBootstrapped", err)
	}
	resp, err := n.Apply(ctx, []byte("a=1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, applied, _ := fsm.state(); resp != applied {
		t.Fatalf("Apply returned %v, the FSM applied index %d", resp, applied)
	}
	if _, err := n.Apply(ctx, []byte("fail")); !errors.Is(err, errRejected) {
		t.Fatalf("Apply of a command the FSM rejects: %v, want the FSM's error", err)
	}
	if err := n.VerifyLeader(ctx); err != nil {
		t.Fatalf("VerifyLeader: %v", err)
	}
	if err := n.Barrier(ctx); err != nil {
		t.Fatalf("Barrier: %v", err)
	}
	if err := n.Snapshot(ctx); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if s := n.Stats(); s.LastSnapshotIndex == 0 || s.Voters != 1 || s.LeaderID != "solo" {
		t.Fatalf("stats after Snapshot: %+v", s)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := n.Apply(canceled, []byte("b=2")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply with a canceled context: %v, want context.Canceled", err)
	}
	past, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	if err := n.Barrier(past); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Barrier past its deadline: %v, want context.DeadlineExceeded", err)
	}

	ch, stop := n.WatchLeadership()
	if l := <-ch; !l.IsLeader || l.Seq == 0 {
		t.Fatalf("watch on the leader starts with %+v", l)
	}
	stop()
	if _, ok := <-ch; ok {
		t.Fatal("watch channel open after cancel")
	}
	stop() // idempotent

	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	for name, err := range map[string]error{
		"Apply":    func() error { _, err := n.Apply(ctx, []byte("c=3")); return err }(),
		"Barrier":  n.Barrier(ctx),
		"Verify":   n.VerifyLeader(ctx),
		"AddVoter": n.AddVoter(ctx, "x", "x:1"),
	} {
		if !errors.Is(err, ErrShutdown) {
			t.Errorf("%s after Shutdown: %v, want ErrShutdown", name, err)
		}
	}
	if ch, _ := n.WatchLeadership(); ch != nil {
		if _, ok := <-ch; ok {
			t.Error("a watch started after Shutdown is open")
		}
	}

	// Reopen: the state is on disk, no bootstrap needed.
	n2, fsm2 := openSingle(t, dir)
	if kv, _, _ := fsm2.state(); kv["a"] != "1" {
		t.Fatalf("after restart the FSM holds %v", kv)
	}
	if _, err := n2.Apply(ctx, []byte("b=2")); err != nil {
		t.Fatal(err)
	}
}

func TestNodeOpenTwiceRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	openSingle(t, dir)
	addr, trans := raft.NewInmemTransport("solo:7000")
	start := time.Now()
	n, err := Open(testConfig(t, "solo", string(addr), dir), newTestFSM(), trans)
	if err == nil {
		_ = n.Shutdown()
		t.Fatal("a second node opened on the same directory")
	}
	t.Logf("second Open after %s: %v", time.Since(start), err)
	if !errors.Is(err, ErrStoreLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second Open: %v, want ErrStoreLocked naming %s", err, dir)
	}
}

func TestNodeOpenChecksAddress(t *testing.T) {
	t.Parallel()
	_, trans := raft.NewInmemTransport("other:7000")
	_, err := Open(testConfig(t, "a", "a:7000", t.TempDir()), newTestFSM(), trans)
	if err == nil || !strings.Contains(err.Error(), `"other:7000"`) {
		t.Fatalf("Open with a transport on another address: %v", err)
	}
	cfg := testConfig(t, "a", "a:7000", t.TempDir())
	cfg.SnapshotRetain = 0
	if _, err := Open(cfg, newTestFSM(), trans); err == nil || !strings.Contains(err.Error(), "SnapshotRetain") {
		t.Fatalf("Open with an invalid config: %v", err)
	}
}

func TestNewTCPTransport(t *testing.T) {
	if _, err := NewTCPTransport("0.0.0.0:0", "", nil); err == nil || !strings.Contains(err.Error(), "Config.Advertise") {
		t.Fatalf("wildcard bind without advertise: %v, want an error naming Config.Advertise", err)
	}
	if _, err := NewTCPTransport("127.0.0.1:0", "localhost:0", nil); err == nil || !strings.Contains(err.Error(), "IP address") {
		t.Fatalf("advertise by name: %v, want an error asking for an IP address", err)
	}
	tr, err := NewTCPTransport("0.0.0.0:0", "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := string(tr.LocalAddr())
	closeTransport(tr)
	if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Fatalf("advertised %q, want 127.0.0.1 with the bound port", addr)
	}
}

// TestNodeTCP runs a voter and a non-voter over real TCP on loopback.
func TestNodeTCP(t *testing.T) {
	t.Parallel()
	var nodes []*Node
	for i := range 2 {
		tr, err := NewTCPTransport("127.0.0.1:0", "", testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(t, fmt.Sprintf("t%d", i), "127.0.0.1:0", t.TempDir())
		n, err := Open(cfg, newTestFSM(), tr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Shutdown() })
		nodes = append(nodes, n)
	}
	if err := nodes[0].Bootstrap(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "t0 to lead", func() error {
		if !nodes[0].IsLeader() {
			return errors.New("not yet")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// A non-voter: a two-voter cluster would need t1 caught up within the
	// lease, which a loaded test machine does not guarantee.
	if err := nodes[0].AddNonvoter(ctx, nodes[1].ID(), nodes[1].Addr()); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[0].Apply(ctx, []byte("k=v")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "t1 to follow t0", func() error {
		if id, addr := nodes[1].Leader(); id != "t0" || addr != nodes[0].Addr() {
			return fmt.Errorf("t1 sees leader %q at %q", id, addr)
		}
		if s := nodes[1].Stats(); s.AppliedIndex < nodes[0].Stats().CommitIndex {
			return fmt.Errorf("t1 applied %d", s.AppliedIndex)
		}
		return nil
	})
}

func TestLeadershipHubNeverBlocks(t *testing.T) {
	h := newLeadershipHub()
	slow, _ := h.watch() // never read until the end
	other, stop := h.watch()
	if l := <-other; l != (Leadership{}) {
		t.Fatalf("first value %+v, want the zero state", l)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 10000 {
			h.publish(i%2 == 0)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("publish blocked on a watcher that does not read")
	}
	want := Leadership{IsLeader: false, Seq: 10000}
	if l := <-slow; l != want {
		t.Fatalf("slow watcher got %+v, want only the latest %+v", l, want)
	}
	stop()
	if _, ok := <-other; ok {
		// The unread latest value may be drained first.
		if _, ok := <-other; ok {
			t.Fatal("cancelled watch still open")
		}
	}
	h.close()
	if _, ok := <-slow; ok {
		t.Fatal("watch open after the hub closed")
	}
	h.publish(true) // after close: dropped, no panic
}
