package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
)

// ScanLog implements Engine. A from of 0 is treated as 1 (there is no
// sequence number 0).
func (p *Pebble) ScanLog(vnode uint16, from uint64, fn func(*Change) error) error {
	if err := p.enter(); err != nil {
		return err
	}
	defer p.exit()
	from = max(from, 1)
	io := &pebble.IterOptions{
		LowerBound: appendLogKey(nil, vnode, from),
		UpperBound: prefixEnd(appendVnodePrefix(nil, prefixLog, vnode)),
	}
	// Take the iterator (a point-in-time view) and read FirstSeq under the
	// vnode lock, so a concurrent TrimLog cannot remove entries the check
	// said were there.
	first := uint64(1)
	var it *pebble.Iterator
	var err error
	if vs := p.vnodes.get(vnode); vs != nil {
		vs.mu.Lock()
		first = vs.first.Load()
		it, err = p.db.NewIter(io)
		vs.mu.Unlock()
	} else {
		it, err = p.db.NewIter(io)
	}
	if err != nil {
		return fmt.Errorf("storage: scan log: %w", err)
	}
	if from < first {
		_ = it.Close()
		return fmt.Errorf("%w: vnode %d from %d, first is %d", ErrLogTruncated, vnode, from, first)
	}
	for valid := it.First(); valid; valid = it.Next() {
		var c Change
		var val []byte
		c.Vnode, c.Seq, err = decodeLogKey(it.Key())
		if err == nil {
			val, err = it.ValueAndErr()
		}
		if err == nil {
			err = decodeChangeValue(val, &c)
		}
		if err == nil {
			err = fn(&c)
		}
		if err != nil {
			_ = it.Close()
			return err
		}
	}
	return errors.Join(it.Error(), it.Close())
}

// ScanVnode implements Engine. The iterator is a consistent point-in-time
// view of the vnode.
func (p *Pebble) ScanVnode(vnode uint16, fn func(ns string, key []byte, r *Record) error) error {
	if err := p.enter(); err != nil {
		return err
	}
	defer p.exit()
	lower := appendVnodePrefix(nil, prefixData, vnode)
	var ns string
	return p.scan(lower, prefixEnd(lower), func(it *pebble.Iterator) (bool, error) {
		var r Record
		nsb, key, err := decodeDataEntry(it, &r)
		if err != nil {
			return false, err
		}
		if ns != string(nsb) { // no allocation for the comparison
			ns = string(nsb)
		}
		return true, fn(ns, key, &r)
	})
}

// DropVnode implements Engine. Data, log and sequence of the vnode go in
// one batch of range deletions. Its expiry refs are left behind: they are
// keyed by exptime first, so finding them would take a scan of the whole
// index, and a stale ref is harmless (the reclaimer finds no record, drops
// the ref) and gone once its exptime passes.
func (p *Pebble) DropVnode(vnode uint16) error {
	if err := p.enter(); err != nil {
		return err
	}
	defer p.exit()
	vs := p.vnodes.getOrCreate(vnode, newPebbleVnode)
	vs.mu.Lock()
	defer vs.mu.Unlock()
	b := p.db.NewBatch()
	defer b.Close()
	data := appendVnodePrefix(nil, prefixData, vnode)
	log := appendVnodePrefix(nil, prefixLog, vnode)
	err := errors.Join(
		b.DeleteRange(data, prefixEnd(data), nil),
		b.DeleteRange(log, prefixEnd(log), nil),
		b.Delete(appendSeqKey(nil, vnode), nil),
	)
	if err == nil {
		err = b.Commit(writeOpts)
	}
	if err != nil {
		return fmt.Errorf("storage: drop vnode %d: %w", vnode, err)
	}
	vs.last.Store(0)
	vs.first.Store(1)
	if p.rows != nil {
		p.rows.dropPrefix(vnode, data)
	}
	// Range deletions free nothing until compacted; the reclaimer does
	// that once the drops stop.
	p.queueReclaim(vnode)
	return nil
}

