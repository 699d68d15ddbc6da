package client

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sonae-kv/sonae/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newTestCluster connects to fc with test options: short backoff, no
// polling (unless edit turns it on), logs to t.Log.
func newTestCluster(t *testing.T, fc *fakeCluster, edit func(o *ClusterOptions)) *Cluster {
	t.Helper()
	o := DefaultClusterOptions()
	o.Timeout = 5 * time.Second
	o.RetryBackoff = time.Millisecond
	o.RefreshInterval = 0
	o.Logger = testutil.Logger(t)
	if edit != nil {
		edit(&o)
	}
	c, err := NewCluster(fc.seeds(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// total sums a command count over the nodes.
func (fc *fakeCluster) total(name string) int {
	n := 0
	for _, fn := range fc.nodes {
		n += fn.count(name)
	}
	return n
}

func TestClusterRoutesToPrimary(t *testing.T) {
	fc := newFakeCluster(t, 3, 4, 2)
	c := newTestCluster(t, fc, nil)
	if c.TableVersion() != 1 || len(c.Table().Nodes) != 3 {
		t.Fatalf("table version %d with %d nodes", c.TableVersion(), len(c.Table().Nodes))
	}
	tab := fc.currentTable()
	for i := range 100 {
		k := "key:" + strconv.Itoa(i)
		if err := c.Set(k, []byte("v"+strconv.Itoa(i)), uint32(i), 0); err != nil {
			t.Fatal(err)
		}
		it, err := c.Get(k)
		if err != nil || string(it.Value) != "v"+strconv.Itoa(i) || it.Flags != uint32(i) {
			t.Fatalf("Get(%s) = %+v, %v", k, it, err)
		}
		primary := tab.Primary(fakeVnode(k, tab.DivBits))
		for _, fn := range fc.nodes {
			want := 0
			if fn.id == primary {
				want = 2
			}
			if got := fn.servedKey(k); got != want {
				t.Errorf("%s served %s %d times, want %d (primary %s)", fn.id, k, got, want, primary)
			}
		}
	}
	if n := fc.total("NOT_PRIMARY"); n != 0 {
		t.Errorf("%d NOT_PRIMARY answers: requests did not go to the primary", n)
	}
	// Every connection was put in direct mode, and only in direct mode.
	if n, m := fc.total("conn_option"), fc.total("routingdump"); n == 0 || m != 1 {
		t.Errorf("conn_option sent %d times, routingdump %d times (want >0 and 1)", n, m)
	}
}

func TestClusterOps(t *testing.T) {
	fc := newFakeCluster(t, 2, 3, 2)
	c := newTestCluster(t, fc, nil)

	if _, err := c.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get missing: %v", err)
	}
	if err := c.Add("k", []byte("1"), 5, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Add("k", []byte("2"), 0, 0); !errors.Is(err, ErrNotStored) {
		t.Errorf("Add existing: %v", err)
	}
	if err := c.Replace("nope", []byte("x"), 0, 0); !errors.Is(err, ErrNotStored) {
		t.Errorf("Replace missing: %v", err)
	}
	if err := c.Replace("k", []byte("10"), 5, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Incr("k", 5); err != nil || n != 15 {
		t.Errorf("Incr = %d, %v", n, err)
	}
	if n, err := c.Decr("k", 20); err != nil || n != 0 {
		t.Errorf("Decr below zero = %d, %v", n, err)
	}
	if _, err := c.Incr("nope", 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("Incr missing: %v", err)
	}
	if err := c.Append("k", []byte("b")); err != nil {
		t.Fatal(err)
	}
	if err := c.Prepend("k", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := c.Append("nope", []byte("b")); !errors.Is(err, ErrNotStored) {
		t.Errorf("Append missing: %v", err)
	}
	if _, err := c.Incr("k", 1); err == nil || !errors.As(err, new(*ServerError)) {
		t.Errorf("Incr non-numeric: %v, want a *ServerError", err)
	}
	it, err := c.Gets("k")
	if err != nil || string(it.Value) != "a0b" || it.Flags != 5 || it.CAS == 0 {
		t.Fatalf("Gets = %+v, %v", it, err)
	}
	if it2, _ := c.Get("k"); it2.CAS != 0 {
		t.Errorf("Get returned CAS %d, want 0 (get, not gets)", it2.CAS)
	}
	if err := c.CompareAndSwap("k", []byte("new"), 1, 0, it.CAS+1); !errors.Is(err, ErrCASConflict) {
		t.Errorf("cas with a wrong unique: %v", err)
	}
	if err := c.CompareAndSwap("k", []byte("new"), 1, 0, it.CAS); err != nil {
		t.Errorf("cas: %v", err)
	}
	if err := c.CompareAndSwap("nope", []byte("new"), 1, 0, 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("cas missing: %v", err)
	}
	if err := c.Touch("k", 100); err != nil {
		t.Errorf("Touch: %v", err)
	}
	if err := c.Touch("nope", 100); !errors.Is(err, ErrNotFound) {
		t.Errorf("Touch missing: %v", err)
	}
	if err := c.Delete("k"); err != nil {
		t.Errorf("Delete: %v", err)
	}
	if err := c.Delete("k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete again: %v", err)
	}
	for _, bad := range []string{"", "has space", string(make([]byte, 251))} {
		if err := c.Set(bad, nil, 0, 0); !errors.Is(err, ErrBadKey) {
			t.Errorf("Set(%q): %v", bad, err)
		}
		if _, err := c.GetMulti("ok", bad); !errors.Is(err, ErrBadKey) {
			t.Errorf("GetMulti(%q): %v", bad, err)
		}
	}
	// A namespaced key routes by its key part, as the server does.
	if err := c.Set("foo\x1bapp", []byte("ns"), 0, 0); err != nil {
		t.Fatal(err)
	}
	if n := fc.total("NOT_PRIMARY"); n != 0 {
		t.Errorf("%d NOT_PRIMARY answers", n)
	}
}

func TestClusterGetMulti(t *testing.T) {
	fc := newFakeCluster(t, 3, 4, 2)
	c := newTestCluster(t, fc, nil)
	var keys []string
	for i := range 60 {
		k := "m:" + strconv.Itoa(i)
		keys = append(keys, k)
		if i%3 != 0 { // every third key is missing
			if err := c.Set(k, []byte(k), 0, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := map[string]int{}
	for _, fn := range fc.nodes {
		before[fn.id] = fn.count("get")
	}
	got, err := c.GetMulti(append(keys, keys[1], keys[2])...) // duplicates are asked once
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		it, ok := got[k]
		if (i%3 != 0) != ok || ok && string(it.Value) != k {
			t.Errorf("GetMulti[%s] = %+v, %v", k, it, ok)
		}
	}
	if len(got) != 40 {
		t.Errorf("GetMulti returned %d items, want 40", len(got))
	}
	for _, fn := range fc.nodes {
		if n := fn.count("get") - before[fn.id]; n != 1 {
			t.Errorf("%s got %d get commands for one GetMulti, want 1", fn.id, n)
		}
	}
	if got, err := c.GetMulti(); err != nil || len(got) != 0 {
		t.Errorf("GetMulti() = %v, %v", got, err)
	}

	// Move half the vnodes: the refused groups are regrouped and retried.
	fc.commit(func(tab *RoutingTable) {
		for v := 0; v < len(tab.Vnodes); v += 2 {
			slices.Reverse(tab.Vnodes[v].Nodes)
		}
	})
	got, err = c.GetMulti(keys...)
	if err != nil || len(got) != 40 {
		t.Fatalf("GetMulti after a move: %d items, %v", len(got), err)
	}
	if fc.total("NOT_PRIMARY") == 0 || c.TableVersion() != 2 {
		t.Errorf("expected NOT_PRIMARY answers and a refresh to version 2, got %d and %d", fc.total("NOT_PRIMARY"), c.TableVersion())
	}
}

func TestClusterNotPrimaryRefreshesAndRetries(t *testing.T) {
	fc := newFakeCluster(t, 3, 4, 2)
	c := newTestCluster(t, fc, nil)
	a, b := fc.nodes[0], fc.nodes[1]
	keys := map[string]string{}
	for _, op := range []string{"get", "set", "add", "incr", "cas", "append"} {
		keys[op] = fc.keyOn(a.id, op+":")
	}
	for op, k := range keys {
		if op != "add" {
			if err := c.Set(k, []byte("1"), 0, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	cas, err := c.Gets(keys["cas"])
	if err != nil {
		t.Fatal(err)
	}
	// One commit moves every vnode of these keys from a to b.
	tab := fc.currentTable()
	fc.commit(func(t *RoutingTable) {
		for _, k := range keys {
			v := fakeVnode(k, t.DivBits)
			t.Vnodes[v].Nodes = []string{b.id, a.id}
			t.Vnodes[v].Epoch++
		}
	})
	if c.TableVersion() != tab.Version {
		t.Fatal("the client refreshed without a reason")
	}
	dumps := fc.total("routingdump")

	if it, err := c.Get(keys["get"]); err != nil || string(it.Value) != "1" {
		t.Fatalf("Get after the move: %+v, %v", it, err)
	}
	if c.TableVersion() != 2 || a.count("NOT_PRIMARY") != 1 || fc.total("routingdump") != dumps+1 {
		t.Errorf("after one NOT_PRIMARY: version %d, %d NOT_PRIMARY, %d routingdumps (want 2, 1, 1)",
			c.TableVersion(), a.count("NOT_PRIMARY"), fc.total("routingdump")-dumps)
	}
	// The table is fresh now: the other requests go straight to b. Writes
	// that are unsafe to repeat are still fine after NOT_PRIMARY.
	if err := c.Set(keys["set"], []byte("2"), 0, 0); err != nil {
		t.Error(err)
	}
	if err := c.Add(keys["add"], []byte("x"), 0, 0); err != nil {
		t.Error(err)
	}
	if n, err := c.Incr(keys["incr"], 4); err != nil || n != 5 {
		t.Errorf("Incr = %d, %v", n, err)
	}
	if err := c.CompareAndSwap(keys["cas"], []byte("9"), 0, 0, cas.CAS); err != nil {
		t.Error(err)
	}
	if a.count("NOT_PRIMARY") != 1 {
		t.Errorf("%d NOT_PRIMARY answers, want 1", a.count("NOT_PRIMARY"))
	}

	// Another move, now hit by a write that must not be repeated: it is
	// retried because NOT_PRIMARY means the node applied nothing.
	fc.movePrimary(fakeVnode(keys["incr"], tab.DivBits), fc.nodes[2].id)
	if n, err := c.Incr(keys["incr"], 1); err != nil || n != 6 {
		t.Errorf("Incr after a second move = %d, %v", n, err)
	}
	if v, _ := fc.value(keys["incr"]); v != "6" {
		t.Errorf("incr applied to %q, want 6 (exactly once)", v)
	}
	fc.movePrimary(fakeVnode(keys["append"], tab.DivBits), fc.nodes[2].id)
	if err := c.Append(keys["append"], []byte("z")); err != nil {
		t.Error(err)
	}
	if v, _ := fc.value(keys["append"]); v != "1z" {
		t.Errorf("append applied: %q, want 1z", v)
	}
}

func TestClusterNotPrimaryWithoutNewerTableFollowsTheNode(t *testing.T) {
	fc := newFakeCluster(t, 3, 4, 2)
	c := newTestCluster(t, fc, nil)
	a, b := fc.nodes[0], fc.nodes[1]
	k := fc.keyOn(a.id, "hint:")
	old := fc.currentTable()
	fc.movePrimary(fakeVnode(k, old.DivBits), b.id)
	// Every node still dumps the old table: only a's NOT_PRIMARY line
	// names the new primary.
	for _, fn := range fc.nodes {
		fn.set(func(fn *fakeNode) { fn.dumpView = old })
	}
	if err := c.Set(k, []byte("v"), 0, 0); err != nil {
		t.Fatal(err)
	}
	if b.servedKey(k) != 1 || a.servedKey(k) != 0 {
		t.Errorf("served by b %d, a %d times", b.servedKey(k), a.servedKey(k))
	}
	if c.TableVersion() != 1 {
		t.Errorf("table version %d: no node had a newer table", c.TableVersion())
	}
}

func TestClusterNotPrimaryGivesUp(t *testing.T) {
	fc := newFakeCluster(t, 2, 2, 1)
	c := newTestCluster(t, fc, func(o *ClusterOptions) { o.MaxRetries = 2 })
	a := fc.nodes[0]
	k := fc.keyOn(a.id, "stuck:")
	// a believes in a table where the other node is primary; every dump
	// says a is: the client can never satisfy a.
	view := fc.currentTable()
	view.Vnodes[fakeVnode(k, view.DivBits)].Nodes = []string{fc.nodes[1].id}
	view.Version = 1
	a.set(func(fn *fakeNode) { fn.view = view; fn.dumpView = fc.currentTable() })
	fc.nodes[1].set(func(fn *fakeNode) { fn.view = fc.currentTable() })
	err := c.Set(k, []byte("v"), 0, 0)
	if !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("Set = %v, want ErrNotPrimary", err)
	}
	// Attempts: a, then b on the node's word (b refuses: its table says a),
	// then a again.
	if got := fc.total("NOT_PRIMARY"); got != 3 {
		t.Errorf("%d NOT_PRIMARY answers, want 3 (1 + MaxRetries)", got)
	}
	// The refusals named version 1, which the client has: no fetch.
	if got := fc.total("routingdump"); got != 1 {
		t.Errorf("%d table fetches, want only the first", got)
	}
}

func TestClusterPollsTableVersion(t *testing.T) {
	fc := newFakeCluster(t, 3, 4, 2)
	c := newTestCluster(t, fc, func(o *ClusterOptions) { o.RefreshInterval = 2 * time.Millisecond })
	k := fc.keyOn(fc.nodes[0].id, "poll:")
	want := fc.movePrimary(fakeVnode(k, 4), fc.nodes[2].id)
	testutil.Eventually(t, 5*time.Second, "the poller to pick up the new table", func() error {
		if v := c.TableVersion(); v != want {
			return fmt.Errorf("table version %d, want %d", v, want)
		}
		return nil
	})
	if err := c.Set(k, []byte("v"), 0, 0); err != nil {
		t.Fatal(err)
	}
	if n := fc.total("NOT_PRIMARY"); n != 0 || fc.nodes[2].servedKey(k) != 1 {
		t.Errorf("%d NOT_PRIMARY, new primary served %d", n, fc.nodes[2].servedKey(k))
	}
	if fc.total("stat") == 0 {
		t.Error("no stat polls")
	}
}

func TestClusterRefreshIsSingleFlight(t *testing.T) {
	fc := newFakeCluster(t, 3, 5, 2)
	c := newTestCluster(t, fc, func(o *ClusterOptions) { o.PoolSize = 32 })
	var keys []string
	for i := range 200 {
		keys = append(keys, "sf:"+strconv.Itoa(i))
	}
	fc.commit(func(t *RoutingTable) {
		for v := range t.Vnodes {
			slices.Reverse(t.Vnodes[v].Nodes)
		}
	})
	dumps := fc.total("routingdump")
	var wg sync.WaitGroup
	errs := make(chan error, len(keys))
	for g := range 32 {
		wg.Go(func() {
			for i := g; i < len(keys); i += 32 {
				if err := c.Set(keys[i], []byte("v"), 0, 0); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := fc.total("routingdump") - dumps; n != 1 {
		t.Errorf("%d table fetches for one table change, want 1", n)
	}
}

func TestClusterNodeDies(t *testing.T) {
	fc := newFakeCluster(t, 3, 4, 2)
	c := newTestCluster(t, fc, func(o *ClusterOptions) { o.MaxRetries = 2 })
	a := fc.nodes[0]
	kGet, kIncr := fc.keyOn(a.id, "die:"), fc.keyOn(a.id, "count:")
	for _, k := range []string{kGet, kIncr} {
		if err := c.Set(k, []byte("1"), 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	a.kill()

	// incr is never sent to a dead node (its pooled connection is checked
	// first), so the error does not claim it may have been applied.
	if _, err := c.Incr(kIncr, 1); err == nil || errors.Is(err, ErrMaybeApplied) {
		t.Errorf("Incr at a dead primary: %v", err)
	}
	// Before failover the key's primary is gone: retried, then an error
	// naming the node.
	_, err := c.Get(kGet)
	if err == nil || errors.Is(err, ErrMaybeApplied) || !strings.Contains(err.Error(), a.id) {
		t.Fatalf("Get from a dead primary: %v", err)
	}

	// Failover: a leaves the table, its vnodes move to the survivors.
	fc.commit(func(t *RoutingTable) {
		t.Nodes = slices.DeleteFunc(t.Nodes, func(n RoutingNode) bool { return n.ID == a.id })
		for v := range t.Vnodes {
			t.Vnodes[v].Nodes = slices.DeleteFunc(t.Vnodes[v].Nodes, func(id string) bool { return id == a.id })
		}
	})
	it, err := c.Get(kGet)
	if err != nil || string(it.Value) != "1" {
		t.Fatalf("Get after failover: %+v, %v", it, err)
	}
	if c.TableVersion() != 2 {
		t.Errorf("table version %d, want 2", c.TableVersion())
	}
	if n, err := c.Incr(kIncr, 1); err != nil || n != 2 {
		t.Errorf("Incr after failover = %d, %v", n, err)
	}
	c.mu.Lock()
	_, kept := c.pools[a.id]
	c.mu.Unlock()
	if kept {
		t.Error("the pool of the node that left is still open")
	}
}

func TestClusterWriteLostAfterSend(t *testing.T) {
	fc := newFakeCluster(t, 2, 3, 2)
	c := newTestCluster(t, fc, nil)
	a := fc.nodes[0]
	kIncr, kSet, kAdd := fc.keyOn(a.id, "i:"), fc.keyOn(a.id, "s:"), fc.keyOn(a.id, "a:")
	if err := c.Set(kIncr, []byte("10"), 0, 0); err != nil {
		t.Fatal(err)
	}
	dropped := map[string]bool{}
	a.set(func(fn *fakeNode) {
		fn.dropAfter = func(cmd, key string) bool {
			if key == kSet && dropped[cmd] { // lose only the first set's reply
				return false
			}
			dropped[cmd] = true
			return true
		}
	})

	_, err := c.Incr(kIncr, 1)
	if !errors.Is(err, ErrMaybeApplied) {
		t.Errorf("Incr with a lost reply: %v, want ErrMaybeApplied", err)
	}
	if v, _ := fc.value(kIncr); v != "11" || a.count("incr") != 1 {
		t.Errorf("incr applied: %q after %d sends, want 11 after 1", v, a.count("incr"))
	}
	if err := c.Add(kAdd, []byte("x"), 0, 0); !errors.Is(err, ErrMaybeApplied) || a.count("add") != 1 {
		t.Errorf("Add with a lost reply: %v after %d sends", err, a.count("add"))
	}
	// set is safe to repeat: retried.
	if err := c.Set(kSet, []byte("v"), 0, 0); err != nil {
		t.Errorf("Set with a lost reply: %v", err)
	}
	if a.servedKey(kSet) != 2 {
		t.Errorf("set sent %d times, want 2", a.servedKey(kSet))
	}
}

func TestClusterUnavailable(t *testing.T) {
	fc := newFakeCluster(t, 2, 3, 2)
	c := newTestCluster(t, fc, nil)
	a := fc.nodes[0]
	k := fc.keyOn(a.id, "u:")
	refusals := 0
	a.set(func(fn *fakeNode) {
		fn.unavailable = func(cmd, key string) bool {
			if cmd == "set" && refusals < 2 {
				refusals++
				return true
			}
			return cmd == "add"
		}
	})
	if err := c.Set(k, []byte("v"), 0, 0); err != nil {
		t.Errorf("Set after two unavailable answers: %v", err)
	}
	err := c.Add(fc.keyOn(a.id, "u2:"), []byte("v"), 0, 0)
	if !errors.Is(err, ErrUnavailable) || a.count("add") != 1 {
		t.Errorf("Add: %v after %d sends, want ErrUnavailable after 1", err, a.count("add"))
	}
}

func TestClusterReadFromSecondaries(t *testing.T) {
	fc := newFakeCluster(t, 3, 3, 3)
	lagging := fc.nodes[2].id
	fc.commit(func(t *RoutingTable) {
		for v := range t.Vnodes {
			t.Vnodes[v].Lagging = []string{lagging}
		}
	})
	c := newTestCluster(t, fc, func(o *ClusterOptions) { o.ReadFromSecondaries = true })
	k := fc.keyOn(fc.nodes[0].id, "rs:")
	if err := c.Set(k, []byte("v"), 0, 0); err != nil {
		t.Fatal(err)
	}
	for range 40 {
		if it, err := c.Get(k); err != nil || string(it.Value) != "v" {
			t.Fatalf("Get = %+v, %v", it, err)
		}
	}
	tab := c.Table()
	v := fakeVnode(k, tab.DivBits)
	reads := map[string]int{}
	for _, fn := range fc.nodes {
		reads[fn.id] = fn.servedKey(k)
	}
	reads[tab.Primary(v)]-- // the set
	var readers []string
	for _, id := range slices.Sorted(maps.Keys(reads)) {
		if reads[id] > 0 {
			readers = append(readers, id)
		}
	}
	if len(readers) != 2 || reads[lagging] != 0 {
		t.Errorf("reads per node %v: want both in-sync replicas and not the lagging %s", reads, lagging)
	}
	if fc.total("NOT_PRIMARY") != 0 {
		t.Errorf("%d NOT_PRIMARY answers", fc.total("NOT_PRIMARY"))
	}
	// Gets stays at the primary; GetMulti spreads too.
	before := fc.node(tab.Primary(v)).servedKey(k)
	for range 5 {
		if _, err := c.Gets(k); err != nil {
			t.Fatal(err)
		}
	}
	if got := fc.node(tab.Primary(v)).servedKey(k) - before; got != 5 {
		t.Errorf("primary served %d of 5 gets", got)
	}
	if got, err := c.GetMulti(k); err != nil || string(got[k].Value) != "v" {
		t.Errorf("GetMulti = %v, %v", got, err)
	}
}

func TestClusterConcurrentUseKeepsThePoolSmall(t *testing.T) {
	fc := newFakeCluster(t, 3, 4, 2)
	c := newTestCluster(t, fc, func(o *ClusterOptions) { o.PoolSize = 2 })
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for g := range 50 {
		wg.Go(func() {
			for i := range 20 {
				k := fmt.Sprintf("c:%d:%d", g, i)
				if err := c.Set(k, []byte(k), 0, 0); err != nil {
					errs <- err
					return
				}
				if it, err := c.Get(k); err != nil || string(it.Value) != k {
					errs <- fmt.Errorf("Get(%s) = %q, %v", k, it.Value, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, fn := range fc.nodes {
		if n := fn.count("conn_option"); n > 2 {
			t.Errorf("%s got %d connections, PoolSize is 2", fn.id, n)
		}
	}
}

func TestClusterLostVnode(t *testing.T) {
	fc := newFakeCluster(t, 2, 2, 2)
	k := "lost"
	v := fakeVnode(k, 2)
	fc.commit(func(t *RoutingTable) { t.Vnodes[v].Nodes = nil })
	c := newTestCluster(t, fc, func(o *ClusterOptions) { o.MaxRetries = 1 })
	if _, err := c.Get(k); !errors.Is(err, ErrVnodeLost) {
		t.Errorf("Get of a lost vnode: %v", err)
	}
	if _, err := c.GetMulti(k); !errors.Is(err, ErrVnodeLost) {
		t.Errorf("GetMulti of a lost vnode: %v", err)
	}
}

func TestClusterClose(t *testing.T) {
	fc := newFakeCluster(t, 2, 2, 2)
	c := newTestCluster(t, fc, func(o *ClusterOptions) { o.RefreshInterval = time.Millisecond })
	if err := c.Set("k", []byte("v"), 0, 0); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c.Close()
	if _, err := c.Get("k"); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if _, err := c.GetMulti("k"); !errors.Is(err, ErrClosed) {
		t.Errorf("GetMulti after Close: %v", err)
	}
}

func TestNewClusterSeeds(t *testing.T) {
	fc := newFakeCluster(t, 2, 2, 2)
	dead := newFakeCluster(t, 1, 1, 1).nodes[0]
	dead.kill()
	o := DefaultClusterOptions()
	o.RefreshInterval = 0
	o.Timeout = 2 * time.Second

	c, err := NewCluster([]string{dead.id, NormalizeAddr(fc.nodes[1].id)}, o)
	if err != nil {
		t.Fatalf("second seed answers: %v", err)
	}
	c.Close()
	if _, err := NewCluster([]string{dead.id}, o); !errors.Is(err, ErrNoNode) {
		t.Errorf("only a dead seed: %v", err)
	}
	if _, err := NewCluster(nil, o); !errors.Is(err, ErrNoNode) {
		t.Errorf("no seed: %v", err)
	}
	// A table without nodes (a node not in a cluster yet) is refused.
	fc.commit(func(t *RoutingTable) {
		t.Nodes = nil
		for v := range t.Vnodes {
			t.Vnodes[v].Nodes = nil
		}
	})
	if _, err := NewCluster(fc.seeds(), o); !errors.Is(err, ErrNoNode) || !errors.Is(err, ErrBadTable) {
		t.Errorf("empty table: %v", err)
	}
}

func TestConnAdmin(t *testing.T) {
	fc := newFakeCluster(t, 3, 4, 2)
	cn, err := Dial(fc.nodes[0].id, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	tab, err := cn.RoutingTable()
	if err != nil || tab.Version != 1 || len(tab.Vnodes) != 16 {
		t.Fatalf("RoutingTable = %+v, %v", tab, err)
	}
	ms, err := cn.Members()
	if err != nil || len(ms) != 3 || ms[0].Status != "alive" || ms[0].Tags["role"] != "node" || ms[0].Addr != NormalizeAddr(fc.nodes[0].id) {
		t.Errorf("Members = %+v, %v", ms, err)
	}
	ki, err := cn.KeyInfo("foo")
	v := fakeVnode("foo", 4)
	if err != nil || ki.Vnode != v || ki.Primary != tab.Primary(v) || len(ki.Secondaries) != 1 ||
		ki.Secondaries[0] != tab.Vnodes[v].Nodes[1] || len(ki.InSync) != 2 {
		t.Errorf("KeyInfo = %+v, %v", ki, err)
	}
	// A plain connection is not in direct mode: the fake forwards.
	if err := cn.Set("anything", []byte("v"), 0, 0); err != nil {
		t.Error(err)
	}
	if err := cn.ConnOption("direct", true); err != nil {
		t.Fatal(err)
	}
	k := fc.keyOn(fc.nodes[1].id, "x:")
	if err := cn.Set(k, []byte("v"), 0, 0); !errors.Is(err, ErrNotPrimary) {
		t.Errorf("direct mode, foreign key: %v", err)
	}
	if err := cn.ConnOption("bogus", true); err == nil {
		t.Error("conn_option bogus accepted")
	}
}

func TestTargetSpreadsOverInSyncReplicas(t *testing.T) {
	tab := &RoutingTable{DivBits: 1, Vnodes: []VnodeReplicas{
		{Nodes: []string{"a_1", "b_1", "c_1"}, Lagging: []string{"c_1"}},
		{Nodes: []string{"a_1", "b_1"}, Lagging: []string{"a_1", "b_1"}},
	}}
	spread := &Cluster{opts: ClusterOptions{ReadFromSecondaries: true}}
	seen := map[string]int{}
	for range 10 {
		seen[spread.target(tab, 0, true)]++
	}
	if seen["a_1"] != 5 || seen["b_1"] != 5 || seen["c_1"] != 0 {
		t.Errorf("reads of vnode 0 went to %v", seen)
	}
	if got := spread.target(tab, 0, false); got != "a_1" {
		t.Errorf("a write went to %s", got)
	}
	if got := spread.target(tab, 1, true); got != "a_1" {
		t.Errorf("with every replica lagging a read went to %s, want the primary", got)
	}
	if got := (&Cluster{}).target(tab, 0, true); got != "a_1" {
		t.Errorf("without ReadFromSecondaries a read went to %s", got)
	}
}
