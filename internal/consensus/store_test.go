package consensus

import (
	"bytes"
	"errors"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
	"pgregory.net/rapid"
)

// openTestStore opens a NoSync store in a fresh directory, closed at the end
// of the test.
func openTestStore(t testing.TB) *BoltStore {
	t.Helper()
	s := openStoreAt(t, filepath.Join(t.TempDir(), StoreFile))
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openStoreAt(t testing.TB, path string) *BoltStore {
	t.Helper()
	o := DefaultStoreOptions()
	o.NoSync = true
	s, err := OpenStore(path, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testLog builds a log entry whose fields all depend on i.
func testLog(i uint64) *raft.Log {
	l := &raft.Log{
		Index:      i,
		Term:       i/10 + 1,
		Type:       raft.LogType(i % 6),
		Data:       []byte(strings.Repeat("d", int(i%7)) + "x"),
		AppendedAt: time.Unix(1_700_000_000+int64(i), int64(i)*1000+7),
	}
	if i%3 == 0 {
		l.Extensions = []byte{byte(i), 0, 0xff}
	}
	return l
}

func storeRange(t testing.TB, s *BoltStore, lo, hi uint64) {
	t.Helper()
	var logs []*raft.Log
	for i := lo; i <= hi; i++ {
		logs = append(logs, testLog(i))
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
}

// equalLog compares every field, nil and empty slices being equal.
func equalLog(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt)
}

// checkIndexes asserts First/Last and that exactly want are present.
func checkIndexes(t testing.TB, s *BoltStore, want []uint64, upTo uint64) {
	t.Helper()
	first, err := s.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	var wf, wl uint64
	if len(want) > 0 {
		wf, wl = want[0], want[len(want)-1]
	}
	if first != wf || last != wl {
		t.Fatalf("FirstIndex, LastIndex = %d, %d; want %d, %d", first, last, wf, wl)
	}
	for i := uint64(0); i <= upTo; i++ {
		var l raft.Log
		err := s.GetLog(i, &l)
		switch {
		case slices.Contains(want, i):
			if err != nil {
				t.Fatalf("GetLog(%d): %v", i, err)
			}
			if !equalLog(&l, testLog(i)) {
				t.Fatalf("GetLog(%d) = %+v, want %+v", i, l, *testLog(i))
			}
		case !errors.Is(err, raft.ErrLogNotFound):
			t.Fatalf("GetLog(%d) = %v, want raft.ErrLogNotFound", i, err)
		}
	}
}

func seq(lo, hi uint64) []uint64 {
	var out []uint64
	for i := lo; i <= hi; i++ {
		out = append(out, i)
	}
	return out
}

func TestStoreEmpty(t *testing.T) {
	s := openTestStore(t)
	checkIndexes(t, s, nil, 3)
	if _, err := s.Get([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("Get of a missing key: %v, want an error whose text is exactly \"not found\"", err)
	}
	if _, err := s.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" || !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("GetUint64 of a missing key: %v, want ErrKeyNotFound (\"not found\")", err)
	}
	if err := s.DeleteRange(1, 100); err != nil {
		t.Fatalf("DeleteRange on an empty store: %v", err)
	}
	if err := s.StoreLogs(nil); err != nil {
		t.Fatalf("StoreLogs(nil): %v", err)
	}
}

func TestStoreLogsRoundTrip(t *testing.T) {
	s := openTestStore(t)
	storeRange(t, s, 1, 50)
	if err := s.StoreLog(testLog(51)); err != nil {
		t.Fatal(err)
	}
	// Zero AppendedAt and empty Data survive as such.
	zero := &raft.Log{Index: 52, Term: 9, Type: raft.LogNoop}
	if err := s.StoreLog(zero); err != nil {
		t.Fatal(err)
	}
	var got raft.Log
	if err := s.GetLog(52, &got); err != nil {
		t.Fatal(err)
	}
	if !got.AppendedAt.IsZero() || got.Data != nil || got.Extensions != nil || got.Term != 9 || got.Type != raft.LogNoop {
		t.Fatalf("GetLog(52) = %+v, want %+v", got, *zero)
	}
	if err := s.DeleteRange(52, 52); err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, s, seq(1, 51), 60)

	// Overwriting an index replaces the entry (raft rewrites a conflicting
	// suffix after truncating it, but must not depend on that).
	l := testLog(7)
	l.Term, l.Data = 99, []byte("new")
	if err := s.StoreLog(l); err != nil {
		t.Fatal(err)
	}
	if err := s.GetLog(7, &got); err != nil || !equalLog(&got, l) {
		t.Fatalf("GetLog(7) after overwrite = %+v, %v; want %+v", got, err, *l)
	}
}

func TestStoreGetLogCopies(t *testing.T) {
	s := openTestStore(t)
	storeRange(t, s, 1, 3)
	var l raft.Log
	if err := s.GetLog(3, &l); err != nil {
		t.Fatal(err)
	}
	for i := range l.Data {
		l.Data[i] = 'Z'
	}
	checkIndexes(t, s, seq(1, 3), 3)
}

func TestStoreDeleteRange(t *testing.T) {
	// Each step deletes [min, max] from what the previous steps left of
	// 1..100 (with a gap at 41..59), overlapping earlier deletes.
	steps := []struct {
		min, max uint64
		name     string
	}{
		{1, 10, "prefix (log compaction)"},
		{5, 15, "overlaps the previous delete"},
		{95, 200, "suffix beyond the end (conflict truncation)"},
		{30, 30, "one entry"},
		{35, 65, "across the gap"},
		{20, 19, "min > max is a no-op"},
		{500, 600, "entirely past the end"},
		{1, 16, "already partly gone"},
		{0, 1 << 63, "everything"},
	}
	s := openTestStore(t)
	storeRange(t, s, 1, 40)
	storeRange(t, s, 60, 100)
	model := append(seq(1, 40), seq(60, 100)...)
	checkIndexes(t, s, model, 101)
	for _, st := range steps {
		if err := s.DeleteRange(st.min, st.max); err != nil {
			t.Fatalf("%s: DeleteRange(%d, %d): %v", st.name, st.min, st.max, err)
		}
		model = slices.DeleteFunc(model, func(i uint64) bool { return i >= st.min && i <= st.max })
		t.Logf("%s: %d entries left", st.name, len(model))
		checkIndexes(t, s, model, 101)
	}
	if len(model) != 0 {
		t.Fatalf("model not empty: %v", model)
	}
	// A store emptied by compaction accepts entries again at any index.
	storeRange(t, s, 200, 205)
	checkIndexes(t, s, seq(200, 205), 210)
}

func TestStoreStable(t *testing.T) {
	s := openTestStore(t)
	if err := s.Set([]byte("a"), []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("a"), []byte("two")); err != nil {
		t.Fatal(err)
	}
	v, err := s.Get([]byte("a"))
	if err != nil || string(v) != "two" {
		t.Fatalf("Get(a) = %q, %v; want two", v, err)
	}
	v[0] = 'X' // the caller owns the slice
	if v, _ := s.Get([]byte("a")); string(v) != "two" {
		t.Fatalf("Get(a) after mutating a returned slice = %q", v)
	}
	if err := s.Set([]byte("empty"), []byte{}); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("empty")); err != nil || len(v) != 0 {
		t.Fatalf("Get(empty) = %q, %v; want an empty value, no error", v, err)
	}
	for _, n := range []uint64{0, 1, 1 << 40, ^uint64(0)} {
		if err := s.SetUint64([]byte("CurrentTerm"), n); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetUint64([]byte("CurrentTerm")); err != nil || got != n {
			t.Fatalf("GetUint64 = %d, %v; want %d", got, err, n)
		}
	}
	if _, err := s.GetUint64([]byte("a")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("GetUint64 of a 3-byte value: %v, want ErrCorrupt", err)
	}
	// Stable keys and log indexes live apart.
	checkIndexes(t, s, nil, 3)
}

func TestStoreReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), StoreFile)
	s := openStoreAt(t, path)
	storeRange(t, s, 1, 30)
	if err := s.DeleteRange(1, 9); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("n2")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.LastIndex(); !errors.Is(err, ErrClosed) {
		t.Fatalf("LastIndex after Close: %v, want ErrClosed", err)
	}
	if err := s.StoreLog(testLog(31)); !errors.Is(err, ErrClosed) {
		t.Fatalf("StoreLog after Close: %v, want ErrClosed", err)
	}

	s = openStoreAt(t, path)
	defer s.Close()
	checkIndexes(t, s, seq(10, 30), 31)
	if n, err := s.GetUint64([]byte("CurrentTerm")); err != nil || n != 7 {
		t.Fatalf("CurrentTerm after reopen = %d, %v", n, err)
	}
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "n2" {
		t.Fatalf("LastVoteCand after reopen = %q, %v", v, err)
	}
}

func TestStoreSecondOpenTimesOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), StoreFile)
	s := openStoreAt(t, path)
	o := DefaultStoreOptions()
	o.Timeout = 150 * time.Millisecond // bbolt retries every 50ms
	start := time.Now()
	s2, err := OpenStore(path, o)
	took := time.Since(start)
	if err == nil {
		_ = s2.Close()
		t.Fatal("a second OpenStore on a locked file succeeded")
	}
	t.Logf("second open after %s: %v", took, err)
	if !errors.Is(err, ErrStoreLocked) {
		t.Fatalf("second open: %v, want ErrStoreLocked", err)
	}
	for _, want := range []string{path, "another sonae node", "150ms"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if took > 2*time.Second {
		t.Errorf("second open took %s, want about the 150ms timeout", took)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err = OpenStore(path, o)
	if err != nil {
		t.Fatalf("open after the first store closed: %v", err)
	}
	_ = s2.Close()
}

func TestStoreOptionsValidate(t *testing.T) {
	o := DefaultStoreOptions()
	if err := o.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	o.Timeout = 0
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "StoreOptions.Timeout") {
		t.Fatalf("Timeout 0: %v, want an error naming StoreOptions.Timeout", err)
	}
	o = DefaultStoreOptions()
	o.FileMode = 0o400
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "StoreOptions.FileMode") {
		t.Fatalf("FileMode 0400: %v, want an error naming StoreOptions.FileMode", err)
	}
	if _, err := OpenStore(filepath.Join(t.TempDir(), "x.db"), StoreOptions{}); err == nil {
		t.Fatal("OpenStore accepted zero options")
	}
}

