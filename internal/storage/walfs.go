package storage

import (
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// walFS implements DurabilityInterval. It wraps pebble's file system so that
// files created in the WAL directory get a Sync that does not fsync, while a
// background goroutine fsyncs them every interval and on close.
//
// Why this is safe against kill -9: the engine commits every batch with
// pebble.Sync, so a commit returns only after pebble's LogWriter has
// written the batch and "synced" the file. In pebble v2.1.7,
// record/log_writer.go LogWriter.flushPending calls w.w.Write(data) for
// the queued blocks and only then w.syncWithLatency() -> w.s.Sync(), and
// the waiting committers are released by f.pendingSyncs.pop after that.
// w.w is the vfs.File from wal/standalone_manager.go (vfs.NewSyncingFile
// over FS.Create / FS.ReuseForWrite), whose Write is a plain write(2) of
// the bytes. So once Apply returns, the batch is in the kernel's page cache,
// which outlives the process. (pebble.NoSync gives no such guarantee: the
// commit returns once the batch is copied into the LogWriter's in-process
// block buffer, which the flush goroutine writes out later.)
//
// What a machine crash can cost: writes acknowledged during the last
// interval. The engine pins a pebble format without WAL sync chunks so that
// a torn, unsynced tail is truncated on replay rather than reported as
// corruption (see formatMajorVersion and doc.go).
type walFS struct {
	vfs.FS
	dir      string // cleaned WAL directory
	interval time.Duration
	logger   *slog.Logger

	mu    sync.Mutex // guards files
	files map[*walFile]struct{}

	started bool
	stop    chan struct{}
	done    chan struct{}
}

// newWALFS wraps base. Files whose parent directory is dir are WAL files.
// Call start to run the background syncer and close to stop it.
func newWALFS(base vfs.FS, dir string, interval time.Duration, logger *slog.Logger) *walFS {
	return &walFS{
		FS:       base,
		dir:      filepath.Clean(dir),
		interval: interval,
		logger:   logger,
		files:    make(map[*walFile]struct{}),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
}

// start runs the background syncer.
func (fs *walFS) start() {
	fs.started = true
	go fs.loop()
}

// close stops the background syncer and fsyncs every WAL file still open.
// Pebble must be closed first (it closes its WAL files, which fsyncs them).
func (fs *walFS) close() error {
	if fs.started {
		close(fs.stop)
		<-fs.done
		fs.started = false
	}
	return fs.syncAll()
}

func (fs *walFS) loop() {
	defer close(fs.done)
	t := time.NewTicker(fs.interval)
	defer t.Stop()
	for {
		select {
		case <-fs.stop:
			return
		case <-t.C:
			_ = fs.syncAll() // logged and made sticky by syncData
		}
	}
}

// syncAll fsyncs every open WAL file with unsynced writes.
func (fs *walFS) syncAll() error {
	fs.mu.Lock()
	files := make([]*walFile, 0, len(fs.files))
	for f := range fs.files {
		files = append(files, f)
	}
	fs.mu.Unlock()
	var errs []error
	for _, f := range files {
		if err := f.syncData(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// unsynced returns how many open WAL files have writes not yet fsynced.
func (fs *walFS) unsynced() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n := 0
	for f := range fs.files {
		// A clean file whose lock is free has finished its last fsync.
		if f.dirty.Load() || !f.mu.TryLock() {
			n++
			continue
		}
		f.mu.Unlock()
	}
	return n
}

func (fs *walFS) isWAL(name string) bool {
	return filepath.Dir(filepath.Clean(name)) == fs.dir
}

func (fs *walFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !fs.isWAL(name) {
		return f, err
	}
	w := &walFile{File: f, fs: fs, name: name}
	fs.mu.Lock()
	fs.files[w] = struct{}{}
	fs.mu.Unlock()
	return w, nil
}

// Create implements vfs.FS.
func (fs *walFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	return fs.wrap(name, f, err)
}

// ReuseForWrite implements vfs.FS (pebble recycles WAL files with it).
func (fs *walFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	return fs.wrap(newname, f, err)
}

// OpenReadWrite implements vfs.FS.
func (fs *walFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, category, opts...)
	return fs.wrap(name, f, err)
}

// Unwrap implements vfs.FS.
func (fs *walFS) Unwrap() vfs.FS { return fs.FS }

// walFile is a WAL file whose Sync only reports the outcome of earlier
// background fsyncs.
type walFile struct {
	vfs.File
	fs    *walFS
	name  string
	dirty atomic.Bool // written since the last fsync started
	// syncErr is the first failed background fsync. It is sticky: after a
	// failed fsync the kernel may have dropped the dirty pages, so every
	// later Sync fails and pebble stops acknowledging writes.
	syncErr atomic.Pointer[error]

	mu     sync.Mutex // serialises real fsyncs with Close
	closed bool
}

// Write implements vfs.File.
func (f *walFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	if n > 0 {
		f.dirty.Store(true)
	}
	return n, err
}

// WriteAt implements vfs.File.
func (f *walFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	if n > 0 {
		f.dirty.Store(true)
	}
	return n, err
}

func (f *walFile) err() error {
	if p := f.syncErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Sync implements vfs.File without fsyncing: the data pebble wrote is
// already in the page cache, and the background syncer fsyncs it.
func (f *walFile) Sync() error { return f.err() }

// SyncData implements vfs.File like Sync.
func (f *walFile) SyncData() error { return f.err() }

// SyncTo implements vfs.File. It is only a hint, so it does nothing.
func (f *walFile) SyncTo(int64) (fullSync bool, err error) { return false, f.err() }

// syncData fsyncs the file if it has unsynced writes.
func (f *walFile) syncData() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || !f.dirty.Swap(false) {
		return f.err()
	}
	if err := f.File.SyncData(); err != nil {
		f.dirty.Store(true)
		f.syncErr.CompareAndSwap(nil, &err)
		f.fs.logger.Error("storage: WAL fsync failed", "file", f.name, "error", err)
		return err
	}
	return f.err()
}

// Close fsyncs and closes the file.
func (f *walFile) Close() error {
	serr := f.syncData()
	f.mu.Lock()
	f.closed = true
	cerr := f.File.Close()
	f.mu.Unlock()
	f.fs.mu.Lock()
	delete(f.fs.files, f)
	f.fs.mu.Unlock()
	return errors.Join(serr, cerr)
}
