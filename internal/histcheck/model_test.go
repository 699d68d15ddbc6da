package histcheck

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

func TestStep(t *testing.T) {
	absent, a := state{}, state{present: true, value: "a"}
	b := state{present: true, value: "b"}
	tests := []struct {
		name   string
		s      state
		in     Input
		out    Output
		wantOK bool
		want   state
	}{
		{"set stored", absent, Set("k", "a"), Stored(), true, a},
		{"set unknown", a, Set("k", "b"), Unknown(nil), true, b},
		{"get hit", a, Get("k"), Found("a"), true, a},
		{"get wrong value", a, Get("k"), Found("b"), false, a},
		{"get hit on absent", absent, Get("k"), Found("a"), false, absent},
		{"get miss", absent, Get("k"), NotFound(), true, absent},
		{"get miss on present", a, Get("k"), NotFound(), false, a},
		{"get unknown", a, Get("k"), Unknown(nil), true, a},
		{"cas stored", a, Cas("k", "a", "b"), Stored(), true, b},
		{"cas stored but changed", b, Cas("k", "a", "c"), Stored(), false, b},
		{"cas exists", b, Cas("k", "a", "c"), Exists(), true, b},
		{"cas exists but unchanged", a, Cas("k", "a", "c"), Exists(), false, state{present: true, value: "c"}},
		{"cas not found", absent, Cas("k", "a", "c"), NotFound(), true, absent},
		{"cas not found on present", a, Cas("k", "a", "c"), NotFound(), false, state{present: true, value: "c"}},
		{"cas unknown applies", a, Cas("k", "a", "c"), Unknown(nil), true, state{present: true, value: "c"}},
		{"cas unknown on other value", b, Cas("k", "a", "c"), Unknown(nil), true, b},
		{"delete deleted", a, Delete("k"), Deleted(), true, absent},
		{"delete deleted on absent", absent, Delete("k"), Deleted(), false, absent},
		{"delete not found", absent, Delete("k"), NotFound(), true, absent},
		{"delete not found on present", a, Delete("k"), NotFound(), false, absent},
		{"delete unknown", a, Delete("k"), Unknown(nil), true, absent},
	}
	m := Model()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, next := m.Step(tc.s, tc.in, tc.out)
			if ok != tc.wantOK {
				t.Errorf("ok = %v, want %v", ok, tc.wantOK)
			}
			if next.(state) != tc.want {
				t.Errorf("next state = %+v, want %+v", next, tc.want)
			}
		})
	}
	if m.Hash(a) == m.Hash(absent) || m.Hash(a) != m.Hash(state{present: true, value: "a"}) {
		t.Errorf("Hash does not separate states")
	}
}

// linTest is a hand-built history and its verdict.
type linTest struct {
	name        string
	ops         []Op
	want        porcupine.CheckResult
	illegalKeys []string
}

// linTestOps returns the history of the linearizabilityTests case name.
func linTestOps(t *testing.T, name string) []Op {
	t.Helper()
	i := slices.IndexFunc(linearizabilityTests, func(tc linTest) bool { return tc.name == name })
	if i < 0 {
		t.Fatalf("no test case %q", name)
	}
	return linearizabilityTests[i].ops
}

