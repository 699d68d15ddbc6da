package replication

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/routing"
	"github.com/sonae-kv/sonae/internal/storage"
)

// handleReplica applies a replication frame as a replica. It runs on the
// connection's reader goroutine, so frames apply in the order they were
// sent. The ack carries the error (if any) and the vnode's last seq.
func (r *Replicator) handleReplica(f frame) []byte {
	d := newDec(f.body)
	var err error
	var vn uint16
	switch f.typ {
	case tReplicate, tLoad:
		epoch, c := d.change()
		vn = c.Vnode
		if err = d.done(); err == nil {
			if err = r.checkEpoch(int(c.Vnode), epoch); err == nil {
				if f.typ == tReplicate {
					err = r.applyChange(&c)
				} else {
					err = r.d.Store.LoadReplicated(&c)
				}
			}
		}
	case tReset, tSetSeq:
		vn = uint16(d.u64())
		epoch, seq := d.u64(), d.u64()
		if err = d.done(); err == nil && int(vn) >= r.d.Store.VnodeCount() {
			err = fmt.Errorf("replication: vnode %d out of range", vn)
		}
		if err == nil {
			if err = r.checkEpoch(int(vn), epoch); err == nil {
				if f.typ == tReset {
					err = r.d.Store.ResetVnode(vn, seq)
					r.log.Info("vnode emptied for a full copy from its primary", "vnode", vn)
				} else {
					unlock := r.d.Store.LockVnode(vn)
					err = r.d.Store.Engine().ResetSeq(vn, seq)
					unlock()
				}
			}
		}
	}
	var e enc
	encodeError(&e, err)
	if int(vn) < r.d.Store.VnodeCount() {
		r.vnodes[vn].recvAt.Store(time.Now().UnixNano())
		e.u64(r.d.Store.Engine().LastSeq(vn))
	}
	return e.b
}

// applyChange applies a replicated change. A change at a seq the replica
// already has is a duplicate only if it is the same change (same version);
// otherwise the replica's history diverged from the primary's (it holds a
// change the primary does not), and it must be rebuilt by a full copy.
func (r *Replicator) applyChange(c *storage.Change) error {
	eng := r.d.Store.Engine()
	if c.Seq <= eng.LastSeq(c.Vnode) {
		if v, ok := versionAt(eng, c.Vnode, c.Seq); ok && v != c.Record.Version {
			return fmt.Errorf("%w: vnode %d seq %d holds another change than the primary's", ErrDiverged, c.Vnode, c.Seq)
		}
		return nil
	}
	return r.d.Store.ApplyReplicated(c)
}

// checkEpoch refuses frames from an epoch older than the local table's,
// and frames for a vnode this node is itself the primary of.
func (r *Replicator) checkEpoch(vn int, epoch uint64) error {
	st := r.state()
	if !st.Initialized() || vn >= st.Table.VnodeCount() {
		return nil
	}
	rep := st.Table.Vnodes[vn]
	if epoch < rep.Epoch {
		return fmt.Errorf("%w: vnode %d frame epoch %d < %d", ErrStaleEpoch, vn, epoch, rep.Epoch)
	}
	if epoch == rep.Epoch && rep.Primary() == r.cfg.Self {
		return fmt.Errorf("%w: vnode %d epoch %d: this node is its primary", ErrStaleEpoch, vn, epoch)
	}
	return nil
}

// handleStatus answers where this node's copy of a vnode stands: its last
// seq and the version of the change at that seq (zero when the log does
// not hold it), which the primary compares with its own log to tell a
// prefix of its history from a diverged one.
func (r *Replicator) handleStatus(body []byte) []byte {
	d := newDec(body)
	vn := d.u64()
	if err := d.done(); err != nil {
		return errorBody(err)
	}
	if vn >= uint64(r.d.Store.VnodeCount()) {
		return errorBody(fmt.Errorf("replication: vnode %d out of range", vn))
	}
	eng := r.d.Store.Engine()
	last := eng.LastSeq(uint16(vn))
	ver, _ := versionAt(eng, uint16(vn), last)
	var e enc
	e.u8(kindOK)
	e.u64(last)
	e.u64(ver.Time)
	e.u64(uint64(ver.Origin))
	return e.b
}

