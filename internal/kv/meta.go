package kv

import (
	"strconv"
	"time"

	"github.com/sonae-kv/sonae/internal/storage"
)

// Operations that memcached's meta commands (md, ma) need beyond the classic
// ones: a delete that compares the CAS, and an incr/decr that compares the
// CAS, may create the item, and may set its exptime, all under one lock.

// DeleteCAS removes ns/key if it is visible and its CAS is cas. It returns
// Deleted, NotFound, or Exists when the CAS differs (the item stays).
func (s *Store) DeleteCAS(name string, key []byte, cas uint64) (Result, error) {
	res := NotFound
	err := s.withKey(name, key, func(vn uint16, old storage.Record, found, live bool, _ time.Time) error {
		switch {
		case !found:
			return nil
		case !live:
			// Hidden by its exptime or a flush: drop it, as Delete does.
			return s.remove(vn, name, key, &old)
		case old.CAS != cas:
			res = Exists
			return nil
		}
		res = Deleted
		return s.remove(vn, name, key, &old)
	})
	return res, err
}

// ArithRequest is a meta arithmetic command (ma).
type ArithRequest struct {
	Delta uint64
	Incr  bool
	// CAS, when not zero, must equal the item's CAS, else Exists.
	CAS uint64
	// Vivify creates a missing item holding Initial (the delta is not
	// applied), with flags 0 and the exptime NewExptime.
	Vivify     bool
	Initial    uint64
	NewExptime int64
	// Touch gives an existing item the exptime Exptime after the update.
	// Exptimes are as a client sends them.
	Touch   bool
	Exptime int64
}

// ArithResult is what MetaArith did.
type ArithResult struct {
	// Value is the number now stored.
	Value uint64
	// Item is the item as stored: its CAS, flags and exptime.
	Item Item
	// PrevExptime is the exptime before Touch (0 for a created item).
	PrevExptime int64
	// Created is set when Vivify created the item.
	Created bool
}

// MetaArith runs ma: incr or decr a visible item like Arith (checking CAS
// first), or create it when it is missing and Vivify is set. The result is
// Stored on success, NotFound, or Exists on a CAS mismatch; a value that is
// not a number gives ErrNonNumeric.
func (s *Store) MetaArith(name string, key []byte, req ArithRequest) (ArithResult, Result, error) {
	var out ArithResult
	res := NotFound
	err := s.withKey(name, key, func(vn uint16, old storage.Record, found, live bool, now time.Time) error {
		v := s.version()
		if !live {
			if !req.Vivify {
				return nil
			}
			r := storage.Record{
				Value: strconv.AppendUint(nil, req.Initial, 10), Exptime: AbsExptime(req.NewExptime, now),
				CAS: v.Time, Version: v,
			}
			out = ArithResult{Value: req.Initial, Item: itemOf(&r), Created: true}
			res = Stored
			return s.putOrExpire(vn, name, key, &old, found, r, now)
		}
		if req.CAS != 0 && old.CAS != req.CAS {
			res = Exists
			return nil
		}
		num, cur, ok := applyDelta(old.Value, req.Delta, req.Incr)
		if !ok {
			return ErrNonNumeric
		}
		r := old
		r.Value, r.CAS, r.Version = num, v.Time, v
		if req.Touch {
			r.Exptime = AbsExptime(req.Exptime, now)
		}
		out = ArithResult{Value: cur, Item: itemOf(&r), PrevExptime: old.Exptime}
		res = Stored
		return s.putOrExpire(vn, name, key, &old, true, r, now)
	})
	return out, res, err
}
