package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	protocoltest "github.com/sonae-kv/sonae/tests/protocol"

	"github.com/sonae-kv/sonae/internal/testcluster"
	"github.com/sonae-kv/sonae/internal/testutil"
)

// statNode returns `stat node` of addr as a map, as seed 001 shows it.
func statNode(t *testing.T, addr string) map[string]string {
	t.Helper()
	ls, err := mustMC(t, addr).lines("stat node\r\n")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range ls {
		k, v, _ := strings.Cut(l, " ")
		m[k] = v
	}
	return m
}

// TestSeed001Walkthrough is the "done when": two nodes show 2 in
// `stat node`; a third joins with -j and shows 3, listed in
// routing.nodes; keys written through one node read through every other.
func TestSeed001Walkthrough(t *testing.T) {
	c := testcluster.NewCluster(t, 2, testcluster.ClusterOptions{})
	c.WaitMembers(t, 2, 30*time.Second)
	for i := range 2 {
		if got := statNode(t, c.Node(i).Addr())["routing.nodes.length"]; got != "2" {
			t.Fatalf("node %d: routing.nodes.length %s, want 2", i, got)
		}
	}
	third := c.Add()
	c.WaitMembers(t, 3, 30*time.Second)
	st := statNode(t, third.Addr())
	if st["routing.nodes.length"] != "3" {
		t.Fatalf("new node: routing.nodes.length %s, want 3", st["routing.nodes.length"])
	}
	var nodes []string
	if err := json.Unmarshal([]byte(st["routing.nodes"]), &nodes); err != nil {
		t.Fatalf("routing.nodes %q: %v", st["routing.nodes"], err)
	}
	listed := false
	for _, n := range nodes {
		listed = listed || n == third.NodeID()
	}
	if !listed {
		t.Fatalf("routing.nodes %v does not list the new node %s", nodes, third.NodeID())
	}
	// The new node receives vnodes (stats.run_join true while it does)
	// until every position is balanced: about 171 of 512 each for three
	// nodes, primaries and secondaries alike (seed 001; ROMA #46).
	testutil.Eventually(t, 60*time.Second, "the join's rebalancing to finish", func() error {
		for _, p := range c.Nodes() {
			if v, err := stat(p.Addr(), "routing.moving_vnodes"); err != nil || v != "0" {
				return fmt.Errorf("%s: moving_vnodes %q %v", p.NodeID(), v, err)
			}
			if v, err := stat(p.Addr(), "routing.balanced"); err != nil || v != "true" {
				return fmt.Errorf("%s: balanced %q %v", p.NodeID(), v, err)
			}
		}
		if rj, err := stat(third.Addr(), "stats.run_join"); err != nil || rj != "false" {
			return fmt.Errorf("run_join %q %v", rj, err)
		}
		return nil
	})
	for _, p := range c.Nodes() {
		for _, pos := range []string{"routing.primary", "routing.secondary1"} {
			v, err := stat(p.Addr(), pos)
			n, _ := strconv.Atoi(v)
			if err != nil || n < 170 || n > 171 {
				t.Errorf("%s: %s %q (%v), want 170 or 171 of 512", p.NodeID(), pos, v, err)
			}
		}
	}

	for w := range 3 {
		wc := mustMC(t, c.Node(w).Addr())
		for k := range 20 {
			key, val := fmt.Sprintf("w%d-k%d", w, k), fmt.Sprintf("v%d-%d", w, k)
			if l, err := wc.set(key, val); err != nil || l != "STORED" {
				t.Fatalf("set %s through node %d: %q %v", key, w, l, err)
			}
		}
	}
	for r := range 3 {
		rc := mustMC(t, c.Node(r).Addr())
		for w := range 3 {
			for k := range 20 {
				key, want := fmt.Sprintf("w%d-k%d", w, k), fmt.Sprintf("v%d-%d", w, k)
				v, _, found, err := rc.gets(key)
				if err != nil || !found || v != want {
					t.Fatalf("get %s through node %d: %q found=%v %v, want %q", key, r, v, found, err, want)
				}
			}
		}
	}
}

