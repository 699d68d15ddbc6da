package replication

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/kv"
	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/routing"
	"github.com/sonae-kv/sonae/internal/storage"
	"github.com/sonae-kv/sonae/internal/testutil"
)

// TestCatchUpFromLog: writes made while a secondary is down make it
// lagging; when it comes back, its primary's Run replays the missed
// changes from the log, marks it in sync, and from then on every write
// reaches it before it is acknowledged.
func TestCatchUpFromLog(t *testing.T) {
	c := threeNodes(t)
	a, b := c.node(nA), c.node(nB)
	keys := c.keysIn(0, 6)
	for i, k := range keys[:3] {
		mustSet(t, c.view(nA), k, fmt.Sprintf("old-%d", i))
	}
	sameVnode(t, a, b, 0)
	seqBefore := b.eng.LastSeq(0)

	b.stop()
	mustSet(t, c.view(nC), keys[0], "overwritten")
	if _, err := c.view(nA).Delete(meta.DefaultNamespace, keys[1]); err != nil {
		t.Fatal(err)
	}
	for i, k := range keys[3:] {
		mustSet(t, c.view(nA), k, fmt.Sprintf("new-%d", i))
	}
	if !isLagging(c.st(), 0, nB) {
		t.Fatalf("b not lagging after writes without it")
	}
	if b.eng.LastSeq(0) != seqBefore {
		t.Fatalf("b changed while down")
	}

	b.start()
	c.waitInSync(0, nB)
	sameVnode(t, a, b, 0)
	checkUsage(t, b)
	if b.eng.FirstSeq(0) > seqBefore+1 {
		t.Errorf("b's log starts at %d: it got a full copy, not the log (its seq was %d)", b.eng.FirstSeq(0), seqBefore)
	}

	// In sync again: the next write is on b when it returns.
	mustSet(t, c.view(nA), keys[2], "synchronous")
	rec, err := b.eng.Get(0, meta.DefaultNamespace, keys[2])
	if err != nil || string(rec.Value) != "synchronous" {
		t.Fatalf("b = %q, %v right after the write", rec.Value, err)
	}
	sameVnode(t, a, b, 0)
}

// TestCatchUpFullCopy: when the primary's log no longer reaches back to
// the lagging replica's position, the replica gets a full copy of the
// vnode: records it should not have anymore go, its counters stay right,
// and its log continues from the primary's.
func TestCatchUpFullCopy(t *testing.T) {
	c := threeNodes(t)
	a, b := c.node(nA), c.node(nB)
	keys := c.keysIn(0, 6)
	for i, k := range keys[:4] {
		mustSet(t, c.view(nA), k, fmt.Sprintf("old-%d", i))
	}
	b.stop()
	if _, err := c.view(nA).Delete(meta.DefaultNamespace, keys[0]); err != nil {
		t.Fatal(err)
	}
	mustSet(t, c.view(nA), keys[1], "overwritten")
	mustSet(t, c.view(nA), keys[4], "new")
	// A record with flags and an exptime, in another namespace.
	if err := a.store.CreateNamespace("users"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.view(nA).Store(kv.StoreRequest{Op: kv.OpSet, Namespace: "users", Key: keys[5], Value: []byte("exp"), Flags: 9, Exptime: 3600}); err != nil {
		t.Fatal(err)
	}
	if err := a.eng.TrimLog(0, a.eng.LastSeq(0)+1); err != nil {
		t.Fatal(err)
	}
	if a.eng.FirstSeq(0) <= b.eng.LastSeq(0)+1 {
		t.Fatalf("trim did not cut the log past b's position")
	}
	// Another write after the trim: the copy is followed by the log.
	mustSet(t, c.view(nA), keys[2], "after trim")

	b.start()
	c.waitInSync(0, nB)
	sameVnode(t, a, b, 0)
	checkUsage(t, b)
	if _, err := b.eng.Get(0, meta.DefaultNamespace, keys[0]); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a key deleted on the primary survived the full copy: %v", err)
	}
	if b.eng.FirstSeq(0) <= 1 {
		t.Errorf("b's log starts at %d: no full copy happened", b.eng.FirstSeq(0))
	}
	mustSet(t, c.view(nB), keys[3], "synchronous")
	sameVnode(t, a, b, 0)
}

