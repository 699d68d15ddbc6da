package storage

import (
	"sync"
)

// rowCache keeps recently read and written records of the pebble engine in
// memory, so that a memcached-style read does not seek pebble's memtable
// skiplist or sstables. It is write-through: every Apply and Remove updates
// it after the commit, so it never holds a value older than the engine's.
//
// Misses are filled by the reader after its pebble read. A fill races with
// writes: a reader may have read the value a write is replacing, and a write
// is visible in pebble from its commit, before it reaches the cache. So a
// write announces itself before its commit (begin: drop the key, count the
// write as in flight, bump the shard's generation) and ends after it (put,
// remove or abort: bump the generation again). A fill is kept only if the
// generation has not moved since the reader's miss and no write is in flight
// in the shard; otherwise one reader could return a value from pebble and a
// later read return an older value that another reader filled.
//
// Shards are chosen by vnode, so dropping a vnode touches one shard. When a
// shard is over its byte budget, entries are evicted in Go's randomised map
// order: random eviction, which costs nothing to maintain.
//
// Records in the cache are immutable; Get hands out their Value directly
// (see Engine.Get).
type rowCache struct {
	shards   []rowShard
	perShard int64
}

type rowShard struct {
	mu      sync.Mutex
	gen     uint64
	writing int // writes between begin and their end
	bytes   int64
	m       map[string]*Record
	_       [16]byte // keep neighbouring shards' locks off one cache line
}

const rowCacheShards = 64

// rowEntryOverhead approximates the map entry, string header and Record.
const rowEntryOverhead = 96

func newRowCache(capacity int64) *rowCache {
	if capacity <= 0 {
		return nil
	}
	c := &rowCache{shards: make([]rowShard, rowCacheShards), perShard: capacity / rowCacheShards}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*Record)
	}
	return c
}

func (c *rowCache) shard(vnode uint16) *rowShard { return &c.shards[int(vnode)%len(c.shards)] }

func entrySize(k string, r *Record) int64 { return int64(len(k)+len(r.Value)) + rowEntryOverhead }

// get returns the cached record of the data key k (as appendDataKey builds
// it), or the shard generation to pass to fill on a miss.
func (c *rowCache) get(vnode uint16, k []byte) (r *Record, gen uint64) {
	s := c.shard(vnode)
	s.mu.Lock()
	r = s.m[string(k)]
	gen = s.gen
	s.mu.Unlock()
	return r, gen
}

// fill caches r, read from pebble after a miss at generation gen, unless the
// shard changed since.
func (c *rowCache) fill(vnode uint16, k []byte, r *Record, gen uint64) {
	s := c.shard(vnode)
	s.mu.Lock()
	if s.gen == gen && s.writing == 0 {
		s.insert(string(k), r, c.perShard)
	}
	s.mu.Unlock()
}

// begin announces a write of k before it is committed: until put, remove or
// abort, reads of k go to pebble and no fill is kept.
func (c *rowCache) begin(vnode uint16, k []byte) {
	s := c.shard(vnode)
	s.mu.Lock()
	s.gen++
	s.writing++
	s.drop(string(k))
	s.mu.Unlock()
}

// put ends a committed write of k. r must not be changed afterwards.
func (c *rowCache) put(vnode uint16, k []byte, r *Record) {
	s := c.shard(vnode)
	s.mu.Lock()
	s.gen++
	s.writing--
	s.insert(string(k), r, c.perShard)
	s.mu.Unlock()
}

// remove ends a committed delete of k.
func (c *rowCache) remove(vnode uint16, k []byte) {
	s := c.shard(vnode)
	s.mu.Lock()
	s.gen++
	s.writing--
	s.drop(string(k))
	s.mu.Unlock()
}

// abort ends a write whose commit failed.
func (c *rowCache) abort(vnode uint16) {
	s := c.shard(vnode)
	s.mu.Lock()
	s.gen++
	s.writing--
	s.mu.Unlock()
}

// drop forgets k. Callers hold mu.
func (s *rowShard) drop(k string) {
	if old, ok := s.m[k]; ok {
		s.bytes -= entrySize(k, old)
		delete(s.m, k)
	}
}

// dropPrefix forgets every key of the shard of vnode that starts with pfx.
func (c *rowCache) dropPrefix(vnode uint16, pfx []byte) {
	s := c.shard(vnode)
	s.mu.Lock()
	s.gen++
	for k, r := range s.m {
		if len(k) >= len(pfx) && k[:len(pfx)] == string(pfx) {
			s.bytes -= entrySize(k, r)
			delete(s.m, k)
		}
	}
	s.mu.Unlock()
}

// clear forgets everything.
func (c *rowCache) clear() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.gen++
		clear(s.m)
		s.bytes = 0
		s.mu.Unlock()
	}
}

// insert adds or replaces k, then evicts until the shard fits. Callers hold mu.
func (s *rowShard) insert(k string, r *Record, limit int64) {
	if old, ok := s.m[k]; ok {
		s.bytes -= entrySize(k, old)
	}
	size := entrySize(k, r)
	if size > limit {
		delete(s.m, k)
		return
	}
	s.m[k] = r
	s.bytes += size
	for key, victim := range s.m {
		if s.bytes <= limit {
			break
		}
		if key == k {
			continue
		}
		s.bytes -= entrySize(key, victim)
		delete(s.m, key)
	}
}

// stats returns the number of cached rows and their approximate bytes.
func (c *rowCache) stats() (rows int, bytes int64) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		rows += len(s.m)
		bytes += s.bytes
		s.mu.Unlock()
	}
	return rows, bytes
}
