package replication

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/sonae-kv/sonae/internal/kv"
	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/routing"
)

// Forwarded operations.
const (
	opGet byte = iota + 1
	opStore
	opDelete
	opDeleteCAS
	opGetAndTouch
	opArith
	opMetaArith
)

// request is one data command, as the server asks for it and as it travels
// when forwarded.
type request struct {
	op            byte
	readSecondary bool
	ns            string
	key           []byte
	store         kv.StoreRequest
	cas           uint64
	exptime       int64
	delta         uint64
	incr          bool
	arith         kv.ArithRequest
}

func (q *request) write() bool { return q.op != opGet }

func (q *request) encode() []byte {
	var e enc
	e.u8(q.op)
	e.bool(q.readSecondary)
	e.str(q.ns)
	e.bytes(q.key)
	switch q.op {
	case opStore:
		e.u8(byte(q.store.Op))
		e.bytes(q.store.Value)
		e.u64(uint64(q.store.Flags))
		e.i64(q.store.Exptime)
		e.u64(q.store.CAS)
	case opDeleteCAS:
		e.u64(q.cas)
	case opGetAndTouch:
		e.i64(q.exptime)
	case opArith:
		e.u64(q.delta)
		e.bool(q.incr)
	case opMetaArith:
		a := &q.arith
		e.u64(a.Delta)
		e.bool(a.Incr)
		e.u64(a.CAS)
		e.bool(a.Vivify)
		e.u64(a.Initial)
		e.i64(a.NewExptime)
		e.bool(a.Touch)
		e.i64(a.Exptime)
	}
	return e.b
}

func decodeRequest(b []byte) (request, error) {
	d := newDec(b)
	var q request
	q.op = d.u8()
	q.readSecondary = d.bool()
	q.ns = d.str()
	q.key = d.bytes()
	switch q.op {
	case opStore:
		q.store = kv.StoreRequest{Op: kv.Op(d.u8()), Value: d.bytes(), Flags: uint32(d.u64()), Exptime: d.i64(), CAS: d.u64()}
		q.store.Namespace, q.store.Key = q.ns, q.key
	case opDeleteCAS:
		q.cas = d.u64()
	case opGetAndTouch:
		q.exptime = d.i64()
	case opArith:
		q.delta, q.incr = d.u64(), d.bool()
	case opMetaArith:
		q.arith = kv.ArithRequest{
			Delta: d.u64(), Incr: d.bool(), CAS: d.u64(), Vivify: d.bool(),
			Initial: d.u64(), NewExptime: d.i64(), Touch: d.bool(), Exptime: d.i64(),
		}
	case opGet, opDelete:
	default:
		return q, fmt.Errorf("replication: unknown forwarded op %d", q.op)
	}
	return q, d.done()
}

// response is a data command's outcome.
type response struct {
	res         kv.Result
	found       bool
	cas         uint64
	item        kv.Item
	prevExptime int64
	value       uint64
	arith       kv.ArithResult
}

func (p *response) encode(e *enc) {
	e.u8(byte(p.res))
	e.bool(p.found)
	e.u64(p.cas)
	encodeItem(e, &p.item)
	e.i64(p.prevExptime)
	e.u64(p.value)
	e.u64(p.arith.Value)
	encodeItem(e, &p.arith.Item)
	e.i64(p.arith.PrevExptime)
	e.bool(p.arith.Created)
}

func decodeResponse(d *dec) (response, error) {
	var p response
	p.res = kv.Result(d.u8())
	p.found = d.bool()
	p.cas = d.u64()
	p.item = decodeItem(d)
	p.prevExptime = d.i64()
	p.value = d.u64()
	p.arith.Value = d.u64()
	p.arith.Item = decodeItem(d)
	p.arith.PrevExptime = d.i64()
	p.arith.Created = d.bool()
	return p, d.done()
}

func encodeItem(e *enc, it *kv.Item) {
	e.bytes(it.Value)
	e.u64(uint64(it.Flags))
	e.u64(it.CAS)
	e.i64(it.Exptime)
}

func decodeItem(d *dec) kv.Item {
	return kv.Item{Value: d.bytes(), Flags: uint32(d.u64()), CAS: d.u64(), Exptime: d.i64()}
}

