// Package storage owns a node's data at rest: the Engine interface (records
// grouped by vnode, a change log per vnode, an expiry index and small
// node-local metadata) and its two implementations. Pebble is the persistent
// engine, built on cockroachdb/pebble v2. Memory keeps everything in the heap
// (for tests, and for nodes that need no persistence). The package knows
// nothing about memcached commands, clocks, replication or the ring: callers
// decide what to write and in which order (see the Engine documentation).
//
// # Namespaces
//
// Every record belongs to a namespace: 1 to 64 bytes of [A-Za-z0-9_.-]
// (ValidNamespace). Methods that take a namespace reject any other name with
// an error wrapping ErrBadNamespace.
//
// # Pebble on-disk layout
//
// A data directory holds pebble's files, with the write-ahead log in the wal/
// subdirectory. The engine creates or upgrades the directory to
// pebble.FormatColumnarBlocks (see "Machine crashes" below). Upgrades are one-way. Each key
// starts with a one-byte prefix. Integers are big-endian, so keys sort in
// numeric order:
//
//	data    'd' | vnode u16 | ns | 0x00 | key                          -> record
//	log     'l' | vnode u16 | seq u64                                  -> change
//	seq     's' | vnode u16                                            -> last seq u64
//	expiry  'x' | exptime u64 (sign bit flipped) | vnode u16 | ns | 0x00 | key -> empty
//	meta    'm' | name                                                 -> value bytes
//
// The namespace ends with a 0x00 byte rather than starting with a length
// byte. Namespaces cannot contain 0x00, and 0x00 sorts before every byte
// they can contain, so data keys sort by (namespace, key), the order that
// ScanVnode promises. Also, ns|0x00 is an exact prefix for DropNamespace
// ("a" does not match "ab"). Flipping the sign bit of the exptime makes
// negative exptimes sort first.
//
// A record is stored as a 33-byte header followed by the value:
//
//	format u8 (=1) | flags u32 | exptime i64 | cas u64 | version.time u64 | version.origin u32 | value
//
// A change log entry holds everything except Vnode and Seq, which are in
// its key:
//
//	format u8 (=1) | op u8 | nsLen u8 | ns | keyLen uvarint | key |
//	flags u32 | exptime i64 | cas u64 | version.time u64 | version.origin u32 | value
//
// For a delete, the log keeps only the version: the other fields are zero
// and the value is empty. Readers return ErrCorrupt for a format byte other
// than 1.
//
// Apply writes one pebble batch containing the data key (a Set for a put, a
// Delete for a delete), the log entry, the seq key and, for a put with
// Exptime != 0, an expiry entry. Load writes the same batch without the log
// entry and the seq key. ResetSeq deletes the 'l'|vnode range and sets the
// seq key in one batch. LastSeq and FirstSeq are kept in memory for
// each vnode. Open rebuilds them from the seq keys (so LastSeq survives a
// TrimLog that empties the log) and from the first and last log entry of
// each vnode.
//
// The bulk operations use range deletions, and compactions reclaim the space
// later:
//   - DropVnode deletes the 'd'|vnode and 'l'|vnode ranges and the seq key.
//   - DropNamespace finds the vnodes that hold the namespace by skipping
//     through the data keys (two seeks per vnode with data; about 0.5 ms for
//     1024 vnodes). It then deletes one 'd'|vnode|ns|0x00 range per such
//     vnode, all in one batch.
//   - TrimLog deletes 'l'|vnode|0 up to 'l'|vnode|before.
//
// Expiry entries are never removed by Apply, Remove, DropVnode or
// DropNamespace. Finding them would take a read before each write, or a
// scan of the whole index, since the index is ordered by exptime first. So
// a rewrite, delete or drop leaves a stale ref behind. The reclaimer checks
// the record, finds it missing or changed, and calls DropExpiryRef. The
// memory engine behaves the same way, so both engines produce identical
// output in the data-driven tests.
//
// # Durability
//
// When Apply (or Load, ResetSeq, PutMeta, DropVnode, DropNamespace,
// TrimLog) returns nil, the write is in the operating system and survives
// the process being killed, with any Options. Options.Durability decides
// what a machine crash or power loss can cost:
//
//   - DurabilityInterval (the default) loses at most the writes acknowledged
//     in the last Options.SyncInterval (default 50 ms).
//   - DurabilityFsync loses nothing that was acknowledged. Every commit
//     waits for an fsync of the WAL. Concurrent commits share one fsync
//     through pebble's group commit.
//
// pebble.NoSync cannot provide the interval policy. A NoSync commit returns
// once the batch has been copied into the LogWriter's in-process buffer,
// and a goroutine writes that buffer out later, so kill -9 loses recent
// writes. (TestKillDurability detects that loss if writeOpts is switched to
// NoSync.) So the engine always commits with pebble.Sync. Under
// DurabilityInterval, it gives pebble a file system (walFS) that wraps the
// files in wal/: their Sync only returns the outcome of earlier fsyncs,
// while a background goroutine fsyncs them every SyncInterval and when they
// close. In pebble v2.1.7 the LogWriter write(2)s the batch before calling
// Sync, so a commit that returns is in the page cache (see walfs.go). A
// failed background fsync makes every later Sync fail, so pebble stops
// acknowledging writes instead of claiming durability it has lost. A WAL
// file is fsynced when it is closed, and pebble closes the old WAL before
// it creates the next one, so only the tail of the newest WAL is ever
// unsynced.
//
// Machine crashes under DurabilityInterval: the data directory uses pebble's
// FormatColumnarBlocks, the format just before FormatWALSyncChunks. From
// FormatWALSyncChunks on, pebble stamps each WAL chunk with the offset it
// believes synced; with deferred fsyncs that belief runs ahead of the disk,
// and a crash that persisted a later block of the unsynced tail but not an
// earlier one would make pebble refuse to open. With the pinned format the
// torn tail reads as the end of the log: replay stops there and at most the
// last SyncInterval of acknowledged writes is lost, as documented.
//
// Remove and DropExpiryRef commit with pebble.NoSync. Losing them in a crash
// is harmless, because the reclaimer finds the expired item and its ref
// again. The WAL orders them after every earlier write.
//
// Both policies keep the WAL in wal/, so a directory can be reopened with
// the other policy.
//
// # Concurrency
//
// Within a vnode, Apply, Load, ResetSeq, TrimLog and DropVnode are
// serialised by a per-vnode lock. Other vnodes commit concurrently. Reads
// take no engine lock. Get and scans see pebble's consistent point-in-time
// views. Close waits for calls in progress, and later calls return
// ErrClosed.
package storage
