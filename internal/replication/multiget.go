package replication

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sonae-kv/sonae/internal/kv"
	"github.com/sonae-kv/sonae/internal/routing"
)

// GetMulti reads many keys: the ones this node is primary of locally, the
// others in one request per primary, all primaries at once. Results are in
// the order of keys; errs[i] is the error of key i alone.
func (v *View) GetMulti(nss []string, keys [][]byte) (items []kv.Item, found []bool, errs []error) {
	n := len(keys)
	items, found, errs = make([]kv.Item, n), make([]bool, n), make([]error, n)
	r := v.r
	st := r.state()
	if !st.Initialized() || v.ReadSecondary {
		for i := range keys {
			items[i], found[i], errs[i] = v.Get(nss[i], keys[i])
		}
		return items, found, errs
	}
	groups := map[routing.NodeID][]int{}
	for i, k := range keys {
		vn := int(routing.Vnode(k, st.Table.DivBits))
		p := st.Table.Vnodes[vn].Primary()
		if p == "" || p == r.cfg.Self || v.Direct {
			items[i], found[i], errs[i] = v.Get(nss[i], keys[i])
			continue
		}
		groups[p] = append(groups[p], i)
	}
	var wg sync.WaitGroup
	for node, idx := range groups {
		wg.Go(func() {
			ok := r.forwardBatch(node, nss, keys, idx, items, found, errs)
			if !ok {
				// The batch failed as a whole (or the table moved): each
				// key takes the single-key path, which retries.
				for _, i := range idx {
					items[i], found[i], errs[i] = v.Get(nss[i], keys[i])
				}
			}
		})
	}
	wg.Wait()
	return items, found, errs
}

// forwardBatch sends the reads idx to node and fills in their results. It
// returns false when the batch could not be used at all; a key answered
// NOT_PRIMARY is retried alone.
func (r *Replicator) forwardBatch(node routing.NodeID, nss []string, keys [][]byte, idx []int, items []kv.Item, found []bool, errs []error) bool {
	addr, ok := addrOf(r.state(), node)
	if !ok {
		return false
	}
	var e enc
	e.u64(uint64(len(idx)))
	for _, i := range idx {
		q := request{op: opGet, ns: nss[i], key: keys[i]}
		e.bytes(q.encode())
	}
	ctx, cancel := context.WithTimeout(r.ctx, 2*r.cfg.ReplicationTimeout+time.Second)
	defer cancel()
	pc, err := r.pool.get(ctx, addr)
	if err != nil {
		return false
	}
	f, err := pc.call(ctx, tForwardBatch, e.b)
	if err != nil {
		return false
	}
	d := newDec(f.body)
	if err := decodeError(d); err != nil || d.u64() != uint64(len(idx)) {
		return false
	}
	v := r.View(false, false)
	for _, i := range idx {
		rd := newDec(d.bytes())
		err := decodeError(rd)
		if _, np := err.(*NotPrimaryError); np {
			items[i], found[i], errs[i] = v.Get(nss[i], keys[i])
			continue
		}
		if err != nil {
			errs[i] = err
			continue
		}
		p, err := decodeResponse(rd)
		items[i], found[i], errs[i] = p.item, p.found, err
	}
	return d.done() == nil
}

func (r *Replicator) handleForwardBatch(body []byte) []byte {
	d := newDec(body)
	n := d.u64()
	if d.err != nil || n > uint64(len(body)) {
		return errorBody(fmt.Errorf("replication: bad batch"))
	}
	var out enc
	out.u8(kindOK)
	out.u64(n)
	v := r.View(true, false)
	for range n {
		q, err := decodeRequest(d.bytes())
		if err == nil && q.op != opGet {
			err = fmt.Errorf("replication: only reads can be batched, not op %d", q.op)
		}
		var e enc
		var p response
		if err == nil {
			p, err = v.do(&q)
		}
		encodeError(&e, err)
		if err == nil {
			p.encode(&e)
		}
		out.bytes(e.b)
	}
	if err := d.done(); err != nil {
		return errorBody(err)
	}
	return out.b
}