// View is the data path as one client connection sees it: Direct refuses
// instead of forwarding; ReadSecondary lets any in-sync replica answer
// reads. Its methods have kv.Store's signatures, so the server calls either.
type View struct {
	r             *Replicator
	Direct        bool
	ReadSecondary bool
}

// View returns a view with the given options.
func (r *Replicator) View(direct, readSecondary bool) *View {
	return &View{r: r, Direct: direct, ReadSecondary: readSecondary}
}

// maxForwardTries bounds the retries of a forwarded command whose target
// answered NOT_PRIMARY while the tables converge.
const maxForwardTries = 4

func (v *View) do(q *request) (response, error) {
	r := v.r
	for try := 0; ; try++ {
		st := r.state()
		if !st.Initialized() {
			// A node that just started waits a little for the metadata
			// rather than failing its first clients.
			if st = r.waitInitialized(r.cfg.ReplicationTimeout); !st.Initialized() {
				return response{}, fmt.Errorf("cluster %w: not initialized yet", ErrUnavailable)
			}
		}
		vn := int(routing.Vnode(q.key, st.Table.DivBits))
		rep := st.Table.Vnodes[vn]
		if len(rep.Nodes) == 0 {
			return response{}, fmt.Errorf("vnode %d is %w (no replica holds it)", vn, ErrLost)
		}
		target := rep.Primary()
		if (v.ReadSecondary || q.readSecondary) && !q.write() {
			if st.InSync(vn, r.cfg.Self) {
				return r.local(st, vn, q, false)
			}
			ins := st.InSyncReplicas(vn)
			target = ins[rand.IntN(len(ins))]
			q.readSecondary = true // the replica it goes to must answer, not refuse
		} else if target == r.cfg.Self && st.Fenced[vn] {
			// A cut-over to another primary is being committed: wait for
			// it, then route again.
			if try+1 >= maxForwardTries {
				return response{}, unavailable(vn, "the vnode is moving to another primary")
			}
			r.waitVersion(st.Table.Version, r.cfg.ReplicationTimeout)
			continue
		} else if target == r.cfg.Self {
			return r.local(st, vn, q, true)
		} else if v.Direct {
			return response{}, &NotPrimaryError{Vnode: vn, Primary: target, Version: st.Table.Version}
		}
		p, err := r.forward(st, target, q)
		np, ok := err.(*NotPrimaryError)
		if !ok || try+1 >= maxForwardTries {
			return p, err
		}
		// The target's table and ours disagree: wait for ours to catch up
		// with the version it reported, then route again.
		r.waitVersion(np.Version, 500*time.Millisecond)
	}
}

// waitInitialized waits up to within for the metadata to be initialized
// and returns the state it has then.
func (r *Replicator) waitInitialized(within time.Duration) *meta.State {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		ch := r.d.Changed()
		if st := r.state(); st.Initialized() {
			return st
		}
		select {
		case <-ch:
		case <-deadline.C:
			return r.state()
		case <-r.ctx.Done():
			return r.state()
		}
	}
}

// waitVersion waits until the local table reaches version (or a little
// while, when the peer's table is the stale one).
func (r *Replicator) waitVersion(version uint64, within time.Duration) {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		ch := r.d.Changed()
		if st := r.state(); st.Initialized() && st.Table.Version > version {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			return
		case <-r.ctx.Done():
			return
		}
	}
}

