package replication

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/clock"
	"github.com/sonae-kv/sonae/internal/kv"
	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/routing"
	"github.com/sonae-kv/sonae/internal/storage"
	"github.com/sonae-kv/sonae/internal/testutil"
)

const (
	nA routing.NodeID = "a_1"
	nB routing.NodeID = "b_1"
	nC routing.NodeID = "c_1"
)

// threeNodes starts a, b and c with every vnode on two of them, all in
// sync: v0 [a b], v1 [b c], v2 [c a], v3 [a c].
func threeNodes(t *testing.T, opts ...clusterOpt) *tcluster {
	c := newCluster(t, []routing.NodeID{nA, nB, nC}, opts...)
	c.layout([][]routing.NodeID{{nA, nB}, {nB, nC}, {nC, nA}, {nA, nC}}, nil)
	return c
}

// dataOps is the part of View and kv.Store the differential test drives.
type dataOps interface {
	Get(ns string, key []byte) (kv.Item, bool, error)
	StoreCAS(req kv.StoreRequest) (kv.Result, uint64, error)
	Delete(ns string, key []byte) (bool, error)
	DeleteCAS(ns string, key []byte, cas uint64) (kv.Result, error)
	GetAndTouch(ns string, key []byte, exptime int64) (kv.Item, int64, bool, error)
	Touch(ns string, key []byte, exptime int64) (kv.Item, bool, error)
	Arith(ns string, key []byte, delta uint64, incr bool) (uint64, kv.Result, error)
	MetaArith(ns string, key []byte, req kv.ArithRequest) (kv.ArithResult, kv.Result, error)
}

var (
	_ dataOps = (*View)(nil)
	_ dataOps = (*kv.Store)(nil)
)

// opScript runs a sequence of every data command on key and returns one
// line per step, without CAS values (each world has its own clock), so
// that a forwarded run can be compared with a local store's.
func opScript(d dataOps, key []byte) []string {
	const ns = meta.DefaultNamespace
	var out []string
	var cas uint64
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	item := func(it kv.Item) string {
		return fmt.Sprintf("%q flags=%d expires=%v", it.Value, it.Flags, it.Exptime != 0)
	}
	store := func(op kv.Op, value string, c uint64) {
		res, newCAS, err := d.StoreCAS(kv.StoreRequest{Op: op, Namespace: ns, Key: key, Value: []byte(value), Flags: 5, CAS: c})
		if res == kv.Stored {
			cas = newCAS
			if newCAS == 0 {
				add("store %d: stored without a CAS", op)
			}
		}
		add("store op=%d %q: res=%d err=%v", op, value, res, err)
	}
	get := func() {
		it, ok, err := d.Get(ns, key)
		add("get: %v %s err=%v", ok, item(it), err)
		if ok && it.CAS != cas {
			add("get: CAS %d, want the last store's %d", it.CAS, cas)
		}
	}
	get()
	store(kv.OpAdd, "1", 0)
	store(kv.OpAdd, "2", 0)
	store(kv.OpReplace, "3", 0)
	store(kv.OpAppend, "4", 0)
	store(kv.OpPrepend, "2", 0)
	get()
	n, res, err := d.Arith(ns, key, 10, true)
	add("incr 10: %d res=%d err=%v", n, res, err)
	n, res, err = d.Arith(ns, key, 1000, false)
	add("decr 1000: %d res=%d err=%v", n, res, err)
	it, _, _ := d.Get(ns, key)
	cas = it.CAS
	it, prev, ok, err := d.GetAndTouch(ns, key, 1000)
	add("gat: %v %s prev=%d err=%v", ok, item(it), prev, err)
	it, ok, err = d.Touch(ns, key, 0)
	add("touch: %v %s err=%v", ok, item(it), err)
	get()
	store(kv.OpCAS, "x", cas+1)
	store(kv.OpCAS, "x", cas)
	store(kv.OpAppend, "y", cas+7) // append with a wrong CAS
	r, err := d.DeleteCAS(ns, key, cas+1)
	add("delete cas wrong: res=%d err=%v", r, err)
	r, err = d.DeleteCAS(ns, key, cas)
	add("delete cas: res=%d err=%v", r, err)
	get()
	ar, res, err := d.MetaArith(ns, key, kv.ArithRequest{Delta: 1, Incr: true, Vivify: true, Initial: 41})
	add("ma vivify: %d %s created=%v res=%d err=%v", ar.Value, item(ar.Item), ar.Created, res, err)
	ar, res, err = d.MetaArith(ns, key, kv.ArithRequest{Delta: 1, Incr: true, Touch: true, Exptime: 100})
	add("ma incr: %d %s created=%v res=%d err=%v", ar.Value, item(ar.Item), ar.Created, res, err)
	ok, err = d.Delete(ns, key)
	add("delete: %v err=%v", ok, err)
	ok, err = d.Delete(ns, key)
	add("delete again: %v err=%v", ok, err)
	n, res, err = d.Arith(ns, key, 1, true)
	add("incr missing: %d res=%d err=%v", n, res, err)
	store(kv.OpSet, "abc", 0)
	_, _, err = d.Arith(ns, key, 1, true)
	add("incr non-numeric: ErrNonNumeric=%v", errors.Is(err, kv.ErrNonNumeric))
	_, _, err = d.Get("nope", key)
	add("get in a missing namespace: ErrNoNamespace=%v", errors.Is(err, kv.ErrNoNamespace))
	store(kv.OpSet, "already expired", 0)
	res, _, err = d.StoreCAS(kv.StoreRequest{Op: kv.OpSet, Namespace: ns, Key: key, Value: []byte("x"), Exptime: -1})
	add("set expired: res=%d err=%v", res, err)
	get()
	store(kv.OpSet, "final", 0)
	return out
}

