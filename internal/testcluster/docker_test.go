package testcluster

import (
	"strings"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/testutil"
)

// TestDockerSingleNode runs one node in a container built FROM scratch and
// asks it for its version from the test process (the host reaches container
// addresses directly) and from another container on the cluster network.
func TestDockerSingleNode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a docker image")
	}
	c := NewDockerCluster(t, 1, ClusterOptions{Engine: "memory"})
	n := c.Node(0)
	if reply := do(t, n.Addr(), "version"); !strings.HasPrefix(reply[0], "VERSION ") {
		t.Fatalf("version from the host: %q", reply)
	}
	out, err := c.RunClient(n.PeerAddr(), "version")
	if err != nil || !strings.HasPrefix(out, "VERSION ") {
		t.Fatalf("version from another container: %q, %v", out, err)
	}
	c.WaitMembers(t, 1, 10*time.Second)
}

// TestDockerNodeFaults partitions, pauses, kills and restarts one
// containerized node; a value on pebble survives kill -9 and restart.
func TestDockerNodeFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a docker image")
	}
	c := NewDockerCluster(t, 1, ClusterOptions{Engine: "pebble"})
	n := c.Node(0)
	expect(t, n.Addr(), "set greeting 7 0 5\r\nhello", "STORED")

	c.Partition(0)
	if n.Live() {
		t.Fatal("a partitioned node counts as live")
	}
	if out, err := c.RunClient(n.PeerAddr(), "version"); err == nil {
		t.Fatalf("a partitioned node answered another container: %q", out)
	}
	if n.ControlIP != "" {
		// The control network still reaches it.
		expect(t, n.Addr(), "get greeting", "VALUE greeting 7 5|hello|END")
	}
	c.Heal(0)
	testutil.Eventually(t, 10*time.Second, "the healed node to answer another container", func() error {
		_, err := c.RunClient(n.PeerAddr(), "version")
		return err
	})
	if out, err := c.ExecClient(0, n.PeerAddr(), "get greeting"); err != nil || !strings.Contains(out, "hello") {
		t.Fatalf("get from inside the node's container: %q, %v", out, err)
	}

	c.Pause(0)
	if _, err := Command(n.Addr(), "version"); err == nil {
		t.Fatal("a paused node answered")
	}
	c.Resume(0)
	expect(t, n.Addr(), "get greeting", "VALUE greeting 7 5|hello|END")

	c.Kill9(0)
	if n.Live() {
		t.Fatal("a killed node counts as live")
	}
	c.Restart(0)
	expect(t, n.Addr(), "get greeting", "VALUE greeting 7 5|hello|END")
	if logs := c.Logs(0); logs == "" {
		t.Fatal("docker logs are empty")
	}
}

// TestDockerCluster runs three containerized nodes (it needs the cluster
// flags): they find each other, a partitioned node is unreachable from the
// others until healed, and a killed node comes back after a restart.
func TestDockerCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a docker image")
	}
	c := NewDockerCluster(t, 3, ClusterOptions{})
	distinct(t, "node ids", []string{c.Node(0).NodeID(), c.Node(1).NodeID(), c.Node(2).NodeID()})
	c.WaitMembers(t, 3, 30*time.Second)

	c.Partition(2)
	if out, err := c.ExecClient(0, c.Node(2).PeerAddr(), "version"); err == nil {
		t.Fatalf("node 0 reached partitioned node 2: %q", out)
	}
	if _, err := Command(c.Node(2).Addr(), "version"); err != nil {
		t.Fatalf("partitioned node 2 over the control network: %v", err)
	}
	c.Heal(2)
	testutil.Eventually(t, 10*time.Second, "node 0 to reach node 2 again", func() error {
		_, err := c.ExecClient(0, c.Node(2).PeerAddr(), "version")
		return err
	})
	c.WaitMembers(t, 3, 30*time.Second)

	c.Pause(1)
	c.Resume(1)
	c.Kill9(1)
	c.Restart(1)
	c.WaitMembers(t, 3, 30*time.Second)
}
