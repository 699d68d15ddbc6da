// Package consensus wires hashicorp/raft (v1.8) into sonae: a Node that owns
// one raft instance, its log and stable store (BoltStore, on go.etcd.io/bbolt)
// and its file snapshot store, plus an hclog.Logger adapter over log/slog.
// The FSM (the cluster metadata, internal/meta) is supplied by the caller as
// a raft.FSM; the transport is supplied too, so tests run whole clusters on
// raft.InmemTransport and production passes NewTCPTransport.
//
// Everything else raft offers stays behind Node's small API: Bootstrap,
// Apply, AddVoter/AddNonvoter/RemoveServer, Leader/IsLeader, VerifyLeader,
// Barrier, WatchLeadership, Snapshot, Servers, Stats and Shutdown. Errors
// are this package's sentinels (ErrNotLeader, ErrShutdown, ...), never raft's.
//
// # Data directory
//
// Config.Dir holds:
//
//	raft.db       BoltStore: the raft log and raft's stable keys (term, vote)
//	snapshots/    raft.FileSnapshotStore: FSM snapshots, SnapshotRetain kept
//
// bbolt locks raft.db with flock(2), so a second Node (or any second
// BoltStore) opened on the same directory fails after Config.LockTimeout with
// an error wrapping ErrStoreLocked instead of corrupting the first one's log.
//
// # BoltStore on-disk format
//
// raft.db has two buckets. "logs" maps the big-endian uint64 log index to an
// entry; "stable" maps raft's stable keys (bytes) to their values as given
// (SetUint64 stores 8 big-endian bytes). An entry is, integers big-endian:
//
//	version      u8      entryVersion (1); any other value is ErrCorrupt
//	index        u64     must equal the key
//	term         u64
//	type         u8      raft.LogType
//	appended_at  i64 u32 seconds and nanoseconds since the Unix epoch (the
//	                     zero time.Time is -62135596800 s and round-trips)
//	data         uvarint length, bytes
//	extensions   uvarint length, bytes
//
// Nothing may follow extensions. Log indexes need not be contiguous (raft
// leaves a gap after installing a snapshot); BoltStore does not implement
// raft.MonotonicLogStore.
//
// # Raft pitfalls handled here
//
//   - raft's NotifyCh blocks raft's main loop when nobody reads it. Node
//     drains it in its own goroutine and hands the latest state to watchers
//     through one-slot channels that are overwritten, never waited on.
//   - ApplyFuture.Response is valid only after Error has returned; Apply
//     waits for Error first. A future that raft strands at shutdown (one
//     already queued for the FSM) is never resolved by raft: Node's waits
//     also end on Shutdown, with ErrShutdown.
//   - StableStore.Get must report a missing key with an error whose text is
//     exactly "not found" (raft compares the string): ErrKeyNotFound.
//   - raft.NewTCPTransport refuses an unspecified bind address (0.0.0.0)
//     without an advertise address; NewTCPTransport here says which field to
//     set, and fills in a 0 advertise port with the bound port.
package consensus
