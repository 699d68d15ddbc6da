package kv_test

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/clock"
	"github.com/sonae-kv/sonae/internal/kv"
	"github.com/sonae-kv/sonae/internal/storage"
)

// openStore opens a Store over a new engine of kind k with testOptions
// changed by edit (may be nil).
func openStore(t *testing.T, k engineKind, clk clock.Clock, edit func(*kv.Options)) *kv.Store {
	t.Helper()
	eng := k.open(t, t.TempDir())
	t.Cleanup(func() { _ = eng.Close() })
	o := testOptions()
	if edit != nil {
		edit(&o)
	}
	s, err := kv.Open(eng, clk, o, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// recorder is a Replicate hook that keeps a copy of every change.
type recorder struct {
	mu      sync.Mutex
	changes []storage.Change
}

func (r *recorder) replicate(c *storage.Change) func() error {
	d := *c
	d.Key = bytes.Clone(c.Key)
	d.Record.Value = bytes.Clone(c.Record.Value)
	r.mu.Lock()
	r.changes = append(r.changes, d)
	r.mu.Unlock()
	return nil
}

// take returns the changes recorded since the last take.
func (r *recorder) take() []storage.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.changes
	r.changes = nil
	return out
}

// dumpVnodes renders the sequences and records of every vnode of s.
func dumpVnodes(t *testing.T, s *kv.Store) string {
	t.Helper()
	var b strings.Builder
	eng := s.Engine()
	for vn := range s.VnodeCount() {
		v := uint16(vn)
		fmt.Fprintf(&b, "vnode %d last=%d\n", v, eng.LastSeq(v))
		err := eng.ScanVnode(v, func(ns string, key []byte, r *storage.Record) error {
			fmt.Fprintf(&b, "  %s/%s %q flags=%d exptime=%d cas=%d version=%v\n",
				ns, key, r.Value, r.Flags, r.Exptime, r.CAS, r.Version)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// checkUsage fails unless the Store's live counters match a full scan of
// its engine.
func checkUsage(t *testing.T, what string, s *kv.Store) {
	t.Helper()
	u, err := s.Engine().Usage()
	if err != nil {
		t.Fatal(err)
	}
	if items, bytes := s.Usage(); items != u.Items || bytes != u.Bytes {
		t.Fatalf("%s: counters items=%d bytes=%d, engine holds items=%d bytes=%d", what, items, bytes, u.Items, u.Bytes)
	}
}

// checkSameUsage fails unless replica and primary count the same items
// and bytes.
func checkSameUsage(t *testing.T, replica, primary *kv.Store) {
	t.Helper()
	pi, pb := primary.Usage()
	if ri, rb := replica.Usage(); ri != pi || rb != pb {
		t.Fatalf("replica usage items=%d bytes=%d, primary items=%d bytes=%d", ri, rb, pi, pb)
	}
}

// primaryTraffic runs client commands of every kind on s: puts, deletes,
// arithmetic, touches, meta commands, and writes that expire at once.
func primaryTraffic(t *testing.T, s *kv.Store, clk *clock.Fake, round int) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	set := func(key, value string, exptime int64) {
		t.Helper()
		_, err := s.Store(kv.StoreRequest{Op: kv.OpSet, Namespace: kv.DefaultNamespace, Key: []byte(key), Value: []byte(value), Exptime: exptime})
		must(err)
	}
	for i := range 12 {
		set(fmt.Sprintf("k%d", i), fmt.Sprintf("v%d-%d", round, i), 0)
	}
	set("n", "10", 0)
	_, _, err := s.Arith(kv.DefaultNamespace, []byte("n"), 5, true)
	must(err)
	_, err = s.Delete(kv.DefaultNamespace, []byte("k3"))
	must(err)
	_, _, err = s.Touch(kv.DefaultNamespace, []byte("k4"), 1000)
	must(err)
	_, err = s.Store(kv.StoreRequest{Op: kv.OpAppend, Namespace: kv.DefaultNamespace, Key: []byte("k5"), Value: []byte("+")})
	must(err)
	_, _, err = s.MetaArith(kv.DefaultNamespace, []byte("m"), kv.ArithRequest{Delta: 1, Incr: true, Vivify: true, Initial: 7})
	must(err)
	set("k6", "gone", -1) // already expired: deletes k6
	_, err = s.DeleteCAS(kv.DefaultNamespace, []byte("k7"), 12345)
	must(err)
	clk.Advance(time.Second)
}

// TestApplyReplicated replays a primary's changes on a replica in order,
// twice (duplicates are ignored), then refuses a gap.
func TestApplyReplicated(t *testing.T) {
	for _, k := range engineKinds {
		t.Run(k.name, func(t *testing.T) {
			// The primary's clock is an hour ahead, so only Observe can move
			// the replica's versions past the ones it applies.
			clk := clock.NewFake(testStart.Add(time.Hour))
			rec := &recorder{}
			primary := openStore(t, k, clk, func(o *kv.Options) { o.Replicate = rec.replicate })
			replica := openStore(t, k, clock.NewFake(testStart), nil)

			primaryTraffic(t, primary, clk, 1)
			changes := rec.take()
			if len(changes) == 0 {
				t.Fatal("no change was replicated")
			}
			var maxVersion uint64
			for i := range changes {
				if err := replica.ApplyReplicated(&changes[i]); err != nil {
					t.Fatalf("change %d: %v", i, err)
				}
				maxVersion = max(maxVersion, changes[i].Record.Version.Time)
			}
			want := dumpVnodes(t, primary)
			if got := dumpVnodes(t, replica); got != want {
				t.Fatalf("replica:\n%s\nprimary:\n%s", got, want)
			}
			checkUsage(t, "replica", replica)
			checkSameUsage(t, replica, primary)
			if c := replica.Counters(); c.Writes != 0 || c.Deletes != 0 {
				t.Fatalf("replicated changes counted as client commands: %+v", c)
			}

			// Duplicates are ignored and change nothing.
			for i := range changes {
				if err := replica.ApplyReplicated(&changes[i]); err != nil {
					t.Fatalf("duplicate change %d: %v", i, err)
				}
			}
			if got := dumpVnodes(t, replica); got != want {
				t.Fatalf("after duplicates:\n%s\nwant:\n%s", got, want)
			}
			checkUsage(t, "replica after duplicates", replica)

			// A gap is refused and writes nothing.
			primaryTraffic(t, primary, clk, 2)
			more := rec.take()
			gap := more[0]
			gap.Seq++
			vn := gap.Vnode
			last := replica.Engine().LastSeq(vn)
			err := replica.ApplyReplicated(&gap)
			if !errors.Is(err, kv.ErrSeqGap) {
				t.Fatalf("gap: %v, want ErrSeqGap", err)
			}
			if wantMsg := fmt.Sprintf("vnode %d expected seq %d, received %d", vn, last+1, last+2); !strings.Contains(err.Error(), wantMsg) {
				t.Fatalf("gap error %q does not say %q", err, wantMsg)
			}
			if got := replica.Engine().LastSeq(vn); got != last {
				t.Fatalf("LastSeq after a refused gap: %d, want %d", got, last)
			}
			for i := range more {
				if err := replica.ApplyReplicated(&more[i]); err != nil {
					t.Fatalf("round 2 change %d: %v", i, err)
				}
				maxVersion = max(maxVersion, more[i].Record.Version.Time)
			}
			if got, want := dumpVnodes(t, replica), dumpVnodes(t, primary); got != want {
				t.Fatalf("after round 2, replica:\n%s\nprimary:\n%s", got, want)
			}
			checkUsage(t, "replica after round 2", replica)

			// The replica's clock moved past every version it applied.
			_, cas, err := replica.StoreCAS(kv.StoreRequest{Op: kv.OpSet, Namespace: kv.DefaultNamespace, Key: []byte("x"), Value: []byte("1")})
			if err != nil || cas <= maxVersion {
				t.Fatalf("replica's own write got CAS %d (%v), want > %d", cas, err, maxVersion)
			}

			// Changes of an unknown namespace are applied; a bad vnode is not.
			c := storage.Change{Vnode: 0, Seq: replica.Engine().LastSeq(0) + 1, Op: storage.OpPut,
				Namespace: "elsewhere", Key: []byte("a"), Record: storage.Record{Value: []byte("1")}}
			if err := replica.ApplyReplicated(&c); err != nil {
				t.Fatalf("unknown namespace: %v", err)
			}
			checkUsage(t, "replica after an unknown namespace", replica)
			c = storage.Change{Vnode: uint16(replica.VnodeCount()), Seq: 1, Op: storage.OpPut, Namespace: "default"}
			if err := replica.ApplyReplicated(&c); err == nil {
				t.Fatal("a change of a vnode out of range was applied")
			}
		})
	}
}

// TestFullCopy copies one vnode the way a replica that is too far behind
// gets it: ResetVnode to the primary's LastSeq S taken before the snapshot
// scan, LoadReplicated of every record of the snapshot, then the primary's
// log from S+1 (changes made during the copy are replayed over the
// snapshot, which is harmless).
func TestFullCopy(t *testing.T) {
	for _, k := range engineKinds {
		t.Run(k.name, func(t *testing.T) {
			clk := clock.NewFake(testStart)
			rec := &recorder{}
			primary := openStore(t, k, clk, func(o *kv.Options) { o.Replicate = rec.replicate })
			replica := openStore(t, k, clk, nil)

			// The replica holds stale data of every vnode (its own writes).
			for i := range 20 {
				_, err := replica.Store(kv.StoreRequest{Op: kv.OpSet, Namespace: kv.DefaultNamespace,
					Key: []byte(fmt.Sprintf("stale%d", i)), Value: []byte("old value")})
				if err != nil {
					t.Fatal(err)
				}
			}
			primaryTraffic(t, primary, clk, 1)
			primaryTraffic(t, primary, clk, 2)
			rec.take()

			for vn := range primary.VnodeCount() {
				v := uint16(vn)
				seq := primary.Engine().LastSeq(v)
				if err := replica.ResetVnode(v, seq); err != nil {
					t.Fatal(err)
				}
				checkUsage(t, fmt.Sprintf("after ResetVnode(%d)", v), replica)
				if first, last := replica.Engine().FirstSeq(v), replica.Engine().LastSeq(v); first != seq+1 || last != seq {
					t.Fatalf("vnode %d after ResetVnode(%d): first=%d last=%d", v, seq, first, last)
				}
			}
			// Writes between the seqs taken and the snapshot.
			primaryTraffic(t, primary, clk, 3)
			var maxVersion uint64
			for vn := range primary.VnodeCount() {
				err := primary.Engine().ScanVnode(uint16(vn), func(ns string, key []byte, r *storage.Record) error {
					c := storage.Change{Vnode: uint16(vn), Op: storage.OpPut, Namespace: ns, Key: key, Record: *r}
					maxVersion = max(maxVersion, r.Version.Time)
					return replica.LoadReplicated(&c)
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			checkUsage(t, "after the loads", replica)
			for _, c := range rec.take() {
				if err := replica.ApplyReplicated(&c); err != nil {
					t.Fatal(err)
				}
			}
			if got, want := dumpVnodes(t, replica), dumpVnodes(t, primary); got != want {
				t.Fatalf("replica:\n%s\nprimary:\n%s", got, want)
			}
			checkUsage(t, "after the catch-up", replica)
			checkSameUsage(t, replica, primary)

			// A loaded delete removes the key and counts it; a loaded
			// record moves the clock past its version.
			vn := replica.Vnode([]byte("k0"))
			del := storage.Change{Vnode: vn, Op: storage.OpDelete, Namespace: kv.DefaultNamespace, Key: []byte("k0"),
				Record: storage.Record{Version: storage.Version{Time: maxVersion + 1}}}
			if err := replica.LoadReplicated(&del); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := replica.Get(kv.DefaultNamespace, []byte("k0")); ok || err != nil {
				t.Fatalf("k0 after a loaded delete: found=%v err=%v", ok, err)
			}
			checkUsage(t, "after a loaded delete", replica)
			future := maxVersion + 1<<40
			put := storage.Change{Vnode: vn, Op: storage.OpPut, Namespace: kv.DefaultNamespace, Key: []byte("k0"),
				Record: storage.Record{Value: []byte("future"), CAS: future, Version: storage.Version{Time: future}}}
			if err := replica.LoadReplicated(&put); err != nil {
				t.Fatal(err)
			}
			checkUsage(t, "after a loaded put", replica)
			_, cas, err := replica.StoreCAS(kv.StoreRequest{Op: kv.OpSet, Namespace: kv.DefaultNamespace, Key: []byte("k1"), Value: []byte("1")})
			if err != nil || cas <= future {
				t.Fatalf("replica's own write got CAS %d (%v), want > %d", cas, err, future)
			}
		})
	}
}

// TestReplicateHookOrder runs concurrent writers on the keys of few vnodes
// and checks that the hook sees each vnode's changes in seq order, every
// one of them, each while it is still the vnode's last change (the hook
// runs under the vnode lock).
func TestReplicateHookOrder(t *testing.T) {
	var mu sync.Mutex
	seqs := map[uint16][]uint64{}
	var eng storage.Engine
	var stale atomic.Int64
	s := openStore(t, engineKinds[0], clock.NewFake(testStart), func(o *kv.Options) {
		o.Replicate = func(c *storage.Change) func() error {
			// Yielding lets other writers run: were the vnode not locked,
			// one of them would apply a later change meanwhile.
			runtime.Gosched()
			if eng.LastSeq(c.Vnode) != c.Seq {
				stale.Add(1)
			}
			mu.Lock()
			seqs[c.Vnode] = append(seqs[c.Vnode], c.Seq)
			mu.Unlock()
			return func() error { return nil }
		}
	})
	eng = s.Engine()
	const writers, perWriter = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				key := []byte(fmt.Sprintf("key%d", (w+i)%10))
				var err error
				switch i % 5 {
				case 0, 1:
					_, err = s.Store(kv.StoreRequest{Op: kv.OpSet, Namespace: kv.DefaultNamespace, Key: key, Value: []byte("7")})
				case 2:
					_, _, err = s.Arith(kv.DefaultNamespace, key, 1, true)
				case 3:
					_, _, err = s.Touch(kv.DefaultNamespace, key, 100)
				case 4:
					_, err = s.Delete(kv.DefaultNamespace, key)
				}
				if err != nil && !errors.Is(err, kv.ErrNonNumeric) {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := stale.Load(); n != 0 {
		t.Fatalf("%d hook calls saw a later change of their vnode already applied", n)
	}
	total := 0
	for vn, got := range seqs {
		for i := range got {
			if got[i] != uint64(i+1) {
				t.Fatalf("vnode %d: hook saw seqs %v..., want 1, 2, 3, ...", vn, got[max(0, i-3):i+1])
			}
		}
		if last := eng.LastSeq(vn); uint64(len(got)) != last {
			t.Fatalf("vnode %d: hook saw %d changes, LastSeq is %d", vn, len(got), last)
		}
		total += len(got)
	}
	if total == 0 || len(seqs) < 2 {
		t.Fatalf("hook saw %d changes in %d vnodes", total, len(seqs))
	}
	checkUsage(t, "after concurrent writes", s)
}

// TestReplicateWait checks that the hook's wait func runs after the vnode
// lock is released and before the Store method returns, that its error
// reaches the caller with the change applied locally, and that reclaiming
// does not replicate.
func TestReplicateWait(t *testing.T) {
	clk := clock.NewFake(testStart)
	errBoom := errors.New("replicas did not answer")
	var s *kv.Store
	var calls, waited atomic.Int64
	var fail atomic.Bool
	s = openStore(t, engineKinds[0], clk, func(o *kv.Options) {
		o.Replicate = func(c *storage.Change) func() error {
			calls.Add(1)
			vn := c.Vnode
			return func() error {
				got := make(chan struct{})
				go func() {
					unlock := s.LockVnode(vn)
					unlock()
					close(got)
				}()
				select {
				case <-got:
				case <-time.After(10 * time.Second):
					return errors.New("the vnode lock is still held in the wait func")
				}
				waited.Add(1)
				if fail.Load() {
					return errBoom
				}
				return nil
			}
		}
	})
	ns := kv.DefaultNamespace
	key := []byte("n")
	check := func(what string, err error, wantCalls int64) {
		t.Helper()
		if fail.Load() {
			if !errors.Is(err, errBoom) {
				t.Fatalf("%s: %v, want the wait error", what, err)
			}
		} else if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if c, w := calls.Load(), waited.Load(); c != wantCalls || w != wantCalls {
			t.Fatalf("%s: %d hook calls, %d waits done, want %d", what, c, w, wantCalls)
		}
	}

	_, err := s.Store(kv.StoreRequest{Op: kv.OpSet, Namespace: ns, Key: key, Value: []byte("1")})
	check("set", err, 1)
	_, _, err = s.Arith(ns, key, 1, true)
	check("incr", err, 2)
	_, _, err = s.Touch(ns, key, 100)
	check("touch", err, 3)
	_, _, err = s.MetaArith(ns, key, kv.ArithRequest{Delta: 1, Incr: true})
	check("ma", err, 4)
	_, err = s.DeleteCAS(ns, key, 1) // wrong CAS: nothing written, no hook
	check("md with a wrong cas", err, 4)
	_, err = s.Delete(ns, key)
	check("delete", err, 5)
	_, err = s.Delete(ns, key) // missing: nothing written
	check("delete of a missing key", err, 5)

	fail.Store(true)
	_, err = s.Store(kv.StoreRequest{Op: kv.OpSet, Namespace: ns, Key: key, Value: []byte("41")})
	check("set", err, 6)
	if it, ok, _ := s.Get(ns, key); !ok || string(it.Value) != "41" {
		t.Fatalf("set with a failed wait not applied locally: %q %v", it.Value, ok)
	}
	n, _, err := s.Arith(ns, key, 1, true)
	check("incr", err, 7)
	if it, ok, _ := s.Get(ns, key); n != 42 || !ok || string(it.Value) != "42" {
		t.Fatalf("incr with a failed wait: returned %d, stored %q", n, it.Value)
	}
	_, err = s.Delete(ns, key)
	check("delete", err, 8)
	if _, ok, _ := s.Get(ns, key); ok {
		t.Fatal("delete with a failed wait not applied locally")
	}
	fail.Store(false)

	// Reclaiming an expired item removes it without a change to replicate.
	_, err = s.Store(kv.StoreRequest{Op: kv.OpSet, Namespace: ns, Key: key, Value: []byte("1"), Exptime: 1})
	check("set with exptime", err, 9)
	clk.Advance(2 * time.Second)
	if n, err := s.ReclaimExpired(t.Context()); n != 1 || err != nil {
		t.Fatalf("ReclaimExpired: %d %v", n, err)
	}
	check("reclaim", nil, 9)
	checkUsage(t, "after reclaim", s)
}
