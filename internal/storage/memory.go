package storage

import (
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
)

// Memory is the in-memory Engine: nothing survives Close. Each vnode is a
// shard with its own lock, holding a map per namespace and the vnode's
// change log. Stored records and log entries are immutable copies: writes
// replace them, never modify them, so scans can copy pointers under the
// lock and read outside it.
type Memory struct {
	logger *slog.Logger
	shards vnodeTable[memShard]
	exp    expiryIndex

	metaMu sync.RWMutex
	meta   map[string][]byte

	closed atomic.Bool
}

var _ Engine = (*Memory)(nil)

// memShard is one vnode of the memory engine.
type memShard struct {
	mu   sync.RWMutex
	ns   map[string]map[string]*Record // namespace -> key -> record
	log  []*Change                     // contiguous: log[i].Seq == log[0].Seq+i
	last uint64
}

func newMemShard() *memShard { return &memShard{ns: make(map[string]map[string]*Record)} }

// first is FirstSeq; the caller holds mu.
func (s *memShard) first() uint64 {
	if len(s.log) > 0 {
		return s.log[0].Seq
	}
	return s.last + 1
}

// NewMemory returns an empty memory engine. Only opts.Logger is used.
func NewMemory(opts Options) *Memory {
	return &Memory{logger: opts.logger(), meta: make(map[string][]byte)}
}

func (m *Memory) check() error {
	if m.closed.Load() {
		return ErrClosed
	}
	return nil
}

func cloneBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

// Get implements Engine.
func (m *Memory) Get(vnode uint16, ns string, key []byte) (Record, error) {
	if err := ValidNamespace(ns); err != nil {
		return Record{}, err
	}
	if err := m.check(); err != nil {
		return Record{}, err
	}
	s := m.shards.get(vnode)
	if s == nil {
		return Record{}, ErrNotFound
	}
	s.mu.RLock()
	r := s.ns[ns][string(key)]
	s.mu.RUnlock()
	if r == nil {
		return Record{}, ErrNotFound
	}
	// Stored values are immutable (Apply stores a private copy), so the
	// caller can share them; see Engine.Get.
	return *r, nil
}

// Apply implements Engine.
func (m *Memory) Apply(c *Change) error {
	if err := validateChange(c); err != nil {
		return err
	}
	if err := m.check(); err != nil {
		return err
	}
	s := m.shards.getOrCreate(c.Vnode, newMemShard)
	s.mu.Lock()
	defer s.mu.Unlock()
	if want := s.last + 1; c.Seq != want {
		return fmt.Errorf("%w: vnode %d got seq %d, want %d", ErrSeqOutOfOrder, c.Vnode, c.Seq, want)
	}
	m.write(s, c)
	lc := *logged(c)
	lc.Key = cloneBytes(lc.Key)
	lc.Record.Value = cloneBytes(lc.Record.Value)
	s.log = append(s.log, &lc)
	s.last = c.Seq
	return nil
}

// Load implements Engine.
func (m *Memory) Load(c *Change) error {
	if err := validateChange(c); err != nil {
		return err
	}
	if err := m.check(); err != nil {
		return err
	}
	s := m.shards.getOrCreate(c.Vnode, newMemShard)
	s.mu.Lock()
	defer s.mu.Unlock()
	m.write(s, c)
	return nil
}

// write stores c's record in s (a private copy, plus an expiry ref for an
// Exptime) or deletes its key. The caller holds s.mu.
func (m *Memory) write(s *memShard, c *Change) {
	switch c.Op {
	case OpPut:
		r := c.Record
		r.Value = cloneBytes(r.Value)
		keys := s.ns[c.Namespace]
		if keys == nil {
			keys = make(map[string]*Record)
			s.ns[c.Namespace] = keys
		}
		keys[string(c.Key)] = &r
		if r.Exptime != 0 {
			m.exp.add(r.Exptime, c.Vnode, c.Namespace, c.Key)
		}
	case OpDelete:
		s.remove(c.Namespace, c.Key)
	}
}