// DropNamespace implements Engine. It skips through the data keys one
// vnode at a time (two seeks per vnode with data) and writes one range
// deletion per vnode that holds records of ns, all in one batch. A record
// of ns written into a vnode concurrently with the drop may survive it.
func (p *Pebble) DropNamespace(ns string) error {
	if err := ValidNamespace(ns); err != nil {
		return err
	}
	if err := p.enter(); err != nil {
		return err
	}
	defer p.exit()
	b := p.db.NewBatch()
	defer b.Close()
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixData}, UpperBound: []byte{prefixData + 1}})
	if err != nil {
		return fmt.Errorf("storage: drop namespace: %w", err)
	}
	for valid := it.First(); valid; {
		k := it.Key()
		if len(k) < vnodePrefixLen {
			err = fmt.Errorf("%w: bad data key %q", ErrCorrupt, k)
			break
		}
		v := binary.BigEndian.Uint16(k[1:3])
		pfx := appendNsPrefix(nil, v, ns) // fresh: the iterator may keep seek keys
		if it.SeekGE(pfx) && bytes.HasPrefix(it.Key(), pfx) {
			if err = b.DeleteRange(pfx, prefixEnd(pfx), nil); err != nil {
				break
			}
		}
		valid = v != 0xffff && it.SeekGE(appendVnodePrefix(nil, prefixData, v+1))
	}
	if err = errors.Join(err, it.Error(), it.Close()); err == nil && !b.Empty() {
		err = b.Commit(writeOpts)
	}
	if p.rows != nil {
		p.rows.clear() // rare: simpler than finding the namespace's rows
	}
	if err != nil {
		return fmt.Errorf("storage: drop namespace %q: %w", ns, err)
	}
	return nil
}

// ExpiryCandidates implements Engine. The refs passed to fn own their Key.
func (p *Pebble) ExpiryCandidates(now int64, limit int, fn func(ExpiryRef) error) error {
	if limit <= 0 {
		return nil
	}
	if err := p.enter(); err != nil {
		return err
	}
	defer p.exit()
	upper := prefixEnd(binary.BigEndian.AppendUint64([]byte{prefixExpiry}, expiryOrder(now)))
	n := 0
	return p.scan([]byte{prefixExpiry}, upper, func(it *pebble.Iterator) (bool, error) {
		ref, err := decodeExpiryKey(it.Key())
		if err != nil {
			return false, err
		}
		ref.Key = bytes.Clone(ref.Key)
		n++
		return n < limit, fn(ref)
	})
}

// DropExpiryRef implements Engine.
func (p *Pebble) DropExpiryRef(ref ExpiryRef) error {
	if err := ValidNamespace(ref.Namespace); err != nil {
		return err
	}
	if err := p.enter(); err != nil {
		return err
	}
	defer p.exit()
	k := appendExpiryKey(nil, ref.Exptime, ref.Vnode, ref.Namespace, ref.Key)
	if err := p.db.Delete(k, reclaimOpts); err != nil {
		return fmt.Errorf("storage: drop expiry ref: %w", err)
	}
	return nil
}

// TrimLog implements Engine with one range deletion.
func (p *Pebble) TrimLog(vnode uint16, before uint64) error {
	if err := p.enter(); err != nil {
		return err
	}
	defer p.exit()
	vs := p.vnodes.get(vnode)
	if vs == nil {
		return nil // never written: nothing to trim
	}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	first, last := vs.first.Load(), vs.last.Load()
	if before <= first {
		return nil
	}
	err := p.db.DeleteRange(appendLogKey(nil, vnode, 0), appendLogKey(nil, vnode, before), writeOpts)
	if err != nil {
		return fmt.Errorf("storage: trim log of vnode %d: %w", vnode, err)
	}
	vs.first.Store(min(before, last+1))
	return nil
}