func (r *Replicator) forward(st *meta.State, target routing.NodeID, q *request) (response, error) {
	addr, ok := addrOf(st, target)
	if !ok {
		return response{}, fmt.Errorf("node %s %w: not a member", target, ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(r.ctx, 2*r.cfg.ReplicationTimeout+time.Second)
	defer cancel()
	pc, err := r.pool.get(ctx, addr)
	if err != nil {
		return response{}, fmt.Errorf("node %s %w: %v", target, ErrUnavailable, err)
	}
	f, err := pc.call(ctx, tForward, q.encode())
	if err != nil {
		return response{}, fmt.Errorf("node %s %w: %v", target, ErrUnavailable, err)
	}
	d := newDec(f.body)
	if err := decodeError(d); err != nil {
		return response{}, err
	}
	return decodeResponse(d)
}

func (r *Replicator) handleForward(body []byte) []byte {
	q, err := decodeRequest(body)
	if err != nil {
		return errorBody(err)
	}
	p, err := r.View(true, q.readSecondary).do(&q)
	var e enc
	encodeError(&e, err)
	if err == nil {
		p.encode(&e)
	}
	return e.b
}

// local runs q on this node's store. asPrimary checks the read lease and
// waits, after the store answered, until every change applied so far to
// the vnode is acknowledged, so the answer never reflects a change a
// failover could lose.
func (r *Replicator) local(st *meta.State, vn int, q *request, asPrimary bool) (response, error) {
	if asPrimary {
		if c := r.d.LeaderContact(); c >= r.cfg.ReadLease {
			if c == time.Duration(math.MaxInt64) {
				return response{}, unavailable(vn, "this node holds no read lease from the Raft leader")
			}
			return response{}, unavailable(vn, "this node's read lease from the Raft leader ran out %s ago", (c - r.cfg.ReadLease).Round(time.Millisecond))
		}
	}
	s := r.d.Store
	var p response
	var err error
	switch q.op {
	case opGet:
		p.item, p.found, err = s.Get(q.ns, q.key)
	case opStore:
		p.res, p.cas, err = s.StoreCAS(q.store)
	case opDelete:
		p.found, err = s.Delete(q.ns, q.key)
	case opDeleteCAS:
		p.res, err = s.DeleteCAS(q.ns, q.key, q.cas)
	case opGetAndTouch:
		p.item, p.prevExptime, p.found, err = s.GetAndTouch(q.ns, q.key, q.exptime)
	case opArith:
		p.value, p.res, err = s.Arith(q.ns, q.key, q.delta, q.incr)
	case opMetaArith:
		p.arith, p.res, err = s.MetaArith(q.ns, q.key, q.arith)
	}
	if err != nil {
		return response{}, err
	}
	if asPrimary {
		if err := r.barrier(vn); err != nil {
			return response{}, err
		}
	}
	return p, nil
}

// Get implements the server's data interface.
func (v *View) Get(ns string, key []byte) (kv.Item, bool, error) {
	p, err := v.do(&request{op: opGet, ns: ns, key: key})
	return p.item, p.found, err
}

// Store implements the server's data interface.
func (v *View) Store(req kv.StoreRequest) (kv.Result, error) {
	res, _, err := v.StoreCAS(req)
	return res, err
}

// StoreCAS implements the server's data interface.
func (v *View) StoreCAS(req kv.StoreRequest) (kv.Result, uint64, error) {
	p, err := v.do(&request{op: opStore, ns: req.Namespace, key: req.Key, store: req})
	return p.res, p.cas, err
}

// Delete implements the server's data interface.
func (v *View) Delete(ns string, key []byte) (bool, error) {
	p, err := v.do(&request{op: opDelete, ns: ns, key: key})
	return p.found, err
}

// Drop implements the server's data interface.
func (v *View) Drop(ns string, key []byte) error {
	_, err := v.Delete(ns, key)
	return err
}

// DeleteCAS implements the server's data interface.
func (v *View) DeleteCAS(ns string, key []byte, cas uint64) (kv.Result, error) {
	p, err := v.do(&request{op: opDeleteCAS, ns: ns, key: key, cas: cas})
	return p.res, err
}

// GetAndTouch implements the server's data interface.
func (v *View) GetAndTouch(ns string, key []byte, exptime int64) (kv.Item, int64, bool, error) {
	p, err := v.do(&request{op: opGetAndTouch, ns: ns, key: key, exptime: exptime})
	return p.item, p.prevExptime, p.found, err
}

// Touch implements the server's data interface.
func (v *View) Touch(ns string, key []byte, exptime int64) (kv.Item, bool, error) {
	it, _, ok, err := v.GetAndTouch(ns, key, exptime)
	return it, ok, err
}

// Arith implements the server's data interface.
func (v *View) Arith(ns string, key []byte, delta uint64, incr bool) (uint64, kv.Result, error) {
	p, err := v.do(&request{op: opArith, ns: ns, key: key, delta: delta, incr: incr})
	return p.value, p.res, err
}

// MetaArith implements the server's data interface.
func (v *View) MetaArith(ns string, key []byte, req kv.ArithRequest) (kv.ArithResult, kv.Result, error) {
	p, err := v.do(&request{op: opMetaArith, ns: ns, key: key, arith: req})
	return p.arith, p.res, err
}
