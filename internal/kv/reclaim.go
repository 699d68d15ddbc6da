package kv

import (
	"context"
	"errors"
	"time"

	"github.com/sonae-kv/sonae/internal/storage"
)

// reclaimBatch bounds the expired refs handled per vnode-lock round trip.
const reclaimBatch = 1024

// Run reclaims expired and flushed items and trims change logs every
// ExpiryScanInterval until ctx ends. Errors are logged, not fatal: the next
// round retries.
func (s *Store) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.ExpiryScanInterval)
	defer t.Stop()
	var lastFlushes int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.ReclaimExpired(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("reclaiming expired items", "error", err)
		}
		if f := s.flushes.Load(); f != lastFlushes {
			if err := s.SweepFlushed(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("sweeping flushed items", "error", err)
			} else {
				lastFlushes = f
			}
		}
		if err := s.TrimLogs(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("trimming change logs", "error", err)
		}
	}
}

// ReclaimExpired removes every item whose exptime has passed and returns how
// many it removed. Removal takes the vnode lock and re-checks the record, so
// a key rewritten meanwhile is left alone.
func (s *Store) ReclaimExpired(ctx context.Context) (int, error) {
	total := 0
	for ctx.Err() == nil {
		now := s.clk.Now()
		var refs []storage.ExpiryRef
		err := s.eng.ExpiryCandidates(now.Unix(), reclaimBatch, func(r storage.ExpiryRef) error {
			r.Key = append([]byte(nil), r.Key...)
			refs = append(refs, r)
			return nil
		})
		if err != nil {
			return total, err
		}
		for _, ref := range refs {
			n, err := s.reclaimOne(ref, now)
			if err != nil {
				return total, err
			}
			total += n
		}
		if len(refs) < reclaimBatch {
			return total, nil
		}
	}
	return total, ctx.Err()
}

func (s *Store) reclaimOne(ref storage.ExpiryRef, now time.Time) (int, error) {
	mu := &s.locks[int(ref.Vnode)%len(s.locks)]
	mu.Lock()
	defer mu.Unlock()
	r, err := s.eng.Get(ref.Vnode, ref.Namespace, ref.Key)
	removed := 0
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return 0, err
	case r.Exptime == ref.Exptime && expired(r.Exptime, now):
		if err := s.eng.Remove(ref.Vnode, ref.Namespace, ref.Key); err != nil {
			return 0, err
		}
		s.items.Add(-1)
		s.bytes.Add(-int64(len(ref.Key) + len(r.Value)))
		s.reclaimed.Add(1)
		removed = 1
	}
	return removed, s.eng.DropExpiryRef(ref)
}

// SweepFlushed removes the items that flush_all has hidden.
func (s *Store) SweepFlushed(ctx context.Context) error {
	type victim struct {
		ns  string
		key []byte
	}
	for vn := range s.locks {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := s.clk.Now()
		var victims []victim
		err := s.eng.ScanVnode(uint16(vn), func(ns string, key []byte, r *storage.Record) error {
			st, err := s.namespace(ns)
			if err != nil {
				return nil // namespace being dropped
			}
			if f := st.flush.Load(); f != nil && f.hides(r.Version.Time, now) {
				victims = append(victims, victim{ns, append([]byte(nil), key...)})
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, v := range victims {
			if err := s.sweepOne(uint16(vn), v.ns, v.key, now); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) sweepOne(vn uint16, name string, key []byte, now time.Time) error {
	st, err := s.namespace(name)
	if err != nil {
		return nil
	}
	mu := &s.locks[vn]
	mu.Lock()
	defer mu.Unlock()
	r, err := s.eng.Get(vn, name, key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if f := st.flush.Load(); f == nil || !f.hides(r.Version.Time, now) {
		return nil // rewritten since the scan
	}
	if err := s.eng.Remove(vn, name, key); err != nil {
		return err
	}
	s.items.Add(-1)
	s.bytes.Add(-int64(len(key) + len(r.Value)))
	s.reclaimed.Add(1)
	return nil
}

// TrimLogs applies the change-log retention to every vnode: at most
// RetainEntries entries, none older than RetainAge.
func (s *Store) TrimLogs(ctx context.Context) error {
	oldest := HLCFromUnixMilli(s.clk.Now().Add(-s.opts.RetainAge).UnixMilli())
	errStop := errors.New("stop")
	for vn := range s.locks {
		if err := ctx.Err(); err != nil {
			return err
		}
		v := uint16(vn)
		last, first := s.eng.LastSeq(v), s.eng.FirstSeq(v)
		if first > last {
			continue
		}
		cut := first
		if n := uint64(s.opts.RetainEntries); last-first+1 > n {
			cut = last - n + 1
		}
		err := s.eng.ScanLog(v, cut, func(c *storage.Change) error {
			if c.Record.Version.Time >= oldest {
				return errStop
			}
			cut = c.Seq + 1
			return nil
		})
		if err != nil && !errors.Is(err, errStop) && !errors.Is(err, storage.ErrLogTruncated) {
			return err
		}
		if cut > first {
			if err := s.eng.TrimLog(v, cut); err != nil {
				return err
			}
		}
	}
	return nil
}
