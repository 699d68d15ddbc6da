package kv_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"pgregory.net/rapid"

	"github.com/sonae-kv/sonae/internal/clock"
	"github.com/sonae-kv/sonae/internal/datadriven"
	"github.com/sonae-kv/sonae/internal/kv"
	"github.com/sonae-kv/sonae/internal/storage"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testStart is where every fake clock starts: unix 1700000000, so absolute
// exptimes in scripts read as 1700000000+N.
var testStart = time.Unix(1_700_000_000, 0)

// testOptions are small kv options: 4 vnodes (so keys share change logs),
// 16-byte items, 3 retained log entries, one minute of log age.
func testOptions() kv.Options {
	o := kv.DefaultOptions()
	o.DivBits = 2
	o.MaxItemSize = 16
	o.RetainEntries = 3
	o.RetainAge = time.Minute
	return o
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func engineOptions() storage.Options {
	o := storage.Default()
	o.CacheSize = 8 << 20
	o.Logger = discardLogger()
	return o
}

// engineKind names one engine under test. reopen on memory rebuilds the
// Store over the same engine, so both kinds go through kv.Open's recovery
// of namespaces, flush horizons and usage; pebble also closes the engine.
type engineKind struct {
	name       string
	persistent bool
	open       func(t testing.TB, dir string) storage.Engine
}

var engineKinds = []engineKind{
	{"memory", false, func(testing.TB, string) storage.Engine { return storage.NewMemory(engineOptions()) }},
	{"pebble", true, func(t testing.TB, dir string) storage.Engine {
		t.Helper()
		p, err := storage.OpenPebble(dir, engineOptions())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}},
}

// TestDataDriven runs every script in testdata/ against every engine with a
// fake clock and checks the output against the expected blocks. A script
// (the internal/datadriven format) is a list of cases:
//
//	# comment
//	<command> [word | arg=value]...
//	----
//	<expected output, no blank lines>
//	<blank line>
//
// Values may be Go-quoted (value="a b"). ns defaults to "default". Commands
// (see harness.run for the output of each):
//
//	set|add|replace|append|prepend|cas key= value= [ns=] [flags=] [exptime=] [cas=] [showcas]
//	                              (showcas: StoreCAS, printing the new CAS)
//	get key= [ns=]                value= flags= exptime= cas=, or "miss"
//	delete key= [ns=] [cas=]      DELETED | NOT_FOUND (| EXISTS with cas=: DeleteCAS)
//	gettouch key= exptime= [ns=]  GetAndTouch: the item and its previous exptime, or "miss"
//	ma key= [delta=] [decr] [cas=] [vivify initial= newexptime=] [exptime=]
//	                              MetaArith: value= exptime= prev= flags= cas= created=
//	                              | NOT_FOUND | EXISTS
//	touch key= exptime= [ns=]     TOUCHED exptime= cas= | NOT_FOUND
//	incr|decr key= delta= [ns=]   the new number | NOT_FOUND
//	flush [ns=] [delay=]          flush_all, immediate or delayed (seconds)
//	advance <duration>            move the fake clock (may be negative)
//	reclaim                       ReclaimExpired; reclaimed=N
//	sweep                         SweepFlushed
//	trimlogs                      TrimLogs
//	usage                         items= bytes=
//	counters                      the cumulative counters
//	createns ns= | deletens ns=   namespace changes
//	namespaces                    the namespace list
//	lastseq key=                  vnode= first= last= of key's vnode
//	scanlog key=                  the change log of key's vnode
//	reopen                        close and reopen the store (and pebble)
//
// CAS ids are hybrid-clock readings, so they never appear raw: each distinct
// CAS gets a label c1, c2, ... in order of first appearance, and a `cas=`
// argument takes a label, $last (the CAS of the last get or touch) or a
// number. Exptimes are printed as absolute unix times (0 = never).
//
// With -rewrite the expected blocks are regenerated from the memory engine
// (review the diff before committing); pebble must still agree with it.
func TestDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, file string) {
		for _, k := range engineKinds {
			t.Run(k.name, func(t *testing.T) {
				h := newHarness(t, k)
				defer h.close()
				datadriven.RunTest(t, file, func(_ testing.TB, d *datadriven.TestData) string { return h.run(d) })
			})
		}
	})
}

