package storage

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestRapidModel drives each engine with random operations and compares
// every answer with a simple model. Small domains of vnodes, namespaces and
// keys make collisions (overwrites, prefix namespaces, trims) common.
func TestRapidModel(t *testing.T) {
	for _, k := range engineKinds {
		if k.name == "pebble-fsync" {
			continue // same code as pebble-interval, only slower
		}
		t.Run(k.name, func(t *testing.T) {
			root := t.TempDir()
			rapid.Check(t, func(rt *rapid.T) {
				dir, err := os.MkdirTemp(root, "")
				if err != nil {
					rt.Fatal(err)
				}
				m := &modelTest{kind: k, dir: dir, e: k.open(t, dir), model: newModel()}
				rt.Cleanup(func() { _ = m.e.Close(); _ = os.RemoveAll(dir) })
				// Several rounds of Repeat make longer histories (about
				// 4 x -rapid.steps actions) than a single one.
				actions := m.actions(t)
				for range 4 {
					rt.Repeat(actions)
				}
			})
		})
	}
}

var (
	modelVnodes = []uint16{0, 1, 65535}
	modelNs     = []string{"a", "ab", "b"}
	modelKeys   = []string{"", "k", "k\x00", "kk", "\xff"}
	modelExp    = []int64{0, 0, -5, 10, 20, 1 << 40}
)

type modelRef struct {
	exptime int64
	vnode   uint16
	ns, key string
}

// model is the reference behaviour of an Engine.
type model struct {
	recs map[uint16]map[string]map[string]Record
	logs map[uint16][]Change
	last map[uint16]uint64
	refs map[modelRef]bool
	meta map[string]string
}

func newModel() *model {
	return &model{
		recs: map[uint16]map[string]map[string]Record{},
		logs: map[uint16][]Change{},
		last: map[uint16]uint64{},
		refs: map[modelRef]bool{},
		meta: map[string]string{},
	}
}

func (m *model) first(v uint16) uint64 {
	if l := m.logs[v]; len(l) > 0 {
		return l[0].Seq
	}
	return m.last[v] + 1
}

func (m *model) apply(c Change) {
	m.load(c)
	if c.Op == OpDelete {
		c.Record = Record{Version: c.Record.Version}
	}
	m.logs[c.Vnode] = append(m.logs[c.Vnode], c)
	m.last[c.Vnode] = c.Seq
}

// load is the record half of apply: no log entry, no sequence.
func (m *model) load(c Change) {
	if m.recs[c.Vnode] == nil {
		m.recs[c.Vnode] = map[string]map[string]Record{}
	}
	if c.Op == OpPut {
		if m.recs[c.Vnode][c.Namespace] == nil {
			m.recs[c.Vnode][c.Namespace] = map[string]Record{}
		}
		m.recs[c.Vnode][c.Namespace][string(c.Key)] = c.Record
		if c.Record.Exptime != 0 {
			m.refs[modelRef{c.Record.Exptime, c.Vnode, c.Namespace, string(c.Key)}] = true
		}
	} else {
		delete(m.recs[c.Vnode][c.Namespace], string(c.Key))
	}
}

type modelTest struct {
	kind  engineKind
	dir   string
	e     Engine
	model *model
}

func fmtRec(r Record) string {
	return fmt.Sprintf("%q/%d/%d/%d/%v", r.Value, r.Flags, r.Exptime, r.CAS, r.Version)
}

