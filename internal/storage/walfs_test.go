package storage

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// countingFS counts the syncs that reach the base file system and can make
// them fail.
type countingFS struct {
	vfs.FS
	syncs   atomic.Int64
	failErr atomic.Pointer[error]
}

type countingFile struct {
	vfs.File
	fs *countingFS
}

func (fs *countingFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	if err != nil {
		return nil, err
	}
	return &countingFile{File: f, fs: fs}, nil
}

func (f *countingFile) sync() error {
	f.fs.syncs.Add(1)
	if p := f.fs.failErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (f *countingFile) Sync() error     { return f.sync() }
func (f *countingFile) SyncData() error { return f.sync() }

func newTestWALFS(t *testing.T, interval time.Duration) (*walFS, *countingFS) {
	base := &countingFS{FS: vfs.NewMem()}
	for _, d := range []string{"/db/wal", "/db/other"} {
		if err := base.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return newWALFS(base, "/db/wal", interval, testLogger(t)), base
}

func TestWALFSSync(t *testing.T) {
	fs, base := newTestWALFS(t, time.Hour)
	f, err := fs.Create("/db/wal/000001.log", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(*walFile); !ok {
		t.Fatalf("WAL file not wrapped: %T", f)
	}
	if _, err := f.Write([]byte("batch")); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(f.Sync(), f.SyncData()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.SyncTo(5); err != nil {
		t.Fatal(err)
	}
	if n := base.syncs.Load(); n != 0 {
		t.Fatalf("Sync reached the disk %d times", n)
	}
	if fs.unsynced() != 1 {
		t.Fatal("written file not unsynced")
	}
	if err := fs.syncAll(); err != nil || base.syncs.Load() != 1 || fs.unsynced() != 0 {
		t.Fatalf("syncAll: %v, %d syncs, %d unsynced", err, base.syncs.Load(), fs.unsynced())
	}
	if err := fs.syncAll(); err != nil || base.syncs.Load() != 1 {
		t.Fatalf("clean file synced again: %v, %d", err, base.syncs.Load())
	}
	if _, err := f.Write([]byte("more")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil || base.syncs.Load() != 2 {
		t.Fatalf("Close: %v, %d syncs, want 2", err, base.syncs.Load())
	}
	if len(fs.files) != 0 {
		t.Fatal("closed file still tracked")
	}

	// Files outside the WAL directory are untouched.
	g, err := fs.Create("/db/other/000002.sst", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := g.(*walFile); ok {
		t.Fatal("non-WAL file wrapped")
	}
	if err := g.Sync(); err != nil || base.syncs.Load() != 3 {
		t.Fatalf("non-WAL Sync: %v, %d syncs", err, base.syncs.Load())
	}
	_ = g.Close()
	if err := fs.close(); err != nil { // not started: close must not hang
		t.Fatal(err)
	}
}

func TestWALFSStickyError(t *testing.T) {
	fs, base := newTestWALFS(t, time.Hour)
	f, err := fs.Create("/db/wal/000001.log", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("EIO")
	base.failErr.Store(&boom)
	_, _ = f.Write([]byte("x"))
	if err := fs.syncAll(); !errors.Is(err, boom) {
		t.Fatalf("syncAll: %v", err)
	}
	base.failErr.Store(nil)
	// The failed fsync may have lost pages: every later Sync fails.
	if err := f.Sync(); !errors.Is(err, boom) {
		t.Fatalf("Sync after failed fsync: %v", err)
	}
	if err := fs.syncAll(); !errors.Is(err, boom) {
		t.Fatalf("syncAll after failed fsync: %v", err)
	}
	_ = f.Close()
}

func TestWALFSBackground(t *testing.T) {
	fs, base := newTestWALFS(t, time.Millisecond)
	fs.start()
	f, err := fs.Create("/db/wal/000001.log", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write([]byte("x"))
	deadline := time.Now().Add(5 * time.Second)
	for base.syncs.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no background sync")
		}
		time.Sleep(time.Millisecond)
	}
	_, _ = f.Write([]byte("y"))
	if err := fs.close(); err != nil { // syncs the open file too
		t.Fatal(err)
	}
	if fs.unsynced() != 0 {
		t.Fatal("close left unsynced data")
	}
	_ = f.Close()
}
