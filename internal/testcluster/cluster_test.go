package testcluster

import (
	"testing"
	"time"
)

// The tests below need sonaed's cluster flags: NewCluster skips them until
// `sonaed --help` lists --join.

// TestClusterMembers starts three nodes on three loopback addresses, waits
// until every node's table holds all three, then adds a fourth.
func TestClusterMembers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a cluster of sonaed processes")
	}
	c := NewCluster(t, 3, ClusterOptions{})
	distinct(t, "node addresses", c.Addrs())
	c.WaitMembers(t, 3, 30*time.Second)

	p := c.Add()
	if c.Len() != 4 || c.Node(3) != p {
		t.Fatalf("after Add: %d nodes", c.Len())
	}
	c.WaitMembers(t, 4, 30*time.Second)
}

// TestClusterPauseResume freezes one node: it stops answering while the
// others still do, and after SIGCONT the cluster has all three again.
func TestClusterPauseResume(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a cluster of sonaed processes")
	}
	c := NewCluster(t, 3, ClusterOptions{})
	c.WaitMembers(t, 3, 30*time.Second)

	c.Pause(2)
	if _, err := Command(c.Node(2).Addr(), "version"); err == nil {
		t.Fatal("a paused node answered")
	}
	for _, i := range c.Live() {
		if i == 2 {
			t.Fatal("a paused node counts as live")
		}
		if _, err := Command(c.Node(i).Addr(), "version"); err != nil {
			t.Fatalf("node %d while node 2 is paused: %v", i, err)
		}
	}
	c.Resume(2)
	c.WaitReady(t, 10*time.Second)
	c.WaitMembers(t, 3, 30*time.Second)
}

// TestClusterKill9Restart kills one node with SIGKILL and restarts it on
// the same address and data: it comes back into a three-node cluster.
func TestClusterKill9Restart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a cluster of sonaed processes")
	}
	c := NewCluster(t, 3, ClusterOptions{})
	c.WaitMembers(t, 3, 30*time.Second)
	id := c.Node(1).NodeID()

	c.Kill9(1)
	if c.Node(1).Running() || len(c.Live()) != 2 {
		t.Fatalf("after Kill9(1): %s", c)
	}
	c.Restart(1)
	if got := c.Node(1).NodeID(); got != id {
		t.Fatalf("restarted as %s, want %s", got, id)
	}
	c.WaitMembers(t, 3, 30*time.Second)
}