func (mt *modelTest) actions(tb testing.TB) map[string]func(*rapid.T) {
	m := mt.model
	vnodeGen := rapid.SampledFrom(modelVnodes)
	nsGen := rapid.SampledFrom(modelNs)
	keyGen := rapid.SampledFrom(modelKeys)
	// drawChange draws a put or delete of vnode v with sequence seq.
	drawChange := func(t *rapid.T, v uint16, seq uint64) Change {
		c := Change{Vnode: v, Seq: seq, Op: OpPut, Namespace: nsGen.Draw(t, "ns"), Key: []byte(keyGen.Draw(t, "key"))}
		if rapid.IntRange(0, 3).Draw(t, "delete") == 0 {
			c.Op = OpDelete
		}
		c.Record = Record{
			Value:   rapid.SliceOfN(rapid.Byte(), 0, 20).Draw(t, "value"),
			Flags:   rapid.Uint32().Draw(t, "flags"),
			Exptime: rapid.SampledFrom(modelExp).Draw(t, "exptime"),
			CAS:     rapid.Uint64().Draw(t, "cas"),
			Version: Version{Time: rapid.Uint64Range(0, 1000).Draw(t, "time"), Origin: rapid.Uint32Range(0, 3).Draw(t, "origin")},
		}
		return c
	}
	// write passes a copy of c to fn (Apply or Load), then scribbles over
	// the copy's slices: the engine must not keep the caller's slices.
	write := func(c Change, fn func(*Change) error) error {
		in := c
		in.Key = slices.Clone(c.Key)
		in.Record.Value = slices.Clone(c.Record.Value)
		err := fn(&in)
		for i := range in.Key {
			in.Key[i] ^= 0xff
		}
		for i := range in.Record.Value {
			in.Record.Value[i] ^= 0xff
		}
		return err
	}
	return map[string]func(*rapid.T){
		"apply": func(t *rapid.T) {
			v := vnodeGen.Draw(t, "vnode")
			seq := m.last[v] + 1
			bad := rapid.IntRange(0, 9).Draw(t, "badseq") == 0
			if bad {
				seq = rapid.SampledFrom([]uint64{0, seq - 1, seq + 1}).Draw(t, "seq")
			}
			c := drawChange(t, v, seq)
			err := write(c, mt.e.Apply)
			if bad && seq != m.last[v]+1 {
				if !errors.Is(err, ErrSeqOutOfOrder) {
					t.Fatalf("apply seq %d on last %d: %v, want ErrSeqOutOfOrder", seq, m.last[v], err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m.apply(c)
		},
		"load": func(t *rapid.T) {
			v := vnodeGen.Draw(t, "vnode")
			c := drawChange(t, v, rapid.Uint64Range(0, m.last[v]+2).Draw(t, "seq"))
			if err := write(c, mt.e.Load); err != nil {
				t.Fatal(err)
			}
			m.load(c)
		},
		"resetseq": func(t *rapid.T) {
			if rapid.IntRange(0, 2).Draw(t, "rare") != 0 {
				t.Skip("rare")
			}
			v := vnodeGen.Draw(t, "vnode")
			seq := rapid.Uint64Range(0, m.last[v]+3).Draw(t, "seq")
			if err := mt.e.ResetSeq(v, seq); err != nil {
				t.Fatal(err)
			}
			m.logs[v] = nil
			m.last[v] = seq
		},
		"get": func(t *rapid.T) {
			v, ns, key := vnodeGen.Draw(t, "vnode"), nsGen.Draw(t, "ns"), keyGen.Draw(t, "key")
			r, err := mt.e.Get(v, ns, []byte(key))
			want, ok := m.recs[v][ns][key]
			if !ok {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("get %d/%s/%q: %v %v, want not found", v, ns, key, fmtRec(r), err)
				}
				return
			}
			if err != nil || fmtRec(r) != fmtRec(want) {
				t.Fatalf("get %d/%s/%q: %s %v, want %s", v, ns, key, fmtRec(r), err, fmtRec(want))
			}
		},
		"remove": func(t *rapid.T) {
			v, ns, key := vnodeGen.Draw(t, "vnode"), nsGen.Draw(t, "ns"), keyGen.Draw(t, "key")
			if err := mt.e.Remove(v, ns, []byte(key)); err != nil {
				t.Fatal(err)
			}
			delete(m.recs[v][ns], key)
		},
		"trim": func(t *rapid.T) {
			v := vnodeGen.Draw(t, "vnode")
			before := rapid.Uint64Range(0, m.last[v]+3).Draw(t, "before")
			if err := mt.e.TrimLog(v, before); err != nil {
				t.Fatal(err)
			}
			l := m.logs[v]
			for len(l) > 0 && l[0].Seq < before {
				l = l[1:]
			}
			m.logs[v] = l
		},
		"scanlog": func(t *rapid.T) {
			v := vnodeGen.Draw(t, "vnode")
			from := rapid.Uint64Range(0, m.last[v]+2).Draw(t, "from")
			var got []string
			err := mt.e.ScanLog(v, from, func(c *Change) error {
				got = append(got, fmt.Sprintf("%d %d %d %s %q %s", c.Vnode, c.Seq, c.Op, c.Namespace, c.Key, fmtRec(c.Record)))
				return nil
			})
			if max(from, 1) < m.first(v) {
				if !errors.Is(err, ErrLogTruncated) {
					t.Fatalf("scanlog %d from %d (first %d): %v, want ErrLogTruncated", v, from, m.first(v), err)
				}
				return
			}
			var want []string
			for _, c := range m.logs[v] {
				if c.Seq >= from {
					want = append(want, fmt.Sprintf("%d %d %d %s %q %s", c.Vnode, c.Seq, c.Op, c.Namespace, c.Key, fmtRec(c.Record)))
				}
			}
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("scanlog %d from %d: %v\n got %q\nwant %q", v, from, err, got, want)
			}
		},
		"scanvnode": func(t *rapid.T) {
			v := vnodeGen.Draw(t, "vnode")
			var got []string
			err := mt.e.ScanVnode(v, func(ns string, key []byte, r *Record) error {
				got = append(got, fmt.Sprintf("%s %q %s", ns, key, fmtRec(*r)))
				return nil
			})
			type nk struct{ ns, key string }
			var order []nk
			for ns, keys := range m.recs[v] {
				for k := range keys {
					order = append(order, nk{ns, k})
				}
			}
			slices.SortFunc(order, func(a, b nk) int {
				if c := strings.Compare(a.ns, b.ns); c != 0 {
					return c
				}
				return strings.Compare(a.key, b.key)
			})
			var want []string
			for _, x := range order {
				want = append(want, fmt.Sprintf("%s %q %s", x.ns, x.key, fmtRec(m.recs[v][x.ns][x.key])))
			}
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("scanvnode %d: %v\n got %q\nwant %q", v, err, got, want)
			}
		},
		"dropvnode": func(t *rapid.T) {
			if rapid.IntRange(0, 4).Draw(t, "rare") != 0 {
				t.Skip("rare")
			}
			v := vnodeGen.Draw(t, "vnode")
			if err := mt.e.DropVnode(v); err != nil {
				t.Fatal(err)
			}
			delete(m.recs, v)
			delete(m.logs, v)
			delete(m.last, v)
		},
		"dropns": func(t *rapid.T) {
			if rapid.IntRange(0, 4).Draw(t, "rare") != 0 {
				t.Skip("rare")
			}
			ns := nsGen.Draw(t, "ns")
			if err := mt.e.DropNamespace(ns); err != nil {
				t.Fatal(err)
			}
			for _, nss := range m.recs {
				delete(nss, ns)
			}
		},
		"expiry": func(t *rapid.T) {
			now := rapid.SampledFrom([]int64{-10, 0, 10, 15, 20, 1 << 50}).Draw(t, "now")
			limit := rapid.IntRange(0, 6).Draw(t, "limit")
			var got []ExpiryRef
			err := mt.e.ExpiryCandidates(now, limit, func(r ExpiryRef) error {
				got = append(got, r)
				return nil
			})
			var want []modelRef
			for r := range m.refs {
				if r.exptime <= now {
					want = append(want, r)
				}
			}
			slices.SortFunc(want, func(a, b modelRef) int {
				ka := string(appendExpiryKey(nil, a.exptime, a.vnode, a.ns, []byte(a.key)))
				kb := string(appendExpiryKey(nil, b.exptime, b.vnode, b.ns, []byte(b.key)))
				return strings.Compare(ka, kb)
			})
			want = want[:min(limit, len(want))]
			gotS := make([]string, len(got))
			for i, r := range got {
				gotS[i] = fmt.Sprint(modelRef{r.Exptime, r.Vnode, r.Namespace, string(r.Key)})
			}
			wantS := make([]string, len(want))
			for i, r := range want {
				wantS[i] = fmt.Sprint(r)
			}
			if err != nil || !slices.Equal(gotS, wantS) {
				t.Fatalf("expiry now=%d limit=%d: %v\n got %q\nwant %q", now, limit, err, gotS, wantS)
			}
			if len(got) > 0 && rapid.Bool().Draw(t, "drop") {
				r := got[rapid.IntRange(0, len(got)-1).Draw(t, "which")]
				if err := mt.e.DropExpiryRef(r); err != nil {
					t.Fatal(err)
				}
				delete(m.refs, modelRef{r.Exptime, r.Vnode, r.Namespace, string(r.Key)})
			}
		},
		"usage": func(t *rapid.T) {
			var want Usage
			for _, nss := range m.recs {
				for _, keys := range nss {
					for k, r := range keys {
						want.Items++
						want.Bytes += int64(len(k) + len(r.Value))
						want.MaxVersion = max(want.MaxVersion, r.Version.Time)
					}
				}
			}
			for _, l := range m.logs {
				for _, c := range l {
					want.MaxVersion = max(want.MaxVersion, c.Record.Version.Time)
				}
			}
			got, err := mt.e.Usage()
			if err != nil || got != want {
				t.Fatalf("usage: %+v %v, want %+v", got, err, want)
			}
		},
		"meta": func(t *rapid.T) {
			name := rapid.SampledFrom([]string{"x", "y"}).Draw(t, "name")
			if rapid.Bool().Draw(t, "put") {
				val := rapid.StringN(0, 8, -1).Draw(t, "val")
				if err := mt.e.PutMeta(name, []byte(val)); err != nil {
					t.Fatal(err)
				}
				m.meta[name] = val
				return
			}
			got, err := mt.e.GetMeta(name)
			want, ok := m.meta[name]
			if !ok && !errors.Is(err, ErrNotFound) || ok && (err != nil || string(got) != want) {
				t.Fatalf("getmeta %s: %q %v, want %q %v", name, got, err, want, ok)
			}
		},
		"reopen": func(t *rapid.T) {
			if !mt.kind.persistent || rapid.IntRange(0, 4).Draw(t, "rare") != 0 {
				t.Skip("not persistent")
			}
			if err := mt.e.Close(); err != nil {
				t.Fatal(err)
			}
			mt.e = mt.kind.open(tb, mt.dir)
		},
		"": func(t *rapid.T) {
			for _, v := range modelVnodes {
				if got, want := mt.e.LastSeq(v), m.last[v]; got != want {
					t.Fatalf("LastSeq(%d) = %d, want %d", v, got, want)
				}
				if got, want := mt.e.FirstSeq(v), m.first(v); got != want {
					t.Fatalf("FirstSeq(%d) = %d, want %d", v, got, want)
				}
			}
		},
	}
}
