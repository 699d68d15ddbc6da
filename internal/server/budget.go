package server

import (
	"sync"
	"time"
)

// byteBudget bounds the bytes of data blocks held by all connections at once,
// so thousands of clients declaring large values cannot exhaust memory. A
// connection that does not fit waits, which stops it reading (backpressure);
// after wait it gives up and the parser answers out of memory.
type byteBudget struct {
	mu      sync.Mutex
	cond    *sync.Cond
	limit   int
	used    int
	wait    time.Duration
	closed  bool // set by close: waiters give up at once
	waiters int  // connections blocked in Acquire
}

func newByteBudget(limit int, wait time.Duration) *byteBudget {
	b := &byteBudget{limit: limit, wait: wait}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// Acquire implements protocol.Budget.
func (b *byteBudget) Acquire(n int) bool {
	if n > b.limit {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n <= b.limit {
		b.used += n
		return true
	}
	deadline := time.Now().Add(b.wait)
	timer := time.AfterFunc(b.wait, func() {
		b.mu.Lock()
		b.cond.Broadcast()
		b.mu.Unlock()
	})
	defer timer.Stop()
	b.waiters++
	defer func() { b.waiters-- }()
	for b.used+n > b.limit {
		if b.closed || !time.Now().Before(deadline) {
			return false
		}
		b.cond.Wait()
	}
	b.used += n
	return true
}

// Release implements protocol.Budget.
func (b *byteBudget) Release(n int) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
	b.cond.Broadcast()
}

// close makes every waiting and future Acquire that does not fit give up,
// so that shutdown is not held up by connections waiting for memory.
func (b *byteBudget) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.cond.Broadcast()
}

// Used returns the bytes held now.
func (b *byteBudget) Used() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Waiters returns how many connections are waiting for memory.
func (b *byteBudget) Waiters() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waiters
}