// TestDivergedReplica: a replica that holds a change its primary never
// had (it took writes as a deposed primary) is rebuilt by a full copy.
func TestDivergedReplica(t *testing.T) {
	c := threeNodes(t)
	a, b := c.node(nA), c.node(nB)
	keys := c.keysIn(0, 4)
	mustSet(t, c.view(nA), keys[0], "shared")
	b.stop()
	// b's own change at the next seq, which a will use for another one.
	bad := storage.Change{Vnode: 0, Seq: b.eng.LastSeq(0) + 1, Op: storage.OpPut, Namespace: meta.DefaultNamespace,
		Key: []byte("diverged"), Record: storage.Record{Value: []byte("only on b"), Version: storage.Version{Time: 1}}}
	if err := b.eng.Apply(&bad); err != nil {
		t.Fatal(err)
	}
	mustSet(t, c.view(nA), keys[1], "a's change")
	mustSet(t, c.view(nA), keys[2], "a's next change")

	b.start()
	c.waitInSync(0, nB)
	sameVnode(t, a, b, 0)
	if _, err := b.eng.Get(0, meta.DefaultNamespace, []byte("diverged")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the diverged record survived: %v", err)
	}
	if b.eng.FirstSeq(0) <= 1 {
		t.Errorf("b's log starts at %d: no full copy happened", b.eng.FirstSeq(0))
	}
	checkUsage(t, b)
}

// TestReadBarrier: a read on the primary does not return while a write it
// may see is still waiting for a secondary's ack; once the ack comes, the
// write returns and the read returns the new value, which the secondary
// then holds.
func TestReadBarrier(t *testing.T) {
	c := threeNodes(t, withTimeout(20*time.Second))
	a, b := c.node(nA), c.node(nB)
	key := c.keysIn(0, 1)[0]
	mustSet(t, c.view(nA), key, "v1")
	seq := a.eng.LastSeq(0)

	b.gate.pause()
	writeDone := make(chan error, 1)
	go func() { writeDone <- set(c.view(nA), key, "v2") }()
	// b applied the change (its ack is held): the primary's hook has
	// seen it, the write waits for the ack.
	testutil.Eventually(t, 5*time.Second, "the change to reach b", func() error {
		if b.eng.LastSeq(0) <= seq {
			return errNotYet
		}
		return nil
	})
	type readResult struct {
		v        string
		ok       bool
		err      error
		replSeq  uint64 // b's LastSeq when the read returned
		returned time.Time
	}
	readDone := make(chan readResult, 1)
	go func() {
		it, ok, err := c.view(nA).Get(meta.DefaultNamespace, key)
		readDone <- readResult{string(it.Value), ok, err, b.eng.LastSeq(0), time.Now()}
	}()
	select {
	case r := <-readDone:
		t.Fatalf("the read returned %q while the write waited for its ack", r.v)
	case err := <-writeDone:
		t.Fatalf("the write returned (%v) without the secondary's ack", err)
	case <-time.After(300 * time.Millisecond):
	}
	b.gate.resume()
	if err := <-writeDone; err != nil {
		t.Fatalf("write: %v", err)
	}
	r := <-readDone
	if r.err != nil || !r.ok || r.v != "v2" {
		t.Fatalf("read = %q %v %v", r.v, r.ok, r.err)
	}
	if r.replSeq < seq+1 {
		t.Fatalf("the read returned when b was at seq %d, before the write (seq %d)", r.replSeq, seq+1)
	}
	if isLagging(c.st(), 0, nB) {
		t.Fatalf("b was demoted although it acknowledged")
	}
}

// stallEngine holds Apply of one key, after the engine applied it, until
// released: the window between the engine applying a change and the
// Replicate hook seeing it.
type stallEngine struct {
	storage.Engine
	mu      sync.Mutex
	key     []byte
	applied chan struct{}
	release chan struct{}
}

func (e *stallEngine) Apply(c *storage.Change) error {
	err := e.Engine.Apply(c)
	e.mu.Lock()
	hold := e.key != nil && bytes.Equal(c.Key, e.key)
	if hold {
		e.key = nil
	}
	e.mu.Unlock()
	if hold {
		close(e.applied)
		<-e.release
	}
	return err
}

