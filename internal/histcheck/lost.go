package histcheck

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// Initial is LostWrite.After when the final value is the initial state of the
// key (absent, no delete in the history).
const Initial = int64(math.MinInt64)

// LostWrite is an acknowledged write whose effect the final state of its key
// does not show although nothing recorded can have overwritten it: every
// write that could have produced the final value had returned before the
// lost write was called.
type LostWrite struct {
	// Op is the acknowledged write (set or cas STORED, delete DELETED).
	Op Op
	// Final is the final read of the key.
	Final Output
	// After is the latest Return among the writes that could have produced
	// Final, or Initial. Op.Call is after it.
	After int64
}

func (w LostWrite) String() string {
	from := "the initial state (no delete recorded)"
	if w.After != Initial {
		from = fmt.Sprintf("a write that returned by %v", time.Duration(w.After))
	}
	return fmt.Sprintf("key %s: lost acknowledged %v by client %d [call %v, return %v]: final read %v comes from %s",
		w.Op.Input.Key, w.Op.Input, w.Op.Client, time.Duration(w.Op.Call), time.Duration(w.Op.Return), w.Final, from)
}

// Phantom is a key whose final value no recorded write can have produced: no
// set or cas that was acknowledged or had an unknown outcome wrote it.
type Phantom struct {
	Key   string
	Final Output
}

func (p Phantom) String() string {
	return fmt.Sprintf("key %s: final read %v, a value no acknowledged or unknown-outcome write wrote", p.Key, p.Final)
}

// LostReport is the result of Lost.
type LostReport struct {
	// Keys is the number of keys checked; Acked the number of acknowledged
	// writes among their operations.
	Keys, Acked int
	// Lost lists the lost acknowledged writes, by key then call time; its
	// length is the lost-write count.
	Lost []LostWrite
	// Phantoms lists the keys whose final value was never written.
	Phantoms []Phantom
}

// OK reports whether no write was lost and no final value is a phantom.
func (r LostReport) OK() bool { return len(r.Lost) == 0 && len(r.Phantoms) == 0 }

func (r LostReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d lost of %d acknowledged writes, %d phantom values, on %d keys", len(r.Lost), r.Acked, len(r.Phantoms), r.Keys)
	for _, w := range r.Lost {
		fmt.Fprintf(&b, "\n  %v", w)
	}
	for _, p := range r.Phantoms {
		fmt.Fprintf(&b, "\n  %v", p)
	}
	return b.String()
}

// Lost finds the acknowledged writes missing from the final state. final
// holds the final read of every key of ops, taken after the run with every
// fault healed: Found(value), or NotFound() for a missing key. The check
// needs no linearizability, only that a write which returned before another
// began is not applied after it (per key):
//
// A write "may have produced" the final value if it wrote that value (a set
// or cas with that value, acknowledged or with an unknown outcome) or, for a
// missing key, if it is a delete (DELETED or unknown outcome); the initial
// state (missing) counts as a write that returned at Initial. Let After be
// the latest Return among those writes, a write with an unknown outcome
// counting as returning at +infinity since it may land at any time. Every
// acknowledged write (set or cas STORED, delete DELETED) called after After
// is lost: it took effect after the final value was written, so something
// later must have replaced it, and no recorded write can have.
//
// This never reports a write that a recorded write may have overwritten, and
// it catches the plain losses: a final value older than an acknowledged write
// that began after it was written, or a missing key although a set was
// acknowledged after the last delete. A present final value that no set or
// cas can have written is reported as a Phantom.
//
// The error reports a key of ops without a final read, or a final read that
// is neither Found nor NotFound.
func Lost(ops []Op, final map[string]Output) (LostReport, error) {
	byKey := map[string][]Op{}
	for _, op := range ops {
		byKey[op.Input.Key] = append(byKey[op.Input.Key], op)
	}
	var errs []error
	for _, key := range sortedKeys(byKey) {
		if _, ok := final[key]; !ok {
			errs = append(errs, fmt.Errorf("histcheck: no final read of key %s", key))
		}
	}
	for _, key := range sortedKeys(final) {
		if s := final[key].Status; s != StatusFound && s != StatusNotFound {
			errs = append(errs, fmt.Errorf("histcheck: final read of key %s is %v, want Found or NotFound", key, final[key]))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return LostReport{}, err
	}
	var r LostReport
	for _, key := range sortedKeys(final) {
		r.Keys++
		keyOps := byKey[key]
		for _, op := range keyOps {
			if op.acked() {
				r.Acked++
			}
		}
		after, produced := lastProducer(keyOps, final[key])
		if !produced {
			r.Phantoms = append(r.Phantoms, Phantom{Key: key, Final: final[key]})
			continue
		}
		var lost []LostWrite
		for _, op := range keyOps {
			if op.acked() && op.Call > after {
				lost = append(lost, LostWrite{Op: op, Final: final[key], After: after})
			}
		}
		slices.SortStableFunc(lost, func(a, b LostWrite) int { return cmp.Compare(a.Op.Call, b.Op.Call) })
		r.Lost = append(r.Lost, lost...)
	}
	return r, nil
}

// lastProducer returns the latest Return among the operations of one key
// that may have produced the final read fin (math.MaxInt64 for an unknown
// outcome, Initial for the initial state), and false if none may have.
func lastProducer(keyOps []Op, fin Output) (int64, bool) {
	after, produced := Initial, fin.Status == StatusNotFound
	for _, op := range keyOps {
		if !op.mayWrite() {
			continue
		}
		switch fin.Status {
		case StatusFound:
			if op.Input.Kind == KindDelete || op.Input.Value != fin.Value {
				continue
			}
		case StatusNotFound:
			if op.Input.Kind != KindDelete {
				continue
			}
		}
		produced = true
		ret := op.Return
		if op.Output.Unknown() {
			ret = math.MaxInt64
		}
		after = max(after, ret)
	}
	return after, produced
}

// CheckLost runs Lost on rec's history and fails t (without stopping it) if
// a write was lost, a final value is a phantom, or final lacks a key.
func CheckLost(t testing.TB, rec *Recorder, final map[string]Output) LostReport {
	t.Helper()
	r, err := Lost(rec.Ops(), final)
	switch {
	case err != nil:
		t.Errorf("histcheck: cannot check for lost writes: %v", err)
	case !r.OK():
		t.Errorf("histcheck: %v", r)
	default:
		t.Logf("histcheck: %v", r)
	}
	return r
}