// TestForwardingEveryCommand replays the memcached protocol transcripts
// through each node of a two-node cluster. Each key's vnode has its primary
// on one of the two, so every command of every transcript is forwarded in
// one of the runs, and must answer byte for byte as a single node does.
func TestForwardingEveryCommand(t *testing.T) {
	c := testcluster.NewCluster(t, 2, testcluster.ClusterOptions{Engine: "memory"})
	c.WaitMembers(t, 2, 30*time.Second)
	waitInSync(t, c, 60*time.Second)
	for i := range 2 {
		primary, err := stat(c.Node(i).Addr(), "routing.primary")
		if err != nil || primary == "0" || primary == "512" {
			t.Fatalf("node %d is primary of %s vnodes (%v): both must forward some keys", i, primary, err)
		}
	}
	for i := range 2 {
		t.Run(fmt.Sprintf("through-node-%d", i), func(t *testing.T) {
			protocoltest.Run(t, c.Node(i).Addr(), protocoltest.TargetSonae)
		})
	}
}

// TestNamespacesAcrossNodes: createhash on one node makes the namespace
// usable through every node; deletehash on another removes it everywhere.
func TestNamespacesAcrossNodes(t *testing.T) {
	c := testcluster.NewCluster(t, 3, testcluster.ClusterOptions{Engine: "memory"})
	c.WaitMembers(t, 3, 30*time.Second)
	a, b, d := mustMC(t, c.Node(0).Addr()), mustMC(t, c.Node(1).Addr()), mustMC(t, c.Node(2).Addr())
	if l, err := b.simple("createhash users\r\n"); err != nil || l != "CREATED" {
		t.Fatalf("createhash: %q %v", l, err)
	}
	for i, cl := range []*mc{a, b, d} {
		testutil.Eventually(t, 10*time.Second, fmt.Sprintf("node %d lists the namespace", i), func() error {
			l, err := cl.simple("hashlist\r\n")
			if err != nil || !strings.Contains(l, "users") {
				return fmt.Errorf("hashlist %q %v", l, err)
			}
			return nil
		})
	}
	if l, err := d.set("u1\x1busers", "alice"); err != nil || l != "STORED" {
		t.Fatalf("set in namespace through node 2: %q %v", l, err)
	}
	if l, err := d.set("u1", "default-ns"); err != nil || l != "STORED" {
		t.Fatalf("set in default: %q %v", l, err)
	}
	if v, _, ok, err := a.gets("u1\x1busers"); err != nil || !ok || v != "alice" {
		t.Fatalf("get in namespace through node 0: %q %v %v", v, ok, err)
	}
	if v, _, ok, err := b.gets("u1"); err != nil || !ok || v != "default-ns" {
		t.Fatalf("namespaces are separate: default u1 = %q %v %v", v, ok, err)
	}
	if l, err := a.simple("createhash users\r\n"); err == nil {
		t.Fatalf("second createhash answered %q, want an error", l)
	}
	if l, err := a.simple("deletehash users\r\n"); err != nil || l != "DELETED" {
		t.Fatalf("deletehash: %q %v", l, err)
	}
	testutil.Eventually(t, 10*time.Second, "the namespace is gone everywhere", func() error {
		l, err := b.simple("get u1\x1busers\r\n")
		if err == nil || !strings.Contains(l, "does not exist") {
			return fmt.Errorf("get after deletehash: %q %v", l, err)
		}
		return nil
	})
}

// TestRestartKeepsClusterAndData stops every node, restarts them on their
// data directories, and expects the same members, table version,
// namespaces and data: the Raft store (bbolt log, snapshots) and gossip
// snapshot bring the cluster back without any -j.
func TestRestartKeepsClusterAndData(t *testing.T) {
	c := testcluster.NewCluster(t, 3, testcluster.ClusterOptions{})
	c.WaitMembers(t, 3, 30*time.Second)
	waitInSync(t, c, 30*time.Second)
	w := mustMC(t, c.Node(2).Addr())
	if l, err := w.simple("createhash kept\r\n"); err != nil || l != "CREATED" {
		t.Fatalf("createhash: %q %v", l, err)
	}
	for k := range 50 {
		if l, err := w.set(fmt.Sprintf("r%d", k), fmt.Sprintf("v%d", k)); err != nil || l != "STORED" {
			t.Fatalf("set: %q %v", l, err)
		}
	}
	version, err := stat(c.Node(0).Addr(), "routing.version")
	if err != nil {
		t.Fatal(err)
	}
	c.RestartAll(60 * time.Second)
	c.WaitMembers(t, 3, 60*time.Second)
	for i := range 3 {
		testutil.Eventually(t, 30*time.Second, fmt.Sprintf("node %d's table back at version %s", i, version), func() error {
			v, err := stat(c.Node(i).Addr(), "routing.version")
			if err != nil || !versionAtLeast(v, version) {
				return fmt.Errorf("routing.version %q (%v)", v, err)
			}
			return nil
		})
	}
	r := mustMC(t, c.Node(1).Addr())
	if l, err := r.simple("hashlist\r\n"); err != nil || !strings.Contains(l, "kept") {
		t.Fatalf("hashlist after restart: %q %v", l, err)
	}
	for k := range 50 {
		v, _, ok, err := r.gets(fmt.Sprintf("r%d", k))
		if err != nil || !ok || v != fmt.Sprintf("v%d", k) {
			t.Fatalf("r%d after restart: %q %v %v", k, v, ok, err)
		}
	}
}