// versionAt returns the version of vn's change at seq, if the log holds it.
func versionAt(eng storage.Engine, vn uint16, seq uint64) (storage.Version, bool) {
	if seq == 0 || seq < eng.FirstSeq(vn) {
		return storage.Version{}, false
	}
	var v storage.Version
	found := false
	errStop := errors.New("stop")
	err := eng.ScanLog(vn, seq, func(c *storage.Change) error {
		if c.Seq == seq {
			v, found = c.Record.Version, true
		}
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return storage.Version{}, false
	}
	return v, found
}

// status asks node where its copy of vn stands.
func (r *Replicator) status(st *meta.State, node routing.NodeID, vn int) (uint64, storage.Version, error) {
	addr, ok := addrOf(st, node)
	if !ok {
		return 0, storage.Version{}, fmt.Errorf("%w: %s is not a member", ErrPeerDown, node)
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.ReplicationTimeout)
	defer cancel()
	pc, err := r.pool.get(ctx, addr)
	if err != nil {
		return 0, storage.Version{}, err
	}
	var e enc
	e.u64(uint64(vn))
	f, err := pc.call(ctx, tStatus, e.b)
	if err != nil {
		return 0, storage.Version{}, err
	}
	d := newDec(f.body)
	if err := decodeError(d); err != nil {
		return 0, storage.Version{}, err
	}
	last := d.u64()
	v := storage.Version{Time: d.u64(), Origin: uint32(d.u64())}
	return last, v, d.done()
}

// handlePropose commits a metadata command for a peer (this node should be
// the Raft leader; Propose forwards otherwise).
func (r *Replicator) handlePropose(body []byte) []byte {
	c, err := meta.DecodeCommand(body)
	if err != nil {
		return errorBody(err)
	}
	ctx, cancel := context.WithTimeout(r.ctx, 4*r.cfg.ReplicationTimeout)
	defer cancel()
	err = r.d.Propose(ctx, c)
	var e enc
	if err == nil {
		e.u8(kindOK)
		e.u64(r.state().Index)
		return e.b
	}
	return errorBody(err)
}

// ProposeAt asks the node at addr (the Raft leader) to commit c and returns
// the Raft index it reported. The caller waits for its own FSM to reach
// that index.
func (r *Replicator) ProposeAt(ctx context.Context, addr string, c meta.Command) (uint64, error) {
	pc, err := r.pool.get(ctx, addr)
	if err != nil {
		return 0, err
	}
	f, err := pc.call(ctx, tPropose, c.Encode())
	if err != nil {
		return 0, err
	}
	d := newDec(f.body)
	if err := decodeError(d); err != nil {
		return 0, err
	}
	idx := d.u64()
	return idx, d.done()
}

// LeaseAt asks the node at addr (the Raft leader) for a read lease for
// this node and returns the commit index the lease is valid from.
func (r *Replicator) LeaseAt(ctx context.Context, addr string) (uint64, error) {
	pc, err := r.pool.get(ctx, addr)
	if err != nil {
		return 0, err
	}
	var e enc
	e.str(string(r.cfg.Self))
	f, err := pc.call(ctx, tLease, e.b)
	if err != nil {
		return 0, err
	}
	d := newDec(f.body)
	if err := decodeError(d); err != nil {
		return 0, err
	}
	idx := d.u64()
	return idx, d.done()
}

// FlushAt runs flush_all on the node at addr.
func (r *Replicator) FlushAt(ctx context.Context, addr, ns string, delay int64) error {
	pc, err := r.pool.get(ctx, addr)
	if err != nil {
		return err
	}
	var e enc
	e.str(ns)
	e.i64(delay)
	f, err := pc.call(ctx, tFlush, e.b)
	if err != nil {
		return err
	}
	return decodeError(newDec(f.body))
}

// DropPeer closes the connections to a node that left.
func (r *Replicator) DropPeer(addr string) { r.pool.drop(addr) }

// AppliedAt returns the Raft index the metadata of the node at addr has
// applied.
func (r *Replicator) AppliedAt(ctx context.Context, addr string) (uint64, error) {
	pc, err := r.pool.get(ctx, addr)
	if err != nil {
		return 0, err
	}
	f, err := pc.call(ctx, tApplied, nil)
	if err != nil {
		return 0, err
	}
	d := newDec(f.body)
	if err := decodeError(d); err != nil {
		return 0, err
	}
	idx := d.u64()
	return idx, d.done()
}
