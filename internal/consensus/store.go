package consensus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Bucket names and the entry format version (see the package doc).
var (
	bucketLogs   = []byte("logs")
	bucketStable = []byte("stable")
)

const entryVersion = 1

// entryFixedSize is the size of an entry before its variable-length parts:
// version, index, term, type, appended_at seconds and nanoseconds.
const entryFixedSize = 1 + 8 + 8 + 1 + 8 + 4

// StoreOptions configure a BoltStore. Start from DefaultStoreOptions.
type StoreOptions struct {
	// NoSync skips fsync on every commit. Only for tests and benchmarks: a
	// machine crash can then lose log entries raft believes are durable,
	// which breaks raft's safety. Default false.
	NoSync bool

	// Timeout bounds the wait for the file lock on open. bbolt waits
	// forever when it is 0, so it must be > 0: a second opener of the same
	// file (a node started twice on one data directory) then fails after
	// Timeout with ErrStoreLocked. bbolt retries every 50ms and gives up
	// once less than 50ms would be left, so a Timeout of 50ms or less fails
	// at the first conflict. Default 1s.
	Timeout time.Duration

	// FileMode is the permission of a newly created file. Default 0o600.
	FileMode os.FileMode
}

// DefaultStoreOptions returns fsync on every commit, a 1s lock timeout and
// mode 0o600.
func DefaultStoreOptions() StoreOptions {
	return StoreOptions{Timeout: time.Second, FileMode: 0o600}
}

// Validate reports the first invalid field, naming it and its value.
func (o *StoreOptions) Validate() error {
	if o.Timeout <= 0 {
		return fmt.Errorf("consensus: StoreOptions.Timeout (%s) must be > 0 (bbolt waits forever for the lock otherwise)", o.Timeout)
	}
	if o.FileMode&0o600 != 0o600 {
		return fmt.Errorf("consensus: StoreOptions.FileMode (%#o) must let the owner read and write", o.FileMode)
	}
	return nil
}

// BoltStore is a raft.LogStore and raft.StableStore in one bbolt file. It
// is safe for concurrent use (bbolt serialises writers).
type BoltStore struct {
	db   *bolt.DB
	path string
}

var (
	_ raft.LogStore    = (*BoltStore)(nil)
	_ raft.StableStore = (*BoltStore)(nil)
)

// OpenStore opens or creates the BoltStore at path. If another BoltStore
// holds the file, it fails after opts.Timeout with an error wrapping
// ErrStoreLocked.
func OpenStore(path string, opts StoreOptions) (*BoltStore, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, opts.FileMode, &bolt.Options{
		Timeout: opts.Timeout,
		NoSync:  opts.NoSync,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s still locked after %s: is another sonae node running on data directory %s?",
			ErrStoreLocked, path, opts.Timeout, filepath.Dir(path))
	}
	if err != nil {
		return nil, fmt.Errorf("consensus: open raft store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketLogs, bucketStable} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("consensus: init raft store %s: %w", path, err)
	}
	return &BoltStore{db: db, path: path}, nil
}

// Path returns the file's path.
func (s *BoltStore) Path() string { return s.path }

// Close releases the file and its lock. Further calls fail with ErrClosed;
// a second Close returns nil.
func (s *BoltStore) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("consensus: close raft store %s: %w", s.path, err)
	}
	return nil
}

// view and update run fn in a read or write transaction, mapping bbolt's
// closed-database error to ErrClosed.
func (s *BoltStore) view(fn func(tx *bolt.Tx) error) error {
	return closedErr(s.db.View(fn))
}

func (s *BoltStore) update(fn func(tx *bolt.Tx) error) error {
	return closedErr(s.db.Update(fn))
}

func closedErr(err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// FirstIndex returns the first log index stored, 0 when there is none.
func (s *BoltStore) FirstIndex() (uint64, error) {
	var idx uint64
	err := s.view(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketLogs).Cursor().First(); k != nil {
			idx = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return idx, err
}

// LastIndex returns the last log index stored, 0 when there is none.
func (s *BoltStore) LastIndex() (uint64, error) {
	var idx uint64
	err := s.view(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketLogs).Cursor().Last(); k != nil {
			idx = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return idx, err
}

// GetLog reads the entry at index into log, or returns raft.ErrLogNotFound
// (raft checks for that value).
func (s *BoltStore) GetLog(index uint64, log *raft.Log) error {
	return s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketLogs).Get(indexKey(index))
		if v == nil {
			return raft.ErrLogNotFound
		}
		// decodeEntry copies: v is only valid inside the transaction.
		if err := decodeEntry(v, log); err != nil {
			return fmt.Errorf("log index %d: %w", index, err)
		}
		if log.Index != index {
			return fmt.Errorf("%w: log index %d holds an entry for index %d", ErrCorrupt, index, log.Index)
		}
		return nil
	})
}

