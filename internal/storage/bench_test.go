package storage

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"testing"
)

// benchValue is a typical small cache value.
var benchValue = make([]byte, 128)

// benchmarkApply applies puts from parallel goroutines, one vnode each (as
// the kv layer does under its per-vnode lock).
func benchmarkApply(b *testing.B, e Engine, parallelism int) {
	var next atomic.Uint32
	b.SetParallelism(parallelism)
	b.SetBytes(int64(len(benchValue)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		v := uint16(next.Add(1))
		key := make([]byte, 0, 16)
		for seq := uint64(1); pb.Next(); seq++ {
			key = strconv.AppendUint(key[:0], seq%100_000, 10)
			c := &Change{Vnode: v, Seq: seq, Op: OpPut, Namespace: "default", Key: key,
				Record: Record{Value: benchValue, Version: Version{Time: seq}}}
			if err := e.Apply(c); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkPebbleApply(b *testing.B) {
	for _, d := range []Durability{DurabilityInterval, DurabilityFsync} {
		for _, par := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/par=%dxGOMAXPROCS", d, par), func(b *testing.B) {
				p := openBenchPebble(b, d)
				defer p.Close()
				benchmarkApply(b, p, par)
			})
		}
	}
}

func BenchmarkMemoryApply(b *testing.B) {
	benchmarkApply(b, NewMemory(testOptions(nil, DurabilityInterval)), 1)
}

// benchmarkGet reads random keys of a preloaded engine in parallel.
func benchmarkGet(b *testing.B, e Engine) {
	const vnodes, perVnode = 64, 2000
	for v := uint16(0); v < vnodes; v++ {
		for i := 1; i <= perVnode; i++ {
			c := &Change{Vnode: v, Seq: uint64(i), Op: OpPut, Namespace: "default", Key: []byte(fmt.Sprint(i)),
				Record: Record{Value: benchValue}}
			if err := e.Apply(c); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		key := make([]byte, 0, 16)
		for pb.Next() {
			v := uint16(rand.IntN(vnodes))
			key = strconv.AppendUint(key[:0], uint64(1+rand.IntN(perVnode)), 10)
			if _, err := e.Get(v, "default", key); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkPebbleGet(b *testing.B) {
	p := openBenchPebble(b, DurabilityInterval)
	defer p.Close()
	benchmarkGet(b, p)
}

func BenchmarkMemoryGet(b *testing.B) {
	benchmarkGet(b, NewMemory(testOptions(nil, DurabilityInterval)))
}

// BenchmarkDropNamespace drops a namespace from 1024 vnodes of data.
func BenchmarkDropNamespace(b *testing.B) {
	p := openBenchPebble(b, DurabilityInterval)
	defer p.Close()
	for v := uint16(0); v < 1024; v++ {
		for i, ns := range []string{"a", "b"} {
			c := &Change{Vnode: v, Seq: uint64(i + 1), Op: OpPut, Namespace: ns, Key: []byte("k")}
			if err := p.Apply(c); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if err := p.DropNamespace("a"); err != nil {
			b.Fatal(err)
		}
	}
}

// openBenchPebble opens a pebble engine that logs nothing.
func openBenchPebble(b *testing.B, d Durability) *Pebble {
	o := testOptions(nil, d)
	o.CacheSize = Default().CacheSize
	p, err := OpenPebble(b.TempDir(), o)
	if err != nil {
		b.Fatal(err)
	}
	return p
}
