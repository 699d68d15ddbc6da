package consensus

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// testConfig is a Config with timeouts fast enough for an in-memory
// cluster and a snapshot policy that compacts after a few dozen entries.
func testConfig(t testing.TB, id, addr, dir string) Config {
	c := Default()
	c.ID, c.BindAddr, c.Dir = id, addr, dir
	c.HeartbeatTimeout = 150 * time.Millisecond
	c.ElectionTimeout = 150 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.SnapshotInterval = 50 * time.Millisecond
	c.SnapshotThreshold = 64
	c.TrailingLogs = 32
	c.LockTimeout = 100 * time.Millisecond
	c.Logger = testLogger(t)
	return c
}

// testCluster runs nodes on raft.InmemTransport, fully connected, each with
// its BoltStore and snapshots in its own directory, which survives Stop so
// the node can be restarted from disk.
type testCluster struct {
	t     *testing.T
	dir   string // the nodes' directories are below it
	mu    sync.Mutex
	nodes map[string]*testNode // every node ever started, by id
	model map[string]string    // what every FSM must converge to
	seq   int                  // commands applied so far
}

type testNode struct {
	id, addr, dir string
	cfg           Config
	node          *Node // nil while stopped
	fsm           *testFSM
	trans         *raft.InmemTransport
}

func newTestCluster(t *testing.T) *testCluster {
	// The directory first, so that its removal (a cleanup) runs after the
	// nodes' shutdown: a node may be writing a snapshot until then.
	c := &testCluster{t: t, dir: t.TempDir(), nodes: map[string]*testNode{}, model: map[string]string{}}
	t.Cleanup(func() {
		for _, n := range c.running() {
			if err := n.node.Shutdown(); err != nil {
				t.Errorf("shutdown %s: %v", n.id, err)
			}
		}
	})
	return c
}

// start opens node id (new, or restarted from its directory) with a fresh
// FSM and transport, connected both ways to every running node.
func (c *testCluster) start(id string, edit func(*Config)) *testNode {
	c.t.Helper()
	c.mu.Lock()
	n, ok := c.nodes[id]
	if !ok {
		n = &testNode{id: id, addr: id + ":7000", dir: filepath.Join(c.dir, id)}
		n.cfg = testConfig(c.t, id, n.addr, n.dir)
		if edit != nil {
			edit(&n.cfg)
		}
		c.nodes[id] = n
	}
	c.mu.Unlock()
	_, trans := raft.NewInmemTransport(raft.ServerAddress(n.addr))
	for _, o := range c.running() {
		o.trans.Connect(trans.LocalAddr(), trans)
		trans.Connect(o.trans.LocalAddr(), o.trans)
	}
	fsm := newTestFSM()
	node, err := Open(n.cfg, fsm, trans)
	if err != nil {
		c.t.Fatalf("open %s: %v", id, err)
	}
	c.mu.Lock()
	n.node, n.fsm, n.trans = node, fsm, trans
	c.mu.Unlock()
	return n
}

// stop shuts node id down; its directory stays.
func (c *testCluster) stop(id string) {
	c.t.Helper()
	c.mu.Lock()
	n := c.nodes[id]
	node := n.node
	n.node = nil
	c.mu.Unlock()
	if err := node.Shutdown(); err != nil {
		c.t.Fatalf("shutdown %s: %v", id, err)
	}
}

func (c *testCluster) running() []*testNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*testNode
	for _, id := range slicesSorted(c.nodes) {
		if n := c.nodes[id]; n.node != nil {
			out = append(out, n)
		}
	}
	return out
}

