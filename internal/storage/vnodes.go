package storage

import (
	"sync"
	"sync/atomic"
)

// vnodeTable maps every uint16 vnode to a lazily created *T. Lookups are two
// atomic loads; the two-level layout keeps an empty table at 2 KiB instead
// of 512 KiB for a flat array of 65536 pointers.
type vnodeTable[T any] struct {
	mu  sync.Mutex // serialises creation
	top [256]atomic.Pointer[[256]atomic.Pointer[T]]
}

// get returns the entry of vnode, or nil if it was never created.
func (t *vnodeTable[T]) get(vnode uint16) *T {
	page := t.top[vnode>>8].Load()
	if page == nil {
		return nil
	}
	return page[vnode&0xff].Load()
}

// getOrCreate returns the entry of vnode, creating it with newT if needed.
func (t *vnodeTable[T]) getOrCreate(vnode uint16, newT func() *T) *T {
	if x := t.get(vnode); x != nil {
		return x
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	page := t.top[vnode>>8].Load()
	if page == nil {
		page = new([256]atomic.Pointer[T])
		t.top[vnode>>8].Store(page)
	}
	x := page[vnode&0xff].Load()
	if x == nil {
		x = newT()
		page[vnode&0xff].Store(x)
	}
	return x
}

// each calls fn for every created entry in vnode order.
func (t *vnodeTable[T]) each(fn func(vnode uint16, x *T)) {
	for hi := range t.top {
		page := t.top[hi].Load()
		if page == nil {
			continue
		}
		for lo := range page {
			if x := page[lo].Load(); x != nil {
				fn(uint16(hi<<8|lo), x)
			}
		}
	}
}