// harness runs script commands against one Store.
type harness struct {
	t    *testing.T
	kind engineKind
	dir  string
	clk  *clock.Fake
	eng  storage.Engine
	s    *kv.Store

	labels  map[uint64]string // CAS -> c1, c2, ...
	byLabel map[string]uint64
	lastCAS uint64
}

func newHarness(t *testing.T, k engineKind) *harness {
	h := &harness{
		t: t, kind: k, dir: t.TempDir(), clk: clock.NewFake(testStart),
		labels: map[uint64]string{}, byLabel: map[string]uint64{},
	}
	h.eng = k.open(t, h.dir)
	h.openStore()
	return h
}

func (h *harness) openStore() {
	h.t.Helper()
	s, err := kv.Open(h.eng, h.clk, testOptions(), discardLogger())
	if err != nil {
		h.t.Fatalf("kv.Open: %v", err)
	}
	h.s = s
}

func (h *harness) close() {
	if h.eng != nil {
		_ = h.eng.Close()
	}
}

func (h *harness) reopen() error {
	if h.kind.persistent {
		if err := h.eng.Close(); err != nil {
			return err
		}
		h.eng = h.kind.open(h.t, h.dir)
	}
	h.openStore()
	return nil
}

func (h *harness) label(cas uint64) string {
	if l, ok := h.labels[cas]; ok {
		return l
	}
	l := fmt.Sprintf("c%d", len(h.labels)+1)
	h.labels[cas], h.byLabel[l] = l, cas
	return l
}

// cas resolves a cas= argument: a label, $last or a number.
func (h *harness) cas(d *datadriven.TestData) uint64 {
	v := d.Str("cas", "0")
	switch {
	case v == "$last":
		return h.lastCAS
	case strings.HasPrefix(v, "c"):
		n, ok := h.byLabel[v]
		if !ok && d.Err == nil {
			d.Err = fmt.Errorf("unknown CAS label %s", v)
		}
		return n
	}
	return d.Uint("cas", 0, 64)
}

var storeOps = map[string]kv.Op{
	"set": kv.OpSet, "add": kv.OpAdd, "replace": kv.OpReplace,
	"append": kv.OpAppend, "prepend": kv.OpPrepend, "cas": kv.OpCAS,
}

var resultNames = map[kv.Result]string{
	kv.Stored: "STORED", kv.NotStored: "NOT_STORED", kv.Exists: "EXISTS", kv.NotFound: "NOT_FOUND",
	kv.Deleted: "DELETED",
}

func errLine(err error) string {
	if err == nil {
		return "ok"
	}
	return "error: " + err.Error()
}

func fmtUnix(t time.Time) string {
	if ms := t.UnixMilli() % 1000; ms != 0 {
		return fmt.Sprintf("%d.%03d", t.Unix(), ms)
	}
	return strconv.FormatInt(t.Unix(), 10)
}

