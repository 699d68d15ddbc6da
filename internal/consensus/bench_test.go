package consensus

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// BenchmarkBoltStoreStoreLogs measures one StoreLogs call (one bbolt
// transaction) of batch entries of size bytes each, with fsync (what a node
// does) and without. 9 KiB is a full routing table (512 vnodes x 2
// replicas); raft hands the store up to MaxAppendEntries (64) at once.
// Entries are appended to a growing log, with raft-like compaction keeping
// it below 20k entries.
func BenchmarkBoltStoreStoreLogs(b *testing.B) {
	for _, sync := range []bool{true, false} {
		for _, batch := range []int{1, 64} {
			for _, size := range []int{128, 9 << 10} {
				name := fmt.Sprintf("sync=%v/batch=%d/size=%d", sync, batch, size)
				b.Run(name, func(b *testing.B) { benchStoreLogs(b, sync, batch, size) })
			}
		}
	}
}

func benchStoreLogs(b *testing.B, sync bool, batch, size int) {
	o := DefaultStoreOptions()
	o.NoSync = !sync
	s, err := OpenStore(filepath.Join(b.TempDir(), StoreFile), o)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i)
	}
	logs := make([]*raft.Log, batch)
	for i := range logs {
		logs[i] = &raft.Log{Term: 1, Type: raft.LogCommand, Data: data}
	}
	const keep, compactEvery = 10240, 8192
	next, first := uint64(1), uint64(1)
	b.SetBytes(int64(batch * size))
	b.ReportAllocs()
	for b.Loop() {
		now := time.Now()
		for _, l := range logs {
			l.Index, l.AppendedAt = next, now
			next++
		}
		if err := s.StoreLogs(logs); err != nil {
			b.Fatal(err)
		}
		if next-first > keep+compactEvery {
			b.StopTimer()
			if err := s.DeleteRange(first, next-keep-1); err != nil {
				b.Fatal(err)
			}
			first = next - keep
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
}
