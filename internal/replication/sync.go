package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/routing"
	"github.com/sonae-kv/sonae/internal/storage"
)

// syncKey names one lagging replica of one vnode.
type syncKey struct {
	vnode int
	node  routing.NodeID
}

// Run brings the lagging replicas of the vnodes this node is primary of
// back in sync, until ctx ends. It reacts to every metadata change and
// retries failed syncs with a backoff.
func (r *Replicator) Run(ctx context.Context) {
	type result struct {
		k   syncKey
		err error
	}
	var held []bool // the vnodes this node held in the last state seen
	toDrop := map[int]bool{}
	running := map[syncKey]bool{}
	failedAt := map[syncKey]time.Time{}
	failures := map[syncKey]int{}
	done := make(chan result)
	// The syncs belong to Run: it stops them and waits for them before it
	// returns, so Close never races with a sync being started.
	ctx, stopSyncs := context.WithCancel(ctx)
	var syncs sync.WaitGroup
	defer func() {
		stopSyncs()
		syncs.Wait()
	}()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	sweep := true // on start, and whenever this node re-enters the table
	inTable := false
	for {
		changed := r.d.Changed()
		st := r.state()
		if st.Initialized() {
			tun := st.Tuning()
			r.throttle.setRate(tun.MoveRate)
			r.moves.parallel.Store(int64(tun.MoveParallel))
			if st.Operation != nil {
				r.moves.noteOp(st.Operation.ID)
			}
			_, nowIn := st.Table.Node(r.cfg.Self)
			if nowIn && !inTable {
				sweep = true
			}
			inTable = nowIn
			held = r.noteReleased(st, held, toDrop)
			if r.dropReleased(st, toDrop, sweep) {
				sweep = false
			}
			r.pruneLive(st)
			r.emptyAssigned(ctx, st, &syncs)
			for v := range st.Table.Vnodes {
				if st.Table.Vnodes[v].Primary() != r.cfg.Self {
					continue
				}
				for _, n := range st.Lagging[v] {
					k := syncKey{v, n}
					if running[k] || len(running) >= tun.MoveParallel {
						continue
					}
					if t, ok := failedAt[k]; ok && time.Since(t) < backoff(failures[k]) {
						continue
					}
					running[k] = true
					r.moves.running.Add(1)
					epoch := st.Table.Vnodes[v].Epoch
					var op uint64
					if st.Operation != nil {
						op = st.Operation.ID
					}
					syncs.Add(1)
					go func() {
						defer syncs.Done()
						defer r.moves.running.Add(-1)
						err := r.syncReplica(ctx, k.vnode, k.node, epoch, op)
						select {
						case done <- result{k, err}:
						case <-ctx.Done():
						case <-r.ctx.Done():
						}
					}()
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-r.ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		case res := <-done:
			k := res.k
			delete(running, k)
			if res.err != nil {
				failedAt[k] = time.Now()
				failures[k]++
				lvl := slog.LevelDebug
				if failures[k] == 1 {
					lvl = slog.LevelInfo
				}
				r.log.Log(ctx, lvl, "replica sync did not finish; will retry", "vnode", k.vnode, "replica", k.node,
					"attempt", failures[k], "error", res.err)
			} else {
				delete(failedAt, k)
				delete(failures, k)
			}
		}
	}
}

// confirmCaughtUp waits until node has applied every change this primary
// applied to vn so far.
func (r *Replicator) confirmCaughtUp(ctx context.Context, vn int, node routing.NodeID) error {
	vs := &r.vnodes[vn]
	vs.mu.Lock()
	target := vs.applied
	vs.mu.Unlock()
	deadline := time.Now().Add(r.cfg.ReplicationTimeout)
	for {
		last, _, err := r.status(r.state(), node, vn)
		if err == nil && last >= target {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replica %s of vnode %d is at seq %d after being marked in sync, want %d (%v)", node, vn, last, target, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// holds reports whether this node holds vnode v in st: as a replica or as
// an incoming node of a move.
func (r *Replicator) holds(st *meta.State, v int) bool {
	return st.Table.Vnodes[v].Has(r.cfg.Self) || contains(st.Moves[v], r.cfg.Self)
}

// noteReleased records the vnodes this node stopped holding since the last
// state it saw, and returns what it holds now.
func (r *Replicator) noteReleased(st *meta.State, held []bool, toDrop map[int]bool) []bool {
	now := make([]bool, st.Table.VnodeCount())
	for v := range now {
		now[v] = r.holds(st, v)
		if held != nil && held[v] && !now[v] {
			toDrop[v] = true
		}
	}
	return now
}

// dropReleased frees the data of vnodes this node no longer holds: those
// it saw released, and with sweep every vnode it holds data of without
// holding it (left over by a crash or by a failure: a node that was
// failed over comes back holding nothing but what it is given again). It
// acts only with a fresh table (in lease, everything committed applied)
// and re-checks the current state, so replaying old metadata after a
// restart never drops a vnode the node holds again. It keeps everything
// while this node is out of the table (failed: its old data is what its
// resync reuses) and the vnodes it is the last holder of (lost: they come
// back with it). It reports whether the sweep is done: it is not while a
// vnode it does not hold is still receiving data.
func (r *Replicator) dropReleased(st *meta.State, toDrop map[int]bool, sweep bool) bool {
	if (len(toDrop) == 0 && !sweep) || r.d.LeaderContact() >= r.cfg.ReadLease {
		return false
	}
	cur := r.state()
	if _, in := cur.Table.Node(r.cfg.Self); !in {
		return false
	}
	swept := true
	if sweep {
		quiet := time.Now().Add(-sweepQuiet).UnixNano()
		for v := range cur.Table.Vnodes {
			if r.holds(cur, v) || !r.hasData(uint16(v)) {
				continue
			}
			if r.vnodes[v].recvAt.Load() > quiet {
				swept = false // data just arrived: this table may be older than its sender's
				continue
			}
			toDrop[v] = true
		}
	}
	for v := range toDrop {
		cur := r.state()
		if r.holds(cur, v) || contains(cur.Lost[v], r.cfg.Self) || cur.Assigning[v] == r.cfg.Self {
			delete(toDrop, v)
			continue
		}
		if err := r.d.Store.ResetVnode(uint16(v), 0); err != nil {
			r.log.Warn("dropping a released vnode", "vnode", v, "error", err)
			continue
		}
		delete(toDrop, v)
		r.log.Info("vnode this node no longer holds dropped", "vnode", v)
	}
	return swept
}

// sweepQuiet is how long a vnode's replication must have been silent
// before the sweep takes its data for a leftover.
const sweepQuiet = 10 * time.Second

// errFound stops a scan at the first record.
var errFound = errors.New("found")

// hasData reports whether this node stores anything of vnode v: a change
// log, or records (a full copy cut short leaves records at seq 0).
func (r *Replicator) hasData(v uint16) bool {
	eng := r.d.Store.Engine()
	if eng.LastSeq(v) > 0 {
		return true
	}
	err := eng.ScanVnode(v, func(string, []byte, *storage.Record) error { return errFound })
	return errors.Is(err, errFound)
}

// emptyAssigned does this node's part of lost_action auto_assign: it
// empties its copy of a lost vnode given to it, then confirms, and only
// the confirmation makes it the vnode's primary.
func (r *Replicator) emptyAssigned(ctx context.Context, st *meta.State, wg *sync.WaitGroup) {
	for v, node := range st.Assigning {
		if node != r.cfg.Self {
			continue
		}
		if _, busy := r.assigning.LoadOrStore(v, true); busy {
			continue
		}
		epoch := st.Table.Vnodes[v].Epoch
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.d.Store.ResetVnode(uint16(v), 0)
			if err == nil {
				pctx, cancel := context.WithTimeout(ctx, 4*r.cfg.ReplicationTimeout)
				err = r.d.Propose(pctx, meta.Command{Op: meta.OpAssignedLost, Vnode: v, Node: r.cfg.Self, Epoch: epoch})
				cancel()
			}
			if err != nil {
				r.log.Warn("taking over a lost vnode, empty", "vnode", v, "error", err)
			} else {
				r.log.Warn("lost vnode taken over, empty (lost_action auto_assign)", "vnode", v)
			}
			// Retried on a later pass while still assigned.
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			r.assigning.Delete(v)
		}()
	}
}

// backoff is the wait before retrying a sync that failed n times.
func backoff(n int) time.Duration {
	return min(time.Duration(1<<min(n, 5))*250*time.Millisecond, 5*time.Second)
}

// pruneLive forgets live flags of replicas that are in sync or gone.
func (r *Replicator) pruneLive(st *meta.State) {
	for v := range r.vnodes {
		vs := &r.vnodes[v]
		vs.mu.Lock()
		for n, l := range vs.live {
			if l.state == liveProposing {
				continue // its sync ends it
			}
			if v >= st.Table.VnodeCount() || !contains(st.Lagging[v], n) || st.Table.Vnodes[v].Primary() != r.cfg.Self {
				delete(vs.live, n)
			}
		}
		vs.mu.Unlock()
	}
}

// syncWindow bounds the frames of a sync in flight before waiting for acks.
const syncWindow = 512

// syncStream sends a sync's frames, on the peer's bulk connection and then
// on its ordered replication connection for the tail, and checks their
// acks in windows.
type syncStream struct {
	pc      *peerConn
	pending []<-chan frame
	sent    int64
	// r, ctx and op account the bytes; throttled makes send wait for the
	// node's move rate (not for the tail sent under the vnode lock).
	r         *Replicator
	ctx       context.Context
	op        uint64
	throttled bool
}

func (s *syncStream) send(typ byte, body []byte) error {
	if s.throttled {
		if err := s.r.throttle.wait(s.ctx, len(body)); err != nil {
			return err
		}
	}
	s.r.moves.countSent(s.op, int64(len(body)))
	ch, err := s.pc.send(typ, body)
	if err != nil {
		return err
	}
	s.pending = append(s.pending, ch)
	s.sent += int64(len(body))
	if len(s.pending) >= syncWindow {
		return s.drain(len(s.pending) / 2)
	}
	return nil
}

// drain waits for the acks of the oldest n frames.
func (s *syncStream) drain(n int) error {
	for _, ch := range s.pending[:n] {
		f, ok := <-ch
		if !ok {
			return ErrPeerDown
		}
		if err := decodeError(newDec(f.body)); err != nil {
			return err
		}
	}
	s.pending = append(s.pending[:0], s.pending[n:]...)
	return nil
}

// syncReplica brings node's copy of vn up to date with this primary's:
// from the change log when node holds a prefix of this node's history, by
// a full copy otherwise. Then, holding the vnode lock for the last few
// changes, it makes node receive every new change, waits for the acks and
// marks node in sync through Raft.
func (r *Replicator) syncReplica(ctx context.Context, vn int, node routing.NodeID, epoch, op uint64) (err error) {
	st := r.state()
	addr, ok := addrOf(st, node)
	if !ok {
		return fmt.Errorf("%s is not a member", node)
	}
	last, ver, err := r.status(st, node, vn)
	if err != nil {
		return err
	}
	bulk, err := r.pool.bulkStream(ctx, addr)
	if err != nil {
		return err
	}
	s := &syncStream{pc: bulk, r: r, ctx: ctx, op: op, throttled: true}
	eng := r.d.Store.Engine()
	v16 := uint16(vn)
	start := time.Now()
	full := !r.isPrefix(v16, last, ver)
	from := last + 1
	if full {
		if from, err = r.fullCopy(s, vn, epoch); err != nil {
			return err
		}
	}
	vs := &r.vnodes[vn]
	defer func() {
		if err != nil {
			vs.mu.Lock()
			delete(vs.live, node)
			vs.mu.Unlock()
		}
	}()
	for {
		next, err := r.sendLog(s, v16, from, epoch)
		if errors.Is(err, storage.ErrLogTruncated) && !full {
			full = true
			if from, err = r.fullCopy(s, vn, epoch); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		from = next
		if eng.LastSeq(v16)+1-from < 64 {
			break
		}
	}
	// The tail, with writers held off, then live. It goes on the live
	// replication connection, where the writes that follow it will go, so
	// it arrives in order with them; the bulk stream is drained first so
	// that nothing sent on it can land after the tail.
	if err := s.drain(len(s.pending)); err != nil {
		return err
	}
	if s.pc, err = r.pool.replication(ctx, addr); err != nil {
		return err
	}
	s.throttled = false
	unlock := r.d.Store.LockVnode(v16)
	if cur := r.state(); cur.Table.Vnodes[vn].Epoch != epoch || cur.Table.Vnodes[vn].Primary() != r.cfg.Self {
		unlock()
		return fmt.Errorf("vnode %d changed epoch during the sync", vn)
	}
	_, err = r.sendLog(s, v16, from, epoch)
	var lr *liveReplica
	if err == nil {
		lr = &liveReplica{state: liveWaited, settled: make(chan struct{})}
		vs.mu.Lock()
		if vs.live == nil {
			vs.live = map[routing.NodeID]*liveReplica{}
		}
		vs.live[node] = lr
		vs.mu.Unlock()
	}
	unlock()
	if err != nil {
		return err
	}
	if err := s.drain(len(s.pending)); err != nil {
		return err
	}
	// From the moment it went live every write waited for its ack, so it
	// holds every acknowledged write, unless one of those acks failed.
	vs.mu.Lock()
	if lr.state != liveWaited {
		vs.mu.Unlock()
		return fmt.Errorf("replica %s of vnode %d missed a change while catching up", node, vn)
	}
	lr.state = liveProposing
	vs.mu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, 4*r.cfg.ReplicationTimeout)
	defer cancel()
	perr := r.d.Propose(pctx, meta.Command{Op: meta.OpSetInSync, Vnode: vn, Node: node, Epoch: epoch, InSync: true})
	vs.mu.Lock()
	if perr == nil {
		lr.state = liveCommitted
	} else {
		lr.state = liveAborted
	}
	close(lr.settled)
	vs.mu.Unlock()
	if perr != nil {
		return fmt.Errorf("marking in sync: %w", perr)
	}
	// Changes acknowledged between the drain and the commit were sent to
	// the replica without being waited for: it must hold them before it
	// counts as in sync, or it goes back to lagging.
	if err := r.confirmCaughtUp(ctx, vn, node); err != nil {
		if derr := r.demote(vn, node, epoch); derr != nil {
			return fmt.Errorf("%v; and demoting it again: %w", err, derr)
		}
		return err
	}
	r.moves.vnodes.Add(1)
	if full {
		r.moves.full.Add(1)
	}
	r.log.Info("replica in sync", "vnode", vn, "replica", node, "full_copy", full,
		"bytes", s.sent, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// isPrefix reports whether a replica whose last change is (last, ver)
// holds a prefix of this node's history that the log can extend.
func (r *Replicator) isPrefix(vn uint16, last uint64, ver storage.Version) bool {
	eng := r.d.Store.Engine()
	switch {
	case last > eng.LastSeq(vn):
		return false
	case last == 0:
		return eng.FirstSeq(vn) <= 1
	case last+1 < eng.FirstSeq(vn):
		return false
	}
	mine, ok := versionAt(eng, vn, last)
	return ok && mine == ver
}

// fullCopy empties the replica's vnode, streams every record, and then
// sets the replica's log to continue after S, this node's last seq when the
// copy began; the log from S+1 then brings it up to date (replaying a change
// over a newer record is harmless: a change is the resulting state of its
// key). Until the last step the replica's vnode claims seq 0, so a copy cut
// short by a crash is redone in full, never resumed from a log position it
// does not hold. It returns S+1.
func (r *Replicator) fullCopy(s *syncStream, vn int, epoch uint64) (uint64, error) {
	eng := r.d.Store.Engine()
	v16 := uint16(vn)
	base := eng.LastSeq(v16)
	seqFrame := func(typ byte, seq uint64) error {
		var e enc
		e.u64(uint64(vn))
		e.u64(epoch)
		e.u64(seq)
		return s.send(typ, e.b)
	}
	if err := seqFrame(tReset, 0); err != nil {
		return 0, err
	}
	err := eng.ScanVnode(v16, func(ns string, key []byte, rec *storage.Record) error {
		var e enc
		e.change(epoch, &storage.Change{Vnode: v16, Op: storage.OpPut, Namespace: ns, Key: key, Record: *rec})
		return s.send(tLoad, e.b)
	})
	if err != nil {
		return 0, err
	}
	if err := seqFrame(tSetSeq, base); err != nil {
		return 0, err
	}
	return base + 1, nil
}

// sendLog sends vn's changes from seq from on, and returns the seq after
// the last one sent.
func (r *Replicator) sendLog(s *syncStream, vn uint16, from, epoch uint64) (uint64, error) {
	next := from
	err := r.d.Store.Engine().ScanLog(vn, from, func(c *storage.Change) error {
		var e enc
		e.change(epoch, c)
		next = c.Seq + 1
		return s.send(tReplicate, e.b)
	})
	return next, err
}