// linearizabilityTests are hand-built histories. Times are arbitrary units;
// an unknown outcome's Return is when the client gave up.
var linearizabilityTests = []linTest{
	{
		name: "sequential set get cas delete",
		ops: []Op{
			op(0, 0, 10, Set("x", "a"), Stored()),
			op(0, 20, 30, Get("x"), Found("a")),
			op(0, 40, 50, Cas("x", "a", "b"), Stored()),
			op(0, 60, 70, Cas("x", "a", "c"), Exists()),
			op(0, 80, 90, Delete("x"), Deleted()),
			op(0, 100, 110, Delete("x"), NotFound()),
			op(0, 120, 130, Cas("x", "b", "d"), NotFound()),
			op(0, 140, 150, Get("x"), NotFound()),
		},
		want: porcupine.Ok,
	},
	{
		name: "concurrent reads see old or new",
		ops: []Op{
			op(0, 0, 10, Set("x", "a"), Stored()),
			op(0, 20, 60, Set("x", "b"), Stored()),
			op(1, 25, 30, Get("x"), Found("b")),
			op(2, 25, 30, Get("x"), Found("b")),
			op(3, 15, 22, Get("x"), Found("a")),
		},
		want: porcupine.Ok,
	},
	{
		name: "reads on touching intervals are concurrent",
		ops: []Op{
			op(0, 0, 10, Set("x", "a"), Stored()),
			op(1, 10, 20, Get("x"), NotFound()),
		},
		want: porcupine.Ok,
	},
	{
		name: "concurrent cas: one wins",
		ops: []Op{
			op(0, 0, 10, Set("x", "a"), Stored()),
			op(1, 20, 40, Cas("x", "a", "b"), Stored()),
			op(2, 20, 40, Cas("x", "a", "c"), Exists()),
			op(0, 50, 60, Get("x"), Found("b")),
		},
		want: porcupine.Ok,
	},
	{
		name: "unknown set that never happened",
		ops: []Op{
			op(0, 0, 10, Set("x", "a"), Stored()),
			op(1, 20, 30, Set("x", "b"), Unknown(errors.New("timeout"))),
			op(0, 40, 50, Get("x"), Found("a")),
			op(0, 60, 70, Get("x"), Found("a")),
		},
		want: porcupine.Ok,
	},
	{
		name: "unknown set applied after the client gave up",
		ops: []Op{
			op(0, 0, 10, Set("x", "a"), Stored()),
			op(1, 20, 30, Set("x", "b"), Unknown(errors.New("timeout"))),
			op(0, 40, 50, Get("x"), Found("a")),
			op(0, 60, 70, Get("x"), Found("b")),
			op(0, 80, 90, Set("x", "c"), Stored()),
			op(0, 100, 110, Get("x"), Found("c")),
		},
		want: porcupine.Ok,
	},
	{
		name: "unknown cas and delete",
		ops: []Op{
			op(0, 0, 10, Set("x", "a"), Stored()),
			op(1, 20, 30, Cas("x", "a", "b"), Unknown(nil)),
			op(0, 40, 50, Get("x"), Found("b")),
			op(2, 60, 70, Delete("x"), Unknown(nil)),
			op(0, 80, 90, Get("x"), Found("b")),
			op(0, 100, 110, Get("x"), NotFound()),
		},
		want: porcupine.Ok,
	},
	{
		name: "unknown read is ignored",
		ops: []Op{
			op(0, 0, 10, Set("x", "a"), Stored()),
			op(1, 20, 30, Get("x"), Unknown(nil)),
		},
		want: porcupine.Ok,
	},
	{
		name: "keys are independent",
		ops: []Op{
			op(0, 0, 10, Set("x", "a"), Stored()),
			op(1, 0, 10, Set("y", "a"), Stored()),
			op(0, 20, 30, Get("y"), Found("a")),
			op(1, 20, 30, Get("x"), Found("a")),
		},
		want: porcupine.Ok,
	},
	{
		name: "stale read after acknowledged write",
		ops: []Op{
			op(0, 0, 10, Set("x", "a"), Stored()),
			op(0, 20, 30, Set("x", "b"), Stored()),
			op(1, 40, 50, Get("x"), Found("a")),
		},
		want: porcupine.Illegal, illegalKeys: []string{"x"},
	},
	{
		name: "read misses an acknowledged set",
		ops: []Op{
			op(0, 0, 10, Set("x", "a"), Stored()),
			op(1, 20, 30, Get("x"), NotFound()),
		},
		want: porcupine.Illegal, illegalKeys: []string{"x"},
	},
	{
		name: "cas succeeds twice on the same expected value",
		ops: []Op{
			op(0, 0, 10, Set("x", "a"), Stored()),
			op(1, 20, 30, Cas("x", "a", "b"), Stored()),
			op(2, 40, 50, Cas("x", "a", "c"), Stored()),
		},
		want: porcupine.Illegal, illegalKeys: []string{"x"},
	},
	{
		name: "concurrent cas both succeed",
		ops: []Op{
			op(0, 0, 10, Set("x", "a"), Stored()),
			op(1, 20, 40, Cas("x", "a", "b"), Stored()),
			op(2, 20, 40, Cas("x", "a", "c"), Stored()),
		},
		want: porcupine.Illegal, illegalKeys: []string{"x"},
	},
	{
		name: "read of a value never written",
		ops: []Op{
			op(0, 0, 10, Set("x", "a"), Stored()),
			op(1, 20, 30, Get("x"), Found("zz")),
		},
		want: porcupine.Illegal, illegalKeys: []string{"x"},
	},
	{
		name: "read of an unknown write before its call",
		ops: []Op{
			op(1, 0, 10, Get("x"), Found("b")),
			op(0, 20, 30, Set("x", "b"), Unknown(nil)),
		},
		want: porcupine.Illegal, illegalKeys: []string{"x"},
	},
	{
		name: "unknown write seen then undone",
		ops: []Op{
			op(0, 0, 10, Set("x", "a"), Stored()),
			op(1, 20, 30, Set("x", "b"), Unknown(nil)),
			op(0, 40, 50, Get("x"), Found("b")),
			op(0, 60, 70, Get("x"), Found("a")),
		},
		want: porcupine.Illegal, illegalKeys: []string{"x"},
	},
	{
		name: "read after acknowledged delete",
		ops: []Op{
			op(0, 0, 10, Set("x", "a"), Stored()),
			op(0, 20, 30, Delete("x"), Deleted()),
			op(1, 40, 50, Get("x"), Found("a")),
		},
		want: porcupine.Illegal, illegalKeys: []string{"x"},
	},
	{
		name: "only the violating key is named",
		ops: []Op{
			op(0, 0, 10, Set("x", "a"), Stored()),
			op(0, 0, 10, Set("y", "a"), Stored()),
			op(0, 0, 10, Set("z", "a"), Stored()),
			op(1, 20, 30, Get("x"), Found("a")),
			op(1, 20, 30, Get("y"), NotFound()),
			op(1, 20, 30, Get("z"), Found("a")),
		},
		want: porcupine.Illegal, illegalKeys: []string{"y"},
	},
}