func slicesSorted[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ { // tiny insertion sort, keeps imports small
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// waitLeader polls until exactly one running node is leader and every
// running member of its configuration names it, and returns it.
func (c *testCluster) waitLeader() *testNode {
	c.t.Helper()
	var leader *testNode
	eventually(c.t, 10*time.Second, "a leader", func() error {
		leader = nil
		nodes := c.running()
		for _, n := range nodes {
			if n.node.IsLeader() {
				if leader != nil {
					return fmt.Errorf("two leaders: %s and %s", leader.id, n.id)
				}
				leader = n
			}
		}
		if leader == nil {
			return errors.New("no leader yet")
		}
		servers, err := leader.node.Servers()
		if err != nil {
			return err
		}
		members := map[string]bool{}
		for _, s := range servers {
			members[s.ID] = true
		}
		for _, n := range nodes {
			if !members[n.id] {
				continue // not added yet, or removed: it hears from no leader
			}
			if id, addr := n.node.Leader(); id != leader.id || addr != leader.addr {
				return fmt.Errorf("%s thinks the leader is %q at %q, not %s", n.id, id, addr, leader.id)
			}
		}
		return nil
	})
	return leader
}

// applyN applies n "key=value" commands through the leader and records
// them in the model. When leadership moves (a loaded machine can miss a
// lease), it retries through the new leader: a set is idempotent, so a
// command that did commit before the error is harmless to repeat.
func (c *testCluster) applyN(n int) {
	c.t.Helper()
	leader := c.waitLeader()
	retries := 0
	for range n {
		c.seq++
		k, v := "k"+strconv.Itoa(c.seq%50), "v"+strconv.Itoa(c.seq)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			resp, err := leader.node.Apply(ctx, []byte(k+"="+v))
			cancel()
			if (errors.Is(err, ErrLeadershipLost) || errors.Is(err, ErrNotLeader)) && retries < 20 {
				retries++
				c.t.Logf("apply #%d on %s: %v; retrying on the new leader", c.seq, leader.id, err)
				leader = c.waitLeader()
				continue
			}
			if err != nil {
				c.t.Fatalf("apply #%d on %s: %v", c.seq, leader.id, err)
			}
			if _, ok := resp.(uint64); !ok {
				c.t.Fatalf("apply #%d returned %T %v, want the entry index", c.seq, resp, resp)
			}
			break
		}
		c.model[k] = v
	}
}

// onLeader runs op on the current leader, and again on the next one when
// leadership moves before op commits (the ops used with it are
// idempotent). It returns the node op succeeded on.
func (c *testCluster) onLeader(what string, op func(ctx context.Context, n *Node) error) *testNode {
	c.t.Helper()
	for try := 0; ; try++ {
		leader := c.waitLeader()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := op(ctx, leader.node)
		cancel()
		if err == nil {
			return leader
		}
		if try < 20 && (errors.Is(err, ErrLeadershipLost) || errors.Is(err, ErrNotLeader)) {
			c.t.Logf("%s on %s: %v; retrying on the new leader", what, leader.id, err)
			continue
		}
		c.t.Fatalf("%s on %s: %v", what, leader.id, err)
	}
}

// waitConverged polls until the FSM of every running node (or of ids)
// equals the model and has applied the leader's last index.
func (c *testCluster) waitConverged(ids ...string) {
	c.t.Helper()
	leader := c.onLeader("barrier", func(ctx context.Context, n *Node) error { return n.Barrier(ctx) })
	// After the barrier the leader's FSM has applied every command.
	_, want, _ := leader.fsm.state()
	nodes := c.running()
	if len(ids) > 0 {
		nodes = nil
		for _, id := range ids {
			nodes = append(nodes, c.nodes[id])
		}
	}
	eventually(c.t, 10*time.Second, "every FSM to equal the model", func() error {
		for _, n := range nodes {
			kv, applied, _ := n.fsm.state()
			if applied != want {
				return fmt.Errorf("%s's FSM applied index %d, leader's %d", n.id, applied, want)
			}
			if !maps.Equal(kv, c.model) {
				return fmt.Errorf("%s has %d keys, model %d (or different values)", n.id, len(kv), len(c.model))
			}
		}
		return nil
	})
}

// awaitLeadership reads node id's leadership watch until its latest value
// says want. A watch holds only the latest value, so it is polled.
func awaitLeadership(t *testing.T, id string, ch <-chan Leadership, want bool) {
	t.Helper()
	var last Leadership
	seen := false
	eventually(t, 5*time.Second, id+"'s leadership watch", func() error {
		select {
		case l, ok := <-ch:
			if !ok {
				return errors.New("watch closed")
			}
			last, seen = l, true
		default:
		}
		if !seen || last.IsLeader != want {
			return fmt.Errorf("latest value %+v (seen %v), want IsLeader %v", last, seen, want)
		}
		return nil
	})
}

// startCluster starts and bootstraps ids as voters and waits for a leader.
func startCluster(t *testing.T, ids ...string) *testCluster {
	c := newTestCluster(t)
	var servers []Server
	for _, id := range ids {
		n := c.start(id, nil)
		servers = append(servers, Server{ID: id, Addr: n.addr, Voter: true})
	}
	if err := c.nodes[ids[0]].node.Bootstrap(servers...); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	c.waitLeader()
	return c
}

func TestClusterFailoverAndRestart(t *testing.T) {
	t.Parallel()
	c := startCluster(t, "n1", "n2", "n3")

	// Every node watches its leadership; n-th watcher is never read until
	// the end, which must not hold raft up.
	watches := map[string]<-chan Leadership{}
	for _, n := range c.running() {
		ch, cancel := n.node.WatchLeadership()
		t.Cleanup(cancel)
		watches[n.id] = ch
	}

	start := time.Now()
	c.applyN(200)
	t.Logf("200 applies in %s", time.Since(start))
	c.waitConverged()

	// Snapshots are taken every 50-100ms once 64 entries are past the last
	// one: wait for every node's, so the one killed has one to restore.
	eventually(t, 5*time.Second, "a snapshot on every node", func() error {
		for _, n := range c.running() {
			if s := n.node.Stats(); s.LastSnapshotIndex == 0 || s.FirstIndex <= 1 {
				return fmt.Errorf("%s: last snapshot %d, first index %d", n.id, s.LastSnapshotIndex, s.FirstIndex)
			}
		}
		return nil
	})
	old := c.waitLeader()
	awaitLeadership(t, old.id, watches[old.id], true)
	st := old.node.Stats()
	t.Logf("leader stats before kill: %+v", st)
	if st.Voters != 3 || st.CommitIndex < 200 {
		t.Fatalf("leader stats %+v: want 3 voters and commit index >= 200", st)
	}

	// Kill the leader: the other two elect a new one and keep applying.
	killed := time.Now()
	oldNode := old.node
	c.stop(old.id)
	if l, ok := <-watches[old.id]; ok && l.IsLeader {
		t.Fatalf("after shutdown the old leader's watch still says %+v", l)
	}
	if _, ok := <-watches[old.id]; ok {
		t.Fatal("the old leader's watch channel is still open after Shutdown")
	}
	if _, err := oldNode.Apply(context.Background(), []byte("x=y")); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Apply on a shut-down node: %v, want ErrShutdown", err)
	}
	nl := c.waitLeader()
	t.Logf("new leader %s after %s", nl.id, time.Since(killed))
	if nl.id == old.id {
		t.Fatal("the stopped node is still the leader")
	}
	awaitLeadership(t, nl.id, watches[nl.id], true)
	c.applyN(50)
	c.waitConverged()

	// Restart the old leader from its BoltStore and snapshots: it restores
	// its state from disk, then catches up on what it missed.
	re := c.start(old.id, nil)
	_, applied, restores := re.fsm.state()
	t.Logf("%s reopened: FSM applied %d, restores %d", re.id, applied, restores)
	if restores == 0 {
		t.Errorf("%s did not restore its snapshot on start (applied %d)", re.id, applied)
	}
	c.applyN(20)
	c.waitConverged()
	if s := re.node.Stats(); s.LastSnapshotIndex == 0 {
		t.Errorf("restarted node stats %+v: want a snapshot", s)
	}
}

