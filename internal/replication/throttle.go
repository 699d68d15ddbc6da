package replication

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// throttle is a token bucket shared by every sync this node sends: full
// copies and change-log catch-up are limited to rate bytes per second in
// all (the move_rate / dcnice options), so that data movement leaves room
// for client traffic. Live replication of new writes is never throttled.
type throttle struct {
	mu     sync.Mutex
	rate   int64 // bytes per second; 0 = unlimited
	tokens float64
	last   time.Time
}

// setRate changes the rate; a burst of a tenth of a second is allowed.
func (t *throttle) setRate(rate int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rate == rate {
		return
	}
	t.rate = rate
	t.tokens = 0
	t.last = time.Now()
}

// wait blocks until n bytes may be sent.
func (t *throttle) wait(ctx context.Context, n int) error {
	for {
		t.mu.Lock()
		if t.rate <= 0 {
			t.mu.Unlock()
			return nil
		}
		now := time.Now()
		burst := float64(t.rate) / 10
		t.tokens = min(burst, t.tokens+now.Sub(t.last).Seconds()*float64(t.rate))
		t.last = now
		if t.tokens >= 0 {
			// Go into debt for a large frame rather than never sending it.
			t.tokens -= float64(n)
			t.mu.Unlock()
			return nil
		}
		need := time.Duration(-t.tokens / float64(t.rate) * float64(time.Second))
		t.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(need):
		}
	}
}

// MoveStats counts the data this node sent to bring replicas up to date
// (vnode copies and catch-up), for stat and the progress tools.
type MoveStats struct {
	// BytesSent and VnodesSynced count since start; FullCopies counts the
	// syncs that needed a whole copy of the vnode.
	BytesSent    int64
	VnodesSynced int64
	FullCopies   int64
	// OpID is the operation the Op* counters belong to (meta.Operation.ID).
	OpID      uint64
	OpBytes   int64
	Running   int   // syncs in flight
	Rate      int64 // the move rate in force, bytes/s (0 = unlimited)
	Parallel  int   // the parallel syncs allowed
	Throttled bool  // whether the rate limits anything
}

type moveCounters struct {
	bytes, vnodes, full, opBytes atomic.Int64
	opID                         atomic.Uint64
	running                      atomic.Int64
	parallel                     atomic.Int64
}

// countSent adds n bytes sent by a sync during operation op.
func (m *moveCounters) countSent(op uint64, n int64) {
	m.bytes.Add(n)
	if m.opID.Load() == op {
		m.opBytes.Add(n)
	}
}

// noteOp resets the operation counters when a new operation starts.
func (m *moveCounters) noteOp(op uint64) {
	if m.opID.Swap(op) != op {
		m.opBytes.Store(0)
	}
}

// MoveStats returns the data-movement counters.
func (r *Replicator) MoveStats() MoveStats {
	m := &r.moves
	r.throttle.mu.Lock()
	rate := r.throttle.rate
	r.throttle.mu.Unlock()
	return MoveStats{
		BytesSent: m.bytes.Load(), VnodesSynced: m.vnodes.Load(), FullCopies: m.full.Load(),
		OpID: m.opID.Load(), OpBytes: m.opBytes.Load(), Running: int(m.running.Load()),
		Rate: rate, Parallel: int(m.parallel.Load()), Throttled: rate > 0,
	}
}