// run executes one command and returns its output.
func (h *harness) run(d *datadriven.TestData) (out string) {
	cmd := d.Cmd
	defer func() {
		if d.Err != nil {
			out = "harness error: " + d.Err.Error()
		}
	}()
	ns := d.Str("ns", kv.DefaultNamespace)
	key := []byte(d.Str("key", ""))
	ctx := context.Background()
	if op, ok := storeOps[cmd]; ok {
		req := kv.StoreRequest{
			Op: op, Namespace: ns, Key: key, Value: []byte(d.Str("value", "")),
			Flags: uint32(d.Uint("flags", 0, 32)), Exptime: d.Int("exptime", 0),
		}
		req.CAS = h.cas(d)
		if d.HasWord("showcas") {
			res, cas, err := h.s.StoreCAS(req)
			switch {
			case err != nil:
				return errLine(err)
			case res != kv.Stored:
				return fmt.Sprintf("%s cas=%d", resultNames[res], cas)
			}
			return "STORED cas=" + h.label(cas)
		}
		res, err := h.s.Store(req)
		if err != nil {
			return errLine(err)
		}
		return resultNames[res]
	}
	switch cmd {
	case "get":
		it, ok, err := h.s.Get(ns, key)
		switch {
		case err != nil:
			return errLine(err)
		case !ok:
			return "miss"
		}
		h.lastCAS = it.CAS
		return fmt.Sprintf("value=%q flags=%d exptime=%d cas=%s", it.Value, it.Flags, it.Exptime, h.label(it.CAS))
	case "delete":
		if _, ok := d.Arg("cas"); ok {
			res, err := h.s.DeleteCAS(ns, key, h.cas(d))
			if err != nil {
				return errLine(err)
			}
			return resultNames[res]
		}
		ok, err := h.s.Delete(ns, key)
		switch {
		case err != nil:
			return errLine(err)
		case !ok:
			return "NOT_FOUND"
		}
		return "DELETED"
	case "touch":
		it, ok, err := h.s.Touch(ns, key, d.Int("exptime", 0))
		switch {
		case err != nil:
			return errLine(err)
		case !ok:
			return "NOT_FOUND"
		}
		h.lastCAS = it.CAS
		return fmt.Sprintf("TOUCHED exptime=%d cas=%s", it.Exptime, h.label(it.CAS))
	case "gettouch":
		it, prev, ok, err := h.s.GetAndTouch(ns, key, d.Int("exptime", 0))
		switch {
		case err != nil:
			return errLine(err)
		case !ok:
			return "miss"
		}
		h.lastCAS = it.CAS
		return fmt.Sprintf("value=%q flags=%d exptime=%d prev=%d cas=%s", it.Value, it.Flags, it.Exptime, prev, h.label(it.CAS))
	case "ma":
		req := kv.ArithRequest{
			Delta: d.Uint("delta", 1, 64), Incr: !d.HasWord("decr"), CAS: h.cas(d),
			Vivify: d.HasWord("vivify"), Initial: d.Uint("initial", 0, 64), NewExptime: d.Int("newexptime", 0),
		}
		if _, ok := d.Arg("exptime"); ok {
			req.Touch, req.Exptime = true, d.Int("exptime", 0)
		}
		r, res, err := h.s.MetaArith(ns, key, req)
		switch {
		case err != nil:
			return errLine(err)
		case res != kv.Stored:
			return resultNames[res]
		}
		h.lastCAS = r.Item.CAS
		return fmt.Sprintf("value=%d exptime=%d prev=%d flags=%d cas=%s created=%v",
			r.Value, r.Item.Exptime, r.PrevExptime, r.Item.Flags, h.label(r.Item.CAS), r.Created)
	case "incr", "decr":
		n, res, err := h.s.Arith(ns, key, d.Uint("delta", 1, 64), cmd == "incr")
		switch {
		case err != nil:
			return errLine(err)
		case res != kv.Stored:
			return resultNames[res]
		}
		return strconv.FormatUint(n, 10)
	case "flush":
		return errLine(h.s.FlushAll(ns, d.Int("delay", 0)))
	case "advance":
		if len(d.Words()) != 1 {
			d.Err = errors.New("advance wants one duration")
			return ""
		}
		dur, err := time.ParseDuration(d.Words()[0])
		if err != nil {
			d.Err = err
			return ""
		}
		h.clk.Set(h.clk.Now().Add(dur))
		return "now=" + fmtUnix(h.clk.Now())
	case "reclaim":
		n, err := h.s.ReclaimExpired(ctx)
		if err != nil {
			return errLine(err)
		}
		return fmt.Sprintf("reclaimed=%d", n)
	case "sweep":
		return errLine(h.s.SweepFlushed(ctx))
	case "trimlogs":
		return errLine(h.s.TrimLogs(ctx))
	case "usage":
		items, bytes := h.s.Usage()
		return fmt.Sprintf("items=%d bytes=%d", items, bytes)
	case "counters":
		c := h.s.Counters()
		return fmt.Sprintf("writes=%d deletes=%d reclaimed=%d flushes=%d get_expired=%d get_flushed=%d",
			c.Writes, c.Deletes, c.Reclaimed, c.Flushes, c.GetExpired, c.GetFlushed)
	case "createns":
		return errLine(h.s.CreateNamespace(ns))
	case "deletens":
		return errLine(h.s.DeleteNamespace(ns))
	case "namespaces":
		return strings.Join(h.s.Namespaces(), " ")
	case "lastseq":
		vn := h.s.Vnode(key)
		return fmt.Sprintf("vnode=%d first=%d last=%d", vn, h.eng.FirstSeq(vn), h.eng.LastSeq(vn))
	case "scanlog":
		return h.scanLog(h.s.Vnode(key))
	case "reopen":
		return errLine(h.reopen())
	}
	d.Err = fmt.Errorf("unknown command %q", cmd)
	return ""
}