func TestStoreCorruptEntries(t *testing.T) {
	good := appendEntry(nil, testLog(3))
	cases := []struct {
		name string
		val  []byte
	}{
		{"empty", nil},
		{"short header", good[:10]},
		{"unknown version", append([]byte{2}, good[1:]...)},
		{"truncated data", good[:entryFixedSize+2]},
		{"trailing bytes", append(slices.Clone(good), 0)},
		{"wrong index", appendEntry(nil, testLog(4))},
		{"bad nanoseconds", func() []byte {
			b := slices.Clone(good)
			copy(b[26:30], []byte{0xff, 0xff, 0xff, 0xff})
			return b
		}()},
	}
	s := openTestStore(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := s.db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket(bucketLogs).Put(indexKey(3), c.val)
			})
			if err != nil {
				t.Fatal(err)
			}
			var l raft.Log
			err = s.GetLog(3, &l)
			t.Logf("GetLog: %v", err)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("GetLog of a corrupt entry: %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestStoreModel runs random sequences of LogStore operations against the
// store and a map, and compares every read.
func TestStoreModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		s := openStoreAt(t, filepath.Join(t.TempDir(), StoreFile))
		defer s.Close()
		model := map[uint64]*raft.Log{}
		idx := rapid.Uint64Range(0, 64)
		for range rapid.IntRange(1, 40).Draw(rt, "steps") {
			switch rapid.IntRange(0, 3).Draw(rt, "op") {
			case 0: // StoreLogs of a random run
				lo := idx.Draw(rt, "lo")
				n := rapid.Uint64Range(1, 8).Draw(rt, "n")
				var logs []*raft.Log
				for i := lo; i < lo+n; i++ {
					l := &raft.Log{
						Index: i, Term: rapid.Uint64().Draw(rt, "term"), Type: raft.LogType(rapid.Uint8().Draw(rt, "type")),
						Data:       rapid.SliceOfN(rapid.Byte(), 0, 300).Draw(rt, "data"),
						Extensions: rapid.SliceOfN(rapid.Byte(), 0, 4).Draw(rt, "ext"),
						AppendedAt: time.Unix(rapid.Int64Range(-1<<40, 1<<40).Draw(rt, "sec"), rapid.Int64Range(0, 1e9-1).Draw(rt, "nsec")),
					}
					if rapid.Bool().Draw(rt, "zero time") {
						l.AppendedAt = time.Time{}
					}
					logs = append(logs, l)
					model[i] = l
				}
				if err := s.StoreLogs(logs); err != nil {
					rt.Fatal(err)
				}
			case 1:
				lo, hi := idx.Draw(rt, "min"), idx.Draw(rt, "max")
				if err := s.DeleteRange(lo, hi); err != nil {
					rt.Fatal(err)
				}
				for i := range model {
					if i >= lo && i <= hi {
						delete(model, i)
					}
				}
			default:
				i := idx.Draw(rt, "get")
				var l raft.Log
				err := s.GetLog(i, &l)
				want, ok := model[i]
				if !ok && !errors.Is(err, raft.ErrLogNotFound) {
					rt.Fatalf("GetLog(%d) = %v, want ErrLogNotFound", i, err)
				}
				if ok && (err != nil || !equalLog(&l, want)) {
					rt.Fatalf("GetLog(%d) = %+v, %v; want %+v", i, l, err, *want)
				}
			}
			keys := slices.Sorted(maps.Keys(model))
			var wf, wl uint64
			if len(keys) > 0 {
				wf, wl = keys[0], keys[len(keys)-1]
			}
			first, err1 := s.FirstIndex()
			last, err2 := s.LastIndex()
			if err1 != nil || err2 != nil || first != wf || last != wl {
				rt.Fatalf("FirstIndex, LastIndex = %d, %d (%v, %v); want %d, %d", first, last, err1, err2, wf, wl)
			}
		}
	})
}