// TestForwardAndReplicate: every data command sent to a node that holds no
// replica of the key is forwarded to the primary, answers exactly as a
// local store would, and each change reaches the secondary before the
// command returns; the third node holds nothing of the vnode.
func TestForwardAndReplicate(t *testing.T) {
	c := threeNodes(t)
	key := c.keysIn(0, 1)[0]

	ref, err := kv.Open(storage.NewMemory(storage.Options{}), clock.Real{}, kv.Options{
		DivBits: c.divBits, MaxItemSize: 1 << 20, RetainEntries: 100, RetainAge: time.Hour, ExpiryScanInterval: time.Second,
	}, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	want := opScript(ref, key)
	got := opScript(c.view(nC), key)
	if !slices.Equal(got, want) {
		for i := range max(len(got), len(want)) {
			var g, w string
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if g != w {
				t.Errorf("step %d:\n forwarded: %s\n     local: %s", i, g, w)
			}
		}
	}
	a, b, cn := c.node(nA), c.node(nB), c.node(nC)
	if a.eng.LastSeq(0) == 0 {
		t.Fatalf("the primary applied nothing")
	}
	// Synchronous replication: the secondary has every change already.
	sameVnode(t, a, b, 0)
	if cn.eng.LastSeq(0) != 0 || len(dump(t, cn.eng, 0)) != 0 {
		t.Errorf("c holds vnode 0 data")
	}
	rec, err := b.eng.Get(0, meta.DefaultNamespace, key)
	if err != nil || string(rec.Value) != "final" {
		t.Errorf("secondary record %q, %v", rec.Value, err)
	}
	checkUsage(t, a)
	checkUsage(t, b)

	// The same through the secondary (forwarded to the primary too).
	mustSet(t, c.view(nB), key, "via b")
	if v, _ := mustGet(t, c.view(nC), key); v != "via b" {
		t.Errorf("get via c = %q", v)
	}
	sameVnode(t, a, b, 0)
	if c.node(nA).proposals.Load() != 0 {
		t.Errorf("the primary proposed metadata changes with every replica up")
	}
}

// TestGetMulti: a multi-key read through a node answers keys of every
// primary (local ones, and one batch per remote primary) in order; missing
// keys are not found; keys of a missing namespace fail alone.
func TestGetMulti(t *testing.T) {
	c := threeNodes(t)
	var nss []string
	var keys [][]byte
	var want []string
	for v := range 4 {
		for i, k := range c.keysIn(v, 3) {
			mustSet(t, c.view(nA), k, fmt.Sprintf("v%d-%d", v, i))
			nss = append(nss, meta.DefaultNamespace)
			keys = append(keys, k)
			want = append(want, fmt.Sprintf("v%d-%d", v, i))
		}
	}
	nss = append(nss, meta.DefaultNamespace, "nope")
	keys = append(keys, []byte("missing-key"), c.keysIn(1, 1)[0])
	want = append(want, "", "")

	for _, via := range []routing.NodeID{nA, nB, nC} {
		for _, v := range []*View{c.node(via).rep.View(false, false)} {
			items, found, errs := v.GetMulti(nss, keys)
			for i := range keys {
				last := i == len(keys)-1
				switch {
				case last:
					if !errors.Is(errs[i], kv.ErrNoNamespace) {
						t.Errorf("via %s (rs=%v): key in a missing namespace: %v", via, v.ReadSecondary, errs[i])
					}
				case errs[i] != nil:
					t.Errorf("via %s (rs=%v): key %s: %v", via, v.ReadSecondary, keys[i], errs[i])
				case found[i] != (want[i] != "") || string(items[i].Value) != want[i]:
					t.Errorf("via %s (rs=%v): key %s = %q %v, want %q", via, v.ReadSecondary, keys[i], items[i].Value, found[i], want[i])
				}
			}
		}
	}

	// Direct: only the keys c is the primary of are answered.
	items, found, errs := c.node(nC).rep.View(true, false).GetMulti(nss[:12], keys[:12])
	for i, k := range keys[:12] {
		vn := int(routing.Vnode(k, c.divBits))
		primary := c.st().Table.Vnodes[vn].Primary()
		if primary == nC {
			if errs[i] != nil || !found[i] || string(items[i].Value) != want[i] {
				t.Errorf("direct, local key %s: %q %v %v", k, items[i].Value, found[i], errs[i])
			}
			continue
		}
		var np *NotPrimaryError
		if !errors.As(errs[i], &np) || np.Vnode != vn || np.Primary != primary {
			t.Errorf("direct, key %s of %s: %v, want NOT_PRIMARY", k, primary, errs[i])
		}
	}
}

// TestDirect: in direct mode a node that is not the key's primary answers
// NotPrimaryError (vnode, primary, table version) and does not apply the
// command; the primary serves it.
func TestDirect(t *testing.T) {
	c := threeNodes(t)
	key := c.keysIn(0, 1)[0]
	version := c.st().Table.Version
	for _, via := range []routing.NodeID{nB, nC} {
		v := c.node(via).rep.View(true, false)
		_, _, err := v.Get(meta.DefaultNamespace, key)
		var np *NotPrimaryError
		if !errors.As(err, &np) || *np != (NotPrimaryError{Vnode: 0, Primary: nA, Version: version}) {
			t.Fatalf("direct get via %s: %v", via, err)
		}
		if err.Error() != fmt.Sprintf("NOT_PRIMARY 0 a_1 %d", version) {
			t.Errorf("wire form %q", err.Error())
		}
		if _, err := v.Store(kv.StoreRequest{Op: kv.OpSet, Namespace: meta.DefaultNamespace, Key: key, Value: []byte("x")}); !errors.As(err, &np) {
			t.Fatalf("direct set via %s: %v", via, err)
		}
		if _, err := v.Delete(meta.DefaultNamespace, key); !errors.As(err, &np) {
			t.Fatalf("direct delete via %s: %v", via, err)
		}
	}
	if s := c.node(nA).eng.LastSeq(0); s != 0 {
		t.Fatalf("a refused direct command was applied (seq %d)", s)
	}
	mustSet(t, c.node(nA).rep.View(true, false), key, "ok")
	if v, ok := mustGet(t, c.node(nA).rep.View(true, false), key); !ok || v != "ok" {
		t.Fatalf("direct get on the primary = %q %v", v, ok)
	}
	sameVnode(t, c.node(nA), c.node(nB), 0)
}

// TestReadSecondaryLocal: with ReadSecondary an in-sync secondary answers
// from its own copy, even with the primary down; without it, the read
// needs the primary. A lagging secondary does not answer from its copy.
func TestReadSecondaryLocal(t *testing.T) {
	c := threeNodes(t)
	key := c.keysIn(0, 1)[0]
	mustSet(t, c.view(nA), key, "v1")
	c.node(nA).stop()

	if v, ok := mustGet(t, c.node(nB).rep.View(false, true), key); !ok || v != "v1" {
		t.Fatalf("read_secondary on b = %q %v", v, ok)
	}
	if _, _, err := c.view(nB).Get(meta.DefaultNamespace, key); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("plain read on b with the primary down: %v, want ErrUnavailable", err)
	}
	// b lagging: its copy is not served; the read goes to a (down).
	if err := c.meta.apply(meta.Command{Op: meta.OpSetInSync, Vnode: 0, Node: nB, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.node(nB).rep.View(false, true).Get(meta.DefaultNamespace, key); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("read_secondary on a lagging b: %v, want ErrUnavailable (only a may answer)", err)
	}
}

// TestReadSecondaryForwarded: a read_secondary read on a node that holds
// no replica goes to any in-sync replica of the key, and that replica
// answers it (as a secondary read) rather than refusing NOT_PRIMARY.
func TestReadSecondaryForwarded(t *testing.T) {
	c := threeNodes(t)
	key := c.keysIn(0, 1)[0]
	mustSet(t, c.view(nA), key, "v1")
	v := c.node(nC).rep.View(false, true)
	for i := range 16 {
		start := time.Now()
		it, ok, err := v.Get(meta.DefaultNamespace, key)
		if err != nil || !ok || string(it.Value) != "v1" {
			t.Fatalf("read %d: %q %v %v", i, it.Value, ok, err)
		}
		if d := time.Since(start); d > 400*time.Millisecond {
			t.Fatalf("read %d took %s: a replica refused it", i, d)
		}
	}
}

// TestSecondaryDownDemoted: a write whose in-sync secondary is down still
// succeeds: the primary removes the secondary from the in-sync set through
// Propose first. Writes whose primary is down fail with ErrUnavailable.
func TestSecondaryDownDemoted(t *testing.T) {
	c := threeNodes(t)
	keys := c.keysIn(0, 3)
	mustSet(t, c.view(nA), keys[0], "before")
	c.node(nB).stop()

	mustSet(t, c.view(nC), keys[1], "while b is down")
	st := c.st()
	if !isLagging(st, 0, nB) {
		t.Fatalf("b is not lagging in vnode 0: %v", st.Lagging)
	}
	if st.Table.Vnodes[0].Epoch != 1 || st.Table.Vnodes[0].Primary() != nA {
		t.Fatalf("vnode 0 changed: %+v", st.Table.Vnodes[0])
	}
	if c.node(nA).proposals.Load() == 0 {
		t.Fatalf("the demotion did not go through Propose")
	}
	// Vnode 2 ([c a]) is unaffected; vnode 1 ([b c]) has lost its primary.
	if isLagging(st, 2, nA) {
		t.Fatalf("a was demoted in vnode 2")
	}
	// The next writes do not wait for b.
	start := time.Now()
	mustSet(t, c.view(nA), keys[2], "fast")
	if d := time.Since(start); d > time.Second {
		t.Errorf("a write after the demotion took %s", d)
	}
	if v, ok := mustGet(t, c.view(nA), keys[1]); !ok || v != "while b is down" {
		t.Errorf("read back %q %v", v, ok)
	}
	err := set(c.view(nC), c.keysIn(1, 1)[0], "x")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write with the primary down: %v, want ErrUnavailable", err)
	}
}