// StoreLog stores one entry.
func (s *BoltStore) StoreLog(log *raft.Log) error {
	return s.StoreLogs([]*raft.Log{log})
}

// StoreLogs stores entries in one transaction (one fsync): all or none.
func (s *BoltStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLogs)
		// Entries are appended in index order: full pages split best.
		b.FillPercent = 0.95
		var buf []byte
		for _, l := range logs {
			// bbolt keeps the value slice until commit: one buffer per
			// entry, carved from a shared backing array when it fits.
			start := len(buf)
			buf = appendEntry(buf, l)
			if err := b.Put(indexKey(l.Index), buf[start:len(buf):len(buf)]); err != nil {
				return fmt.Errorf("consensus: store log index %d: %w", l.Index, err)
			}
		}
		return nil
	})
}

// DeleteRange deletes the entries with min <= index <= max, in one
// transaction. Indexes with no entry are skipped.
func (s *BoltStore) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLogs)
		// Collect first, delete after: deleting under a live cursor is
		// easy to get wrong in bbolt.
		var keys [][]byte
		c := b.Cursor()
		for k, _ := c.Seek(indexKey(min)); k != nil && binary.BigEndian.Uint64(k) <= max; k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("consensus: delete log index %d: %w", binary.BigEndian.Uint64(k), err)
			}
		}
		return nil
	})
}

// Set stores val under key in the stable bucket.
func (s *BoltStore) Set(key, val []byte) error {
	return s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStable).Put(key, val)
	})
}

// Get returns the value stored under key, or ErrKeyNotFound (text "not
// found", which raft relies on).
func (s *BoltStore) Get(key []byte) ([]byte, error) {
	var val []byte
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketStable).Get(key)
		if v == nil {
			return ErrKeyNotFound
		}
		val = append([]byte{}, v...) // v dies with the transaction
		return nil
	})
	return val, err
}

// SetUint64 stores val as 8 big-endian bytes under key.
func (s *BoltStore) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns the uint64 stored under key, or ErrKeyNotFound.
func (s *BoltStore) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: stable key %q holds %d bytes, not a uint64", ErrCorrupt, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func indexKey(i uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), i) }

// appendEntry appends the encoding of l to b.
func appendEntry(b []byte, l *raft.Log) []byte {
	b = append(b, entryVersion)
	b = binary.BigEndian.AppendUint64(b, l.Index)
	b = binary.BigEndian.AppendUint64(b, l.Term)
	b = append(b, byte(l.Type))
	// The zero time.Time is -62135596800 s, which decodes back to a time
	// whose IsZero is true: no special case.
	b = binary.BigEndian.AppendUint64(b, uint64(l.AppendedAt.Unix()))
	b = binary.BigEndian.AppendUint32(b, uint32(l.AppendedAt.Nanosecond()))
	b = binary.AppendUvarint(b, uint64(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.AppendUvarint(b, uint64(len(l.Extensions)))
	b = append(b, l.Extensions...)
	return b
}

// decodeEntry decodes v into l, copying the byte slices out of v.
func decodeEntry(v []byte, l *raft.Log) error {
	if len(v) < entryFixedSize {
		return fmt.Errorf("%w: entry of %d bytes is shorter than its %d-byte header", ErrCorrupt, len(v), entryFixedSize)
	}
	if v[0] != entryVersion {
		return fmt.Errorf("%w: entry format version %d, want %d", ErrCorrupt, v[0], entryVersion)
	}
	l.Index = binary.BigEndian.Uint64(v[1:])
	l.Term = binary.BigEndian.Uint64(v[9:])
	l.Type = raft.LogType(v[17])
	sec := int64(binary.BigEndian.Uint64(v[18:]))
	nsec := binary.BigEndian.Uint32(v[26:])
	if nsec >= 1e9 {
		return fmt.Errorf("%w: appended_at nanoseconds %d out of range", ErrCorrupt, nsec)
	}
	l.AppendedAt = time.Unix(sec, int64(nsec))
	rest := v[entryFixedSize:]
	var err error
	if l.Data, rest, err = readBytes(rest, "data"); err != nil {
		return err
	}
	if l.Extensions, rest, err = readBytes(rest, "extensions"); err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes after the entry", ErrCorrupt, len(rest))
	}
	return nil
}

// readBytes reads one uvarint-length-prefixed field from b, returning a
// copy (nil when empty) and the rest of b.
func readBytes(b []byte, field string) ([]byte, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, nil, fmt.Errorf("%w: bad %s length", ErrCorrupt, field)
	}
	b = b[k:]
	if n > uint64(len(b)) {
		return nil, nil, fmt.Errorf("%w: %s length %d exceeds the %d bytes left", ErrCorrupt, field, n, len(b))
	}
	if n == 0 {
		return nil, b, nil
	}
	return append([]byte(nil), b[:n]...), b[n:], nil
}
