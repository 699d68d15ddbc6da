package storage

import (
	"container/heap"
	"encoding/binary"
	"slices"
	"sync"
)

// expiryIndex is the memory engine's expiry index: a set of refs bucketed by
// exptime, plus a min-heap of the bucketed exptimes. An exptime is in the
// heap exactly when it has a bucket; emptied buckets stay until their
// exptime is reached by candidates, so each exptime is pushed once.
type expiryIndex struct {
	mu      sync.Mutex
	buckets map[int64]map[string]struct{} // exptime -> ref keys (see refKey)
	times   int64Heap
	refs    int
}

// refKey encodes vnode | ns | 0x00 | key: the order of the pebble expiry
// index within one exptime.
func refKey(vnode uint16, ns string, key []byte) string {
	b := make([]byte, 0, 2+len(ns)+1+len(key))
	b = append(b, byte(vnode>>8), byte(vnode))
	return string(appendNsKey(b, ns, key))
}

func (x *expiryIndex) add(exptime int64, vnode uint16, ns string, key []byte) {
	k := refKey(vnode, ns, key)
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.buckets == nil {
		x.buckets = make(map[int64]map[string]struct{})
	}
	b := x.buckets[exptime]
	if b == nil {
		b = make(map[string]struct{})
		x.buckets[exptime] = b
		heap.Push(&x.times, exptime)
	}
	if _, ok := b[k]; !ok {
		b[k] = struct{}{}
		x.refs++
	}
}

func (x *expiryIndex) remove(ref ExpiryRef) {
	k := refKey(ref.Vnode, ref.Namespace, ref.Key)
	x.mu.Lock()
	defer x.mu.Unlock()
	if b := x.buckets[ref.Exptime]; b != nil {
		if _, ok := b[k]; ok {
			delete(b, k)
			x.refs--
		}
	}
}

// candidates returns up to limit refs with exptime <= now, in (exptime,
// vnode, namespace, key) order.
func (x *expiryIndex) candidates(now int64, limit int) []ExpiryRef {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []ExpiryRef
	var popped []int64
	for len(out) < limit && x.times.Len() > 0 && x.times[0] <= now {
		e := heap.Pop(&x.times).(int64)
		b := x.buckets[e]
		if len(b) == 0 {
			delete(x.buckets, e)
			continue
		}
		popped = append(popped, e)
		keys := make([]string, 0, len(b))
		for k := range b {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys[:min(len(keys), limit-len(out))] {
			ns, key, _ := decodeNsKey([]byte(k[2:]))
			out = append(out, ExpiryRef{
				Exptime:   e,
				Vnode:     binary.BigEndian.Uint16([]byte(k[:2])),
				Namespace: string(ns),
				Key:       key,
			})
		}
	}
	for _, e := range popped {
		heap.Push(&x.times, e)
	}
	return out
}

func (x *expiryIndex) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.refs
}

// int64Heap is a container/heap min-heap.
type int64Heap []int64

func (h int64Heap) Len() int           { return len(h) }
func (h int64Heap) Less(i, j int) bool { return h[i] < h[j] }
func (h int64Heap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *int64Heap) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *int64Heap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
