package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/sonae-kv/sonae/internal/replication"
	"github.com/sonae-kv/sonae/internal/routing"
)

// errLeaseWithheld: the leader is failing the asking node over and grants
// it no more leases.
var errLeaseWithheld = errors.New("read lease withheld: the leader is failing this node over")

// leases is both sides of the read lease (docs/cluster.md, "Reads").
//
// A node that is not the Raft leader serves as primary only while it holds
// a lease from the leader: it asks every ReadLease/4, and a grant counts
// from the moment the request was sent, for ReadLease, once the node has
// applied the metadata index the leader answered (so its table is at least
// as fresh as the leader's was at the grant). The leader records when it granted each node its
// last lease. Because the asker starts counting before the leader records,
// the leader knows an upper bound of every lease: after lastGrant+ReadLease
// the node has stopped serving, whatever the network does. The controller
// waits for that before it promotes a failed node's secondaries, and
// withholds new grants from a node it is failing over.
//
// The leader itself serves on raft's own leader lease: it steps down after
// LeaderLeaseTimeout without a quorum, well within the time a new leader
// needs to be elected plus the ReadLease a new leader waits before it
// fails any node over.
type leases struct {
	mu    sync.Mutex
	start time.Time // when the held lease's request was sent
	index uint64    // the commit index it is valid from
	// older are the leases before it, newest first. A new grant names the
	// leader's latest index, which this node's metadata applies a little
	// later (more so on a busy node); until then an older lease whose
	// index is applied still holds, and reads go on under it instead of
	// waiting.
	older       [3]leaseGrant
	granted     map[routing.NodeID]time.Time
	withheld    map[routing.NodeID]bool
	leaderSince time.Time // when this node last became leader
	leaderSeq   uint64    // the leadership observation leaderSince belongs to
	readySeq    uint64    // the leadership whose barrier has been applied
	renew       chan struct{}
	renewed     chan struct{} // closed and replaced on every new lease
}

type leaseGrant struct {
	start time.Time
	index uint64
}

func (l *leases) init() {
	l.renew = make(chan struct{}, 1)
	l.renewed = make(chan struct{})
}