// TestReadBarrierApplyWindow: a read on the primary must not return a
// value whose change the engine applied but the Replicate hook has not
// seen yet (nothing of it is replicated; a failover would lose it).
func TestReadBarrierApplyWindow(t *testing.T) {
	c := newCluster(t, []routing.NodeID{nA, nB}, withTimeout(20*time.Second))
	a := c.node(nA)
	se := &stallEngine{Engine: a.eng, applied: make(chan struct{}), release: make(chan struct{})}
	a.eng = se
	c.layout([][]routing.NodeID{{nA, nB}, {nA, nB}, {nA, nB}, {nA, nB}}, nil)
	key := c.keysIn(0, 1)[0]
	mustSet(t, c.view(nA), key, "v1")

	se.mu.Lock()
	se.key = key
	se.mu.Unlock()
	writeDone := make(chan error, 1)
	go func() { writeDone <- set(c.view(nA), key, "v2") }()
	<-se.applied
	readDone := make(chan string, 1)
	go func() {
		it, _, _ := c.view(nA).Get(meta.DefaultNamespace, key)
		readDone <- string(it.Value)
	}()
	select {
	case v := <-readDone:
		if v == "v2" {
			close(se.release)
			<-writeDone
			t.Fatalf("the read returned v2 before its change reached the Replicate hook")
		}
	case <-time.After(300 * time.Millisecond):
	}
	close(se.release)
	if err := <-writeDone; err != nil {
		t.Fatal(err)
	}
	<-readDone
}

// TestSlowSecondaryDemoted: a secondary that does not ack within the
// replication timeout is demoted, and the write succeeds; Run brings it
// back once it answers again.
func TestSlowSecondaryDemoted(t *testing.T) {
	c := threeNodes(t, withTimeout(200*time.Millisecond))
	b := c.node(nB)
	key := c.keysIn(0, 1)[0]
	b.gate.pause()
	start := time.Now()
	mustSet(t, c.view(nA), key, "v")
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("the write returned after %s, before the replication timeout", d)
	}
	if !isLagging(c.st(), 0, nB) {
		t.Fatalf("b not demoted")
	}
	b.gate.resume()
	c.waitInSync(0, nB)
	sameVnode(t, c.node(nA), b, 0)
}

// TestCloseWithRunning: Close stops a replicator whose Run is still going
// (its context not canceled) while a sync waits on an unresponsive
// replica.
func TestCloseWithRunning(t *testing.T) {
	c := newCluster(t, []routing.NodeID{nA}, withTimeout(5*time.Second))
	// b is a listener that accepts and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted sync.WaitGroup
	accepted.Add(1)
	var once sync.Once
	go func() {
		var conns []net.Conn
		defer func() {
			for _, nc := range conns {
				nc.Close()
			}
		}()
		for {
			nc, err := silent.Accept()
			if err != nil {
				return
			}
			conns = append(conns, nc)
			once.Do(accepted.Done)
		}
	}()
	t.Cleanup(func() { silent.Close() })
	st := c.state([][]routing.NodeID{{nA, nB}, {nA}, {nA}, {nA}}, map[int][]routing.NodeID{0: {nB}})
	st.Members = append(st.Members, meta.Member{ID: nB, Addr: silent.Addr().String()})
	st.Table.Nodes = append(st.Table.Nodes, routing.NodeFromID(nB))
	c.meta.restore(t, st)
	a := c.node(nA)
	a.start()
	accepted.Wait() // the sync asked b for its status
	closed := make(chan struct{})
	go func() {
		a.rep.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		a.cancel() // unblock it for the cleanup
		<-closed
		t.Fatalf("Close did not return while Run's context was alive")
	}
}

