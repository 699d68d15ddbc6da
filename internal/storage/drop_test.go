package storage

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/testutil"
)

// TestPebbleDropVnodeFreesSpace: dropping vnodes gives their disk space
// back (the range deletions are compacted away once the drops stop), and
// the other vnodes keep their data.
func TestPebbleDropVnodeFreesSpace(t *testing.T) {
	o := testOptions(t, DurabilityInterval)
	o.ReclaimDelay = 200 * time.Millisecond
	p, err := OpenPebble(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	value := bytes.Repeat([]byte("v"), 4096)
	for _, v := range []uint16{1, 2, 3, 4} {
		for i := 1; i <= 2000; i++ {
			// Distinct values, so the blocks do not compress away.
			val := append(fmt.Appendf(nil, "%d-%d-", v, i), value...)
			if err := p.Apply(&Change{Vnode: v, Seq: uint64(i), Op: OpPut, Namespace: "ns", Key: fmt.Appendf(nil, "k%d", i),
				Record: Record{Value: val, Version: Version{Time: uint64(i)}}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := p.db.Flush(); err != nil {
		t.Fatal(err)
	}
	before := p.db.Metrics().DiskSpaceUsage()
	for _, v := range []uint16{1, 2, 3} { // a burst, as a move hands off vnodes
		if err := p.DropVnode(v); err != nil {
			t.Fatal(err)
		}
	}
	// The vnodes hold about the same, so three dropped must give back
	// more than two vnodes' share (the rest is logs and metadata).
	testutil.Eventually(t, 30*time.Second, "the dropped vnodes' space back", func() error {
		if now := p.db.Metrics().DiskSpaceUsage(); now > before*3/5 {
			return fmt.Errorf("disk usage %d, was %d before the drop", now, before)
		}
		return nil
	})
	if p.LastSeq(3) != 0 {
		t.Errorf("vnode 3 last seq %d after the drop", p.LastSeq(3))
	}
	if r, err := p.Get(4, "ns", []byte("k2000")); err != nil || !bytes.HasPrefix(r.Value, []byte("4-2000-")) {
		t.Errorf("vnode 4 after the drop: %q %v", r.Value, err)
	}
	if _, err := p.Get(3, "ns", []byte("k1")); err == nil {
		t.Errorf("vnode 3 still answers after the drop")
	}
}

func TestAdjacentRuns(t *testing.T) {
	for _, tc := range []struct {
		in   []uint16
		want [][2]uint16
	}{
		{nil, nil},
		{[]uint16{7}, [][2]uint16{{7, 7}}},
		{[]uint16{1, 2, 3, 5, 8, 9}, [][2]uint16{{1, 3}, {5, 5}, {8, 9}}},
		{[]uint16{0, 65535}, [][2]uint16{{0, 0}, {65535, 65535}}},
	} {
		if got := adjacentRuns(tc.in); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("adjacentRuns(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestPebbleCloseWithReclaimPending: a drop whose compaction still waits
// for the drops to stop does not hold up Close.
func TestPebbleCloseWithReclaimPending(t *testing.T) {
	o := testOptions(t, DurabilityInterval)
	o.ReclaimDelay = time.Hour
	p, err := OpenPebble(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.DropVnode(1); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for the pending reclaim")
	}
}