// TestLostAndUninitialized: a vnode without replicas answers ErrLost; a
// node without metadata waits for it, then answers ErrUnavailable.
func TestLostAndUninitialized(t *testing.T) {
	c := newCluster(t, []routing.NodeID{nA, nB}, withTimeout(100*time.Millisecond))
	c.layout([][]routing.NodeID{{nA, nB}, {}, {nB, nA}, {nA}}, nil)
	if _, _, err := c.view(nA).Get(meta.DefaultNamespace, c.keysIn(1, 1)[0]); !errors.Is(err, ErrLost) {
		t.Fatalf("lost vnode: %v, want ErrLost", err)
	}
	if err := set(c.view(nB), c.keysIn(1, 1)[0], "x"); !errors.Is(err, ErrLost) {
		t.Fatalf("lost vnode write: %v, want ErrLost", err)
	}

	// A node whose FSM is still empty.
	lone := newCluster(t, []routing.NodeID{nA}, withTimeout(100*time.Millisecond))
	lone.node(nA).start()
	start := time.Now()
	if _, _, err := lone.view(nA).Get(meta.DefaultNamespace, []byte("k")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("uninitialized: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("gave up after %s, before the replication timeout", d)
	}
	// The metadata arriving while a read waits lets it through.
	done := make(chan error, 1)
	slow := newCluster(t, []routing.NodeID{nA}, withTimeout(10*time.Second))
	slow.node(nA).start()
	go func() {
		_, _, err := slow.view(nA).Get(meta.DefaultNamespace, []byte("k"))
		done <- err
	}()
	slow.meta.restore(t, slow.state([][]routing.NodeID{{nA}, {nA}, {nA}, {nA}}, nil))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("read after the metadata came: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the read did not notice the metadata")
	}
}

