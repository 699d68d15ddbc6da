package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// formatMajorVersion is the pebble on-disk format the engine creates or
// upgrades to. It is pinned just below FormatWALSyncChunks: from that format
// on, pebble stamps each WAL chunk with the offset it believes synced, and
// under DurabilityInterval that belief runs ahead of the disk, so a machine
// crash that kept a later WAL block but not an earlier one would make pebble
// refuse to open. With this format the same torn tail is read as the end of
// the log and replay stops there, losing at most the unsynced interval.
// Upgrades are one-way; keep this pinned unless that trade-off is revisited.
const formatMajorVersion = pebble.FormatColumnarBlocks

// memTableSize is pebble's memtable size (pebble's default is 4 MiB, small
// for a write-heavy cache). Pebble starts with a 256 KiB memtable and
// doubles up to this size, so small engines stay small.
const memTableSize = 64 << 20

// walSubdir is the directory under the data directory that holds the WAL.
// Both durability policies use it, so a directory can be reopened with the
// other policy.
const walSubdir = "wal"

// Pebble is the persistent Engine, built on cockroachdb/pebble. See doc.go
// for its on-disk layout and durability.
type Pebble struct {
	db     *pebble.DB
	dir    string
	opts   Options
	logger *slog.Logger
	walfs  *walFS // nil under DurabilityFsync

	vnodes vnodeTable[pebbleVnode]
	bufs   sync.Pool // *[]byte scratch for point-lookup keys
	rows   *rowCache // nil when Options.RowCacheSize is 0

	closed   atomic.Bool
	inflight atomic.Int64 // calls in progress; Close waits for 0

	// bg is cancelled by Close: it stops the reclaimer, which compacts
	// dropped vnodes' ranges to give their disk space back.
	bg      context.Context
	stopBg  context.CancelFunc
	reclaim reclaimer
}

var _ Engine = (*Pebble)(nil)

// pebbleVnode is the in-memory sequence state of one vnode.
type pebbleVnode struct {
	// mu serialises Apply, TrimLog and DropVnode of the vnode, and ScanLog's
	// check of first against its iterator.
	mu    sync.Mutex
	last  atomic.Uint64 // LastSeq
	first atomic.Uint64 // FirstSeq: lowest seq in the log, last+1 if empty
}

func newPebbleVnode() *pebbleVnode {
	v := &pebbleVnode{}
	v.first.Store(1)
	return v
}

// writeOpts commits durably under the engine's policy: always pebble.Sync,
// which under DurabilityInterval costs a write(2) but no fsync (walFS).
var writeOpts = pebble.Sync

// reclaimOpts is used by Remove and DropExpiryRef. Losing them in a crash
// is harmless (the expired item and its ref are found again), and the WAL
// keeps them ordered after every earlier write, so they need no sync.
var reclaimOpts = pebble.NoSync

// OpenPebble opens or creates a pebble engine in dir. The WAL lives in
// dir/wal.
func OpenPebble(dir string, opts Options) (*Pebble, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	dir = filepath.Clean(dir)
	walDir := filepath.Join(dir, walSubdir)
	fs := opts.fs
	if fs == nil {
		fs = vfs.Default
	}
	if err := fs.MkdirAll(walDir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: create %s: %w", walDir, err)
	}
	p := &Pebble{dir: dir, opts: opts, logger: opts.logger(), rows: newRowCache(opts.RowCacheSize)}
	p.bg, p.stopBg = context.WithCancel(context.Background())
	p.bufs.New = func() any { b := make([]byte, 0, 128); return &b }

	cache := pebble.NewCache(opts.CacheSize)
	defer cache.Unref() // the DB holds its own reference
	po := &pebble.Options{
		Cache:              cache,
		FormatMajorVersion: formatMajorVersion,
		Logger:             pebbleLogger{p.logger},
		MemTableSize:       memTableSize,
		WALDir:             walDir,
		FS:                 fs,
		EventListener:      eventListener(p.logger),
	}
	// Bloom filters on every level (the deeper levels inherit L0's): a
	// point read of an absent key, which every replicated write and every
	// add does to compare versions, then skips the tables without it
	// instead of reading a data block of each level from disk.
	po.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	if opts.Durability == DurabilityInterval {
		p.walfs = newWALFS(fs, walDir, opts.SyncInterval, p.logger)
		p.walfs.start()
		po.FS = p.walfs
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		if p.walfs != nil {
			_ = p.walfs.close()
		}
		return nil, fmt.Errorf("storage: open pebble in %s: %w", dir, err)
	}
	p.db = db
	n, err := p.recoverSeqs()
	if err != nil {
		_ = p.closeDB()
		return nil, err
	}
	p.startReclaimer()
	p.logger.Info("storage: pebble engine open", "dir", dir, "durability", opts.Durability.String(),
		"sync_interval", opts.SyncInterval, "vnodes", n)
	return p, nil
}

