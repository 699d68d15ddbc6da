package clustertest

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/testcluster"
)

// primaryKeys returns n keys whose primary is node (asked through addr).
func primaryKeys(t *testing.T, addr, node, prefix string, n int) []string {
	t.Helper()
	c := mustMC(t, addr)
	var keys []string
	for i := 0; len(keys) < n; i++ {
		if i > 5000 {
			t.Fatalf("only %d keys led by %s", len(keys), node)
		}
		k := fmt.Sprintf("%s-%d", prefix, i)
		info, err := c.lines("get_key_info " + k + "\r\n")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range info {
			if l == "primary "+node {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// writeWindow sets key through addr every 20 ms from start until a set is
// stored, and returns how long after start that was.
func writeWindow(t *testing.T, addr, key string, start time.Time, within time.Duration) time.Duration {
	t.Helper()
	for time.Since(start) < within {
		if c, err := dialMC(addr, time.Second); err == nil {
			l, err := c.set(key, "after-"+start.Format(time.RFC3339Nano))
			c.close()
			if err == nil && l == "STORED" {
				return time.Since(start)
			}
		}
		time.Sleep(20 * time.Millisecond) // the probe's own pace, not a wait for a condition
	}
	t.Fatalf("no write to %s stored within %s", key, within)
	return 0
}

// TestKill9FailoverUnderLoad kills a node with SIGKILL while clients run
// checked operations on every node, with the default gossip profile (lan).
// Its failure is detected, its keys are writable again within 3 s, the
// short vnodes are refilled by recover, and when it comes back it resyncs
// and the table is balanced again. The history is linearizable and no
// acknowledged write is lost.
func TestKill9FailoverUnderLoad(t *testing.T) {
	c := testcluster.NewCluster(t, 3, testcluster.ClusterOptions{Redundancy: 2, DivBits: 6, GossipProfile: "lan"})
	waitSettled(t, c, 3, 60*time.Second)
	victim := c.Node(1)
	keys := primaryKeys(t, c.Node(0).Addr(), victim.NodeID(), "kill", 4)
	ld := startLoad(c.Addrs(), "kill9", 8, 6)
	ld.keys = append(ld.keys, keys...) // checked at the end too
	ld.more(t, 300, 30*time.Second)

	killed := time.Now()
	c.Kill9(1)
	window := writeWindow(t, c.Node(0).Addr(), keys[0], killed, 15*time.Second)
	var detected time.Duration
	eventually(t, 15*time.Second, "the failure recorded", func() error {
		v, err := stat(c.Node(0).Addr(), "routing.failed_nodes")
		if err != nil || !strings.Contains(v, victim.NodeID()) {
			return fmt.Errorf("failed_nodes %q %v", v, err)
		}
		if detected == 0 {
			detected = time.Since(killed)
		}
		return nil
	})
	t.Logf("a key led by the killed node was writable again %s after the kill (failover recorded within %s)",
		window.Round(time.Millisecond), detected.Round(time.Millisecond))
	if window > 3*time.Second {
		t.Errorf("write unavailability %s after kill -9, want at most 3s", window)
	}
	ld.more(t, 300, 30*time.Second)
	if n := statInt(t, c.Node(0).Addr(), "routing.short_vnodes"); n == 0 {
		t.Fatalf("no short vnode after the failover")
	}
	// recover checks the table of the node it is sent to, which applies
	// the failover a moment after the leader.
	eventually(t, 10*time.Second, "node 2 to see the short vnodes", func() error {
		if n := statInt(t, c.Node(2).Addr(), "routing.short_vnodes"); n == 0 {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	if l := admin(t, c.Node(2).Addr(), "recover"); l != "STARTED" {
		t.Fatalf("recover: %q", l)
	}
	eventually(t, 60*time.Second, "short vnodes refilled", func() error {
		for _, i := range []int{0, 2} {
			for name, want := range map[string]string{"routing.short_vnodes": "0", "routing.lagging_replicas": "0"} {
				if v, err := stat(c.Node(i).Addr(), name); err != nil || v != want {
					return fmt.Errorf("node %d: %s %q %v", i, name, v, err)
				}
			}
		}
		return nil
	})
	ld.more(t, 200, 30*time.Second)
	c.Restart(1)
	waitSettled(t, c, 3, 90*time.Second)
	ld.more(t, 200, 30*time.Second)
	ld.finish(t, c.Node(1).Addr())
	h := strings.Join(mustLines(t, c.Node(2).Addr(), "history"), "\n")
	for _, want := range []string{"failed " + victim.NodeID(), "returned " + victim.NodeID(), "start recover"} {
		if !strings.Contains(h, want) {
			t.Errorf("history lacks %q", want)
		}
	}
}

func mustLines(t *testing.T, addr, cmd string) []string {
	t.Helper()
	ls, err := mustMC(t, addr).lines(cmd + "\r\n")
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return ls
}

// TestPausedNodeRejoins: a node stopped with SIGSTOP for 10 s is failed
// over while the others keep serving; after SIGCONT it comes back on its
// own (seed 003's paused VM), resyncs and is balanced again. Clients run
// checked operations throughout, so a paused primary that wakes up with an
// old table must not serve stale reads or acknowledge writes.
func TestPausedNodeRejoins(t *testing.T) {
	c := testcluster.NewCluster(t, 3, testcluster.ClusterOptions{Redundancy: 2, DivBits: 6,
		ExtraArgs: []string{"--replication-timeout", "500ms"}})
	waitSettled(t, c, 3, 60*time.Second)
	ld := startLoad(c.Addrs(), "pause", 8, 6)
	ld.more(t, 300, 30*time.Second)
	c.Pause(2)
	paused := time.Now()
	eventually(t, 10*time.Second, "the paused node failed over", func() error {
		if n, _ := stat(c.Node(0).Addr(), "routing.nodes.length"); n != "2" {
			return fmt.Errorf("routing.nodes.length %s", n)
		}
		return nil
	})
	ld.more(t, 300, 30*time.Second)
	for time.Since(paused) < 10*time.Second {
		ld.more(t, 20, 30*time.Second) // keep the load measured while the pause lasts
	}
	c.Resume(2)
	waitSettled(t, c, 3, 90*time.Second)
	ld.more(t, 300, 30*time.Second)
	ld.finish(t, c.Node(2).Addr())
	h := strings.Join(mustLines(t, c.Node(0).Addr(), "history"), "\n")
	if !strings.Contains(h, "returned "+c.Node(2).NodeID()) {
		t.Errorf("history lacks the return of the paused node:\n%s", h)
	}
}

// TestWipedNodeJoinsAsNew: a node whose data directory is wiped while it
// is down comes back with the same address and joins as a new, empty node:
// it gets full copies of its vnodes and serves every key.
func TestWipedNodeJoinsAsNew(t *testing.T) {
	c := testcluster.NewCluster(t, 3, testcluster.ClusterOptions{Redundancy: 2, DivBits: 6})
	waitSettled(t, c, 3, 60*time.Second)
	bulkLoad(t, c.Node(0).Addr(), 1500, 1024)
	c.Kill9(2)
	eventually(t, 15*time.Second, "node 2 failed over", func() error {
		if n, _ := stat(c.Node(0).Addr(), "routing.nodes.length"); n != "2" {
			return fmt.Errorf("routing.nodes.length %s", n)
		}
		return nil
	})
	if err := os.RemoveAll(c.Node(2).Data); err != nil {
		t.Fatal(err)
	}
	sent := func() int {
		return statInt(t, c.Node(0).Addr(), "stats.move_bytes_sent") + statInt(t, c.Node(1).Addr(), "stats.move_bytes_sent")
	}
	before := sent()
	c.Restart(2)
	waitSettled(t, c, 3, 120*time.Second)
	// It holds about two thirds of the vnodes, and had to get all of
	// their data again (whole copies, or the change log from seq 1).
	if got, want := sent()-before, 1500*1024*2/3/2; got < want {
		t.Errorf("%d bytes sent to the wiped node, want at least %d", got, want)
	}
	if n := statInt(t, c.Node(2).Addr(), "stats.curr_items"); n == 0 {
		t.Errorf("the wiped node holds no item after its resync")
	}
	checkBulk(t, c.Node(2).Addr(), 1500, 1024)
}

// TestLostVnodeRefusedThenRestored: with redundancy 1, killing a node
// loses its vnodes. With the default lost_action (no_action) their keys
// are refused with an error naming the vnode, never answered empty;
// history_of_lost lists them; when the node returns they come back with
// their data. With auto_assign they are given, empty, to the live node.
func TestLostVnodeRefusedThenRestored(t *testing.T) {
	// Three nodes: two alone could not fail one over (no Raft quorum).
	c := testcluster.NewCluster(t, 3, testcluster.ClusterOptions{Redundancy: 1, DivBits: 4})
	waitSettled(t, c, 3, 30*time.Second)
	key := primaryKeys(t, c.Node(0).Addr(), c.Node(1).NodeID(), "lost", 1)[0]
	w := mustMC(t, c.Node(0).Addr())
	if l, err := w.set(key, "kept"); err != nil || l != "STORED" {
		t.Fatalf("set: %q %v", l, err)
	}
	c.Kill9(1)
	var refusal string
	eventually(t, 15*time.Second, "the lost vnode refused", func() error {
		r, err := dialMC(c.Node(0).Addr(), time.Second)
		if err != nil {
			return err
		}
		defer r.close()
		_, _, _, err = r.gets(key)
		if err == nil || !strings.Contains(err.Error(), "is lost") {
			return fmt.Errorf("get answered %v", err)
		}
		refusal = err.Error()
		return nil
	})
	if !strings.Contains(refusal, "SERVER_ERROR vnode ") {
		t.Errorf("refusal %q does not name the vnode", refusal)
	}
	if ls := mustLines(t, c.Node(0).Addr(), "history_of_lost"); len(ls) == 0 || !strings.Contains(ls[0], c.Node(1).NodeID()) {
		t.Errorf("history_of_lost: %q", ls)
	}
	if n := statInt(t, c.Node(0).Addr(), "routing.lost_vnodes"); n == 0 {
		t.Errorf("routing.lost_vnodes 0 with a lost vnode")
	}
	c.Restart(1)
	eventually(t, 30*time.Second, "the lost vnode back with its data", func() error {
		r, err := dialMC(c.Node(0).Addr(), time.Second)
		if err != nil {
			return err
		}
		defer r.close()
		v, _, found, err := r.gets(key)
		if err != nil || !found || v != "kept" {
			return fmt.Errorf("%q found=%v %v", v, found, err)
		}
		return nil
	})

	if l := admin(t, c.Node(0).Addr(), "set_lost_action auto_assign"); l != "STORED" {
		t.Fatalf("set_lost_action: %q", l)
	}
	waitSettled(t, c, 3, 30*time.Second)
	key = primaryKeys(t, c.Node(0).Addr(), c.Node(1).NodeID(), "assign", 1)[0]
	if l, err := w.set(key, "old"); err != nil || l != "STORED" {
		t.Fatalf("set: %q %v", l, err)
	}
	c.Kill9(1)
	eventually(t, 20*time.Second, "the lost vnode writable again, on the live node", func() error {
		r, err := dialMC(c.Node(0).Addr(), time.Second)
		if err != nil {
			return err
		}
		defer r.close()
		if l, err := r.set(key, "new"); err != nil || l != "STORED" {
			return fmt.Errorf("set: %q %v", l, err)
		}
		return nil
	})
	r := mustMC(t, c.Node(0).Addr())
	if v, _, found, err := r.gets(key); err != nil || !found || v != "new" {
		t.Errorf("after auto_assign: %q found=%v %v, want the new value", v, found, err)
	}
}