// remove deletes ns/key; the caller holds mu.
func (s *memShard) remove(ns string, key []byte) {
	if keys := s.ns[ns]; keys != nil {
		delete(keys, string(key))
		if len(keys) == 0 {
			delete(s.ns, ns)
		}
	}
}

// Remove implements Engine.
func (m *Memory) Remove(vnode uint16, ns string, key []byte) error {
	if err := ValidNamespace(ns); err != nil {
		return err
	}
	if err := m.check(); err != nil {
		return err
	}
	if s := m.shards.get(vnode); s != nil {
		s.mu.Lock()
		s.remove(ns, key)
		s.mu.Unlock()
	}
	return nil
}

// LastSeq implements Engine.
func (m *Memory) LastSeq(vnode uint16) uint64 {
	s := m.shards.get(vnode)
	if s == nil {
		return 0
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.last
}

// FirstSeq implements Engine.
func (m *Memory) FirstSeq(vnode uint16) uint64 {
	s := m.shards.get(vnode)
	if s == nil {
		return 1
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.first()
}

// ScanLog implements Engine. A from of 0 is treated as 1. The slices of
// the Change passed to fn are scratch copies, reused for the next change.
func (m *Memory) ScanLog(vnode uint16, from uint64, fn func(*Change) error) error {
	if err := m.check(); err != nil {
		return err
	}
	from = max(from, 1)
	s := m.shards.get(vnode)
	if s == nil {
		return nil
	}
	s.mu.RLock()
	first := s.first()
	if from < first {
		s.mu.RUnlock()
		return fmt.Errorf("%w: vnode %d from %d, first is %d", ErrLogTruncated, vnode, from, first)
	}
	var snap []*Change
	if i := from - first; i < uint64(len(s.log)) {
		snap = slices.Clone(s.log[i:])
	}
	s.mu.RUnlock()
	var key, val []byte
	for _, e := range snap {
		c := *e
		key = append(key[:0], e.Key...)
		val = append(val[:0], e.Record.Value...)
		c.Key, c.Record.Value = key, val
		if err := fn(&c); err != nil {
			return err
		}
	}
	return nil
}

// ScanVnode implements Engine. Records are collected under the shard's
// read lock (pointer copies) and passed to fn outside it; the slices fn
// sees are scratch copies, reused for the next record.
func (m *Memory) ScanVnode(vnode uint16, fn func(ns string, key []byte, r *Record) error) error {
	if err := m.check(); err != nil {
		return err
	}
	s := m.shards.get(vnode)
	if s == nil {
		return nil
	}
	type item struct {
		ns, key string
		r       *Record
	}
	var items []item
	s.mu.RLock()
	for ns, keys := range s.ns {
		for k, r := range keys {
			items = append(items, item{ns, k, r})
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(items, func(a, b item) int {
		if a.ns != b.ns {
			if a.ns < b.ns {
				return -1
			}
			return 1
		}
		if a.key < b.key {
			return -1
		}
		if a.key > b.key {
			return 1
		}
		return 0
	})
	var key, val []byte
	for _, it := range items {
		r := *it.r
		key = append(key[:0], it.key...)
		val = append(val[:0], r.Value...)
		r.Value = val
		if err := fn(it.ns, key, &r); err != nil {
			return err
		}
	}
	return nil
}

// DropVnode implements Engine. Expiry refs of the vnode are left stale, as
// in the pebble engine.
func (m *Memory) DropVnode(vnode uint16) error {
	if err := m.check(); err != nil {
		return err
	}
	s := m.shards.getOrCreate(vnode, newMemShard)
	s.mu.Lock()
	s.ns = make(map[string]map[string]*Record)
	s.log = nil
	s.last = 0
	s.mu.Unlock()
	return nil
}

// ResetSeq implements Engine.
func (m *Memory) ResetSeq(vnode uint16, seq uint64) error {
	if err := m.check(); err != nil {
		return err
	}
	s := m.shards.getOrCreate(vnode, newMemShard)
	s.mu.Lock()
	s.log = nil
	s.last = seq
	s.mu.Unlock()
	return nil
}

// DropNamespace implements Engine.
func (m *Memory) DropNamespace(ns string) error {
	if err := ValidNamespace(ns); err != nil {
		return err
	}
	if err := m.check(); err != nil {
		return err
	}
	m.shards.each(func(_ uint16, s *memShard) {
		s.mu.Lock()
		delete(s.ns, ns)
		s.mu.Unlock()
	})
	return nil
}

// ExpiryCandidates implements Engine. fn runs without any lock held.
func (m *Memory) ExpiryCandidates(now int64, limit int, fn func(ExpiryRef) error) error {
	if limit <= 0 {
		return nil
	}
	if err := m.check(); err != nil {
		return err
	}
	for _, ref := range m.exp.candidates(now, limit) {
		if err := fn(ref); err != nil {
			return err
		}
	}
	return nil
}

// DropExpiryRef implements Engine.
func (m *Memory) DropExpiryRef(ref ExpiryRef) error {
	if err := ValidNamespace(ref.Namespace); err != nil {
		return err
	}
	if err := m.check(); err != nil {
		return err
	}
	m.exp.remove(ref)
	return nil
}

// TrimLog implements Engine.
func (m *Memory) TrimLog(vnode uint16, before uint64) error {
	if err := m.check(); err != nil {
		return err
	}
	s := m.shards.get(vnode)
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.first()
	if before <= first {
		return nil
	}
	n := min(before-first, uint64(len(s.log)))
	clear(s.log[:n]) // let the dropped entries be collected
	s.log = s.log[n:]
	if len(s.log) == 0 {
		s.log = nil
	}
	return nil
}

// Usage implements Engine.
func (m *Memory) Usage() (Usage, error) {
	if err := m.check(); err != nil {
		return Usage{}, err
	}
	var u Usage
	m.shards.each(func(_ uint16, s *memShard) {
		s.mu.RLock()
		defer s.mu.RUnlock()
		for _, keys := range s.ns {
			for k, r := range keys {
				u.Items++
				u.Bytes += int64(len(k) + len(r.Value))
				u.MaxVersion = max(u.MaxVersion, r.Version.Time)
			}
		}
		for _, c := range s.log {
			u.MaxVersion = max(u.MaxVersion, c.Record.Version.Time)
		}
	})
	return u, nil
}

// GetMeta implements Engine.
func (m *Memory) GetMeta(name string) ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	m.metaMu.RLock()
	v, ok := m.meta[name]
	m.metaMu.RUnlock()
	if !ok {
		return nil, ErrNotFound
	}
	return append([]byte{}, v...), nil
}

// PutMeta implements Engine.
func (m *Memory) PutMeta(name string, value []byte) error {
	if err := m.check(); err != nil {
		return err
	}
	v := append([]byte{}, value...)
	m.metaMu.Lock()
	m.meta[name] = v
	m.metaMu.Unlock()
	return nil
}

// Stats implements Engine.
func (m *Memory) Stats() []Stat {
	var shards, items, logs int
	m.shards.each(func(_ uint16, s *memShard) {
		shards++
		s.mu.RLock()
		for _, keys := range s.ns {
			items += len(keys)
		}
		logs += len(s.log)
		s.mu.RUnlock()
	})
	return []Stat{
		{"engine", "memory"},
		{"shards", strconv.Itoa(shards)},
		{"items", strconv.Itoa(items)},
		{"log_entries", strconv.Itoa(logs)},
		{"expiry_refs", strconv.Itoa(m.exp.len())},
	}
}

// Close implements Engine.
func (m *Memory) Close() error {
	if !m.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	m.logger.Debug("storage: memory engine closed")
	return nil
}
