package kv

import (
	"errors"
	"fmt"
	"sync"

	"github.com/sonae-kv/sonae/internal/storage"
)

// ErrSeqGap means a replicated change skipped sequence numbers: the replica
// missed changes and must catch up from the primary's log, or get a full
// copy of the vnode.
var ErrSeqGap = errors.New("kv: gap in replicated change sequence")

// The replica side of replication: changes that come from a primary are
// applied as they are, under the vnode lock, with the items/bytes counters
// kept right and the hybrid clock moved past their versions, so that this
// node never hands out a smaller version should it become the primary. They
// are not passed to Options.Replicate and do not count as client writes or
// deletes in Counters. Namespaces are not checked: the metadata layer
// creates them, and records of a namespace unknown here are harmless.

// ApplyReplicated applies c, a change of the primary's log. A change this
// vnode already has (c.Seq <= LastSeq) is a duplicate and ignored; c.Seq
// == LastSeq+1 is applied; a later seq is refused with an error wrapping
// ErrSeqGap that names the expected and the received seq.
func (s *Store) ApplyReplicated(c *storage.Change) error {
	mu, err := s.vnodeLock(c.Vnode)
	if err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	switch last := s.eng.LastSeq(c.Vnode); {
	case c.Seq <= last:
		return nil
	case c.Seq > last+1:
		return fmt.Errorf("%w: vnode %d expected seq %d, received %d", ErrSeqGap, c.Vnode, last+1, c.Seq)
	}
	return s.writeReplicated(c, s.eng.Apply)
}

// LoadReplicated stores c, a record of the primary's snapshot of a vnode,
// without a change-log entry (storage.Engine.Load): c.Seq is ignored.
func (s *Store) LoadReplicated(c *storage.Change) error {
	mu, err := s.vnodeLock(c.Vnode)
	if err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return s.writeReplicated(c, s.eng.Load)
}

// ResetVnode starts a full copy of vnode: it drops every record and log
// entry of the vnode, then sets its LastSeq to seq (the primary's LastSeq
// taken before its snapshot scan began), so that ApplyReplicated accepts
// seq+1 next. The records of the snapshot then come through LoadReplicated.
//
// A crash before the last record is loaded leaves the vnode claiming seq
// with only part of the snapshot; the caller must remember that a copy is
// in progress (or call ResetVnode(vnode, 0) first and set the seq only
// once the load is complete) and restart the copy after a restart.
func (s *Store) ResetVnode(vnode uint16, seq uint64) error {
	mu, err := s.vnodeLock(vnode)
	if err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	var items, bytes int64
	err = s.eng.ScanVnode(vnode, func(_ string, key []byte, r *storage.Record) error {
		items++
		bytes += int64(len(key) + len(r.Value))
		return nil
	})
	if err != nil {
		return fmt.Errorf("kv: counting vnode %d: %w", vnode, err)
	}
	if err := s.eng.DropVnode(vnode); err != nil {
		return err
	}
	s.items.Add(-items)
	s.bytes.Add(-bytes)
	return s.eng.ResetSeq(vnode, seq)
}

// LockVnode takes the lock that orders the writes of vnode and their
// change-log sequence, and returns its release. While it is held no change
// of the vnode is applied, so the replication layer can, for example, read
// LastSeq and attach a stream that Options.Replicate then feeds in seq
// order. vnode must be below VnodeCount(). The holder must not call the
// Store's write methods for the vnode, and Options.Replicate (which runs
// with the lock held) must not call LockVnode; its wait func may.
func (s *Store) LockVnode(vnode uint16) (unlock func()) {
	mu := &s.locks[vnode]
	mu.Lock()
	return mu.Unlock
}

// vnodeLock returns the lock of vnode, or an error if this Store has no
// such vnode (the primary was set up with other DivBits).
func (s *Store) vnodeLock(vnode uint16) (*sync.Mutex, error) {
	if int(vnode) >= len(s.locks) {
		return nil, fmt.Errorf("kv: vnode %d out of range (%d vnodes)", vnode, len(s.locks))
	}
	return &s.locks[vnode], nil
}

// writeReplicated writes c with write (the engine's Apply or Load), then
// moves the clock past c's version and accounts for the record it
// replaced. Callers hold the vnode lock.
func (s *Store) writeReplicated(c *storage.Change, write func(*storage.Change) error) error {
	old, err := s.eng.Get(c.Vnode, c.Namespace, c.Key)
	found := err == nil
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if err := write(c); err != nil {
		return err
	}
	s.hlc.Observe(c.Record.Version.Time)
	if found {
		s.items.Add(-1)
		s.bytes.Add(-int64(len(c.Key) + len(old.Value)))
	}
	if c.Op == storage.OpPut {
		s.items.Add(1)
		s.bytes.Add(int64(len(c.Key) + len(c.Record.Value)))
	}
	return nil
}

// replicate passes c, just applied on a client's behalf, to
// Options.Replicate and keeps the returned wait for withKey to run once the
// lock is released. Callers hold the vnode lock.
func (s *Store) replicate(c *storage.Change) {
	if s.opts.Replicate == nil {
		return
	}
	w := s.opts.Replicate(c)
	if w == nil {
		return
	}
	vn, seq := c.Vnode, c.Seq
	wait := func() error {
		if err := w(); err != nil {
			return fmt.Errorf("kv: replicating vnode %d seq %d: %w", vn, seq, err)
		}
		return nil
	}
	if prev := s.waits[vn]; prev != nil { // a second write under one lock
		this := wait
		wait = func() error { return errors.Join(prev(), this()) }
	}
	s.waits[vn] = wait
}

// takeWait returns and clears the Replicate wait of vnode (nil if none).
// Callers hold the vnode lock.
func (s *Store) takeWait(vn uint16) func() error {
	if s.waits == nil {
		return nil
	}
	w := s.waits[vn]
	s.waits[vn] = nil
	return w
}