// TestHookUninitialized: writes on a node without metadata are local and
// count as settled (a single node before the cluster exists).
func TestHookUninitialized(t *testing.T) {
	c := newCluster(t, []routing.NodeID{nA})
	a := c.node(nA)
	a.start()
	if _, err := a.store.Store(kv.StoreRequest{Op: kv.OpSet, Namespace: meta.DefaultNamespace, Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Fatalf("local write before init: %v", err)
	}
	vn := int(a.store.Vnode([]byte("k")))
	if err := a.rep.barrier(vn); err != nil {
		t.Fatalf("barrier: %v", err)
	}
}

// TestReplicationOrder: many concurrent writers to one vnode; the
// secondary ends with exactly the primary's records and seq, having
// applied every change in order (a gap would have demoted it).
func TestReplicationOrder(t *testing.T) {
	c := threeNodes(t)
	keys := c.keysIn(0, 8)
	var wg sync.WaitGroup
	errs := make(chan error, 8*50)
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				via := []routing.NodeID{nA, nB, nC}[i%3]
				if err := set(c.view(via), keys[(w+i)%len(keys)], fmt.Sprintf("w%d-%d", w, i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("write: %v", err)
	}
	if isLagging(c.st(), 0, nB) {
		t.Fatalf("b was demoted under concurrent writes")
	}
	if got := c.node(nA).eng.LastSeq(0); got != 400 {
		t.Fatalf("primary seq %d, want 400", got)
	}
	sameVnode(t, c.node(nA), c.node(nB), 0)
}

// TestNewReplicaUnderLoad: a replica added to a vnode with data (lagging,
// empty) is brought in sync by the primary's Run while writers keep
// writing; afterwards it holds exactly the primary's data, and every
// write acknowledged after it turned in sync is on it.
func TestNewReplicaUnderLoad(t *testing.T) {
	c := newCluster(t, []routing.NodeID{nA, nB})
	c.layout([][]routing.NodeID{{nA}, {nA}, {nA}, {nA}}, nil)
	a, b := c.node(nA), c.node(nB)
	keys := c.keysIn(0, 20)
	for i, k := range keys {
		mustSet(t, c.view(nA), k, fmt.Sprintf("initial-%d", i))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes sync.Map
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := keys[(w*7+i)%len(keys)]
				if err := set(c.view(nB), k, fmt.Sprintf("w%d-%d", w, i)); err != nil {
					t.Errorf("write: %v", err)
					return
				}
				writes.Store(w, i)
			}
		})
	}
	if err := c.meta.apply(meta.Command{Op: meta.OpAddReplica, Vnode: 0, Node: nB, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	c.waitInSync(0, nB)
	// Keep writing a little while in sync.
	seq := a.eng.LastSeq(0)
	testutil.Eventually(t, 10*time.Second, "more writes", func() error {
		if a.eng.LastSeq(0) < seq+50 {
			return errNotYet
		}
		return nil
	})
	close(stop)
	wg.Wait()
	if isLagging(c.st(), 0, nB) {
		t.Fatalf("b fell back to lagging")
	}
	sameVnode(t, a, b, 0)
	checkUsage(t, b)
}

// TestReadLease: a primary that has not heard from the Raft leader for
// longer than the read lease refuses reads and writes, also forwarded
// ones; an in-sync secondary still answers read_secondary reads.
func TestReadLease(t *testing.T) {
	c := threeNodes(t)
	key := c.keysIn(0, 1)[0]
	mustSet(t, c.view(nA), key, "v")
	c.node(nA).contact.Store(int64(2 * time.Hour)) // the lease is an hour
	for _, via := range []routing.NodeID{nA, nC} {
		if _, _, err := c.view(via).Get(meta.DefaultNamespace, key); !errors.Is(err, ErrUnavailable) {
			t.Errorf("read via %s: %v, want ErrUnavailable", via, err)
		}
		if err := set(c.view(via), key, "w"); !errors.Is(err, ErrUnavailable) {
			t.Errorf("write via %s: %v, want ErrUnavailable", via, err)
		}
	}
	if v, ok := mustGet(t, c.node(nB).rep.View(false, true), key); !ok || v != "v" {
		t.Errorf("read_secondary on b = %q %v", v, ok)
	}
	c.node(nA).contact.Store(0)
	if v, ok := mustGet(t, c.view(nC), key); !ok || v != "v" {
		t.Errorf("read after contact = %q %v", v, ok)
	}
}

// TestUnconfirmedWriteResolved: when a secondary does not ack and cannot
// be demoted (no Raft), the write fails with ErrUnavailable (it stays
// applied on the primary) and the vnode stays unsettled: reads wait, then
// resolve the secondary's state once Propose works again, demote it and
// answer.
func TestUnconfirmedWriteResolved(t *testing.T) {
	c := threeNodes(t, withTimeout(200*time.Millisecond))
	a, b := c.node(nA), c.node(nB)
	key := c.keysIn(0, 1)[0]
	mustSet(t, c.view(nA), key, "v1")
	b.stop()
	a.failPropose.Store(true)
	err := set(c.view(nA), key, "v2")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write without ack nor demotion: %v, want ErrUnavailable", err)
	}
	if isLagging(c.st(), 0, nB) {
		t.Fatalf("b demoted although Propose fails")
	}
	// While Propose fails, reads cannot settle the vnode.
	if _, _, err := c.view(nA).Get(meta.DefaultNamespace, key); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("read on an unsettled vnode without Raft: %v, want ErrUnavailable", err)
	}
	a.failPropose.Store(false)
	v, ok := mustGet(t, c.view(nA), key)
	if !ok || v != "v2" {
		t.Fatalf("read after resolve = %q %v; the unconfirmed write stays applied", v, ok)
	}
	if !isLagging(c.st(), 0, nB) {
		t.Fatalf("resolve did not demote the unreachable secondary")
	}
}

