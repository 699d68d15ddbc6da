package storage

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sonae-kv/sonae/internal/datadriven"
)

// TestDataDriven runs every script in testdata/ against every engine kind
// and checks the output against the expected blocks, so all engines must
// behave identically. The script format is internal/datadriven's:
//
//	# comment
//	<command> [arg=value | word]...
//	----
//	<expected output, no blank lines>
//	<blank line>
//
// Values may be Go-quoted ("a b"). With -rewrite the expected blocks are
// regenerated from the memory engine, the first kind (after reviewing the
// diff, commit them); the other engines must still agree with it. Commands
// are documented in harness.run.
func TestDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, file string) {
		for _, k := range engineKinds {
			t.Run(k.name, func(t *testing.T) {
				h := &harness{t: t, kind: k, dir: t.TempDir()}
				h.e = k.open(t, h.dir)
				defer h.close()
				datadriven.RunTest(t, file, func(_ testing.TB, d *datadriven.TestData) string { return h.run(d) })
			})
		}
	})
}

// harness runs script commands against one engine.
type harness struct {
	t    *testing.T
	kind engineKind
	dir  string
	e    Engine
}

func (h *harness) close() {
	if h.e != nil {
		_ = h.e.Close()
	}
}

func fmtRecord(r *Record) string {
	return fmt.Sprintf("value=%q flags=%d exptime=%d cas=%d version=%d/%d",
		r.Value, r.Flags, r.Exptime, r.CAS, r.Version.Time, r.Version.Origin)
}

func fmtChange(c *Change) string {
	op := map[Op]string{OpPut: "put", OpDelete: "delete"}[c.Op]
	return fmt.Sprintf("seq=%d %s ns=%s key=%q %s", c.Seq, op, c.Namespace, c.Key, fmtRecord(&c.Record))
}

func errLine(err error) string {
	if err == nil {
		return "ok"
	}
	return "error: " + err.Error()
}

// run executes one command and returns its output. Commands:
//
//	apply vnode= seq= put|delete ns= key= [value= flags= exptime= cas= time= origin=]
//	load vnode= put|delete ns= key= [value= ...]   as apply, without a log entry or seq
//	reset-seq vnode= seq=
//	get vnode= ns= key=            the record or an error
//	remove vnode= ns= key=
//	seqs vnode=                    first=FirstSeq last=LastSeq
//	scanlog vnode= [from=]         one line per change
//	scanvnode vnode=               one line per record
//	trimlog vnode= before=
//	dropvnode vnode=
//	dropns ns=
//	expiry now= [limit=]           one line per candidate ref
//	dropexpiry exptime= vnode= ns= key=
//	usage                          items= bytes= maxversion=
//	putmeta name= value= / getmeta name=
//	reopen                         close and reopen (no-op for memory)
//	close                          close the engine
//
// Listing commands print "(none)" when they list nothing and end with an
// error line if the scan failed.
func (h *harness) run(d *datadriven.TestData) string {
	cmd := d.Cmd
	vnode := uint16(d.Uint("vnode", 0, 16))
	ns := d.Str("ns", "default")
	key := []byte(d.Str("key", ""))
	var out []string
	var err error
	switch cmd {
	case "apply", "load":
		c := &Change{Vnode: vnode, Seq: d.Uint("seq", 0, 64), Namespace: ns, Key: key, Op: OpPut}
		switch {
		case d.HasWord("delete"):
			c.Op = OpDelete
		case d.HasWord("badop"):
			c.Op = 9
		}
		c.Record = Record{
			Value:   []byte(d.Str("value", "")),
			Flags:   uint32(d.Uint("flags", 0, 32)),
			Exptime: d.Int("exptime", 0),
			CAS:     d.Uint("cas", 0, 64),
			Version: Version{Time: d.Uint("time", 0, 64), Origin: uint32(d.Uint("origin", 0, 32))},
		}
		if cmd == "load" {
			err = h.e.Load(c)
		} else {
			err = h.e.Apply(c)
		}
	case "reset-seq":
		err = h.e.ResetSeq(vnode, d.Uint("seq", 0, 64))
	case "get":
		var r Record
		if r, err = h.e.Get(vnode, ns, key); err == nil {
			return fmtRecord(&r)
		}
	case "remove":
		err = h.e.Remove(vnode, ns, key)
	case "seqs":
		return fmt.Sprintf("first=%d last=%d", h.e.FirstSeq(vnode), h.e.LastSeq(vnode))
	case "scanlog":
		err = h.e.ScanLog(vnode, d.Uint("from", 1, 64), func(c *Change) error {
			out = append(out, fmtChange(c))
			return nil
		})
	case "scanvnode":
		err = h.e.ScanVnode(vnode, func(ns string, key []byte, r *Record) error {
			out = append(out, fmt.Sprintf("ns=%s key=%q %s", ns, key, fmtRecord(r)))
			return nil
		})
	case "trimlog":
		err = h.e.TrimLog(vnode, d.Uint("before", 0, 64))
	case "dropvnode":
		err = h.e.DropVnode(vnode)
	case "dropns":
		err = h.e.DropNamespace(ns)
	case "expiry":
		err = h.e.ExpiryCandidates(d.Int("now", 0), int(d.Int("limit", 100)), func(r ExpiryRef) error {
			out = append(out, fmt.Sprintf("exptime=%d vnode=%d ns=%s key=%q", r.Exptime, r.Vnode, r.Namespace, r.Key))
			return nil
		})
	case "dropexpiry":
		err = h.e.DropExpiryRef(ExpiryRef{Exptime: d.Int("exptime", 0), Vnode: vnode, Namespace: ns, Key: key})
	case "usage":
		var u Usage
		if u, err = h.e.Usage(); err == nil {
			return fmt.Sprintf("items=%d bytes=%d maxversion=%d", u.Items, u.Bytes, u.MaxVersion)
		}
	case "putmeta":
		err = h.e.PutMeta(d.Str("name", ""), []byte(d.Str("value", "")))
	case "getmeta":
		var v []byte
		if v, err = h.e.GetMeta(d.Str("name", "")); err == nil {
			return fmt.Sprintf("%q", v)
		}
	case "reopen":
		if h.kind.persistent {
			if err = h.e.Close(); err == nil {
				h.e = h.kind.open(h.t, h.dir)
			}
		}
	case "close":
		err = h.e.Close()
	default:
		return "harness error: unknown command " + cmd
	}
	if d.Err != nil {
		return "harness error: " + d.Err.Error()
	}
	switch cmd {
	case "scanlog", "scanvnode", "expiry":
		if len(out) == 0 {
			out = append(out, "(none)")
		}
		if err != nil {
			out = append(out, errLine(err))
		}
		return strings.Join(out, "\n")
	}
	return errLine(err)
}
