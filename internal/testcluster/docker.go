package testcluster

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/testutil"
)

// DockerPort is the port every containerized node uses: each container has
// addresses of its own, so they need not differ.
const DockerPort = 11211

// DockerCluster is n sonaed nodes, each in a container of its own on a
// private docker network, for faults that processes on one loopback cannot
// get: a node cut off from the others (Partition, Heal) while it keeps
// running.
//
// # Networks and how tests reach the nodes
//
// Each cluster gets two networks, both created with --internal (no route
// out of them) and a random /24 each:
//
//   - the cluster network, where node i has IP x.y.z.(10+i) and the nodes
//     talk to each other (the node id is that IP and DockerPort). Partition
//     disconnects a node from it; Heal reconnects it with the same IP.
//   - the control network, which only tests use: node i has x'.y'.z'.(10+i)
//     there. Container.Addr is that address, so a test can still ask a
//     partitioned node what it thinks.
//
// The host reaches container IPs directly: docker gives the host the
// gateway address of every bridge network, --internal ones included (tried
// on the engine these tests were written on: a plain net.Dial from the test
// process to a container IP works, nothing published). So no proxy or
// published port is needed, and tests use Command, Stat or any client with
// Node(i).Addr(). Where the host is not on the bridge (rootless docker,
// Docker Desktop's VM), NewDockerCluster skips the test.
//
// A sonaed without --advertise (checkouts before the cluster flags) cannot
// bind 0.0.0.0 and still be named by its address: there is no control
// network then, each node binds its cluster IP and Addr is that IP, so a
// partitioned node is unreachable for tests too.
//
// To see the network as the nodes see it, ExecClient runs a small
// text-protocol client (internal/testcluster/dockerclient, in the same
// image) inside node i's
// container and RunClient runs it in a throw-away container on the cluster
// network.
//
// Everything is removed when the test ends: the containers (paused ones
// too) and both networks; if the test failed, each container's output
// (docker logs, every start of it) is logged first.
type DockerCluster struct {
	t         testing.TB
	opts      ClusterOptions
	image     string
	name      string // prefix of every container and network name
	clusterNW dockerNetwork
	controlNW dockerNetwork
	// flags: the cluster flags and --advertise are in this sonaed.
	clusterFlags, advertise bool

	mu    sync.Mutex
	nodes []*Container
}

type dockerNetwork struct {
	name   string
	prefix string // first three octets and a dot: "172.29.7."
}

// Container is one containerized node.
type Container struct {
	// Name is the container's name.
	Name string
	// IP is the node's address on the cluster network and the host part
	// of its id.
	IP string
	// ControlIP is its address on the control network ("" until sonaed
	// has --advertise).
	ControlIP string
	// Port is the node's port (DockerPort).
	Port int

	mu                        sync.Mutex
	stopped, paused, detached bool
}

// Addr is host:port that tests dial: the control address, or the cluster
// address when there is no control network.
func (c *Container) Addr() string {
	if c.ControlIP != "" {
		return net.JoinHostPort(c.ControlIP, strconv.Itoa(c.Port))
	}
	return c.PeerAddr()
}

// PeerAddr is host:port at which the other nodes reach this one.
func (c *Container) PeerAddr() string { return net.JoinHostPort(c.IP, strconv.Itoa(c.Port)) }

// NodeID is the node's id, IP_PORT.
func (c *Container) NodeID() string { return fmt.Sprintf("%s_%d", c.IP, c.Port) }

// Live reports whether the node runs, is not paused and is connected to the
// cluster network.
func (c *Container) Live() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.stopped && !c.paused && !c.detached
}

func (c *Container) set(f func(c *Container)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c)
}

// dockerSeq numbers the clusters of this test binary.
var dockerSeq atomic.Int64