func TestLinearizable(t *testing.T) {
	for _, tc := range linearizabilityTests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Linearizable(tc.ops, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if res.Verdict != tc.want {
				t.Fatalf("verdict %v, want %v", res, tc.want)
			}
			if !slices.Equal(res.IllegalKeys, tc.illegalKeys) {
				t.Errorf("illegal keys %q, want %q", res.IllegalKeys, tc.illegalKeys)
			}
		})
	}
}

// TestPartitionEvent checks the same histories through porcupine's event
// interface, which uses Model().PartitionEvent.
func TestPartitionEvent(t *testing.T) {
	for _, tc := range linearizabilityTests {
		t.Run(tc.name, func(t *testing.T) {
			history, _ := operations(tc.ops, false)
			events := toEvents(history)
			if got := porcupine.CheckEvents(Model(), events); got != (tc.want == porcupine.Ok) {
				t.Errorf("CheckEvents = %v, want %v", got, tc.want)
			}
		})
	}
}

// toEvents turns operations into call and return events in time order (calls
// before returns at equal times, as porcupine orders them).
func toEvents(ops []porcupine.Operation) []porcupine.Event {
	type timed struct {
		t   int64
		ret bool
		e   porcupine.Event
	}
	var ts []timed
	for i, op := range ops {
		ts = append(ts,
			timed{op.Call, false, porcupine.Event{ClientId: op.ClientId, Kind: porcupine.CallEvent, Value: op.Input, Id: i}},
			timed{op.Return, true, porcupine.Event{ClientId: op.ClientId, Kind: porcupine.ReturnEvent, Value: op.Output, Id: i}})
	}
	slices.SortStableFunc(ts, func(a, b timed) int {
		if a.t != b.t {
			if a.t < b.t {
				return -1
			}
			return 1
		}
		if a.ret == b.ret {
			return 0
		}
		if !a.ret {
			return -1
		}
		return 1
	})
	events := make([]porcupine.Event, len(ts))
	for i, x := range ts {
		events[i] = x.e
	}
	return events
}

