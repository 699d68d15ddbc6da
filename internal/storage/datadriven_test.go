package storage

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of testdata/*.txt")

// TestDataDriven runs every script in testdata/ against every engine kind
// and checks the output against the expected blocks, so all engines must
// behave identically. A script is a list of cases:
//
//	# comment
//	<command> [arg=value | word]...
//	----
//	<expected output, no blank lines>
//	<blank line>
//
// Values may be Go-quoted ("a b"). With -rewrite the expected blocks are
// regenerated from the memory engine (after reviewing the diff, commit them);
// the other engines must still agree with it. Commands are documented in
// runCommand.
func TestDataDriven(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			cases := parseScript(t, file)
			for i, k := range engineKinds {
				t.Run(k.name, func(t *testing.T) {
					h := &harness{t: t, kind: k, dir: t.TempDir()}
					h.e = k.open(t, h.dir)
					defer h.close()
					for j := range cases {
						c := &cases[j]
						got := h.run(c.cmd)
						if *rewrite && i == 0 {
							c.want = got
							continue
						}
						if got != c.want {
							t.Errorf("%s:%d: %s\n got:\n%s\nwant:\n%s", file, c.line, c.cmd, got, c.want)
						}
					}
				})
			}
			if *rewrite {
				writeScript(t, file, cases)
			}
		})
	}
}

type scriptCase struct {
	pre  string // comments and blank lines before the case
	line int
	cmd  string
	want string
}

func parseScript(t *testing.T, file string) []scriptCase {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var cases []scriptCase
	var pre strings.Builder
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			pre.WriteString(l + "\n")
			continue
		}
		if i+1 >= len(lines) || lines[i+1] != "----" {
			t.Fatalf("%s:%d: command %q not followed by ----", file, i+1, l)
		}
		c := scriptCase{pre: pre.String(), line: i + 1, cmd: l}
		pre.Reset()
		var want []string
		for i += 2; i < len(lines) && lines[i] != ""; i++ {
			want = append(want, lines[i])
		}
		c.want = strings.Join(want, "\n")
		cases = append(cases, c)
	}
	return cases
}

func writeScript(t *testing.T, file string, cases []scriptCase) {
	t.Helper()
	var b strings.Builder
	for i, c := range cases {
		pre := c.pre
		if i > 0 {
			pre = strings.TrimPrefix(pre, "\n") // the blank line ending the previous case
		}
		fmt.Fprintf(&b, "%s%s\n----\n%s\n\n", pre, c.cmd, c.want)
	}
	if err := os.WriteFile(file, []byte(strings.TrimRight(b.String(), "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
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

// args is a parsed command line.
type args struct {
	words []string
	kv    map[string]string
	err   error
}

func parseArgs(s string) (cmd string, a *args) {
	a = &args{kv: map[string]string{}}
	toks, err := tokenize(s)
	if err != nil || len(toks) == 0 {
		a.err = fmt.Errorf("bad command line: %v", err)
		return "", a
	}
	for _, tok := range toks[1:] {
		k, v, ok := strings.Cut(tok, "=")
		if !ok {
			a.words = append(a.words, tok)
			continue
		}
		if strings.HasPrefix(v, `"`) {
			if v, err = strconv.Unquote(v); err != nil {
				a.err = fmt.Errorf("bad quoted value in %q", tok)
			}
		}
		a.kv[k] = v
	}
	return toks[0], a
}

// tokenize splits on spaces outside double quotes.
func tokenize(s string) ([]string, error) {
	var toks []string
	var cur strings.Builder
	inQuote, escaped := false, false
	for _, r := range s {
		switch {
		case escaped:
			escaped = false
		case inQuote && r == '\\':
			escaped = true
		case r == '"':
			inQuote = !inQuote
		case r == ' ' && !inQuote:
			if cur.Len() > 0 {
				toks = append(toks, cur.String())
				cur.Reset()
			}
			continue
		}
		cur.WriteRune(r)
	}
	if inQuote {
		return nil, errors.New("unterminated quote")
	}
	if cur.Len() > 0 {
		toks = append(toks, cur.String())
	}
	return toks, nil
}

func (a *args) str(name, def string) string {
	if v, ok := a.kv[name]; ok {
		return v
	}
	return def
}

func (a *args) uint(name string, def uint64, bits int) uint64 {
	v, ok := a.kv[name]
	if !ok {
		return def
	}
	n, err := strconv.ParseUint(v, 10, bits)
	if err != nil && a.err == nil {
		a.err = fmt.Errorf("bad %s=%q", name, v)
	}
	return n
}

func (a *args) int(name string, def int64) int64 {
	v, ok := a.kv[name]
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil && a.err == nil {
		a.err = fmt.Errorf("bad %s=%q", name, v)
	}
	return n
}

func (a *args) has(word string) bool {
	for _, w := range a.words {
		if w == word {
			return true
		}
	}
	return false
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
func (h *harness) run(line string) string {
	cmd, a := parseArgs(line)
	if a.err != nil {
		return "harness error: " + a.err.Error()
	}
	vnode := uint16(a.uint("vnode", 0, 16))
	ns := a.str("ns", "default")
	key := []byte(a.str("key", ""))
	var out []string
	var err error
	switch cmd {
	case "apply":
		c := &Change{Vnode: vnode, Seq: a.uint("seq", 0, 64), Namespace: ns, Key: key, Op: OpPut}
		switch {
		case a.has("delete"):
			c.Op = OpDelete
		case a.has("badop"):
			c.Op = 9
		}
		c.Record = Record{
			Value:   []byte(a.str("value", "")),
			Flags:   uint32(a.uint("flags", 0, 32)),
			Exptime: a.int("exptime", 0),
			CAS:     a.uint("cas", 0, 64),
			Version: Version{Time: a.uint("time", 0, 64), Origin: uint32(a.uint("origin", 0, 32))},
		}
		err = h.e.Apply(c)
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
		err = h.e.ScanLog(vnode, a.uint("from", 1, 64), func(c *Change) error {
			out = append(out, fmtChange(c))
			return nil
		})
	case "scanvnode":
		err = h.e.ScanVnode(vnode, func(ns string, key []byte, r *Record) error {
			out = append(out, fmt.Sprintf("ns=%s key=%q %s", ns, key, fmtRecord(r)))
			return nil
		})
	case "trimlog":
		err = h.e.TrimLog(vnode, a.uint("before", 0, 64))
	case "dropvnode":
		err = h.e.DropVnode(vnode)
	case "dropns":
		err = h.e.DropNamespace(ns)
	case "expiry":
		err = h.e.ExpiryCandidates(a.int("now", 0), int(a.int("limit", 100)), func(r ExpiryRef) error {
			out = append(out, fmt.Sprintf("exptime=%d vnode=%d ns=%s key=%q", r.Exptime, r.Vnode, r.Namespace, r.Key))
			return nil
		})
	case "dropexpiry":
		err = h.e.DropExpiryRef(ExpiryRef{Exptime: a.int("exptime", 0), Vnode: vnode, Namespace: ns, Key: key})
	case "usage":
		var u Usage
		if u, err = h.e.Usage(); err == nil {
			return fmt.Sprintf("items=%d bytes=%d maxversion=%d", u.Items, u.Bytes, u.MaxVersion)
		}
	case "putmeta":
		err = h.e.PutMeta(a.str("name", ""), []byte(a.str("value", "")))
	case "getmeta":
		var v []byte
		if v, err = h.e.GetMeta(a.str("name", "")); err == nil {
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
	if a.err != nil {
		return "harness error: " + a.err.Error()
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