// NewDockerCluster starts n containerized nodes (see DockerCluster) and
// waits until each answers. Node 0 bootstraps; the others join it. It skips
// the test when docker is not usable, and when n > 1 (or opts asks for
// cluster settings) but sonaed has no cluster flags yet.
func NewDockerCluster(t testing.TB, n int, opts ClusterOptions) *DockerCluster {
	t.Helper()
	if n < 1 || n > 100 {
		t.Fatalf("NewDockerCluster: %d nodes", n)
	}
	RequireDocker(t)
	c := &DockerCluster{
		t:            t,
		opts:         opts,
		clusterFlags: HasClusterFlags(t),
		advertise:    hasAdvertise(t),
		name:         fmt.Sprintf("sonae-test-%d-%d", os.Getpid(), dockerSeq.Add(1)),
	}
	if opts.needsClusterFlags(n) && !c.clusterFlags {
		t.Skip("needs cluster flags")
	}
	c.image = DockerImage(t)
	t.Cleanup(c.cleanup)
	c.clusterNW = c.createNetwork(c.name + "-cluster")
	testNW := c.clusterNW
	if c.advertise {
		c.controlNW = c.createNetwork(c.name + "-control")
		testNW = c.controlNW
	}
	if !hostHasAddr(testNW.prefix + "1") {
		// Rootless docker or a VM-based engine (Docker Desktop): the
		// bridge is not in this network namespace.
		t.Skipf("this host is not on docker network %s (no local address %s1), so tests cannot reach the nodes", testNW.name, testNW.prefix)
	}
	for i := range n {
		seed := ""
		if i > 0 {
			seed = c.Node(0).NodeID()
		}
		c.startNew(seed)
	}
	c.WaitReady(t, startTimeout)
	return c
}

// createNetwork makes an internal bridge network on a free random /24 in
// 172.16.0.0/12 (docker refuses one that overlaps an existing network, and
// then another is tried). Static addresses are .10 and up; docker hands out
// dynamic ones (RunClient's containers) from the upper half only.
func (c *DockerCluster) createNetwork(name string) dockerNetwork {
	c.t.Helper()
	var last error
	for range 40 {
		prefix := fmt.Sprintf("172.%d.%d.", 16+rand.IntN(16), rand.IntN(256))
		_, err := docker("network", "create", "--internal", "--label", dockerLabel+"=1",
			"--subnet", prefix+"0/24", "--gateway", prefix+"1", "--ip-range", prefix+"128/25", name)
		if err == nil {
			return dockerNetwork{name: name, prefix: prefix}
		}
		last = err
		if !strings.Contains(err.Error(), "overlap") {
			break
		}
	}
	c.t.Fatalf("creating network %s: %v", name, last)
	return dockerNetwork{}
}

// hostHasAddr reports whether one of this host's interfaces has ip.
func hostHasAddr(ip string) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.String() == ip {
			return true
		}
	}
	return false
}

// startNew creates, connects and starts the next node without waiting for
// it to answer.
func (c *DockerCluster) startNew(seed string) *Container {
	c.t.Helper()
	c.mu.Lock()
	i := len(c.nodes)
	node := &Container{Name: fmt.Sprintf("%s-n%d", c.name, i), IP: c.clusterNW.prefix + strconv.Itoa(10+i), Port: DockerPort}
	if c.advertise {
		node.ControlIP = c.controlNW.prefix + strconv.Itoa(10+i)
	}
	c.nodes = append(c.nodes, node)
	c.mu.Unlock()

	args := []string{"create", "--name", node.Name, "--label", dockerLabel + "=1",
		"--network", c.clusterNW.name, "--ip", node.IP, c.image, "/sonaed"}
	if c.advertise {
		args = append(args, "--addr", "0.0.0.0", "--advertise", node.IP)
	} else {
		args = append(args, "--addr", node.IP)
	}
	args = append(args, "--port", strconv.Itoa(node.Port), "--data", "/data", "--log-level", "debug")
	args = append(args, c.opts.nodeArgs(i, c.clusterFlags)...)
	if seed != "" {
		args = append(args, "--join", seed)
	}
	c.mustDocker(args...)
	if c.advertise {
		c.mustDocker("network", "connect", "--ip", node.ControlIP, c.controlNW.name, node.Name)
	}
	c.mustDocker("start", node.Name)
	return node
}