func (h *harness) scanLog(vn uint16) string {
	var lines []string
	err := h.eng.ScanLog(vn, h.eng.FirstSeq(vn), func(c *storage.Change) error {
		switch c.Op {
		case storage.OpPut:
			lines = append(lines, fmt.Sprintf("seq=%d put ns=%s key=%q value=%q", c.Seq, c.Namespace, c.Key, c.Record.Value))
		default:
			lines = append(lines, fmt.Sprintf("seq=%d delete ns=%s key=%q", c.Seq, c.Namespace, c.Key))
		}
		return nil
	})
	if len(lines) == 0 {
		lines = append(lines, "(none)")
	}
	if err != nil {
		lines = append(lines, errLine(err))
	}
	return strings.Join(lines, "\n")
}

// ---- Property test ----

// modelItem is the reference state of one key.
type modelItem struct {
	value   string
	flags   uint32
	exptime int64 // absolute, 0 = never
	gen     int   // bumped on every value write; touch keeps it
}

// kvModel is memcached's item semantics, written as plainly as possible.
type kvModel struct {
	now   func() time.Time
	max   int
	items map[string]modelItem
	gen   int
}

func (m *kvModel) live(key string) (modelItem, bool) {
	it, ok := m.items[key]
	if !ok || (it.exptime != 0 && m.now().Unix() >= it.exptime) {
		return modelItem{}, false
	}
	return it, true
}

// absExptime is memcached's rule, restated for the model.
func (m *kvModel) absExptime(e int64) int64 {
	switch {
	case e == 0:
		return 0
	case e < 0:
		return 1
	case e > 30*24*3600:
		return e
	}
	return m.now().Unix() + e
}

// put stores it unless its exptime is already past, in which case the key
// is gone.
func (m *kvModel) put(key string, it modelItem) {
	if it.exptime != 0 && m.now().Unix() >= it.exptime {
		delete(m.items, key)
		return
	}
	m.items[key] = it
}

func (m *kvModel) store(op kv.Op, key, value string, flags uint32, exptime int64, casOK bool) kv.Result {
	old, live := m.live(key)
	switch op {
	case kv.OpAdd:
		if live {
			return kv.NotStored
		}
	case kv.OpReplace, kv.OpAppend, kv.OpPrepend:
		if !live {
			return kv.NotStored
		}
	case kv.OpCAS:
		if !live {
			return kv.NotFound
		}
		if !casOK {
			return kv.Exists
		}
	}
	m.gen++
	it := modelItem{value: value, flags: flags, exptime: m.absExptime(exptime), gen: m.gen}
	switch op {
	case kv.OpAppend, kv.OpPrepend:
		if len(old.value)+len(value) > m.max {
			m.gen--
			return kv.NotStored
		}
		it = old
		it.gen = m.gen
		if op == kv.OpAppend {
			it.value = old.value + value
		} else {
			it.value = value + old.value
		}
	}
	m.put(key, it)
	return kv.Stored
}

// parseNumber is memcached's safe_strtoull on an item: optional leading
// white space, decimal digits, then the end or white space.
func parseNumber(s string) (uint64, bool) {
	s = strings.TrimLeft(s, " ")
	end := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(s)
	}
	if end == 0 || (end < len(s) && s[end] != ' ') {
		return 0, false
	}
	n, err := strconv.ParseUint(s[:end], 10, 64)
	return n, err == nil
}

