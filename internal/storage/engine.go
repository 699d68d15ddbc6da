package storage

import (
	"errors"
)

// Sentinel errors of the storage package.
var (
	// ErrNotFound means the key has no record in the engine.
	ErrNotFound = errors.New("storage: not found")
	// ErrLogTruncated means the change log no longer reaches back to the
	// requested sequence number; the reader must fall back to a full copy.
	ErrLogTruncated = errors.New("storage: change log truncated")
	// ErrSeqOutOfOrder means a change did not carry LastSeq(vnode)+1.
	ErrSeqOutOfOrder = errors.New("storage: change sequence out of order")
	// ErrClosed means the engine has been closed.
	ErrClosed = errors.New("storage: engine closed")
	// ErrBadNamespace means a namespace name is empty, too long or has bytes
	// outside [A-Za-z0-9_.-].
	ErrBadNamespace = errors.New("storage: bad namespace name")
	// ErrCorrupt means a stored record or log entry could not be decoded.
	ErrCorrupt = errors.New("storage: corrupt record")
	// ErrBadChange means a Change passed to Apply has an unknown Op.
	ErrBadChange = errors.New("storage: bad change")
)

// Version identifies one write of one key. Time is a hybrid logical clock
// reading (physical milliseconds << 16 | logical counter); Origin is the id of
// the cluster that made the write. Versions order writes for last-writer-wins
// across clusters.
type Version struct {
	Time   uint64
	Origin uint32
}

// Less orders versions by time, then by origin.
func (v Version) Less(o Version) bool {
	if v.Time != o.Time {
		return v.Time < o.Time
	}
	return v.Origin < o.Origin
}

// Record is the stored form of one item.
type Record struct {
	Value []byte
	// Flags are the 32-bit opaque client flags of memcached.
	Flags uint32
	// Exptime is an absolute unix time in seconds; 0 means never expires.
	// An item is expired when Exptime != 0 && now >= Exptime.
	Exptime int64
	// CAS is the compare-and-swap id returned by gets. It changes on every
	// write of the value, not on touch.
	CAS uint64
	// Version is the version of this write (touch makes a new version too).
	Version Version
}

// Op is the kind of a change.
type Op uint8

// Change kinds.
const (
	// OpPut stores Record under Namespace/Key, replacing any earlier record.
	OpPut Op = 1
	// OpDelete removes Namespace/Key. Only Record.Version is meaningful.
	OpDelete Op = 2
)

// Change is one entry of a vnode's change log: the resulting state of one key
// after a client command, never the command itself, so that replaying a
// change twice is harmless.
type Change struct {
	Vnode     uint16
	Seq       uint64
	Op        Op
	Namespace string
	Key       []byte
	Record    Record
}

// ExpiryRef points at a key that was written with an expiry time. Refs can be
// stale (the key was since rewritten or deleted); the reclaimer checks the
// record before removing it.
type ExpiryRef struct {
	Exptime   int64
	Vnode     uint16
	Namespace string
	Key       []byte
}

// Usage is what a full scan of the engine counted.
type Usage struct {
	Items int64
	// Bytes is the sum of len(key)+len(value) over all records.
	Bytes int64
	// MaxVersion is the highest version time of any record or log entry, so a
	// restarted node never hands out a smaller version or CAS id.
	MaxVersion uint64
}