func TestLinearizableRejectsBadHistories(t *testing.T) {
	tests := []struct {
		name string
		ops  []Op
		want string
	}{
		{"value written twice", []Op{
			op(0, 0, 10, Set("x", "a"), Stored()),
			op(1, 20, 30, Set("x", "a"), Stored()),
		}, `value "a" written twice to key x`},
		{"cas writes its expected value", []Op{
			op(0, 0, 10, Cas("x", "a", "a"), Exists()),
		}, "writes the value it expects"},
		{"reply does not fit", []Op{
			op(0, 0, 10, Get("x"), Deleted()),
		}, "not a reply"},
		{"return before call", []Op{
			op(0, 10, 0, Get("x"), NotFound()),
		}, "returns before its call"},
		{"no kind", []Op{
			op(0, 0, 10, Input{Key: "x"}, NotFound()),
		}, "invalid input"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Linearizable(tc.ops, time.Minute)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	// The same value on two keys is fine.
	ops := []Op{op(0, 0, 10, Set("x", "a"), Stored()), op(0, 0, 10, Set("y", "a"), Stored())}
	if _, err := Linearizable(ops, time.Minute); err != nil {
		t.Errorf("same value on two keys: %v", err)
	}
}

func TestCheckWritesVisualization(t *testing.T) {
	stale := linTestOps(t, "stale read after acknowledged write")

	t.Run("options dir", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "viz")
		ft := &fakeTB{TB: t}
		res := CheckOps(ft, stale, Options{Timeout: time.Minute, Dir: dir})
		if res.Verdict != porcupine.Illegal {
			t.Fatalf("verdict %v, want Illegal", res.Verdict)
		}
		checkVisualization(t, ft.failed(), dir)
		if !strings.Contains(ft.failed(), `get(x) -> "a"`) {
			t.Errorf("report does not list the operations of key x:\n%s", ft.failed())
		}
	})
	t.Run("env dir", func(t *testing.T) {
		dir := t.TempDir()
		t.Setenv(EnvDir, dir)
		ft := &fakeTB{TB: t}
		CheckOps(ft, stale, Options{Timeout: time.Minute})
		checkVisualization(t, ft.failed(), dir)
	})
	t.Run("recorder", func(t *testing.T) {
		rec := NewRecorder()
		rec.End(rec.Begin(0, Set("x", "a")), Stored())
		rec.End(rec.Begin(1, Get("x")), NotFound())
		ft := &fakeTB{TB: t}
		if res := Check(ft, rec, time.Minute); res.Verdict != porcupine.Illegal {
			t.Fatalf("verdict %v, want Illegal", res.Verdict)
		}
		if !strings.Contains(ft.failed(), "removed when the test ends") {
			t.Errorf("report does not say the file goes away:\n%s", ft.failed())
		}
	})
}

// checkVisualization wants report to name an HTML file in dir.
func checkVisualization(t *testing.T, report, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.html"))
	if len(files) != 1 {
		t.Fatalf("want one visualization in %s, got %q; report:\n%s", dir, files, report)
	}
	if !strings.Contains(report, files[0]) {
		t.Errorf("report does not name %s:\n%s", files[0], report)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "<html") {
		t.Errorf("%s is not HTML", files[0])
	}
}

func TestCheckPassLogs(t *testing.T) {
	ft := &fakeTB{TB: t}
	res := CheckOps(ft, linTestOps(t, "sequential set get cas delete"), Options{Timeout: time.Minute})
	if res.Verdict != porcupine.Ok || ft.failed() != "" {
		t.Fatalf("verdict %v, failures %q", res.Verdict, ft.failed())
	}
	if len(ft.logs) != 1 || !strings.Contains(ft.logs[0], "Ok: 8 ops") {
		t.Errorf("logs = %q", ft.logs)
	}
}

