package replication

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/routing"
	"github.com/sonae-kv/sonae/internal/storage"
)

// vnodeState is what this node tracks of one vnode as its primary.
type vnodeState struct {
	mu sync.Mutex
	// applied is the seq of the last change this node applied as primary;
	// durable the highest seq whose replication was confirmed. Replicas
	// apply in seq order, so durable >= s means every change up to s is on
	// every in-sync replica.
	applied, durable uint64
	settled          chan struct{} // closed and replaced when durable rises
	// live lists lagging replicas that a sync brought to the head of the
	// log: they receive every new change and every write waits for their
	// ack, so that when the sync marks one in sync through Raft it holds
	// every write acknowledged before. See liveReplica.
	live map[routing.NodeID]*liveReplica

	demoting map[routing.NodeID]*demotion

	// recvAt is when this node last received a replication frame of the
	// vnode (Unix ns): data that arrives ahead of this node's table (a
	// primary whose metadata is newer) must not look like a leftover.
	recvAt atomic.Int64
}

type demotion struct {
	done chan struct{}
	err  error
}

func (vs *vnodeState) markDurable(seq uint64) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if seq > vs.durable {
		vs.durable = seq
		close(vs.settled)
		vs.settled = make(chan struct{})
	}
}

// liveReplica is a lagging replica being brought in sync whose acks writes
// wait for. A write whose ack from it fails must not be acknowledged while
// the sync's "in sync" proposal may still commit: the replica would count
// as in sync without that write. The states order the two sides under
// vnodeState.mu.
type liveReplica struct {
	state liveState
	// settled is closed when a proposal in flight has its outcome.
	settled chan struct{}
}

type liveState int

const (
	liveWaited    liveState = iota // receives and confirms every change
	liveBroken                     // an ack failed: the sync must not propose
	liveProposing                  // the sync's in-sync proposal is in flight
	liveCommitted                  // the proposal committed: it is in sync
	liveAborted                    // the proposal failed
)

// pendingAck is one replication frame awaiting its ack.
type pendingAck struct {
	node routing.NodeID
	ch   <-chan frame
	err  error
	// wait is whether the write waits for this ack; live whether the
	// replica is a live lagging one (see liveReplica) rather than in sync.
	wait, live bool
}

// Hook is kv.Options.Replicate: it runs under the vnode lock right after c
// was applied locally, queues c to every replica that receives the vnode's
// changes, and returns the wait that confirms the in-sync ones.
func (r *Replicator) Hook(c *storage.Change) func() error {
	st := r.state()
	vn := int(c.Vnode)
	vs := &r.vnodes[vn]
	vs.mu.Lock()
	if c.Seq > vs.applied {
		vs.applied = c.Seq
	}
	var live []routing.NodeID
	for n, l := range vs.live {
		if l.state != liveBroken && l.state != liveAborted {
			live = append(live, n)
		}
	}
	vs.mu.Unlock()
	if !st.Initialized() {
		vs.markDurable(c.Seq)
		return nil
	}
	rep := st.Table.Vnodes[vn]
	if rep.Primary() != r.cfg.Self {
		// The table moved between routing and applying. The change stays
		// local and unacknowledged; the next sync of this replica
		// replaces the diverged copy.
		return func() error {
			return unavailable(vn, "this node stopped being the primary during the write")
		}
	}
	var body []byte
	var pending []pendingAck
	incoming := st.Incoming(vn)
	for _, n := range append(rep.Nodes[1:len(rep.Nodes):len(rep.Nodes)], incoming...) {
		// A caught-up incoming node is waited for like an in-sync
		// replica: it may become the primary at the cut-over.
		inSync := st.InSync(vn, n) || (contains(incoming, n) && st.Ready(vn, n))
		isLive := !inSync && contains(live, n)
		if !inSync && !isLive {
			continue
		}
		if body == nil {
			var e enc
			e.change(rep.Epoch, c)
			body = e.b
		}
		p := pendingAck{node: n, wait: true, live: isLive}
		if addr, ok := addrOf(st, n); !ok {
			p.err = fmt.Errorf("%w: %s is not a member", ErrPeerDown, n)
		} else if pc, err := r.pool.replication(r.ctx, addr); err != nil {
			p.err = err
		} else {
			p.ch, p.err = pc.send(tReplicate, body)
		}
		pending = append(pending, p)
	}
	seq, epoch := c.Seq, rep.Epoch
	if len(pending) == 0 {
		vs.markDurable(seq)
		return nil
	}
	return func() error { return r.confirm(vn, epoch, seq, pending) }
}

func contains(ns []routing.NodeID, n routing.NodeID) bool {
	for _, x := range ns {
		if x == n {
			return true
		}
	}
	return false
}

// confirm waits for the in-sync replicas' acks of seq. A replica that does
// not ack in time, or refuses for any reason but a stale epoch, is removed
// from the in-sync set through Raft before the write is acknowledged.
func (r *Replicator) confirm(vn int, epoch, seq uint64, pending []pendingAck) error {
	timer := time.NewTimer(r.cfg.ReplicationTimeout)
	defer timer.Stop()
	for _, p := range pending {
		if !p.wait {
			continue
		}
		err := p.err
		if err == nil {
			select {
			case f, ok := <-p.ch:
				if !ok {
					err = ErrPeerDown
				} else {
					err = decodeError(newDec(f.body))
				}
			case <-timer.C:
				err = ErrTimeout
				timer.Reset(0) // the others get no more time
			}
		}
		if err == nil {
			continue
		}
		if errors.Is(err, ErrStaleEpoch) {
			return unavailable(vn, "replica %s holds a newer epoch than %d: this node is no longer the primary", p.node, epoch)
		}
		if p.live && !r.liveFailed(vn, p.node) {
			continue // not in sync, and it will not be marked so
		}
		r.log.Warn("secondary did not confirm a change; removing it from the in-sync set",
			"vnode", vn, "seq", seq, "secondary", p.node, "error", err)
		if derr := r.demote(vn, p.node, epoch); derr != nil {
			return unavailable(vn, "secondary %s did not confirm (%v) and it could not be removed from the in-sync set: %v", p.node, err, derr)
		}
	}
	r.vnodes[vn].markDurable(seq)
	return nil
}