// ResetSeq implements Engine: one batch deletes the vnode's log range and
// sets its seq key, so that Open finds LastSeq = seq and an empty log.
func (p *Pebble) ResetSeq(vnode uint16, seq uint64) error {
	if err := p.enter(); err != nil {
		return err
	}
	defer p.exit()
	vs := p.vnodes.getOrCreate(vnode, newPebbleVnode)
	vs.mu.Lock()
	defer vs.mu.Unlock()
	b := p.db.NewBatch()
	defer b.Close()
	log := appendVnodePrefix(nil, prefixLog, vnode)
	err := errors.Join(
		b.DeleteRange(log, prefixEnd(log), nil),
		b.Set(appendSeqKey(nil, vnode), binary.BigEndian.AppendUint64(nil, seq), nil),
	)
	if err == nil {
		err = b.Commit(writeOpts)
	}
	if err != nil {
		return fmt.Errorf("storage: reset seq of vnode %d: %w", vnode, err)
	}
	vs.last.Store(seq)
	vs.first.Store(seq + 1)
	return nil
}

// Usage implements Engine by scanning every record and log entry.
func (p *Pebble) Usage() (Usage, error) {
	if err := p.enter(); err != nil {
		return Usage{}, err
	}
	defer p.exit()
	var u Usage
	err := p.scan([]byte{prefixData}, []byte{prefixData + 1}, func(it *pebble.Iterator) (bool, error) {
		var r Record
		_, key, err := decodeDataEntry(it, &r)
		if err != nil {
			return false, err
		}
		u.Items++
		u.Bytes += int64(len(key) + len(r.Value))
		u.MaxVersion = max(u.MaxVersion, r.Version.Time)
		return true, nil
	})
	if err == nil {
		err = p.scan([]byte{prefixLog}, []byte{prefixLog + 1}, func(it *pebble.Iterator) (bool, error) {
			val, err := it.ValueAndErr()
			if err != nil {
				return false, err
			}
			var c Change
			if err := decodeChangeValue(val, &c); err != nil {
				return false, err
			}
			u.MaxVersion = max(u.MaxVersion, c.Record.Version.Time)
			return true, nil
		})
	}
	if err != nil {
		return Usage{}, fmt.Errorf("storage: usage: %w", err)
	}
	return u, nil
}

// Stats implements Engine with a few of pebble's metrics.
func (p *Pebble) Stats() []Stat {
	if err := p.enter(); err != nil {
		return nil
	}
	defer p.exit()
	m := p.db.Metrics()
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	out := []Stat{
		{"engine", "pebble"},
		{"durability", p.opts.Durability.String()},
		{"disk_usage", u(m.DiskSpaceUsage())},
		{"memtable_size", u(m.MemTable.Size)},
		{"wal_size", u(m.WAL.Size)},
		{"flushes", i(m.Flush.Count)},
		{"compactions", i(m.Compact.Count)},
		{"compaction_debt", u(m.Compact.EstimatedDebt)},
		{"read_amp", strconv.Itoa(m.ReadAmp())},
		{"block_cache_size", i(m.BlockCache.Size)},
		{"block_cache_hits", i(m.BlockCache.Hits)},
		{"block_cache_misses", i(m.BlockCache.Misses)},
	}
	if p.rows != nil {
		rows, bytes := p.rows.stats()
		out = append(out, Stat{"row_cache_rows", strconv.Itoa(rows)}, Stat{"row_cache_bytes", i(bytes)})
	}
	return out
}

// decodeDataEntry decodes the data key and record under a positioned
// iterator. The returned slices and r.Value point into the iterator's memory.
func decodeDataEntry(it *pebble.Iterator, r *Record) (ns, key []byte, err error) {
	_, ns, key, err = decodeDataKey(it.Key())
	if err != nil {
		return nil, nil, err
	}
	val, err := it.ValueAndErr()
	if err != nil {
		return nil, nil, err
	}
	return ns, key, decodeRecordValue(val, r)
}