// renewLeases keeps this node's lease fresh while it is not the leader.
func (cl *cluster) renewLeases(ctx context.Context) {
	lease := time.Duration(cl.cfg.ReadLease)
	for {
		wait := lease / 4
		if !cl.raft.IsLeader() {
			ok := false
			if _, addr := cl.raft.Leader(); addr != "" {
				sent := time.Now()
				rctx, cancel := context.WithTimeout(ctx, lease/2)
				idx, err := cl.rep.LeaseAt(rctx, addr)
				cancel()
				if ok = err == nil; ok {
					cl.lease.mu.Lock()
					if sent.After(cl.lease.start) {
						copy(cl.lease.older[1:], cl.lease.older[:])
						cl.lease.older[0] = leaseGrant{cl.lease.start, cl.lease.index}
						cl.lease.start, cl.lease.index = sent, idx
						close(cl.lease.renewed)
						cl.lease.renewed = make(chan struct{})
					}
					cl.lease.mu.Unlock()
				} else {
					cl.log.Debug("read lease not renewed", "leader", addr, "error", err)
				}
			}
			if !ok {
				wait = lease / 20 // without a lease this node serves nothing: retry soon
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-cl.lease.renew:
		}
	}
}

// grantLease is the leader's side of a lease request.
func (cl *cluster) grantLease(node routing.NodeID) (uint64, error) {
	if !cl.raft.IsLeader() {
		return 0, replication.ErrNotLeader
	}
	cl.lease.mu.Lock()
	defer cl.lease.mu.Unlock()
	if cl.lease.readySeq != cl.raft.Leadership().Seq {
		// A new leader's FSM may be behind until its barrier is applied:
		// the index it would answer could be older than the asker's need.
		return 0, replication.ErrNotLeader
	}
	if cl.lease.withheld[node] {
		return 0, errLeaseWithheld
	}
	if cl.lease.granted == nil {
		cl.lease.granted = map[routing.NodeID]time.Time{}
	}
	cl.lease.granted[node] = time.Now()
	// The FSM's own index (raft's counts entries the FSM never sees, and
	// runs ahead of what the FSM applied): the asker compares it with its
	// FSM's.
	return cl.fsm.State().Index, nil
}

// leaseBound returns when the lease of node surely ends if it gets no
// other: its last grant from this leader plus ReadLease. A grant from an
// earlier leader is bounded by this node's own leadership start.
func (cl *cluster) leaseBound(node routing.NodeID) time.Time {
	cl.lease.mu.Lock()
	defer cl.lease.mu.Unlock()
	if l := cl.raft.Leadership(); !l.IsLeader || l.Seq != cl.lease.leaderSeq || cl.lease.leaderSince.IsZero() {
		// Leadership changed and becameLeader has not run yet: nothing
		// is known of the grants in between.
		return time.Now().Add(time.Duration(cl.cfg.ReadLease))
	}
	last := cl.lease.leaderSince
	if g := cl.lease.granted[node]; g.After(last) {
		last = g
	}
	return last.Add(time.Duration(cl.cfg.ReadLease))
}

// withholdLease stops (or resumes) granting node leases.
func (cl *cluster) withholdLease(node routing.NodeID, withhold bool) {
	cl.lease.mu.Lock()
	defer cl.lease.mu.Unlock()
	if cl.lease.withheld == nil {
		cl.lease.withheld = map[routing.NodeID]bool{}
	}
	if withhold {
		cl.lease.withheld[node] = true
	} else {
		delete(cl.lease.withheld, node)
	}
}

// becameLeader resets the leader's side: grants of an earlier term are
// not known here, so they are bounded from now on.
func (cl *cluster) becameLeader(seq uint64) {
	cl.lease.mu.Lock()
	defer cl.lease.mu.Unlock()
	cl.lease.leaderSince = time.Now()
	cl.lease.leaderSeq = seq
	cl.lease.granted = nil
	cl.lease.withheld = nil
}

// awaitLeaderReady applies a barrier in a new term: until every entry
// committed before it is applied, a new leader's table may be older than
// the one it led with, and it must not serve from it.
func (cl *cluster) awaitLeaderReady(ctx context.Context, seq uint64) {
	for ctx.Err() == nil && cl.raft.Leadership().Seq == seq {
		bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := cl.raft.Barrier(bctx)
		cancel()
		if err == nil {
			cl.lease.mu.Lock()
			cl.lease.readySeq = seq
			close(cl.lease.renewed)
			cl.lease.renewed = make(chan struct{})
			cl.lease.mu.Unlock()
			return
		}
		cl.log.Debug("leader barrier failed; retrying", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// leaderReady reports whether this node leads and has applied its term's
// barrier, waiting briefly for it.
func (cl *cluster) leaderReady() bool {
	for range 2 {
		cl.lease.mu.Lock()
		ready, renewed := cl.lease.readySeq, cl.lease.renewed
		cl.lease.mu.Unlock()
		l := cl.raft.Leadership()
		if l.IsLeader && ready == l.Seq {
			return true
		}
		select {
		case <-renewed:
		case <-time.After(time.Duration(cl.cfg.ReadLease) / 4):
		}
	}
	return false
}

// leaderContact is the read lease's clock for the data path: 0 on the
// leader (once its term's barrier is applied), else the age of the held
// lease. The lease counts only once this node's metadata has applied the
// index it was granted at; until then the newest older lease whose index
// is applied counts while it runs (while data moves, the metadata commits
// dozens of entries a second, and a fresh grant is nearly always a little
// ahead of this node), else it waits for the index briefly, and a lease it
// cannot catch up with counts as lost.
func (cl *cluster) leaderContact() time.Duration {
	if cl.raft.IsLeader() {
		if cl.leaderReady() {
			return 0
		}
		return time.Duration(math.MaxInt64)
	}
	lease := time.Duration(cl.cfg.ReadLease)
	cl.lease.mu.Lock()
	start, index, renewed := cl.lease.start, cl.lease.index, cl.lease.renewed
	cl.lease.mu.Unlock()
	if start.IsZero() || time.Since(start) >= lease*3/4 {
		// No lease, or one about to end (say, just after a leader
		// change): ask now and wait a little for it rather than refuse.
		select {
		case cl.lease.renew <- struct{}{}:
		default:
		}
		select {
		case <-renewed:
		case <-time.After(lease / 4):
		}
		cl.lease.mu.Lock()
		start, index = cl.lease.start, cl.lease.index
		cl.lease.mu.Unlock()
		if start.IsZero() {
			return time.Duration(math.MaxInt64)
		}
	}
	if applied := cl.fsm.State().Index; applied < index {
		cl.lease.mu.Lock()
		older := cl.lease.older
		cl.lease.mu.Unlock()
		for _, g := range older {
			if !g.start.IsZero() && applied >= g.index && time.Since(g.start) < lease {
				return time.Since(g.start)
			}
		}
	}
	if cl.fsm.State().Index < index {
		deadline := time.Now().Add(time.Duration(cl.cfg.ReadLease) / 2)
		for cl.fsm.State().Index < index {
			ch := cl.fsm.Changed()
			if time.Now().After(deadline) {
				return time.Duration(math.MaxInt64)
			}
			select {
			case <-ch:
			case <-time.After(time.Millisecond):
			}
		}
	}
	return time.Since(start)
}

// leaseStatus describes this node's lease for stat.
func (cl *cluster) leaseStatus() string {
	if cl.raft.IsLeader() {
		return "leader"
	}
	c := cl.leaderContact()
	if c >= time.Duration(cl.cfg.ReadLease) {
		return "none"
	}
	return fmt.Sprintf("held (%s old)", c.Round(time.Millisecond))
}