func TestClusterSnapshotNonvoterJoin(t *testing.T) {
	t.Parallel()
	c := startCluster(t, "n1", "n2", "n3")
	c.applyN(200)
	c.waitConverged()
	eventually(t, 10*time.Second, "every node to snapshot and compact its log", func() error {
		for _, n := range c.running() {
			s := n.node.Stats()
			if s.LastSnapshotIndex == 0 || s.FirstIndex <= 1 {
				return fmt.Errorf("%s: last snapshot %d, first log index %d", n.id, s.LastSnapshotIndex, s.FirstIndex)
			}
			// TrailingLogs (32) entries stay behind the snapshot.
			if s.LastIndex-s.FirstIndex+1 < 32 {
				return fmt.Errorf("%s kept only %d..%d", n.id, s.FirstIndex, s.LastIndex)
			}
		}
		return nil
	})
	leader := c.waitLeader()
	t.Logf("leader after compaction: %+v", leader.node.Stats())

	// A fresh non-voter cannot get entry 1 any more: it must be restored
	// from a snapshot, then follow the log.
	n4 := c.start("n4", func(cfg *Config) { cfg.Voter = false })
	if err := n4.node.Bootstrap(); !errors.Is(err, ErrNotVoter) {
		t.Fatalf("Bootstrap on a non-voter: %v, want ErrNotVoter", err)
	}
	leader = c.onLeader("AddNonvoter n4", func(ctx context.Context, n *Node) error {
		return n.AddNonvoter(ctx, n4.id, n4.addr)
	})
	c.waitConverged()
	if _, _, restores := n4.fsm.state(); restores == 0 {
		t.Fatal("the new non-voter caught up without a snapshot restore")
	}
	c.applyN(20)
	c.waitConverged()

	servers, err := leader.node.Servers()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"n1": true, "n2": true, "n3": true, "n4": false}
	if len(servers) != len(want) {
		t.Fatalf("servers = %+v, want %v", servers, want)
	}
	for _, s := range servers {
		if v, ok := want[s.ID]; !ok || v != s.Voter {
			t.Fatalf("servers = %+v, want voter flags %v", servers, want)
		}
	}
	if s := n4.node.Stats(); s.Voters != 3 || s.Nonvoters != 1 || s.State != "Follower" {
		t.Fatalf("n4 stats %+v: want 3 voters, 1 non-voter, follower", s)
	}
	// Only the leader applies; n4 says who is.
	if _, err := n4.node.Apply(context.Background(), []byte("a=b")); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Apply on a non-voter: %v, want ErrNotLeader", err)
	} else {
		t.Logf("Apply on n4: %v", err)
	}

	// Promote n4 to a voter (it is caught up), then remove it.
	leader = c.onLeader("AddVoter n4", func(ctx context.Context, n *Node) error {
		return n.AddVoter(ctx, n4.id, n4.addr)
	})
	if s := leader.node.Stats(); s.Voters != 4 || s.Nonvoters != 0 {
		t.Fatalf("after promoting n4: %+v, want 4 voters", s)
	}
	c.applyN(10)
	c.waitConverged()
	leader = c.onLeader("RemoveServer n4", func(ctx context.Context, n *Node) error {
		return n.RemoveServer(ctx, n4.id)
	})
	if s := leader.node.Stats(); s.Voters != 3 || s.Nonvoters != 0 {
		t.Fatalf("after removing n4: %+v, want 3 voters", s)
	}
	// A removed node stays up (ShutdownOnRemove is off) but hears from no
	// leader any more: its owner shuts it down.
	c.stop(n4.id)
	c.applyN(10)
	c.waitConverged()
}