// TestStaleEpochFrames: a replica refuses replication frames of an epoch
// older than its table's, and frames for a vnode it is itself the primary
// of at that epoch; it applies the others in seq order.
func TestStaleEpochFrames(t *testing.T) {
	c := threeNodes(t)
	b := c.node(nB)
	pc := rawPeer(t, b.addr)
	change := func(vn uint16, epoch, seq uint64, key string) []byte {
		var e enc
		e.change(epoch, &storage.Change{Vnode: vn, Seq: seq, Op: storage.OpPut, Namespace: meta.DefaultNamespace, Key: []byte(key),
			Record: storage.Record{Value: []byte("v"), Version: storage.Version{Time: seq}}})
		return e.b
	}
	ack := func(typ byte, body []byte) (error, uint64) {
		d := callRaw(t, pc, typ, body)
		err := decodeError(d)
		return err, d.u64()
	}
	// Vnode 0 ([a b], epoch 1): epoch 0 is stale; epoch 1 applies.
	if err, _ := ack(tReplicate, change(0, 0, 1, "k1")); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("epoch 0 frame: %v, want ErrStaleEpoch", err)
	}
	if err, last := ack(tReplicate, change(0, 1, 1, "k1")); err != nil || last != 1 {
		t.Fatalf("epoch 1 frame: %v, last %d", err, last)
	}
	// A later epoch than the table's (the table lags) is accepted.
	if err, last := ack(tReplicate, change(0, 2, 2, "k2")); err != nil || last != 2 {
		t.Fatalf("epoch 2 frame: %v, last %d", err, last)
	}
	// A gap is refused with the seq the replica has.
	if err, last := ack(tReplicate, change(0, 1, 9, "k9")); !errors.Is(err, kv.ErrSeqGap) || last != 2 {
		t.Fatalf("gap: %v, last %d; want ErrSeqGap, 2", err, last)
	}
	// A duplicate of the same change is harmless; another change at a seq
	// it holds means its history diverged.
	if err, _ := ack(tReplicate, change(0, 1, 2, "k2")); err != nil {
		t.Fatalf("duplicate: %v", err)
	}
	var e enc
	e.change(1, &storage.Change{Vnode: 0, Seq: 2, Op: storage.OpPut, Namespace: meta.DefaultNamespace, Key: []byte("other"),
		Record: storage.Record{Value: []byte("v"), Version: storage.Version{Time: 12345}}})
	if err, _ := ack(tReplicate, e.b); err == nil {
		t.Fatalf("a different change at a seq the replica holds was accepted")
	}
	// Vnode 1: b is its primary at epoch 1.
	if err, _ := ack(tReplicate, change(1, 1, 1, "x")); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("frame for b's own vnode: %v, want ErrStaleEpoch", err)
	}
	if b.eng.LastSeq(1) != 0 {
		t.Fatalf("a refused frame was applied")
	}
	// Reset and SetSeq check the epoch too, and the vnode range.
	seqBody := func(vn, epoch, seq uint64) []byte {
		var e enc
		e.u64(vn)
		e.u64(epoch)
		e.u64(seq)
		return e.b
	}
	for _, typ := range []byte{tReset, tSetSeq, tLoad} {
		body := seqBody(0, 0, 0)
		if typ == tLoad {
			body = change(0, 0, 0, "x")
		}
		if err, _ := ack(typ, body); !errors.Is(err, ErrStaleEpoch) {
			t.Errorf("frame type %d at a stale epoch: %v", typ, err)
		}
	}
	if err, _ := ack(tReset, seqBody(99, 1, 0)); err == nil {
		t.Errorf("reset of vnode 99 accepted")
	}
	if b.eng.LastSeq(0) != 2 || len(dump(t, b.eng, 0)) != 2 {
		t.Fatalf("vnode 0 on b: seq %d, %d records", b.eng.LastSeq(0), len(dump(t, b.eng, 0)))
	}
	// A truncated frame is an error, not a crash.
	if err, _ := ack(tReplicate, change(0, 1, 3, "k")[:5]); err == nil {
		t.Errorf("truncated replication frame accepted")
	}
}