// Engine stores records grouped by vnode and keeps a per-vnode change log.
//
// Concurrency: all methods are safe for concurrent use. The engine does not
// serialise read-modify-write sequences: callers that read a record and then
// apply a change derived from it must hold their own per-vnode lock, and they
// must apply the changes of one vnode in sequence order.
//
// Durability: when Apply returns nil the change (record and log entry) has
// been handed to the operating system at least, so it survives the process
// being killed. Whether it also survives a machine crash depends on the
// engine's durability policy (see Options).
type Engine interface {
	// Get returns the record of ns/key in vnode, or ErrNotFound. Expiry is
	// not checked here. The returned Value must not be modified: an engine
	// may hand out the bytes it stores (the memory engine does, as its
	// stored values are never changed in place).
	Get(vnode uint16, ns string, key []byte) (Record, error)

	// Apply stores c (put or delete) and appends it to the vnode's change
	// log in one atomic batch. c.Seq must equal LastSeq(c.Vnode)+1, or
	// ErrSeqOutOfOrder is returned and nothing is written. The engine does
	// not keep references to c's slices after Apply returns.
	Apply(c *Change) error

	// Load stores c's record (OpPut) or deletes its key (OpDelete) like
	// Apply, but without a change-log entry: c.Seq is ignored, and neither
	// the log nor LastSeq(c.Vnode) is checked or changed. It is how a full
	// copy of a vnode lands on a replica (DropVnode, Load every record of
	// the primary's snapshot, ResetSeq to the primary's LastSeq taken before
	// that snapshot, then Apply the primary's log from there). A put with
	// an Exptime adds an expiry ref, as Apply does. Load is as durable as
	// Apply, is serialised with Apply, TrimLog and DropVnode of the vnode,
	// and keeps no reference to c's slices.
	Load(c *Change) error

	// ResetSeq makes LastSeq(vnode) equal seq and FirstSeq(vnode) equal
	// seq+1: it drops every log entry of vnode (its records stay), and the
	// next Apply must carry seq+1. seq may be lower than the current
	// LastSeq. It is as durable as Apply and survives reopening.
	ResetSeq(vnode uint16, seq uint64) error

	// Remove deletes ns/key from vnode without a change-log entry. It is used
	// to reclaim expired items: expiry is decided by the record itself, so
	// each replica reclaims on its own. Removing a missing key is not an error.
	Remove(vnode uint16, ns string, key []byte) error

	// LastSeq returns the highest sequence number applied to vnode (0 if none).
	LastSeq(vnode uint16) uint64

	// FirstSeq returns the lowest sequence number still in vnode's log, or
	// LastSeq+1 if the log is empty.
	FirstSeq(vnode uint16) uint64

	// ScanLog calls fn for every change of vnode with Seq >= from, in order.
	// It returns ErrLogTruncated if from < FirstSeq(vnode); a from of 0 is
	// treated as 1, as no change has Seq 0. fn must not keep or modify the
	// Change's slices. Returning an error from fn stops the scan and is
	// returned.
	ScanLog(vnode uint16, from uint64, fn func(*Change) error) error

	// ScanVnode calls fn for every record of vnode, every namespace, from a
	// consistent snapshot, in (namespace, key) order. fn must not keep the
	// slices. Returning an error from fn stops the scan and is returned.
	ScanVnode(vnode uint16, fn func(ns string, key []byte, r *Record) error) error

	// DropVnode removes every record and log entry of vnode and resets its
	// sequence. Space is reclaimed in the background.
	DropVnode(vnode uint16) error

	// DropNamespace removes every record of ns in every vnode. Log entries
	// stay until trimmed.
	DropNamespace(ns string) error

	// ExpiryCandidates calls fn for refs to keys whose exptime is <= now, in
	// (exptime, vnode, namespace, key) order, at most limit of them (none if
	// limit <= 0). fn owns the refs it gets and may call the engine.
	ExpiryCandidates(now int64, limit int, fn func(ExpiryRef) error) error

	// DropExpiryRef forgets one ref (after the reclaimer found it stale or
	// removed its key).
	DropExpiryRef(ref ExpiryRef) error

	// TrimLog drops log entries of vnode with Seq < before. LastSeq is kept.
	TrimLog(vnode uint16, before uint64) error

	// Usage scans every record and returns the totals. It is meant for start-up.
	Usage() (Usage, error)

	// GetMeta and PutMeta keep small node-local metadata (namespaces, flush
	// horizons). GetMeta returns ErrNotFound for a missing name. PutMeta is
	// durable under the same policy as Apply.
	GetMeta(name string) ([]byte, error)
	PutMeta(name string, value []byte) error

	// Stats returns engine-specific counters as ordered name/value pairs for
	// `stat` (for example pebble's disk usage and compaction counts).
	Stats() []Stat

	// Close flushes and releases everything. Further calls return ErrClosed.
	Close() error
}

// Stat is one engine statistic.
type Stat struct {
	Name  string
	Value string
}