func (c *DockerCluster) mustDocker(args ...string) string {
	c.t.Helper()
	out, err := docker(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// cleanup logs every container's output if the test failed, then removes
// the containers and the networks.
func (c *DockerCluster) cleanup() {
	nodes := c.Nodes()
	if c.t.Failed() {
		for i, n := range nodes {
			c.t.Logf("docker logs of node %d (%s, %s):\n%s", i, n.Name, n.NodeID(), c.logs(n))
		}
	}
	for _, n := range nodes {
		docker("unpause", n.Name) // an error just means it was not paused
		if _, err := docker("rm", "-f", "-v", n.Name); err != nil {
			c.t.Errorf("cleanup: %v", err)
		}
	}
	for _, nw := range []dockerNetwork{c.clusterNW, c.controlNW} {
		if nw.name == "" {
			continue
		}
		if _, err := docker("network", "rm", nw.name); err != nil {
			c.t.Errorf("cleanup: %v", err)
		}
	}
}

func (c *DockerCluster) logs(n *Container) string {
	out, err := docker("logs", n.Name)
	if err != nil {
		return err.Error()
	}
	if len(out) > maxLogDump {
		out = fmt.Sprintf("[... %d bytes cut ...]\n", len(out)-maxLogDump) + out[len(out)-maxLogDump:]
	}
	return out
}

// Logs returns what node i printed in all its runs so far.
func (c *DockerCluster) Logs(i int) string { return c.logs(c.Node(i)) }

// Len is the number of nodes ever started, dead ones included.
func (c *DockerCluster) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.nodes)
}

// Node returns node i.
func (c *DockerCluster) Node(i int) *Container {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.nodes) {
		c.t.Fatalf("docker cluster has %d nodes, no node %d", len(c.nodes), i)
	}
	return c.nodes[i]
}

// Nodes returns every node in index order.
func (c *DockerCluster) Nodes() []*Container {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Container(nil), c.nodes...)
}

// Addrs returns the address tests dial for every node (Container.Addr), in
// index order.
func (c *DockerCluster) Addrs() []string {
	var addrs []string
	for _, n := range c.Nodes() {
		addrs = append(addrs, n.Addr())
	}
	return addrs
}

// Add starts one more node, joining it to the first live node, and waits
// until it answers.
func (c *DockerCluster) Add() *Container {
	c.t.Helper()
	if !c.clusterFlags {
		c.t.Skip("needs cluster flags")
	}
	seed := ""
	for _, n := range c.Nodes() {
		if n.Live() {
			seed = n.NodeID()
			break
		}
	}
	if seed == "" {
		c.t.Fatal("Add: no live node to join")
	}
	n := c.startNew(seed)
	c.waitReady(c.t, n, startTimeout)
	return n
}

// Partition disconnects node i from the cluster network: it keeps running
// but reaches no other node and no other node reaches it.
func (c *DockerCluster) Partition(i int) {
	c.t.Helper()
	n := c.Node(i)
	c.mustDocker("network", "disconnect", c.clusterNW.name, n.Name)
	n.set(func(n *Container) { n.detached = true })
}

// Heal reconnects node i to the cluster network with its old IP.
func (c *DockerCluster) Heal(i int) {
	c.t.Helper()
	n := c.Node(i)
	c.mustDocker("network", "connect", "--ip", n.IP, c.clusterNW.name, n.Name)
	n.set(func(n *Container) { n.detached = false })
}

// Kill9 kills node i with SIGKILL (resuming it first if paused) and waits
// until the container has stopped.
func (c *DockerCluster) Kill9(i int) {
	c.t.Helper()
	n := c.Node(i)
	c.unpause(n)
	c.mustDocker("kill", "-s", "KILL", n.Name)
	c.mustDocker("wait", n.Name)
	n.set(func(n *Container) { n.stopped = true })
}

