package storage

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Durability is the policy that decides when an applied change reaches stable
// storage. Every policy survives the process being killed (kill -9): Apply
// returns only after the change has been written to the operating system.
// The policies differ in what a machine crash or power loss can cost.
type Durability uint8

const (
	// DurabilityInterval (the default) acknowledges a write once it is in the
	// operating system's page cache and fsyncs the write-ahead log in the
	// background every Options.SyncInterval. A machine crash can lose at most
	// the last SyncInterval of acknowledged writes; a process crash loses
	// nothing.
	DurabilityInterval Durability = iota
	// DurabilityFsync fsyncs the write-ahead log before acknowledging any
	// write (concurrent writers share one fsync through pebble's group
	// commit). Nothing acknowledged is lost, even on power loss, at the cost
	// of one fsync of latency per write.
	DurabilityFsync
)

// String returns "interval" or "fsync".
func (d Durability) String() string {
	switch d {
	case DurabilityInterval:
		return "interval"
	case DurabilityFsync:
		return "fsync"
	default:
		return fmt.Sprintf("Durability(%d)", uint8(d))
	}
}

// ParseDurability parses the String form of a Durability.
func ParseDurability(s string) (Durability, error) {
	switch s {
	case "interval":
		return DurabilityInterval, nil
	case "fsync":
		return DurabilityFsync, nil
	default:
		return 0, fmt.Errorf("storage: unknown durability %q (want interval or fsync)", s)
	}
}

// Options configure an engine. Start from Default; the zero value is not
// valid. The memory engine uses only Logger.
type Options struct {
	// Durability is the fsync policy of the pebble engine. Default
	// DurabilityInterval.
	Durability Durability

	// SyncInterval is how often the background syncer fsyncs the write-ahead
	// log under DurabilityInterval: the longest stretch of acknowledged
	// writes a machine crash can lose. Must be > 0 (and at most one minute)
	// under DurabilityInterval; unused under DurabilityFsync. Default 50ms.
	SyncInterval time.Duration

	// CacheSize is the size in bytes of pebble's block cache, which holds
	// uncompressed sstable blocks for reads. Point reads that miss it go to
	// the page cache or disk. Must be >= 0 (0 disables caching of blocks,
	// which makes reads much slower). Default 128 MiB.
	CacheSize int64

	// RowCacheSize bounds, in bytes, the pebble engine's cache of whole
	// records, which serves repeated reads without touching pebble (see
	// rowcache.go). 0 disables it. Default 64 MiB.
	RowCacheSize int64

	// ReclaimDelay is how long the pebble engine waits for vnode drops to
	// stop before it compacts the dropped ranges to free their space
	// (pebble_reclaim.go): one compaction after a burst of moves instead
	// of one per vnode. 0 compacts at once. At most one hour. Default 10s.
	ReclaimDelay time.Duration

	// Logger receives the engine's log records. Nil discards them.
	// Default slog.Default().
	Logger *slog.Logger

	// fs replaces the operating system's file system (tests use pebble's
	// crashable in-memory one). Nil means vfs.Default.
	fs vfs.FS
}

// Default returns the default options: interval durability syncing every
// 50ms, a 128 MiB block cache and slog.Default() for logs.
func Default() Options {
	return Options{
		Durability:   DurabilityInterval,
		SyncInterval: 50 * time.Millisecond,
		CacheSize:    128 << 20,
		RowCacheSize: 64 << 20,
		ReclaimDelay: 10 * time.Second,
		Logger:       slog.Default(),
	}
}

// maxSyncInterval bounds SyncInterval: beyond it the "interval" policy is
// closer to "never" and almost certainly a configuration mistake.
const maxSyncInterval = time.Minute

// Validate reports the first invalid field, naming it and its value.
func (o *Options) Validate() error {
	switch o.Durability {
	case DurabilityInterval:
		if o.SyncInterval <= 0 || o.SyncInterval > maxSyncInterval {
			return fmt.Errorf("storage: Options.SyncInterval (%s) must be in (0, %s] with durability %s",
				o.SyncInterval, maxSyncInterval, o.Durability)
		}
	case DurabilityFsync:
	default:
		return fmt.Errorf("storage: Options.Durability (%d) is not interval or fsync", uint8(o.Durability))
	}
	if o.CacheSize < 0 {
		return fmt.Errorf("storage: Options.CacheSize (%d) must be >= 0", o.CacheSize)
	}
	if o.RowCacheSize < 0 {
		return fmt.Errorf("storage: Options.RowCacheSize (%d) must be >= 0", o.RowCacheSize)
	}
	if o.ReclaimDelay < 0 || o.ReclaimDelay > time.Hour {
		return fmt.Errorf("storage: Options.ReclaimDelay (%s) must be in [0, 1h]", o.ReclaimDelay)
	}
	return nil
}

// logger returns o.Logger, or a logger that discards everything.
func (o *Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.New(slog.DiscardHandler)
}
