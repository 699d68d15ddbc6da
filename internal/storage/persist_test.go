package storage

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestPebblePersistence writes records (some flushed to sstables, some only
// in the WAL), deletes, trims, loads, sequence resets and metadata, then
// checks that a reopened engine, under either durability policy, sees
// exactly the same state.
func TestPebblePersistence(t *testing.T) {
	dir := t.TempDir()
	p := mustOpenPebble(t, dir, DurabilityInterval)
	const perVnode = 200
	vnodes := []uint16{0, 1, 513, 65535}
	// Vnode 7 is a full copy: loaded records (flushed below), then a
	// sequence reset and one change of the log (in the WAL only).
	for i := 1; i <= 20; i++ {
		c := &Change{Vnode: 7, Op: OpPut, Namespace: "ns", Key: []byte(fmt.Sprint(i)),
			Record: Record{Value: []byte(fmt.Sprintf("loaded-%d", i)), Exptime: int64(i % 2), Version: Version{Time: uint64(i)}}}
		if i%5 == 0 {
			c.Op = OpDelete
			c.Key = []byte(fmt.Sprint(i - 1))
		}
		if err := p.Load(c); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range vnodes {
		for i := 1; i <= perVnode; i++ {
			c := &Change{Vnode: v, Seq: uint64(i), Op: OpPut, Namespace: "ns", Key: []byte(fmt.Sprint(i)),
				Record: Record{Value: []byte(fmt.Sprintf("value-%d-%d", v, i)), Flags: uint32(i), Exptime: int64(i % 3),
					CAS: uint64(1000 + i), Version: Version{Time: uint64(i), Origin: uint32(v)}}}
			if i%10 == 0 {
				c.Op = OpDelete
				c.Key = []byte(fmt.Sprint(i - 1))
			}
			if err := p.Apply(c); err != nil {
				t.Fatal(err)
			}
		}
		if v == 1 {
			if err := p.db.Flush(); err != nil { // the rest stays in the WAL
				t.Fatal(err)
			}
		}
	}
	if err := p.TrimLog(513, 50); err != nil {
		t.Fatal(err)
	}
	if err := p.ResetSeq(7, 1000); err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(&Change{Vnode: 7, Seq: 1001, Op: OpPut, Namespace: "ns", Key: []byte("a"), Record: Record{Value: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if err := p.PutMeta("namespaces", []byte("ns")); err != nil {
		t.Fatal(err)
	}
	if err := p.Remove(0, "ns", []byte("1")); err != nil {
		t.Fatal(err)
	}
	dumped := append(slices.Clone(vnodes), 7)
	want := dumpEngine(t, p, dumped)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []Durability{DurabilityInterval, DurabilityFsync, DurabilityInterval} {
		p = mustOpenPebble(t, dir, d)
		if got := dumpEngine(t, p, dumped); got != want {
			t.Fatalf("after reopen with %s:\n%s\nwant:\n%s", d, got, want)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Spot checks that the dump itself is meaningful.
	for _, s := range []string{"vnode 513 first=50 last=200", "vnode 7 first=1001 last=1001", "vnode 7 ns/3 value=\"loaded-3\" flags=0 exptime=1", "ns/2 value=\"value-0-2\" flags=2 exptime=2 cas=1002 version=2/0", "meta=\"ns\""} {
		if !strings.Contains(want, s) {
			t.Errorf("dump lacks %q", s)
		}
	}
	for _, s := range []string{"vnode 0 ns/1 ", "vnode 0 ns/9 ", "vnode 7 ns/4 "} { // removed, deleted, load-deleted
		if strings.Contains(want, s) {
			t.Errorf("dump has %q", s)
		}
	}
}

// dumpEngine renders the state of vnodes: sequences, records, log, meta.
func dumpEngine(t testing.TB, e Engine, vnodes []uint16) string {
	t.Helper()
	var out []byte
	for _, v := range vnodes {
		out = fmt.Appendf(out, "vnode %d first=%d last=%d\n", v, e.FirstSeq(v), e.LastSeq(v))
		err := e.ScanVnode(v, func(ns string, key []byte, r *Record) error {
			out = fmt.Appendf(out, "vnode %d %s/%s %s\n", v, ns, key, fmtRecord(r))
			return nil
		})
		if err == nil {
			err = e.ScanLog(v, e.FirstSeq(v), func(c *Change) error {
				out = fmt.Appendf(out, "vnode %d log %s\n", v, fmtChange(c))
				return nil
			})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	m, err := e.GetMeta("namespaces")
	out = fmt.Appendf(out, "meta=%q %v\n", m, err)
	u, err := e.Usage()
	out = fmt.Appendf(out, "usage=%+v %v\n", u, err)
	return string(out)
}

// TestPebbleMachineCrash simulates power loss with pebble's crashable
// in-memory file system, which keeps only fsynced data in a crash clone.
func TestPebbleMachineCrash(t *testing.T) {
	apply := func(t *testing.T, p *Pebble, n int) {
		for i := 1; i <= n; i++ {
			c := &Change{Vnode: 1, Seq: uint64(i), Op: OpPut, Namespace: "ns", Key: []byte(fmt.Sprint(i)), Record: Record{Value: []byte("v")}}
			if err := p.Apply(c); err != nil {
				t.Fatal(err)
			}
		}
	}
	open := func(t *testing.T, fs vfs.FS, d Durability, interval time.Duration) *Pebble {
		o := testOptions(t, d)
		o.fs = fs
		o.SyncInterval = interval
		p, err := OpenPebble("/db", o)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	crash := func(t *testing.T, fs *vfs.MemFS, p *Pebble) uint64 {
		clone := fs.CrashClone(vfs.CrashCloneCfg{})
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		q := open(t, clone, DurabilityFsync, 0)
		defer q.Close()
		return q.LastSeq(1)
	}
	const n = 300

	t.Run("fsync", func(t *testing.T) {
		fs := vfs.NewCrashableMem()
		p := open(t, fs, DurabilityFsync, 0)
		apply(t, p, n)
		if got := crash(t, fs, p); got != n {
			t.Fatalf("after crash LastSeq = %d, want %d", got, n)
		}
	})
	t.Run("interval-after-sync", func(t *testing.T) {
		fs := vfs.NewCrashableMem()
		p := open(t, fs, DurabilityInterval, 5*time.Millisecond)
		apply(t, p, n)
		deadline := time.Now().Add(5 * time.Second)
		for p.walfs.unsynced() > 0 {
			if time.Now().After(deadline) {
				t.Fatal("background syncer did not sync the WAL")
			}
			time.Sleep(time.Millisecond)
		}
		if got := crash(t, fs, p); got != n {
			t.Fatalf("after crash LastSeq = %d, want %d", got, n)
		}
	})
	// The control: before the background sync, a machine crash loses the
	// acknowledged writes, which shows the crash simulation is real and
	// that interval durability does not fsync on commit.
	t.Run("interval-before-sync", func(t *testing.T) {
		fs := vfs.NewCrashableMem()
		p := open(t, fs, DurabilityInterval, time.Minute)
		apply(t, p, n)
		got := crash(t, fs, p)
		if got == n {
			t.Fatalf("after crash LastSeq = %d: writes were synced on commit", got)
		}
		t.Logf("machine crash before the background sync kept %d of %d writes", got, n)
	})
}

// TestOpenPebbleErrors covers bad options and a locked directory.
func TestOpenPebbleErrors(t *testing.T) {
	o := testOptions(t, DurabilityInterval)
	o.SyncInterval = 0
	if _, err := OpenPebble(t.TempDir(), o); err == nil || !strings.Contains(err.Error(), "SyncInterval") {
		t.Fatalf("SyncInterval 0: %v", err)
	}
	// No block cache works, only slower.
	o = testOptions(t, DurabilityInterval)
	o.CacheSize = 0
	q, err := OpenPebble(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Apply(&Change{Vnode: 1, Seq: 1, Op: OpPut, Namespace: "a", Key: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Get(1, "a", []byte("k")); err != nil {
		t.Fatal(err)
	}
	if len(q.Stats()) == 0 {
		t.Fatal("no stats")
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	p := mustOpenPebble(t, dir, DurabilityInterval)
	defer p.Close()
	if q, err := OpenPebble(dir, testOptions(t, DurabilityInterval)); err == nil {
		_ = q.Close()
		t.Fatal("opened a directory twice")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}