// recoverSeqs rebuilds the per-vnode sequence state from the 's' keys and
// the log, and returns how many vnodes have one.
func (p *Pebble) recoverSeqs() (int, error) {
	type seqs struct{ first, last uint64 }
	found := map[uint16]*seqs{}
	get := func(v uint16) *seqs {
		s := found[v]
		if s == nil {
			s = &seqs{}
			found[v] = s
		}
		return s
	}
	err := p.scan([]byte{prefixSeq}, []byte{prefixSeq + 1}, func(it *pebble.Iterator) (bool, error) {
		k := it.Key()
		val, err := it.ValueAndErr()
		if err != nil {
			return false, err
		}
		if len(k) != vnodePrefixLen || len(val) != 8 {
			return false, fmt.Errorf("%w: bad seq entry %q", ErrCorrupt, k)
		}
		get(binary.BigEndian.Uint16(k[1:])).last = binary.BigEndian.Uint64(val)
		return true, nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: recover sequences: %w", err)
	}
	// Skip through the log one vnode at a time: first and last entry.
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixLog}, UpperBound: []byte{prefixLog + 1}})
	if err != nil {
		return 0, err
	}
	for valid := it.First(); valid; {
		v, first, err := decodeLogKey(it.Key())
		if err != nil {
			_ = it.Close()
			return 0, err
		}
		end := prefixEnd(appendVnodePrefix(nil, prefixLog, v))
		if !it.SeekLT(end) {
			break
		}
		_, last, err := decodeLogKey(it.Key())
		if err != nil {
			_ = it.Close()
			return 0, err
		}
		s := get(v)
		s.first = first
		s.last = max(s.last, last)
		valid = v != 0xffff && it.SeekGE(end)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return 0, fmt.Errorf("storage: recover log bounds: %w", err)
	}
	for v, s := range found {
		st := p.vnodes.getOrCreate(v, newPebbleVnode)
		st.last.Store(s.last)
		if s.first == 0 {
			s.first = s.last + 1
		}
		st.first.Store(s.first)
	}
	return len(found), nil
}

// scan calls fn for every key in [lower, upper) until fn returns false.
func (p *Pebble) scan(lower, upper []byte, fn func(it *pebble.Iterator) (bool, error)) error {
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	for valid := it.First(); valid; valid = it.Next() {
		more, err := fn(it)
		if err != nil || !more {
			return errors.Join(err, it.Close())
		}
	}
	return errors.Join(it.Error(), it.Close())
}

// enter registers a call in progress, or returns ErrClosed.
func (p *Pebble) enter() error {
	p.inflight.Add(1)
	if p.closed.Load() {
		p.inflight.Add(-1)
		return ErrClosed
	}
	return nil
}

func (p *Pebble) exit() { p.inflight.Add(-1) }

func (p *Pebble) getBuf() *[]byte  { return p.bufs.Get().(*[]byte) }
func (p *Pebble) putBuf(b *[]byte) { p.bufs.Put(b) }

// Get implements Engine.
func (p *Pebble) Get(vnode uint16, ns string, key []byte) (Record, error) {
	if err := ValidNamespace(ns); err != nil {
		return Record{}, err
	}
	if err := p.enter(); err != nil {
		return Record{}, err
	}
	defer p.exit()
	bp := p.getBuf()
	defer p.putBuf(bp)
	k := appendDataKey((*bp)[:0], vnode, ns, key)
	*bp = k
	var gen uint64
	if p.rows != nil {
		var cached *Record
		if cached, gen = p.rows.get(vnode, k); cached != nil {
			return *cached, nil
		}
	}
	val, closer, err := p.db.Get(k)
	if err != nil {
		if errors.Is(err, pebble.ErrNotFound) {
			return Record{}, ErrNotFound
		}
		return Record{}, fmt.Errorf("storage: get: %w", err)
	}
	var r Record
	err = decodeRecordValue(val, &r)
	if len(r.Value) > 0 {
		r.Value = append([]byte(nil), r.Value...)
	} else {
		r.Value = nil
	}
	_ = closer.Close()
	if err == nil && p.rows != nil {
		cached := r
		p.rows.fill(vnode, k, &cached, gen)
	}
	return r, err
}