// Pause freezes node i (docker pause: the cgroup freezer, SIGSTOP-like).
func (c *DockerCluster) Pause(i int) {
	c.t.Helper()
	n := c.Node(i)
	c.mustDocker("pause", n.Name)
	n.set(func(n *Container) { n.paused = true })
}

// Resume unfreezes node i.
func (c *DockerCluster) Resume(i int) {
	c.t.Helper()
	c.unpause(c.Node(i))
}

func (c *DockerCluster) unpause(n *Container) {
	c.t.Helper()
	n.mu.Lock()
	paused := n.paused
	n.mu.Unlock()
	if paused {
		c.mustDocker("unpause", n.Name)
		n.set(func(n *Container) { n.paused = false })
	}
}

// Restart starts node i's container again: same IPs, same command line,
// same /data (the container's own file system outlives its process). A
// running node is first stopped gracefully (SIGTERM, then SIGKILL after
// 10s); a killed one is just started. A partitioned node stays partitioned.
// It waits until the node answers.
func (c *DockerCluster) Restart(i int) {
	c.t.Helper()
	n := c.Node(i)
	c.unpause(n)
	c.mustDocker("stop", "-t", "10", n.Name)
	c.mustDocker("start", n.Name)
	n.set(func(n *Container) { n.stopped = false })
	c.waitReady(c.t, n, startTimeout)
}

// WaitReady waits until every running, unpaused node is ready (the same
// check as Proc.WaitReady, over Container.Addr).
func (c *DockerCluster) WaitReady(t testing.TB, within time.Duration) {
	t.Helper()
	for _, n := range c.Nodes() {
		n.mu.Lock()
		skip := n.stopped || n.paused
		n.mu.Unlock()
		if !skip {
			c.waitReady(t, n, within)
		}
	}
}

func (c *DockerCluster) waitReady(t testing.TB, n *Container, within time.Duration) {
	t.Helper()
	testutil.Eventually(t, within, fmt.Sprintf("node %s (%s) to answer at %s", n.Name, n.NodeID(), n.Addr()), func() error {
		err := ping(n.Addr())
		if err == nil {
			return nil
		}
		if state, _ := docker("inspect", "--format", "{{.State.Status}}", n.Name); state == "exited" || state == "dead" {
			t.Fatalf("node %s (%s) exited before answering (its output is logged at the end)", n.Name, n.NodeID())
		}
		return err
	})
}

// WaitMembers polls `stat routing.nodes.length` on every live node (running,
// not paused, not partitioned; re-evaluated on every poll) until all of
// them report n.
func (c *DockerCluster) WaitMembers(t testing.TB, n int, within time.Duration) {
	t.Helper()
	waitMembers(t, n, within, c.LiveAddrs)
}

// LiveAddrs returns Addr of every live node (Container.Live), in index
// order.
func (c *DockerCluster) LiveAddrs() []string {
	var addrs []string
	for _, node := range c.Nodes() {
		if node.Live() {
			addrs = append(addrs, node.Addr())
		}
	}
	return addrs
}

// ExecClient sends lines to addr (host:port) from inside node i's container
// and returns the reply; see internal/testcluster/dockerclient. The node
// must be running and not paused.
func (c *DockerCluster) ExecClient(i int, addr string, lines ...string) (string, error) {
	args := append([]string{"exec", c.Node(i).Name, "/dockerclient", "-addr", addr}, lines...)
	return docker(args...)
}

// RunClient sends lines to addr from a throw-away container on the cluster
// network and returns the reply.
func (c *DockerCluster) RunClient(addr string, lines ...string) (string, error) {
	args := append([]string{"run", "--rm", "--label", dockerLabel + "=1", "--network", c.clusterNW.name,
		c.image, "/dockerclient", "-addr", addr}, lines...)
	return docker(args...)
}
