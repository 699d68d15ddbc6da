package clustertest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/histcheck"
	"github.com/sonae-kv/sonae/internal/testcluster"
	"github.com/sonae-kv/sonae/internal/testutil"
)

// TestLinearizableWhileSecondaryRestarts runs set/get/cas/delete on a few
// keys from clients spread over all three nodes (so most commands are
// forwarded), kills the secondary of every vnode with SIGKILL, restarts it,
// and waits until it is back in sync, all under load. The history must be
// linearizable (porcupine) and no acknowledged write may be lost.
func TestLinearizableWhileSecondaryRestarts(t *testing.T) {
	c := testcluster.NewCluster(t, 3, testcluster.ClusterOptions{
		Redundancy: 2, DivBits: 6,
		ExtraArgs: []string{"--replication-timeout", "500ms"},
	})
	c.WaitMembers(t, 3, 30*time.Second)
	waitInSync(t, c, 30*time.Second)

	// Test keys that share one secondary, the node to kill.
	admin := mustMC(t, c.Node(0).Addr())
	var keys []string
	secondary := ""
	for i := 0; len(keys) < 6; i++ {
		if i > 200 {
			t.Fatalf("only %d of 200 keys share the secondary %s", len(keys), secondary)
		}
		k := fmt.Sprintf("lin-%d", i)
		info, err := admin.lines("get_key_info " + k + "\r\n")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range info {
			if s, ok := strings.CutPrefix(l, "secondary1 "); ok && (secondary == "" || s == secondary) {
				secondary = s
				keys = append(keys, k)
			}
		}
	}
	victim := -1
	for i, p := range c.Nodes() {
		if p.NodeID() == secondary {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("secondary %q is not a node of the cluster", secondary)
	}
	t.Logf("secondary of the test keys: node %d (%s)", victim, secondary)

	rec := histcheck.NewRecorder()
	stop := make(chan struct{})
	var acked atomic.Int64
	var wg sync.WaitGroup
	addrs := c.Addrs()
	const clients = 6
	for cl := range clients {
		wg.Go(func() { runClient(cl, addrs, keys, rec, stop, &acked) })
	}

	phase := time.Duration(soak()) * 1500 * time.Millisecond
	waitAcked(t, &acked, 200, 30*time.Second)
	before := acked.Load()
	c.Kill9(victim)
	t.Logf("killed node %d after %d acknowledged writes", victim, before)
	waitAcked(t, &acked, before+300*int64(soak()), 60*time.Second)
	lagging := waitLagging(t, c.Node((victim+1)%3).Addr(), 30*time.Second)
	t.Logf("primary marked %d replicas lagging", lagging)
	c.Restart(victim)
	waitInSync(t, c, 60*time.Second)
	after := acked.Load()
	waitAcked(t, &acked, after+300*int64(soak()), 60*time.Second)
	deadline := time.Now().Add(phase)
	testutil.Eventually(t, phase+30*time.Second, "load ran for the last phase", func() error {
		if time.Now().Before(deadline) {
			return errors.New("still running")
		}
		return nil
	})
	close(stop)
	wg.Wait()

	final := finalValues(t, c.Node((victim+1)%3).Addr(), keys)
	ops := rec.Ops()
	t.Logf("%d operations, %d acknowledged writes", len(ops), acked.Load())
	histcheck.Check(t, rec, 60*time.Second)
	histcheck.CheckLost(t, rec, final)
}

// runClient issues random operations until stop, moving to another node
// when its connection fails.
func runClient(id int, addrs, keys []string, rec *histcheck.Recorder, stop <-chan struct{}, acked *atomic.Int64) {
	rng := rand.New(rand.NewPCG(uint64(id), 7))
	seq := 0
	var c *mc
	node := id % len(addrs)
	defer func() {
		if c != nil {
			c.close()
		}
	}()
	for {
		select {
		case <-stop:
			return
		default:
		}
		if c == nil {
			var err error
			if c, err = dialMC(addrs[node], 2*time.Second); err != nil {
				c = nil
				node = (node + 1) % len(addrs)
				continue
			}
		}
		key := keys[rng.IntN(len(keys))]
		seq++
		value := fmt.Sprintf("c%d-%d", id, seq)
		var err error
		switch p := rng.IntN(10); {
		case p < 4:
			op := rec.Begin(id, histcheck.Set(key, value))
			var l string
			if l, err = c.set(key, value); err == nil && l == "STORED" {
				rec.End(op, histcheck.Stored())
				acked.Add(1)
			} else {
				rec.End(op, histcheck.Unknown(fmt.Errorf("%s %v", l, err)))
			}
		case p < 7:
			op := rec.Begin(id, histcheck.Get(key))
			var v string
			var found bool
			if v, _, found, err = c.gets(key); err != nil {
				rec.End(op, histcheck.Unknown(err))
			} else if found {
				rec.End(op, histcheck.Found(v))
			} else {
				rec.End(op, histcheck.NotFound())
			}
		case p < 9:
			// gets then cas with the id it returned: the model compares
			// by the value read, which identifies the write (unique values).
			g := rec.Begin(id, histcheck.Get(key))
			var old string
			var cas uint64
			var found bool
			if old, cas, found, err = c.gets(key); err != nil {
				rec.End(g, histcheck.Unknown(err))
				break
			}
			if !found {
				rec.End(g, histcheck.NotFound())
				break
			}
			rec.End(g, histcheck.Found(old))
			op := rec.Begin(id, histcheck.Cas(key, old, value))
			var l string
			l, err = c.cas(key, value, cas)
			switch {
			case err == nil && l == "STORED":
				rec.End(op, histcheck.Stored())
				acked.Add(1)
			case err == nil && l == "EXISTS":
				rec.End(op, histcheck.Exists())
			case err == nil && l == "NOT_FOUND":
				rec.End(op, histcheck.NotFound())
			default:
				rec.End(op, histcheck.Unknown(fmt.Errorf("%s %v", l, err)))
			}
		default:
			op := rec.Begin(id, histcheck.Delete(key))
			var l string
			l, err = c.del(key)
			switch {
			case err == nil && l == "DELETED":
				rec.End(op, histcheck.Deleted())
				acked.Add(1)
			case err == nil && l == "NOT_FOUND":
				rec.End(op, histcheck.NotFound())
			default:
				rec.End(op, histcheck.Unknown(fmt.Errorf("%s %v", l, err)))
			}
		}
		if err != nil && !errors.Is(err, errServer) {
			// The connection is broken: its replies can no longer be
			// matched to requests. Take another node.
			c.close()
			c = nil
			node = (node + 1) % len(addrs)
		}
		if err != nil {
			// Every failed operation is an unknown outcome, which the
			// checker must try both ways: retrying at full speed through
			// an outage would record thousands of them.
			select {
			case <-stop:
			case <-time.After(25 * time.Millisecond):
			}
		}
	}
}

func waitAcked(t *testing.T, acked *atomic.Int64, n int64, within time.Duration) {
	t.Helper()
	testutil.Eventually(t, within, fmt.Sprintf("%d acknowledged writes", n), func() error {
		if got := acked.Load(); got < n {
			return fmt.Errorf("%d so far", got)
		}
		return nil
	})
}

// waitInSync waits until every live node reports no lagging replica, no
// short vnode, no vnode being moved, and every position balanced.
func waitInSync(t *testing.T, c *testcluster.Cluster, within time.Duration) {
	t.Helper()
	waitInSyncAt(t, within, func() []string {
		var addrs []string
		for _, i := range c.Live() {
			addrs = append(addrs, c.Node(i).Addr())
		}
		return addrs
	})
}

// waitInSyncAt is waitInSync over the addresses addrs returns on each poll.
func waitInSyncAt(t *testing.T, within time.Duration, addrs func() []string) {
	t.Helper()
	testutil.Eventually(t, within, "every replica in sync", func() error {
		for _, addr := range addrs() {
			for name, want := range map[string]string{
				"routing.lagging_replicas": "0", "routing.short_vnodes": "0",
				"routing.moving_vnodes": "0", "routing.balanced": "true",
			} {
				v, err := stat(addr, name)
				if err != nil {
					return err
				}
				if v != want {
					return fmt.Errorf("%s: %s %s", addr, name, v)
				}
			}
		}
		return nil
	})
}

// waitLagging waits until the node reports at least one lagging replica.
func waitLagging(t *testing.T, addr string, within time.Duration) int {
	t.Helper()
	var n int
	testutil.Eventually(t, within, "a lagging replica", func() error {
		v, err := stat(addr, "routing.lagging_replicas")
		if err != nil {
			return err
		}
		if n, _ = strconv.Atoi(v); n == 0 {
			return errors.New("none yet")
		}
		return nil
	})
	return n
}

// TestLinearizableWhileJoinRebalances joins a third node to a loaded
// two-node cluster: vnodes move to it, primaries included (fence, then
// cut-over with epoch+1), while clients on every node run set/get/cas/
// delete. The history must be linearizable and lose no acknowledged write.
func TestLinearizableWhileJoinRebalances(t *testing.T) {
	c := testcluster.NewCluster(t, 2, testcluster.ClusterOptions{Redundancy: 2, DivBits: 5})
	c.WaitMembers(t, 2, 30*time.Second)
	waitInSync(t, c, 30*time.Second)
	keys := make([]string, 16)
	for i := range keys {
		keys[i] = fmt.Sprintf("mv-%d", i)
	}
	// Bulk data makes every vnode's copy take a while, so the checked
	// operations overlap the moves.
	bulk := mustMC(t, c.Node(0).Addr())
	value := strings.Repeat("x", 4096)
	for i := range 4000 * soak() {
		if l, err := bulk.set(fmt.Sprintf("bulk-%d", i), value); err != nil || l != "STORED" {
			t.Fatalf("bulk set: %q %v", l, err)
		}
	}
	rec := histcheck.NewRecorder()
	stop := make(chan struct{})
	var acked atomic.Int64
	var wg sync.WaitGroup
	addrs := c.Addrs()
	for cl := range 6 {
		wg.Go(func() { runClient(cl, addrs, keys, rec, stop, &acked) })
	}
	waitAcked(t, &acked, 300, 30*time.Second)
	before := acked.Load()
	third := c.Add()
	c.WaitMembers(t, 3, 30*time.Second)
	waitInSync(t, c, 120*time.Second)
	during := acked.Load() - before
	primary, err := stat(third.Addr(), "routing.primary")
	if err != nil || primary == "0" {
		t.Fatalf("the new node is primary of %q vnodes (%v) after the rebalancing", primary, err)
	}
	waitAcked(t, &acked, acked.Load()+300*int64(soak()), 60*time.Second)
	close(stop)
	wg.Wait()
	t.Logf("%d acknowledged writes before the join, %d while it rebalanced, %d in all; the new node leads %s vnodes",
		before, during, acked.Load(), primary)
	if during == 0 {
		t.Error("no write was acknowledged while the vnodes moved: the test did not exercise the moves")
	}

	final := finalValues(t, third.Addr(), keys)
	histcheck.Check(t, rec, 60*time.Second)
	histcheck.CheckLost(t, rec, final)
}

// finalValues reads every key once through addr, after the faults, for the
// lost-write check.
func finalValues(t *testing.T, addr string, keys []string) map[string]histcheck.Output {
	t.Helper()
	final := map[string]histcheck.Output{}
	reader := mustMC(t, addr)
	for _, k := range keys {
		v, _, found, err := reader.gets(k)
		if err != nil {
			t.Fatalf("final read of %s: %v", k, err)
		}
		if found {
			final[k] = histcheck.Found(v)
		} else {
			final[k] = histcheck.NotFound()
		}
	}
	return final
}