// liveFailed records that a live replica missed a change. It reports
// whether the replica was (or is being) marked in sync meanwhile, in which
// case it must be demoted through Raft like any in-sync replica.
func (r *Replicator) liveFailed(vn int, node routing.NodeID) bool {
	vs := &r.vnodes[vn]
	vs.mu.Lock()
	l := vs.live[node]
	if l == nil {
		vs.mu.Unlock()
		st := r.state()
		return st.InSync(vn, node) || contains(st.Incoming(vn), node) && st.Ready(vn, node)
	}
	switch l.state {
	case liveWaited:
		l.state = liveBroken
		vs.mu.Unlock()
		return false
	case liveProposing:
		ch := l.settled
		vs.mu.Unlock()
		<-ch
		vs.mu.Lock()
		committed := l.state == liveCommitted
		vs.mu.Unlock()
		return committed
	case liveCommitted:
		vs.mu.Unlock()
		return true
	}
	vs.mu.Unlock()
	// Broken or aborted: the proposal may still have committed if its
	// outcome was unknown (a timeout); the metadata decides.
	st := r.state()
	return st.InSync(vn, node) || contains(st.Incoming(vn), node) && st.Ready(vn, node)
}

// demote marks node lagging in vn through Raft, once for all the writes
// that wait on it at the same time.
func (r *Replicator) demote(vn int, node routing.NodeID, epoch uint64) error {
	vs := &r.vnodes[vn]
	vs.mu.Lock()
	if d := vs.demoting[node]; d != nil {
		vs.mu.Unlock()
		<-d.done
		return d.err
	}
	d := &demotion{done: make(chan struct{})}
	if vs.demoting == nil {
		vs.demoting = map[routing.NodeID]*demotion{}
	}
	vs.demoting[node] = d
	vs.mu.Unlock()

	ctx, cancel := context.WithTimeout(r.ctx, 2*r.cfg.ReplicationTimeout)
	d.err = r.d.Propose(ctx, meta.Command{Op: meta.OpSetInSync, Vnode: vn, Node: node, Epoch: epoch, InSync: false})
	cancel()
	if errors.Is(d.err, meta.ErrNotReplica) {
		d.err = nil // removed from the vnode meanwhile: nothing to wait for
	}
	vs.mu.Lock()
	delete(vs.demoting, node)
	vs.mu.Unlock()
	close(d.done)
	return d.err
}

// barrier waits until every change the store could have shown the read
// that just ran is confirmed by the in-sync replicas. The engine's last seq,
// read after the store answered, bounds what the read saw. The fast path is
// one atomic read: nothing unconfirmed. Otherwise the vnode lock gives a
// consistent view: changes this node applied as primary (up to applied)
// are confirmed by their own writers, which the barrier waits for; changes
// beyond them came from an earlier primary while this node was a replica,
// and resolve asks the replicas about them.
func (r *Replicator) barrier(vn int) error {
	vs := &r.vnodes[vn]
	eng := r.d.Store.Engine()
	v16 := uint16(vn)
	last := eng.LastSeq(v16)
	vs.mu.Lock()
	durable := vs.durable
	vs.mu.Unlock()
	if durable >= last {
		return nil
	}
	unlock := r.d.Store.LockVnode(v16)
	target := eng.LastSeq(v16)
	vs.mu.Lock()
	applied := vs.applied
	vs.mu.Unlock()
	unlock()
	if target > applied {
		return r.resolve(vn, target)
	}
	timer := time.NewTimer(r.cfg.ReplicationTimeout)
	defer timer.Stop()
	for {
		vs.mu.Lock()
		durable, ch := vs.durable, vs.settled
		vs.mu.Unlock()
		if durable >= target {
			return nil
		}
		select {
		case <-ch:
		case <-timer.C:
			return r.resolve(vn, target)
		case <-r.ctx.Done():
			return unavailable(vn, "shutting down")
		}
	}
}

// resolve settles vn after a change whose confirmation failed: it asks
// every in-sync secondary how far it got, removes those behind from the
// in-sync set, and then counts everything up to target as confirmed.
func (r *Replicator) resolve(vn int, target uint64) error {
	st := r.state()
	rep := st.Table.Vnodes[vn]
	if rep.Primary() != r.cfg.Self {
		return unavailable(vn, "this node is no longer the primary")
	}
	confirmers := slices.Clone(st.InSyncReplicas(vn)[1:])
	for _, n := range st.Incoming(vn) {
		if st.Ready(vn, n) {
			confirmers = append(confirmers, n)
		}
	}
	for _, n := range confirmers {
		last, _, err := r.status(st, n, vn)
		if err == nil && last >= target {
			continue
		}
		if err := r.demote(vn, n, rep.Epoch); err != nil {
			return unavailable(vn, "secondary %s could not be confirmed or removed from the in-sync set: %v", n, err)
		}
	}
	r.vnodes[vn].markDurable(target)
	return nil
}
