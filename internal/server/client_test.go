package server_test

import (
	"errors"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// TestGomemcache drives the server through an off-the-shelf client library.
func TestGomemcache(t *testing.T) {
	n := startNode(t, nil, nil, nil)
	mc := memcache.New(n.addr)
	mc.Timeout = 5 * time.Second
	defer mc.Close()

	if err := mc.Ping(); err != nil {
		t.Fatalf("ping: %v", err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(mc.Set(&memcache.Item{Key: "a", Value: []byte("1"), Flags: 0xFFFFFFFF}))
	it, err := mc.Get("a")
	must(err)
	if string(it.Value) != "1" || it.Flags != 0xFFFFFFFF {
		t.Fatalf("get a = %q flags %#x", it.Value, it.Flags)
	}
	if err := mc.Add(&memcache.Item{Key: "a", Value: []byte("x")}); !errors.Is(err, memcache.ErrNotStored) {
		t.Fatalf("add existing: %v", err)
	}
	must(mc.Add(&memcache.Item{Key: "b", Value: []byte("bee")}))
	if err := mc.Replace(&memcache.Item{Key: "nope", Value: []byte("x")}); !errors.Is(err, memcache.ErrNotStored) {
		t.Fatalf("replace missing: %v", err)
	}
	must(mc.Append(&memcache.Item{Key: "b", Value: []byte("!")}))
	must(mc.Prepend(&memcache.Item{Key: "b", Value: []byte("<")}))
	m, err := mc.GetMulti([]string{"a", "b", "missing"})
	must(err)
	if len(m) != 2 || string(m["b"].Value) != "<bee!" {
		t.Fatalf("getmulti = %v", m)
	}
	// CAS: a fresh value wins once, the stale id loses.
	it, err = mc.Get("a")
	must(err)
	it.Value = []byte("2")
	must(mc.CompareAndSwap(it))
	it.Value = []byte("3")
	if err := mc.CompareAndSwap(it); !errors.Is(err, memcache.ErrCASConflict) {
		t.Fatalf("stale cas: %v", err)
	}
	v, err := mc.Increment("a", 40)
	must(err)
	if v != 42 {
		t.Fatalf("incr = %d", v)
	}
	v, err = mc.Decrement("a", 50)
	must(err)
	if v != 0 {
		t.Fatalf("decr below zero = %d, want 0", v)
	}
	if _, err := mc.Increment("b", 1); err == nil {
		t.Fatal("incr of non-numeric value succeeded")
	}
	must(mc.Touch("a", 100))
	it, err = mc.GetAndTouch("a", 200)
	must(err)
	// memcached rewrites a shorter number in place, padded with spaces.
	if string(it.Value) != "0 " {
		t.Fatalf("gat = %q, want %q", it.Value, "0 ")
	}
	must(mc.Delete("a"))
	if err := mc.Delete("a"); !errors.Is(err, memcache.ErrCacheMiss) {
		t.Fatalf("delete twice: %v", err)
	}
	must(mc.FlushAll())
	if _, err := mc.Get("b"); !errors.Is(err, memcache.ErrCacheMiss) {
		t.Fatalf("get after flush_all: %v", err)
	}
	// memcached's accounting: 56-byte header + key + 1 + value + CRLF <= 1 MiB.
	big := make([]byte, 1<<20-56-len("big")-1-2)
	must(mc.Set(&memcache.Item{Key: "big", Value: big}))
	if err := mc.Set(&memcache.Item{Key: "big", Value: append(big, 'x')}); err == nil {
		t.Fatal("a value over max_item_size was stored")
	}
	if _, err := mc.Get("big"); !errors.Is(err, memcache.ErrCacheMiss) {
		t.Fatalf("set refused for size must drop the old value (memcached does): %v", err)
	}
}