// Apply implements Engine.
func (p *Pebble) Apply(c *Change) error {
	if err := validateChange(c); err != nil {
		return err
	}
	if err := p.enter(); err != nil {
		return err
	}
	defer p.exit()
	vs := p.vnodes.getOrCreate(c.Vnode, newPebbleVnode)
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if want := vs.last.Load() + 1; c.Seq != want {
		return fmt.Errorf("%w: vnode %d got seq %d, want %d", ErrSeqOutOfOrder, c.Vnode, c.Seq, want)
	}
	b := p.db.NewBatch()
	defer b.Close()
	err := batchRecord(b, c)
	if err == nil {
		lc := logged(c)
		op := b.SetDeferred(logKeyLen, changeValueLen(lc))
		appendLogKey(op.Key[:0], c.Vnode, c.Seq)
		putChangeValue(op.Value, lc)
		err = op.Finish()
	}
	if err == nil {
		op := b.SetDeferred(vnodePrefixLen, 8)
		appendSeqKey(op.Key[:0], c.Vnode)
		binary.BigEndian.PutUint64(op.Value, c.Seq)
		err = op.Finish()
	}
	if err == nil {
		err = p.commitRecord(b, c)
	}
	if err != nil {
		return fmt.Errorf("storage: apply vnode %d seq %d: %w", c.Vnode, c.Seq, err)
	}
	vs.last.Store(c.Seq)
	return nil
}

// Load implements Engine. It takes the vnode lock that Apply takes, so the
// row cache sees the writes of a vnode in commit order.
func (p *Pebble) Load(c *Change) error {
	if err := validateChange(c); err != nil {
		return err
	}
	if err := p.enter(); err != nil {
		return err
	}
	defer p.exit()
	vs := p.vnodes.getOrCreate(c.Vnode, newPebbleVnode)
	vs.mu.Lock()
	defer vs.mu.Unlock()
	b := p.db.NewBatch()
	defer b.Close()
	err := batchRecord(b, c)
	if err == nil {
		err = p.commitRecord(b, c)
	}
	if err != nil {
		return fmt.Errorf("storage: load vnode %d: %w", c.Vnode, err)
	}
	return nil
}

// batchRecord adds c's record to b: the data key (a Set for a put, a
// Delete for a delete) and, for a put with an Exptime, its expiry entry.
func batchRecord(b *pebble.Batch, c *Change) error {
	switch c.Op {
	case OpPut:
		op := b.SetDeferred(dataKeyLen(c.Namespace, c.Key), recordValueLen(&c.Record))
		appendDataKey(op.Key[:0], c.Vnode, c.Namespace, c.Key)
		putRecordValue(op.Value, &c.Record)
		if err := op.Finish(); err != nil {
			return err
		}
		if c.Record.Exptime != 0 {
			op = b.SetDeferred(expiryKeyLen(c.Namespace, c.Key), 0)
			appendExpiryKey(op.Key[:0], c.Record.Exptime, c.Vnode, c.Namespace, c.Key)
			return op.Finish()
		}
		return nil
	case OpDelete:
		op := b.DeleteDeferred(dataKeyLen(c.Namespace, c.Key))
		appendDataKey(op.Key[:0], c.Vnode, c.Namespace, c.Key)
		return op.Finish()
	}
	return fmt.Errorf("%w: op %d", ErrBadChange, c.Op)
}

// commitRecord commits b, which writes c's record (see batchRecord), and
// keeps the row cache coherent: begin before the commit, then put or remove
// after it, or abort if it failed (see rowCache). The caller holds the
// vnode's mu, so the cache sees the vnode's writes in commit order.
func (p *Pebble) commitRecord(b *pebble.Batch, c *Change) error {
	if p.rows == nil {
		return b.Commit(writeOpts)
	}
	k := appendDataKey(nil, c.Vnode, c.Namespace, c.Key)
	p.rows.begin(c.Vnode, k)
	if err := b.Commit(writeOpts); err != nil {
		p.rows.abort(c.Vnode)
		return err
	}
	if c.Op == OpPut {
		r := c.Record
		r.Value = cloneBytes(r.Value) // the caller's bytes are not ours to keep
		p.rows.put(c.Vnode, k, &r)
	} else {
		p.rows.remove(c.Vnode, k)
	}
	return nil
}

