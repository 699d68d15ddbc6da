package storage

import (
	"fmt"
	"sync"
	"testing"
)

// TestRowCacheFillLosesToConcurrentWrite is the race the generation guards:
// a reader misses, a writer replaces the key, then the reader's stale fill
// must not land.
func TestRowCacheFillLosesToConcurrentWrite(t *testing.T) {
	c := newRowCache(1 << 20)
	k := appendDataKey(nil, 7, "default", []byte("k"))
	if r, _ := c.get(7, k); r != nil {
		t.Fatal("hit in an empty cache")
	}
	_, gen := c.get(7, k)
	c.begin(7, k)
	c.put(7, k, &Record{Value: []byte("new")})
	c.fill(7, k, &Record{Value: []byte("old")}, gen)
	r, _ := c.get(7, k)
	if r == nil || string(r.Value) != "new" {
		t.Fatalf("cache holds %v after a stale fill", r)
	}
	_, gen = c.get(7, k)
	c.begin(7, k)
	c.remove(7, k)
	c.fill(7, k, &Record{Value: []byte("new")}, gen)
	if r, _ := c.get(7, k); r != nil {
		t.Fatalf("a fill resurrected a removed key: %q", r.Value)
	}
}

// TestRowCacheNoFillDuringAWrite is the race of a write between its commit
// and its cache update: reader A misses, reads the new value from pebble and
// returns it; reader B, which missed before the commit, must not then install
// the old value, or A's next read would go backwards.
func TestRowCacheNoFillDuringAWrite(t *testing.T) {
	c := newRowCache(1 << 20)
	k := appendDataKey(nil, 3, "default", []byte("k"))
	c.begin(3, k)
	c.put(3, k, &Record{Value: []byte("v1")})

	c.begin(3, k) // write of v2 starts; the key leaves the cache
	if r, _ := c.get(3, k); r != nil {
		t.Fatalf("hit %q while a write of the key is in flight", r.Value)
	}
	_, genB := c.get(3, k)                           // B misses now, reads v1 from pebble
	c.fill(3, k, &Record{Value: []byte("v1")}, genB) // (v2 commits meanwhile)
	if r, _ := c.get(3, k); r != nil {
		t.Fatalf("a fill during an in-flight write was kept: %q", r.Value)
	}
	c.put(3, k, &Record{Value: []byte("v2")})
	if r, _ := c.get(3, k); r == nil || string(r.Value) != "v2" {
		t.Fatalf("after the write: %v", r)
	}

	c.begin(3, k) // a failed write leaves nothing behind
	c.abort(3)
	_, gen := c.get(3, k)
	c.fill(3, k, &Record{Value: []byte("v2")}, gen)
	if r, _ := c.get(3, k); r == nil || string(r.Value) != "v2" {
		t.Fatalf("fill after an aborted write was refused: %v", r)
	}
}

func TestRowCacheStaysWithinBudgetAndDrops(t *testing.T) {
	const budget = 64 * 1024
	c := newRowCache(budget)
	for i := range 10000 {
		v := uint16(i % 4)
		k := appendDataKey(nil, v, "ns", fmt.Appendf(nil, "key-%d", i))
		c.begin(v, k)
		c.put(v, k, &Record{Value: make([]byte, 100)})
	}
	rows, bytes := c.stats()
	if bytes > budget || rows == 0 {
		t.Fatalf("cache holds %d rows, %d bytes; budget %d", rows, bytes, budget)
	}
	c.dropPrefix(1, appendVnodePrefix(nil, prefixData, 1))
	for i := 1; i < 10000; i += 4 {
		if r, _ := c.get(1, appendDataKey(nil, 1, "ns", fmt.Appendf(nil, "key-%d", i))); r != nil {
			t.Fatalf("vnode 1 row key-%d survived dropPrefix", i)
		}
	}
	c.clear()
	if rows, bytes := c.stats(); rows != 0 || bytes != 0 {
		t.Fatalf("after clear: %d rows, %d bytes", rows, bytes)
	}
}

// TestPebbleRowCacheIsCoherent hammers one key with writers and readers on a
// pebble engine with the row cache, and checks that once writes stop every
// read sees the last value, and that reads never see a value older than one
// they already saw.
func TestPebbleRowCacheIsCoherent(t *testing.T) {
	e := mustOpenPebble(t, t.TempDir(), DurabilityInterval)
	defer e.Close()
	const vn, writes = 3, 2000
	var wg sync.WaitGroup
	var mu sync.Mutex // orders seq assignment, as the kv layer's vnode lock does
	seq := e.LastSeq(vn)
	wg.Go(func() {
		for i := 1; i <= writes; i++ {
			mu.Lock()
			seq++
			c := Change{Vnode: vn, Seq: seq, Op: OpPut, Namespace: "default", Key: []byte("k"),
				Record: Record{Value: fmt.Appendf(nil, "%08d", i), CAS: uint64(i)}}
			if err := e.Apply(&c); err != nil {
				t.Error(err)
			}
			mu.Unlock()
		}
	})
	for range 4 {
		wg.Go(func() {
			var last uint64
			for last < writes {
				r, err := e.Get(vn, "default", []byte("k"))
				if err != nil {
					continue
				}
				if r.CAS < last {
					t.Errorf("read went backwards: %d after %d", r.CAS, last)
					return
				}
				last = r.CAS
			}
		})
	}
	wg.Wait()
	r, err := e.Get(vn, "default", []byte("k"))
	if err != nil || r.CAS != writes {
		t.Fatalf("final read: %+v %v", r, err)
	}
}
