package testcluster

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds how long a node may take to answer after it starts.
const startTimeout = 20 * time.Second

// Cluster is n real sonaed processes on this machine, node i listening on
// LoopbackHost(i) with a port of its own and a data directory under
// t.TempDir(). Node 0 bootstraps the cluster; every other node joins it with
// -j. Every process is killed when the test ends (paused ones too), and if
// the test failed the output of every process, all its launches included,
// is logged.
//
// Methods taking an index fail the test when the index is out of range. A
// Cluster is safe for use by several goroutines, but the methods that fail
// the test must run on the test's goroutine.
type Cluster struct {
	t            testing.TB
	opts         ClusterOptions
	clusterFlags bool

	mu    sync.Mutex
	procs []*Proc
}

// NewCluster starts n nodes and waits until each is ready (Proc.WaitReady)
// (it does not wait for membership: see WaitMembers). It skips the test when
// n > 1 (or opts asks for cluster settings) and this sonaed does not have
// the cluster flags yet.
func NewCluster(t testing.TB, n int, opts ClusterOptions) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("NewCluster: %d nodes", n)
	}
	c := &Cluster{t: t, opts: opts, clusterFlags: HasClusterFlags(t)}
	if opts.needsClusterFlags(n) && !c.clusterFlags {
		t.Skip("needs cluster flags")
	}
	first := c.newProc(0, "")
	first.Launch()
	rest := make([]*Proc, 0, n-1)
	for i := 1; i < n; i++ {
		p := c.newProc(i, first.NodeID())
		p.start()
		rest = append(rest, p)
	}
	for _, p := range rest {
		p.waitStarted(startTimeout)
	}
	return c
}

// newProc makes node i (not started), joining seed unless seed is blank,
// and registers its cleanup.
func (c *Cluster) newProc(i int, seed string) *Proc {
	c.t.Helper()
	host := LoopbackHost(i)
	args := c.opts.nodeArgs(i, c.clusterFlags)
	if seed != "" {
		args = append(args, "--join", seed)
	}
	p := &Proc{t: c.t, Host: host, Port: FreeTCPUDPPort(c.t, host), Data: c.t.TempDir(), Args: args}
	p.cleanupOnEnd()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p
}

// Len is the number of nodes ever started, dead ones included.
func (c *Cluster) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.procs)
}

// Node returns node i.
func (c *Cluster) Node(i int) *Proc {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.procs) {
		c.t.Fatalf("cluster has %d nodes, no node %d", len(c.procs), i)
	}
	return c.procs[i]
}

// Nodes returns every node in index order, dead ones included.
func (c *Cluster) Nodes() []*Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Proc(nil), c.procs...)
}

// Addrs returns host:port of every node's client port, in index order.
func (c *Cluster) Addrs() []string {
	var addrs []string
	for _, p := range c.Nodes() {
		addrs = append(addrs, p.Addr())
	}
	return addrs
}

// Live returns the indexes of the nodes that are running and not paused.
func (c *Cluster) Live() []int {
	var live []int
	for i, p := range c.Nodes() {
		if p.Running() && !p.Paused() {
			live = append(live, i)
		}
	}
	return live
}

// Add starts one more node, joining it to the first live node, and waits
// until it answers. It returns the new node; its index is Len()-1.
func (c *Cluster) Add() *Proc {
	c.t.Helper()
	if !c.clusterFlags {
		c.t.Skip("needs cluster flags")
	}
	live := c.Live()
	if len(live) == 0 {
		c.t.Fatal("Add: no live node to join")
	}
	p := c.newProc(c.Len(), c.Node(live[0]).NodeID())
	p.Launch()
	return p
}

// Kill9 kills node i with SIGKILL and waits until the process is gone.
func (c *Cluster) Kill9(i int) { c.Node(i).Kill9() }

// Pause stops node i with SIGSTOP.
func (c *Cluster) Pause(i int) { c.Node(i).Pause() }

// Resume continues node i with SIGCONT.
func (c *Cluster) Resume(i int) { c.Node(i).Resume() }

// Stop ends node i gracefully (SIGTERM) and returns its exit code.
func (c *Cluster) Stop(i int) int { return c.Node(i).Stop() }

// Restart starts node i again on the same address, port, data directory and
// command line (so a node that joined with -j passes it again, as an
// unchanged service unit would). A running node is first stopped gracefully
// (resumed first if paused); a killed one is just started. It waits until the
// node answers.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	p := c.Node(i)
	if p.Running() {
		p.Stop()
	}
	p.Launch()
}

// RestartAll stops every running node gracefully, then starts them all
// again at once and waits until each is ready. Restarting a whole cluster
// one node at a time cannot work: a lone node waits for a Raft quorum
// before it serves.
func (c *Cluster) RestartAll(within time.Duration) {
	c.t.Helper()
	for _, p := range c.Nodes() {
		if p.Running() {
			p.Stop()
		}
	}
	for _, p := range c.Nodes() {
		p.start()
	}
	for _, p := range c.Nodes() {
		p.waitStarted(within)
	}
}

// WaitReady waits until every live node is ready (Proc.WaitReady).
func (c *Cluster) WaitReady(t testing.TB, within time.Duration) {
	t.Helper()
	for _, i := range c.Live() {
		p := c.Node(i)
		if err := p.WaitReady(within); err != nil {
			t.Fatalf("node %d (%s) not ready: %v", i, p.NodeID(), err)
		}
	}
}

// WaitMembers polls `stat routing.nodes.length` on every live node (running,
// not paused; re-evaluated on every poll) until all of them report n, and
// fails the test if that has not happened within the given time.
func (c *Cluster) WaitMembers(t testing.TB, n int, within time.Duration) {
	t.Helper()
	waitMembers(t, n, within, func() []string {
		var addrs []string
		for _, i := range c.Live() {
			addrs = append(addrs, c.Node(i).Addr())
		}
		return addrs
	})
}

// String lists the nodes and their state, for failure messages.
func (c *Cluster) String() string {
	s := ""
	for i, p := range c.Nodes() {
		state := "dead"
		switch {
		case p.Paused():
			state = "paused"
		case p.Running():
			state = "running"
		}
		s += fmt.Sprintf("node %d %s %s; ", i, p.NodeID(), state)
	}
	return s
}
