package kv

import (
	"encoding/json"
	"time"
)

// flushHorizon records the flush_all commands of one namespace. Items are
// hidden when their version time is at most Immediate, or, once the clock
// reaches DelayedAt, at most Delayed.
type flushHorizon struct {
	Immediate uint64 `json:"immediate"`
	DelayedAt int64  `json:"delayed_at,omitempty"` // unix seconds
	Delayed   uint64 `json:"delayed,omitempty"`
}

func (f *flushHorizon) hides(version uint64, now time.Time) bool {
	if version <= f.Immediate {
		return true
	}
	return f.DelayedAt != 0 && now.Unix() >= f.DelayedAt && version <= f.Delayed
}

// FlushAll hides every item of the namespace now (delay <= 0) or, as
// memcached does for a delay of N seconds, every item last written before
// now+N-1 once that moment comes.
func (s *Store) FlushAll(name string, delay int64) error {
	ns, err := s.namespace(name)
	if err != nil {
		return err
	}
	s.nsMu.Lock() // serialise flushes of all namespaces; they are rare
	defer s.nsMu.Unlock()
	now := s.clk.Now()
	next := flushHorizon{}
	if cur := ns.flush.Load(); cur != nil {
		next = *cur
		// A delayed flush that has come due becomes part of the immediate one.
		if next.DelayedAt != 0 && now.Unix() >= next.DelayedAt {
			next.Immediate = max(next.Immediate, next.Delayed)
			next.DelayedAt, next.Delayed = 0, 0
		}
	}
	if delay <= 0 {
		next.Immediate = max(next.Immediate, s.hlc.Now())
		next.DelayedAt, next.Delayed = 0, 0
	} else {
		at := AbsExptime(delay, now) - 1
		next.DelayedAt = at
		// Everything written up to the end of second `at`.
		next.Delayed = HLCFromUnixMilli((at+1)*1000) - 1
	}
	b, _ := json.Marshal(next)
	if err := s.eng.PutMeta(metaFlush(name), b); err != nil {
		return err
	}
	ns.flush.Store(&next)
	s.flushes.Add(1)
	return nil
}