// TestDeposedPrimary: a primary whose table is behind (another node took
// the vnode over at a higher epoch) cannot get its writes acknowledged:
// the replica refuses the stale epoch, the write fails with ErrUnavailable
// and the deposed primary does not demote the replica.
func TestDeposedPrimary(t *testing.T) {
	c := newCluster(t, []routing.NodeID{nA, nB, nC})
	a := c.node(nA)
	a.meta = newMetaLog(t) // a sees its own, soon stale, metadata
	layout := [][]routing.NodeID{{nA, nB}, {nB, nC}, {nC, nA}, {nA, nC}}
	a.meta.restore(t, c.state(layout, nil))
	c.layout(layout, nil)
	key := c.keysIn(0, 1)[0]
	mustSet(t, c.view(nA), key, "v1")

	// The others' metadata: a was removed; b is the primary of vnode 0 at
	// epoch 2.
	if err := c.meta.apply(meta.Command{Op: meta.OpRemoveMember, Node: nA}); err != nil {
		t.Fatal(err)
	}
	if r := c.st().Table.Vnodes[0]; r.Primary() != nB || r.Epoch != 2 {
		t.Fatalf("vnode 0 = %+v", r)
	}
	err := set(a.rep.View(true, false), key, "v2")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write on the deposed primary: %v, want ErrUnavailable", err)
	}
	if isLagging(a.meta.fsm.State(), 0, nB) {
		t.Fatalf("the deposed primary demoted the new primary")
	}
	b := c.node(nB)
	if rec, err := b.eng.Get(0, meta.DefaultNamespace, key); err != nil || string(rec.Value) != "v1" {
		t.Fatalf("b's copy = %q, %v; want v1", rec.Value, err)
	}
	// b serves the key as the new primary.
	if v, ok := mustGet(t, b.rep.View(true, false), key); !ok || v != "v1" {
		t.Fatalf("b = %q %v", v, ok)
	}
}