// TestPromotedPrimaryReadBarrier: a secondary promoted after its primary
// failed may hold a change the other in-sync secondary never got (the old
// primary died before the acks). Before it serves that change to a
// reader, the change must be on every in-sync replica (or the lagging
// one demoted); otherwise the next failover loses a value a client read.
func TestPromotedPrimaryReadBarrier(t *testing.T) {
	c := newCluster(t, []routing.NodeID{nA, nB, nC})
	all := []routing.NodeID{nA, nB, nC}
	c.layout([][]routing.NodeID{all, all, all, all}, nil)
	a, b, cn := c.node(nA), c.node(nB), c.node(nC)
	key := c.keysIn(0, 1)[0]
	mustSet(t, c.view(nA), key, "v1")
	sameVnode(t, a, cn, 0)
	// a sent its next change to b, not yet to c, and died.
	rec, err := a.eng.Get(0, meta.DefaultNamespace, key)
	if err != nil {
		t.Fatal(err)
	}
	a.stop()
	rec.Value = []byte("v2")
	rec.Version.Time++
	rec.CAS = rec.Version.Time
	if err := b.store.ApplyReplicated(&storage.Change{Vnode: 0, Seq: a.eng.LastSeq(0) + 1, Op: storage.OpPut,
		Namespace: meta.DefaultNamespace, Key: key, Record: rec}); err != nil {
		t.Fatal(err)
	}
	// a is removed: b, the first in-sync secondary, takes over.
	if err := c.meta.apply(meta.Command{Op: meta.OpRemoveMember, Node: nA}); err != nil {
		t.Fatal(err)
	}
	if r := c.st().Table.Vnodes[0]; r.Primary() != nB || !c.st().InSync(0, nC) {
		t.Fatalf("vnode 0 = %+v, lagging %v", r, c.st().Lagging[0])
	}
	v, _ := mustGet(t, b.rep.View(true, false), key)
	if v == "v2" && c.st().InSync(0, nC) && cn.eng.LastSeq(0) < b.eng.LastSeq(0) {
		t.Fatalf("b served v2 while c, in sync, is at seq %d < %d: a failover to c loses it", cn.eng.LastSeq(0), b.eng.LastSeq(0))
	}
}

// TestCloseWhileRunStartsSyncs: the server stops a replicator by canceling
// Run's context and calling Close (internal/server cluster.close). Run may
// be starting a sync at that moment: its r.wg.Add(1) must not race with
// Close's r.wg.Wait(), and no sync may outlive Close. Run with -race.
func TestCloseWhileRunStartsSyncs(t *testing.T) {
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := gone.Addr().String()
	gone.Close() // dials to b are refused: every sync fails at once
	for i := range 50 {
		c := newCluster(t, []routing.NodeID{nA}, quiet)
		c.divBits = 6
		layout := make([][]routing.NodeID, 64)
		lagging := map[int][]routing.NodeID{}
		for v := range layout {
			layout[v] = []routing.NodeID{nA, nB}
			lagging[v] = []routing.NodeID{nB}
		}
		st := c.state(layout, lagging)
		st.Members = append(st.Members, meta.Member{ID: nB, Addr: deadAddr})
		st.Table.Nodes = append(st.Table.Nodes, routing.NodeFromID(nB))
		c.meta.restore(t, st)
		a := c.node(nA)
		a.start()
		// Let Run go through a few rounds of failing syncs (0-5ms).
		for start := time.Now(); time.Since(start) < time.Duration(i%10)*500*time.Microsecond; {
			runtime.Gosched()
		}
		// As internal/server's cluster.close: cancel, then Close.
		a.cancel()
		a.rep.Close()
		<-a.runDone
		a.ln.Close()
		a.up = false
	}
}

