package storage

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

// TestConcurrent runs writers on several vnodes alongside readers, scans,
// trims and expiry scans (meant for -race), then checks the final state.
func TestConcurrent(t *testing.T) {
	for _, k := range engineKinds[:2] {
		t.Run(k.name, func(t *testing.T) {
			e := k.open(t, t.TempDir())
			defer e.Close()
			const vnodes, perVnode = 4, 300
			var wg sync.WaitGroup
			errc := make(chan error, 100)
			for v := uint16(0); v < vnodes; v++ {
				wg.Add(1)
				go func() { // writer
					defer wg.Done()
					for s := uint64(1); s <= perVnode; s++ {
						c := &Change{Vnode: v, Seq: s, Op: OpPut, Namespace: "ns", Key: []byte(fmt.Sprint(s % 50)),
							Record: Record{Value: []byte(fmt.Sprint(s)), Exptime: int64(s % 7), Version: Version{Time: s}}}
						if err := e.Apply(c); err != nil {
							errc <- err
							return
						}
						if s%100 == 0 {
							if err := e.TrimLog(v, s-50); err != nil {
								errc <- err
							}
						}
					}
				}()
				wg.Add(1)
				go func() { // reader: the log it sees is contiguous
					defer wg.Done()
					for i := 0; i < 50; i++ {
						if _, err := e.Get(v, "ns", []byte("1")); err != nil && !errors.Is(err, ErrNotFound) {
							errc <- err
						}
						var prev uint64
						err := e.ScanLog(v, e.FirstSeq(v), func(c *Change) error {
							if prev != 0 && c.Seq != prev+1 {
								return fmt.Errorf("gap %d after %d", c.Seq, prev)
							}
							prev = c.Seq
							return nil
						})
						if err != nil && !errors.Is(err, ErrLogTruncated) {
							errc <- err
						}
						_ = e.ScanVnode(v, func(string, []byte, *Record) error { return nil })
						_ = e.ExpiryCandidates(3, 10, func(ExpiryRef) error { return nil })
					}
				}()
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Error(err)
			}
			for v := uint16(0); v < vnodes; v++ {
				if e.LastSeq(v) != perVnode || e.FirstSeq(v) != perVnode-50 {
					t.Errorf("vnode %d: first %d last %d", v, e.FirstSeq(v), e.LastSeq(v))
				}
			}
			if u, err := e.Usage(); err != nil || u.Items != vnodes*50 || u.MaxVersion != perVnode {
				t.Errorf("usage %+v %v", u, err)
			}
		})
	}
}

// TestCloseWhileBusy closes an engine under concurrent calls: they either
// succeed or fail with ErrClosed, and nothing panics or leaks.
func TestCloseWhileBusy(t *testing.T) {
	for _, k := range engineKinds[:2] {
		t.Run(k.name, func(t *testing.T) {
			e := k.open(t, t.TempDir())
			var wg sync.WaitGroup
			start := make(chan struct{})
			for v := uint16(0); v < 4; v++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					for s := uint64(1); ; s++ {
						err := e.Apply(&Change{Vnode: v, Seq: s, Op: OpPut, Namespace: "ns", Key: []byte("k")})
						if err == nil {
							_, err = e.Get(v, "ns", []byte("k"))
						}
						if errors.Is(err, ErrClosed) {
							return
						}
						if err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			close(start)
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
		})
	}
}