// TestProposeAndFlushAt: peer proposals commit on the receiver and keep
// the meta sentinels' identity; flush_all runs on the target node only.
func TestProposeAndFlushAt(t *testing.T) {
	c := threeNodes(t)
	ctx := t.Context()
	idx, err := c.node(nC).rep.ProposeAt(ctx, c.node(nA).addr, meta.Command{Op: meta.OpCreateNamespace, Namespace: "users"})
	if err != nil {
		t.Fatalf("ProposeAt: %v", err)
	}
	if st := c.st(); !st.HasNamespace("users") || st.Index != idx {
		t.Fatalf("namespace not created or index %d != %d", st.Index, idx)
	}
	_, err = c.node(nC).rep.ProposeAt(ctx, c.node(nA).addr, meta.Command{Op: meta.OpCreateNamespace, Namespace: "users"})
	if !errors.Is(err, meta.ErrNamespaceExists) {
		t.Fatalf("second ProposeAt: %v, want meta.ErrNamespaceExists", err)
	}

	key := c.keysIn(0, 1)[0]
	mustSet(t, c.view(nA), key, "v")
	if err := c.node(nC).rep.FlushAt(ctx, c.node(nB).addr, meta.DefaultNamespace, 0); err != nil {
		t.Fatalf("FlushAt: %v", err)
	}
	if _, ok, _ := c.node(nB).store.Get(meta.DefaultNamespace, key); ok {
		t.Errorf("b still shows the key after its flush")
	}
	if _, ok, _ := c.node(nA).store.Get(meta.DefaultNamespace, key); !ok {
		t.Errorf("a's data was flushed by b's flush")
	}
	if err := c.node(nC).rep.FlushAt(ctx, c.node(nB).addr, "nope", 0); !errors.Is(err, kv.ErrNoNamespace) {
		t.Errorf("FlushAt of a missing namespace: %v", err)
	}
	c.node(nC).rep.DropPeer(c.node(nB).addr)
	if err := c.node(nC).rep.FlushAt(ctx, c.node(nB).addr, meta.DefaultNamespace, 0); err != nil {
		t.Errorf("FlushAt after DropPeer: %v", err)
	}
}

