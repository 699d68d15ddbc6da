package storage

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/testutil"
)

// TestPebbleDropVnodeFreesSpace: dropping a vnode gives its disk space
// back (the range deletions are compacted away), and the other vnodes
// keep their data.
func TestPebbleDropVnodeFreesSpace(t *testing.T) {
	p := mustOpenPebble(t, t.TempDir(), DurabilityInterval)
	t.Cleanup(func() { p.Close() })
	value := bytes.Repeat([]byte("v"), 4096)
	for _, v := range []uint16{3, 4} {
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
	if err := p.DropVnode(3); err != nil {
		t.Fatal(err)
	}
	// Both vnodes hold about the same: the drop must give back most of
	// one half.
	testutil.Eventually(t, 30*time.Second, "vnode 3's space back", func() error {
		if now := p.db.Metrics().DiskSpaceUsage(); now > before*3/4 {
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
