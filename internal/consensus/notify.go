package consensus

import "sync"

// Leadership is one observation of this node's role.
type Leadership struct {
	// IsLeader is true while this node is the raft leader.
	IsLeader bool
	// Seq counts the leadership changes of this Node since Open (the first
	// observation, sent on subscribe, may carry 0). Watchers see only the
	// latest state: a jump of more than one means changes were coalesced,
	// for example leadership lost and won again, so anything tied to the
	// previous term (a Barrier, leader-only work) must be redone.
	Seq uint64
}

// leadershipHub fans raft's leadership changes out to watchers without
// ever blocking the sender: each watcher has a one-slot channel whose
// unread value is replaced by the newer one.
type leadershipHub struct {
	mu     sync.Mutex
	cur    Leadership
	subs   map[chan Leadership]struct{}
	closed bool
}

func newLeadershipHub() *leadershipHub {
	return &leadershipHub{subs: map[chan Leadership]struct{}{}}
}

// publish records a change and offers it to every watcher. It never
// blocks: the hub is each channel's only sender, so after emptying the
// slot the send always succeeds.
func (h *leadershipHub) publish(isLeader bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.cur = Leadership{IsLeader: isLeader, Seq: h.cur.Seq + 1}
	for ch := range h.subs {
		offer(ch, h.cur)
	}
}

func offer(ch chan Leadership, l Leadership) {
	select {
	case <-ch:
	default:
	}
	ch <- l
}

// current returns the latest observation.
func (h *leadershipHub) current() Leadership {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cur
}

// watch adds a watcher that starts with the current state. The channel is
// closed by cancel or when the hub closes.
func (h *leadershipHub) watch() (<-chan Leadership, func()) {
	ch := make(chan Leadership, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(ch)
		return ch, func() {}
	}
	ch <- h.cur
	h.subs[ch] = struct{}{}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// close closes every watcher's channel; later publishes are dropped.
func (h *leadershipHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for ch := range h.subs {
		delete(h.subs, ch)
		close(ch)
	}
}