func (m *kvModel) arith(key string, delta uint64, incr bool) (uint64, kv.Result, error) {
	it, live := m.live(key)
	if !live {
		return 0, kv.NotFound, nil
	}
	n, ok := parseNumber(it.value)
	if !ok {
		return 0, 0, kv.ErrNonNumeric
	}
	switch {
	case incr:
		n += delta // wraps at 2^64
	case delta > n:
		n = 0
	default:
		n -= delta
	}
	v := strconv.FormatUint(n, 10)
	if len(v) < len(it.value) {
		v += strings.Repeat(" ", len(it.value)-len(v))
	}
	m.gen++
	it.value, it.gen = v, m.gen
	m.items[key] = it
	return n, kv.Stored, nil
}

func (m *kvModel) touch(key string, exptime int64) bool {
	it, live := m.live(key)
	if !live {
		return false
	}
	it.exptime = m.absExptime(exptime)
	m.put(key, it)
	return true
}

func (m *kvModel) delete(key string) bool {
	_, live := m.live(key)
	delete(m.items, key)
	return live
}

// TestRapidModel drives a Store on the memory engine with random commands
// on a few keys and compares every answer, and every key after each
// command, with kvModel. CAS ids are checked for what clients rely on: they
// change on every value write and stay put on touch.
func TestRapidModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		clk := clock.NewFake(testStart)
		eng := storage.NewMemory(engineOptions())
		defer eng.Close()
		opts := testOptions()
		opts.MaxItemSize = 4
		s, err := kv.Open(eng, clk, opts, discardLogger())
		if err != nil {
			rt.Fatal(err)
		}
		m := &kvModel{now: clk.Now, max: opts.MaxItemSize, items: map[string]modelItem{}}
		seen := map[string]struct {
			cas uint64
			gen int
		}{}

		keys := rapid.SampledFrom([]string{"a", "b", "c"})
		values := rapid.SampledFrom([]string{"", "0", "1", "9", "99", "100", "1000", "18446744073709551615",
			"abc", "7x", " 5", "12 ", "-1"})
		flags := rapid.SampledFrom([]uint32{0, 3, math.MaxUint32})
		// Relative, negative, and absolute (already past after 3 s).
		exptimes := rapid.SampledFrom([]int64{0, 0, 1, 2, 5, -1, testStart.Unix() + 3})
		deltas := rapid.SampledFrom([]uint64{0, 1, 5, 100, math.MaxUint64, 1 << 63})
		ops := rapid.SampledFrom([]kv.Op{kv.OpSet, kv.OpAdd, kv.OpReplace, kv.OpAppend, kv.OpPrepend})
		ns := kv.DefaultNamespace

		actions := map[string]func(*rapid.T){
			"store": func(rt *rapid.T) {
				op, key, val := ops.Draw(rt, "op"), keys.Draw(rt, "key"), values.Draw(rt, "value")
				fl, exp := flags.Draw(rt, "flags"), exptimes.Draw(rt, "exptime")
				got, err := s.Store(kv.StoreRequest{Op: op, Namespace: ns, Key: []byte(key), Value: []byte(val), Flags: fl, Exptime: exp})
				if err != nil {
					rt.Fatal(err)
				}
				if want := m.store(op, key, val, fl, exp, false); got != want {
					rt.Fatalf("store op %d %q: got %s, want %s", op, key, resultNames[got], resultNames[want])
				}
			},
			"cas": func(rt *rapid.T) {
				key, val := keys.Draw(rt, "key"), values.Draw(rt, "value")
				right := rapid.Bool().Draw(rt, "right")
				it, _, err := s.Get(ns, []byte(key))
				if err != nil {
					rt.Fatal(err)
				}
				cas := it.CAS // 0 on a miss: the answer is NOT_FOUND either way
				if !right {
					cas++
				}
				got, err := s.Store(kv.StoreRequest{Op: kv.OpCAS, Namespace: ns, Key: []byte(key), Value: []byte(val), CAS: cas})
				if err != nil {
					rt.Fatal(err)
				}
				want := m.store(kv.OpCAS, key, val, 0, 0, right)
				if got != want {
					rt.Fatalf("cas %q (right=%v): got %s, want %s", key, right, resultNames[got], resultNames[want])
				}
			},
			"delete": func(rt *rapid.T) {
				key := keys.Draw(rt, "key")
				got, err := s.Delete(ns, []byte(key))
				if err != nil {
					rt.Fatal(err)
				}
				if want := m.delete(key); got != want {
					rt.Fatalf("delete %q: got %v, want %v", key, got, want)
				}
			},
			"arith": func(rt *rapid.T) {
				key, delta, incr := keys.Draw(rt, "key"), deltas.Draw(rt, "delta"), rapid.Bool().Draw(rt, "incr")
				got, res, err := s.Arith(ns, []byte(key), delta, incr)
				want, wantRes, wantErr := m.arith(key, delta, incr)
				if !errors.Is(err, wantErr) || (wantErr == nil && (res != wantRes || got != want)) {
					rt.Fatalf("arith %q %d incr=%v: got %d %s %v, want %d %s %v",
						key, delta, incr, got, resultNames[res], err, want, resultNames[wantRes], wantErr)
				}
			},
			"touch": func(rt *rapid.T) {
				key, exp := keys.Draw(rt, "key"), exptimes.Draw(rt, "exptime")
				_, got, err := s.Touch(ns, []byte(key), exp)
				if err != nil {
					rt.Fatal(err)
				}
				if want := m.touch(key, exp); got != want {
					rt.Fatalf("touch %q %d: got %v, want %v", key, exp, got, want)
				}
			},
			"advance": func(rt *rapid.T) {
				clk.Advance(time.Duration(rapid.IntRange(0, 6).Draw(rt, "halfSeconds")) * 500 * time.Millisecond)
			},
			"flush": func(rt *rapid.T) {
				if err := s.FlushAll(ns, 0); err != nil {
					rt.Fatal(err)
				}
				clear(m.items)
			},
			"": func(rt *rapid.T) {
				for _, key := range []string{"a", "b", "c"} {
					it, ok, err := s.Get(ns, []byte(key))
					if err != nil {
						rt.Fatal(err)
					}
					want, live := m.live(key)
					if ok != live {
						rt.Fatalf("get %q: present=%v, model says %v (%+v)", key, ok, live, want)
					}
					if !ok {
						continue
					}
					if string(it.Value) != want.value || it.Flags != want.flags || it.Exptime != want.exptime {
						rt.Fatalf("get %q: got value=%q flags=%d exptime=%d, want value=%q flags=%d exptime=%d",
							key, it.Value, it.Flags, it.Exptime, want.value, want.flags, want.exptime)
					}
					if prev, ok := seen[key]; ok && (prev.gen == want.gen) != (prev.cas == it.CAS) {
						if prev.gen == want.gen {
							rt.Fatalf("get %q: CAS changed from %d to %d without a value write", key, prev.cas, it.CAS)
						}
						rt.Fatalf("get %q: CAS stayed %d across a value write", key, it.CAS)
					}
					seen[key] = struct {
						cas uint64
						gen int
					}{it.CAS, want.gen}
				}
			},
		}
		// Several rounds make longer histories (about 10 x -rapid.steps):
		// the model is cheap, and long histories reach rare states (an
		// append landing exactly on the size limit, a counter padded twice).
		for range 10 {
			rt.Repeat(actions)
		}

		// Once expired and flushed items are reclaimed, the engine must hold
		// exactly the live items.
		if _, err := s.ReclaimExpired(context.Background()); err != nil {
			rt.Fatal(err)
		}
		if err := s.SweepFlushed(context.Background()); err != nil {
			rt.Fatal(err)
		}
		var items, bytes int64
		for key := range m.items {
			if it, live := m.live(key); live {
				items++
				bytes += int64(len(key) + len(it.value))
			}
		}
		if gi, gb := s.Usage(); gi != items || gb != bytes {
			rt.Fatalf("usage after reclaim: items=%d bytes=%d, model items=%d bytes=%d", gi, gb, items, bytes)
		}
		if u, err := eng.Usage(); err != nil || u.Items != items || u.Bytes != bytes {
			rt.Fatalf("engine usage after reclaim: %+v %v, model items=%d bytes=%d", u, err, items, bytes)
		}
	})
}