// TestJoinRefusesAnotherCluster: a node configured for another cluster
// name must not join, and says why.
func TestJoinRefusesAnotherCluster(t *testing.T) {
	c := testcluster.NewCluster(t, 1, testcluster.ClusterOptions{Name: "tokyo", Engine: "memory"})
	c.WaitMembers(t, 1, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	port := testcluster.FreePort(t, "127.0.0.1")
	cmd := exec.CommandContext(ctx, testcluster.Binary(t), "--name", "osaka", "--engine", "memory",
		"--data", t.TempDir(), "--addr", "127.0.0.1", "--port", strconv.Itoa(port), "-j", c.Node(0).NodeID())
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another cluster") || !strings.Contains(string(out), "tokyo") {
		t.Fatalf("sonaed: %v, output:\n%s", err, out)
	}
}

// versionAtLeast compares two decimal table versions.
func versionAtLeast(v, min string) bool {
	a, err1 := strconv.ParseUint(v, 10, 64)
	b, err2 := strconv.ParseUint(min, 10, 64)
	return err1 == nil && err2 == nil && a >= b
}

// TestEncryptedGossip forms a cluster whose gossip is encrypted: members
// with the key join, and data flows between them.
func TestEncryptedGossip(t *testing.T) {
	key := "iX0q81jhl8MSYPUBoUH7/Z7UUFcoHPsf" // 24 random bytes
	c := testcluster.NewCluster(t, 3, testcluster.ClusterOptions{Engine: "memory", ExtraArgs: []string{"--gossip-key", key}})
	c.WaitMembers(t, 3, 30*time.Second)
	ms, err := mustMC(t, c.Node(2).Addr()).lines("members\r\n")
	if err != nil || len(ms) != 3 {
		t.Fatalf("members: %q %v", ms, err)
	}
	for _, m := range ms {
		if f := strings.Fields(m); len(f) < 4 || f[3] != "alive" {
			t.Errorf("member line %q: want alive", m)
		}
	}
	if l, err := mustMC(t, c.Node(0).Addr()).set("enc", "yes"); err != nil || l != "STORED" {
		t.Fatalf("set: %q %v", l, err)
	}
	if v, _, ok, err := mustMC(t, c.Node(1).Addr()).gets("enc"); err != nil || !ok || v != "yes" {
		t.Fatalf("get through another node: %q %v %v", v, ok, err)
	}
}

// TestVotersThenNonVoters: the first three nodes vote in Raft, the fourth
// follows the metadata without voting, and every node has the same table.
func TestVotersThenNonVoters(t *testing.T) {
	c := testcluster.NewCluster(t, 4, testcluster.ClusterOptions{Engine: "memory"})
	c.WaitMembers(t, 4, 30*time.Second)
	waitInSync(t, c, 60*time.Second)
	voters := 0
	versions := map[string]bool{}
	for _, p := range c.Nodes() {
		v, err := stat(p.Addr(), "routing.meta_voter")
		if err != nil {
			t.Fatal(err)
		}
		if v == "true" {
			voters++
		}
		ver, err := stat(p.Addr(), "routing.version")
		if err != nil {
			t.Fatal(err)
		}
		versions[ver] = true
	}
	if voters != 3 {
		t.Errorf("%d voters among 4 nodes, want 3 (--max-voters default)", voters)
	}
	if len(versions) != 1 {
		t.Errorf("nodes disagree on the table version: %v", versions)
	}
}