// TestCraftedRequests: malformed and odd requests get error answers and do
// not break the connection.
func TestCraftedRequests(t *testing.T) {
	c := threeNodes(t)
	a := c.node(nA)
	pc := rawPeer(t, a.addr)
	key := c.keysIn(0, 1)[0]
	mustSet(t, c.view(nA), key, "v")

	// A forwarded request that does not decode.
	if err := decodeError(callRaw(t, pc, tForward, []byte{opStore})); err == nil {
		t.Errorf("truncated forward accepted")
	}
	// An unknown frame type.
	if err := decodeError(callRaw(t, pc, 99, nil)); err == nil {
		t.Errorf("unknown frame type accepted")
	}
	// Status of a vnode out of range, and a good one.
	var e enc
	e.u64(64)
	if err := decodeError(callRaw(t, pc, tStatus, e.b)); err == nil {
		t.Errorf("status of vnode 64 accepted")
	}
	e = enc{}
	e.u64(0)
	d := callRaw(t, pc, tStatus, e.b)
	if err := decodeError(d); err != nil || d.u64() != a.eng.LastSeq(0) {
		t.Errorf("status of vnode 0: %v", err)
	}
	// A batch that claims more entries than its body could hold.
	e = enc{}
	e.u64(1 << 40)
	if err := decodeError(callRaw(t, pc, tForwardBatch, e.b)); err == nil {
		t.Errorf("oversized batch accepted")
	}
	// A batch with a write in it: that entry fails alone.
	e = enc{}
	e.u64(2)
	e.bytes((&request{op: opGet, ns: meta.DefaultNamespace, key: key}).encode())
	e.bytes((&request{op: opDelete, ns: meta.DefaultNamespace, key: key}).encode())
	d = callRaw(t, pc, tForwardBatch, e.b)
	if err := decodeError(d); err != nil || d.u64() != 2 {
		t.Fatalf("batch: %v", err)
	}
	d1 := newDec(d.bytes())
	if err := decodeError(d1); err != nil {
		t.Errorf("batched get: %v", err)
	} else if p, err := decodeResponse(d1); err != nil || string(p.item.Value) != "v" {
		t.Errorf("batched get = %q, %v", p.item.Value, err)
	}
	if err := decodeError(newDec(d.bytes())); err == nil {
		t.Errorf("batched delete accepted")
	}
	if _, ok, _ := a.store.Get(meta.DefaultNamespace, key); !ok {
		t.Errorf("the batched delete ran")
	}
	// A proposal that does not decode.
	if err := decodeError(callRaw(t, pc, tPropose, []byte("{"))); !errors.Is(err, meta.ErrBadCommand) {
		t.Errorf("bad proposal: %v, want meta.ErrBadCommand", err)
	}
	if pc.broken() {
		t.Fatalf("the connection broke")
	}
}