// Remove implements Engine.
func (p *Pebble) Remove(vnode uint16, ns string, key []byte) error {
	if err := ValidNamespace(ns); err != nil {
		return err
	}
	if err := p.enter(); err != nil {
		return err
	}
	defer p.exit()
	k := appendDataKey(nil, vnode, ns, key)
	if p.rows != nil {
		p.rows.begin(vnode, k)
	}
	if err := p.db.Delete(k, reclaimOpts); err != nil {
		if p.rows != nil {
			p.rows.abort(vnode)
		}
		return fmt.Errorf("storage: remove: %w", err)
	}
	if p.rows != nil {
		p.rows.remove(vnode, k)
	}
	return nil
}

// LastSeq implements Engine.
func (p *Pebble) LastSeq(vnode uint16) uint64 {
	if vs := p.vnodes.get(vnode); vs != nil {
		return vs.last.Load()
	}
	return 0
}

// FirstSeq implements Engine.
func (p *Pebble) FirstSeq(vnode uint16) uint64 {
	if vs := p.vnodes.get(vnode); vs != nil {
		return vs.first.Load()
	}
	return 1
}

// GetMeta implements Engine.
func (p *Pebble) GetMeta(name string) ([]byte, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.exit()
	val, closer, err := p.db.Get(appendMetaKey(nil, name))
	if err != nil {
		if errors.Is(err, pebble.ErrNotFound) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("storage: get meta %q: %w", name, err)
	}
	out := append([]byte{}, val...)
	_ = closer.Close()
	return out, nil
}

// PutMeta implements Engine.
func (p *Pebble) PutMeta(name string, value []byte) error {
	if err := p.enter(); err != nil {
		return err
	}
	defer p.exit()
	if err := p.db.Set(appendMetaKey(nil, name), value, writeOpts); err != nil {
		return fmt.Errorf("storage: put meta %q: %w", name, err)
	}
	return nil
}

// Close implements Engine. It waits for calls in progress, closes pebble
// (which fsyncs the WAL) and stops the background syncer.
func (p *Pebble) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	p.stopBg()
	<-p.reclaim.done
	for p.inflight.Load() > 0 {
		time.Sleep(100 * time.Microsecond)
	}
	err := p.closeDB()
	p.logger.Info("storage: pebble engine closed", "dir", p.dir, "error", err)
	return err
}

func (p *Pebble) closeDB() error {
	err := p.db.Close()
	if p.walfs != nil {
		err = errors.Join(err, p.walfs.close())
	}
	if err != nil {
		return fmt.Errorf("storage: close pebble: %w", err)
	}
	return nil
}

// eventListener logs the pebble events an operator should see: errors,
// corruption, write stalls and slow disks (not every flush and compaction).
func eventListener(l *slog.Logger) *pebble.EventListener {
	return &pebble.EventListener{
		BackgroundError: func(err error) { l.Error("pebble: background error", "error", err) },
		DataCorruption: func(i pebble.DataCorruptionInfo) {
			l.Error("pebble: data corruption", "path", i.Path, "error", i.Details)
		},
		DiskSlow: func(i pebble.DiskSlowInfo) {
			l.Warn("pebble: disk slow", "path", i.Path, "op", i.OpType.String(), "duration", i.Duration)
		},
		WriteStallBegin: func(i pebble.WriteStallBeginInfo) { l.Warn("pebble: write stall", "reason", i.Reason) },
		WriteStallEnd:   func() { l.Info("pebble: write stall ended") },
		LowDiskSpace: func(i pebble.LowDiskSpaceInfo) {
			l.Warn("pebble: low disk space", "available_bytes", i.AvailBytes, "total_bytes", i.TotalBytes)
		},
	}
}

// pebbleLogger sends pebble's log lines to slog.
type pebbleLogger struct{ l *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.l.Info("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.l.Error("pebble: " + fmt.Sprintf(format, args...))
}

// Fatalf logs and panics: pebble expects it not to return.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := "pebble: " + fmt.Sprintf(format, args...)
	l.l.Error(msg)
	panic(msg)
}
