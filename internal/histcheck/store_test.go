package histcheck

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// errTimeout stands for a client timeout.
var errTimeout = errors.New("i/o timeout")

// item is a stored value and its cas id.
type item struct {
	value string
	cas   uint64
}

// memStore is a linearizable in-memory store with real cas ids (not
// values), and a queue of writes whose clients gave up, applied by a later
// call: the "applied late" case of an unknown outcome.
type memStore struct {
	mu      sync.Mutex
	items   map[string]item // guarded by mu
	nextCas uint64          // guarded by mu
	late    []func()        // guarded by mu; writes still in flight
}

func newMemStore() *memStore { return &memStore{items: map[string]item{}} }

// do runs f under the lock, after applying the oldest late write if any.
func (s *memStore) do(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.late) > 0 {
		s.late[0]()
		s.late = s.late[1:]
	}
	if f != nil {
		f()
	}
}

// The commands; each expects s.mu held.

func (s *memStore) set(key, value string) {
	s.nextCas++
	s.items[key] = item{value, s.nextCas}
}

func (s *memStore) gets(key string) (item, bool) {
	it, ok := s.items[key]
	return it, ok
}

func (s *memStore) cas(key, value string, cas uint64) Status {
	it, ok := s.items[key]
	switch {
	case !ok:
		return StatusNotFound
	case it.cas != cas:
		return StatusExists
	}
	s.set(key, value)
	return StatusStored
}

func (s *memStore) del(key string) Status {
	if _, ok := s.items[key]; !ok {
		return StatusNotFound
	}
	delete(s.items, key)
	return StatusDeleted
}

// fault is what happens to a request.
type fault int

const (
	faultNone    fault = iota
	faultApplied       // applied, but the reply is lost
	faultDropped       // never applied
	faultLate          // applied by some later request, after the client gave up
)

// client runs n random operations against s, recording them in rec.
func client(rec *Recorder, s *memStore, c, n int, keys []string, faultPct int) {
	rng := rand.New(rand.NewPCG(1, uint64(c)))
	var seq int
	value := func() string { seq++; return fmt.Sprintf("c%d-%d", c, seq) }
	for range n {
		key := keys[rng.IntN(len(keys))]
		kind := rng.IntN(100)
		f := faultNone
		if rng.IntN(100) < faultPct {
			f = fault(1 + rng.IntN(3))
		}
		switch {
		case kind < 35:
			v := value()
			write(rec, s, c, f, Set(key, v), func() Status { s.set(key, v); return StatusStored })
		case kind < 60:
			id := rec.Begin(c, Get(key))
			var out Output
			s.do(func() {
				if it, ok := s.gets(key); ok {
					out = Found(it.value)
				} else {
					out = NotFound()
				}
			})
			if f != faultNone {
				out = Unknown(errTimeout)
			}
			rec.End(id, out)
		case kind < 90:
			// gets, then cas with the cas id it returned.
			id := rec.Begin(c, Get(key))
			var it item
			var found bool
			s.do(func() { it, found = s.gets(key) })
			if !found {
				rec.End(id, NotFound())
				continue
			}
			rec.End(id, Found(it.value))
			v := value()
			write(rec, s, c, f, Cas(key, it.value, v), func() Status { return s.cas(key, v, it.cas) })
		default:
			write(rec, s, c, f, Delete(key), func() Status { return s.del(key) })
		}
	}
}

// write runs one write with fault f and records it.
func write(rec *Recorder, s *memStore, c int, f fault, in Input, apply func() Status) {
	id := rec.Begin(c, in)
	var st Status
	switch f {
	case faultNone, faultApplied:
		s.do(func() { st = apply() })
	case faultLate:
		s.do(func() { s.late = append(s.late, func() { apply() }) })
	case faultDropped:
		s.do(nil)
	}
	if f != faultNone {
		rec.End(id, Unknown(errTimeout))
		return
	}
	rec.End(id, Output{Status: st})
}

// TestConcurrentMapStore runs many clients against a linearizable store,
// with lost replies, dropped requests and late writes, and wants both checks
// to pass.
func TestConcurrentMapStore(t *testing.T) {
	const clients, perClient, faultPct = 12, 300, 3
	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"}
	s := newMemStore()
	rec := NewRecorder()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() { client(rec, s, c, perClient, keys, faultPct) })
	}
	wg.Wait()
	// Land half of the writes still in flight; the rest are lost in
	// transit, which their unknown outcome allows.
	s.mu.Lock()
	s.late = s.late[:len(s.late)/2]
	s.mu.Unlock()
	for range len(s.late) {
		s.do(nil)
	}

	res := Check(t, rec, time.Minute)
	if res.Verdict != porcupine.Ok {
		t.Fatalf("verdict %v", res)
	}
	if res.Unknown == 0 {
		t.Errorf("no unknown outcomes: the fault injection did nothing")
	}
	final := map[string]Output{}
	for _, k := range keys {
		if it, ok := s.items[k]; ok {
			final[k] = Found(it.value)
		} else {
			final[k] = NotFound()
		}
	}
	r := CheckLost(t, rec, final)
	if r.Acked == 0 {
		t.Errorf("no acknowledged writes")
	}
}

// TestBuggyStoreDetected runs one client against stores with a known bug and
// wants the checks to fail.
func TestBuggyStoreDetected(t *testing.T) {
	t.Run("stale read", func(t *testing.T) {
		rec := NewRecorder()
		old := ""
		for i := range 5 {
			v := fmt.Sprintf("c0-%d", i)
			rec.End(rec.Begin(0, Set("k", v)), Stored())
			out := Found(old) // the bug: a read one write behind
			if old == "" {
				out = NotFound()
			}
			old = v
			rec.End(rec.Begin(1, Get("k")), out)
		}
		ft := &fakeTB{TB: t}
		if res := CheckOps(ft, rec.Ops(), Options{Timeout: time.Minute, Dir: t.TempDir()}); res.Verdict != porcupine.Illegal {
			t.Errorf("verdict %v, want Illegal", res)
		}
	})
	t.Run("lost write", func(t *testing.T) {
		rec := NewRecorder()
		s := newMemStore()
		var replica string // the bug: the replica stops copying after c0-7
		for i := range 10 {
			v := fmt.Sprintf("c0-%d", i)
			id := rec.Begin(0, Set("k", v))
			s.do(func() { s.set("k", v) })
			rec.End(id, Stored())
			if i <= 7 {
				replica = v
			}
		}
		// Failover to the replica: the final value is c0-7.
		ft := &fakeTB{TB: t}
		r := CheckLost(ft, rec, map[string]Output{"k": Found(replica)})
		if len(r.Lost) != 2 || r.Lost[0].Op.Input.Value != "c0-8" || r.Lost[1].Op.Input.Value != "c0-9" {
			t.Errorf("report %v, want c0-8 and c0-9 lost", r)
		}
		if ft.failed() == "" {
			t.Errorf("CheckLost did not fail")
		}
	})
}