// TestMoveKeepsPrimary: a planned move makes its new node incoming: the
// primary streams the vnode to it and marks it caught up; from then on
// writes wait for its ack; after the cut-over the node that left the
// replica list drops its copy.
func TestMoveKeepsPrimary(t *testing.T) {
	c := threeNodes(t)
	a, b, cn := c.node(nA), c.node(nB), c.node(nC)
	keys := c.keysIn(0, 5)
	for i, k := range keys[:3] {
		mustSet(t, c.view(nC), k, fmt.Sprintf("v%d", i))
	}
	other := c.keysIn(1, 1)[0] // vnode 1, [b c]: b keeps it
	mustSet(t, c.view(nA), other, "stays")
	if err := c.meta.apply(meta.Command{Op: meta.OpPlanMove, Vnode: 0, Epoch: 1, Nodes: []routing.NodeID{nA, nC}}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, "c to catch up as incoming", func() error {
		if st := c.st(); !st.Ready(0, nC) {
			return fmt.Errorf("lagging %v", st.Lagging[0])
		}
		return nil
	})
	sameVnode(t, a, cn, 0)
	// Caught up: a write is on c when it returns.
	mustSet(t, c.view(nB), keys[3], "while moving")
	if rec, err := cn.eng.Get(0, meta.DefaultNamespace, keys[3]); err != nil || string(rec.Value) != "while moving" {
		t.Fatalf("incoming c = %q, %v right after the write", rec.Value, err)
	}
	sameVnode(t, a, b, 0)
	if err := c.meta.apply(meta.Command{Op: meta.OpCutOver, Vnode: 0, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	if r := c.st().Table.Vnodes[0]; r.Epoch != 1 || r.Primary() != nA || !r.Has(nC) || r.Has(nB) {
		t.Fatalf("vnode 0 after the cut-over: %+v", r)
	}
	mustSet(t, c.view(nB), keys[4], "after")
	sameVnode(t, a, cn, 0)
	testutil.Eventually(t, 10*time.Second, "b to drop its copy of vnode 0", func() error {
		if n := len(dump(t, b.eng, 0)); n != 0 {
			return fmt.Errorf("%d records left", n)
		}
		return nil
	})
	checkUsage(t, b)
	// b keeps the vnodes it still holds.
	if rec, err := b.eng.Get(1, meta.DefaultNamespace, other); err != nil || string(rec.Value) != "stays" {
		t.Errorf("b's vnode 1 record = %q, %v", rec.Value, err)
	}
}

// TestMoveNewPrimaryFenced: while a vnode is fenced for a cut-over to a
// new primary, its old primary holds commands back (it neither serves nor
// forwards them); once the cut-over commits they run on the new primary
// at the new epoch and replicate to the old one.
func TestMoveNewPrimaryFenced(t *testing.T) {
	c := threeNodes(t, withTimeout(10*time.Second))
	a, cn := c.node(nA), c.node(nC)
	keys := c.keysIn(0, 3)
	mustSet(t, c.view(nA), keys[0], "before")
	if err := c.meta.apply(meta.Command{Op: meta.OpPlanMove, Vnode: 0, Epoch: 1, Nodes: []routing.NodeID{nC, nA}}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, "c to catch up as incoming", func() error {
		if st := c.st(); !st.Ready(0, nC) {
			return fmt.Errorf("lagging %v", st.Lagging[0])
		}
		return nil
	})
	if err := c.meta.apply(meta.Command{Op: meta.OpFence, Vnode: 0, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	seq := a.eng.LastSeq(0)
	writeDone := make(chan error, 1)
	go func() { writeDone <- set(c.view(nB), keys[1], "during the fence") }()
	select {
	case err := <-writeDone:
		t.Fatalf("a write on a fenced vnode returned (%v) before the cut-over", err)
	case <-time.After(300 * time.Millisecond):
	}
	if a.eng.LastSeq(0) != seq {
		t.Fatalf("the fenced primary applied a write")
	}
	if err := c.meta.apply(meta.Command{Op: meta.OpCutOver, Vnode: 0, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	if r := c.st().Table.Vnodes[0]; r.Epoch != 2 || r.Primary() != nC {
		t.Fatalf("vnode 0 after the cut-over: %+v", r)
	}
	if err := <-writeDone; err != nil {
		t.Fatalf("the held write: %v", err)
	}
	sameVnode(t, cn, a, 0)
	if v, ok := mustGet(t, c.view(nA), keys[1]); !ok || v != "during the fence" {
		t.Fatalf("read back %q %v", v, ok)
	}
	// The old primary refuses to act as primary at the old epoch.
	var e enc
	ch := storage.Change{Vnode: 0, Seq: a.eng.LastSeq(0) + 1, Op: storage.OpPut, Namespace: meta.DefaultNamespace, Key: []byte("x"),
		Record: storage.Record{Value: []byte("x"), Version: storage.Version{Time: 1}}}
	e.change(1, &ch)
	d := callRaw(t, rawPeer(t, cn.addr), tReplicate, e.b)
	if err := decodeError(d); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("new primary took an epoch-1 frame: %v", err)
	}
}