// hardHistory takes porcupine far longer than any test timeout: n concurrent
// sets, then a read of a value never written, which fails only after every
// order of the sets has been tried.
func hardHistory(n int) []Op {
	var ops []Op
	for i := range n {
		ops = append(ops, op(i, 0, 100, Set("x", fmt.Sprintf("c%d-0", i)), Stored()))
	}
	return append(ops, op(n, 200, 300, Get("x"), Found("never")))
}

func TestCheckTimeout(t *testing.T) {
	ops := hardHistory(40)
	t.Run("fails by default", func(t *testing.T) {
		ft := &fakeTB{TB: t}
		res := CheckOps(ft, ops, Options{Timeout: 20 * time.Millisecond})
		if res.Verdict != porcupine.Unknown {
			t.Fatalf("verdict %v, want Unknown", res.Verdict)
		}
		if !strings.Contains(ft.failed(), "NOT established") {
			t.Errorf("failures = %q, want the timeout reported", ft.failed())
		}
	})
	t.Run("allowed", func(t *testing.T) {
		ft := &fakeTB{TB: t}
		res := CheckOps(ft, ops, Options{Timeout: 20 * time.Millisecond, AllowUnknown: true})
		if res.Verdict != porcupine.Unknown || ft.failed() != "" {
			t.Fatalf("verdict %v, failures %q", res.Verdict, ft.failed())
		}
		if len(ft.logs) != 1 || !strings.Contains(ft.logs[0], "timed out") {
			t.Errorf("logs = %q", ft.logs)
		}
	})
}

func TestUnknownOpsReturnAtHorizon(t *testing.T) {
	ops := []Op{
		op(0, 0, 10, Set("x", "a"), Stored()),
		op(1, 5, 6, Set("x", "b"), Unknown(nil)),
		op(2, 7, 8, Get("x"), Unknown(nil)),
		op(0, 20, 30, Get("x"), Found("a")),
	}
	history, unknown := operations(ops, false)
	if len(history) != 3 || unknown != 1 {
		t.Fatalf("got %d ops (%d unknown), want 3 (1 unknown)", len(history), unknown)
	}
	if history[1].Return != 31 {
		t.Errorf("unknown set returns at %d, want 31 (after every event)", history[1].Return)
	}
}

func TestUnknownWriteObservedReturnsByItsObserver(t *testing.T) {
	ops := []Op{
		op(0, 0, 10, Set("x", "a"), Stored()),
		op(1, 5, 6, Set("x", "b"), Unknown(nil)),
		op(2, 12, 14, Get("x"), Found("b")),
		op(3, 13, 20, Cas("x", "b", "c"), Stored()),
		op(1, 15, 16, Set("x", "d"), Unknown(nil)),
	}
	for _, drop := range []bool{false, true} {
		history, unknown := operations(ops, drop)
		want := 5
		if drop {
			want = 4 // d is never observed
		}
		if len(history) != want {
			t.Fatalf("drop=%v: %d ops, want %d", drop, len(history), want)
		}
		if history[1].Return != 14 {
			t.Errorf("drop=%v: unknown set of b returns at %d, want 14 (when its first observer returns)", drop, history[1].Return)
		}
		if drop && unknown != 1 || !drop && unknown != 2 {
			t.Errorf("drop=%v: %d unknown", drop, unknown)
		}
	}
}

// TestUnobservedUnknownWriteStillExplainsExists checks the fallback: only the
// unknown set of b, which no one read, explains the EXISTS, so the fast pass
// (which drops it) fails and the whole history must pass.
func TestUnobservedUnknownWriteStillExplainsExists(t *testing.T) {
	ops := []Op{
		op(0, 0, 10, Set("x", "a"), Stored()),
		op(1, 11, 12, Get("x"), Found("a")),
		op(2, 13, 14, Set("x", "b"), Unknown(nil)),
		op(1, 15, 16, Cas("x", "a", "c"), Exists()),
	}
	if fast, _ := operations(ops, true); porcupine.CheckOperations(Model(), fast) {
		t.Fatalf("the fast pass accepts a history it cannot explain")
	}
	res, err := Linearizable(ops, time.Minute)
	if err != nil || res.Verdict != porcupine.Ok {
		t.Fatalf("Linearizable = %v, %v; want Ok", res, err)
	}
}
