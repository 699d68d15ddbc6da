package histcheck

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// op builds a hand-made operation.
func op(client int, call, ret int64, in Input, out Output) Op {
	return Op{Client: client, Input: in, Output: out, Call: call, Return: ret}
}

// fakeTB records failures and logs instead of failing the test, so tests can
// check what Check and CheckLost report. Everything else goes to the real
// test.
type fakeTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
	logs []string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Error(args ...any) { f.addErr(fmt.Sprint(args...)) }

func (f *fakeTB) Errorf(format string, args ...any) { f.addErr(fmt.Sprintf(format, args...)) }

func (f *fakeTB) Log(args ...any) { f.addLog(fmt.Sprint(args...)) }

func (f *fakeTB) Logf(format string, args ...any) { f.addLog(fmt.Sprintf(format, args...)) }

func (f *fakeTB) addErr(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, s)
}

func (f *fakeTB) addLog(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs = append(f.logs, s)
}

func (f *fakeTB) failed() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.errs, "\n")
}

func TestRecorderTimes(t *testing.T) {
	rec := NewRecorder()
	a := rec.Begin(0, Set("k", "c0-1"))
	b := rec.Begin(1, Get("k"))
	rec.End(a, Stored())
	c := rec.Begin(0, Delete("k"))
	rec.End(b, Found("c0-1"))
	rec.End(c, Unknown(errors.New("i/o timeout")))
	pending := rec.Begin(2, Cas("k", "c0-1", "c2-1"))

	ops := rec.Ops()
	if len(ops) != 4 {
		t.Fatalf("got %d ops, want 4", len(ops))
	}
	for i, op := range ops {
		if op.Return < op.Call {
			t.Errorf("op %d: return %d before call %d", i, op.Return, op.Call)
		}
	}
	if !(ops[0].Call <= ops[1].Call && ops[1].Call <= ops[0].Return && ops[0].Return <= ops[2].Call) {
		t.Errorf("times out of order: %v", ops)
	}
	if got := ops[2].Output; !got.Unknown() || got.Err != "i/o timeout" {
		t.Errorf("op 2 output = %+v, want unknown (i/o timeout)", got)
	}
	if got := ops[pending].Output; !got.Unknown() || got.Err != "no reply recorded" {
		t.Errorf("pending op output = %+v, want unknown (no reply recorded)", got)
	}
	if ops[1].Client != 1 || ops[1].Input != Get("k") || ops[1].Output != Found("c0-1") {
		t.Errorf("op 1 = %+v", ops[1])
	}
	// Ops is a copy: ending the pending op later is seen by the next call.
	rec.End(pending, Exists())
	if got := rec.Ops()[pending].Output; got != Exists() {
		t.Errorf("after End, pending op output = %v, want EXISTS", got)
	}
}

func TestRecorderPanics(t *testing.T) {
	tests := []struct {
		name string
		f    func(rec *Recorder)
		want string
	}{
		{"zero input", func(rec *Recorder) { rec.Begin(0, Input{Key: "k"}) }, "invalid input"},
		{"set found", func(rec *Recorder) { rec.End(rec.Begin(0, Set("k", "v")), Found("v")) }, "not a reply"},
		{"get stored", func(rec *Recorder) { rec.End(rec.Begin(0, Get("k")), Stored()) }, "not a reply"},
		{"delete exists", func(rec *Recorder) { rec.End(rec.Begin(0, Delete("k")), Exists()) }, "not a reply"},
		{"cas deleted", func(rec *Recorder) { rec.End(rec.Begin(0, Cas("k", "a", "b")), Deleted()) }, "not a reply"},
		{"end twice", func(rec *Recorder) {
			id := rec.Begin(0, Get("k"))
			rec.End(id, NotFound())
			rec.End(id, NotFound())
		}, "twice"},
		{"bad id", func(rec *Recorder) { rec.End(3, NotFound()) }, "unknown operation"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), tc.want) {
					t.Errorf("panic = %v, want one containing %q", r, tc.want)
				}
			}()
			tc.f(NewRecorder())
		})
	}
}

func TestRecorderConcurrentUse(t *testing.T) {
	rec := NewRecorder()
	const clients, perClient = 16, 200
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range perClient {
				id := rec.Begin(c, Set("k", fmt.Sprintf("c%d-%d", c, i)))
				rec.End(id, Stored())
			}
		})
	}
	wg.Wait()
	ops := rec.Ops()
	if len(ops) != clients*perClient {
		t.Fatalf("got %d ops, want %d", len(ops), clients*perClient)
	}
	for _, op := range ops {
		if op.Output != Stored() {
			t.Fatalf("op %v not ended", op)
		}
	}
}

func TestOutputString(t *testing.T) {
	tests := []struct {
		out  Output
		want string
	}{
		{Stored(), "STORED"},
		{Found("c1-2"), `"c1-2"`},
		{NotFound(), "NOT_FOUND"},
		{Unknown(nil), "unknown"},
		{Unknown(errors.New("EOF")), "unknown (EOF)"},
	}
	for _, tc := range tests {
		if got := tc.out.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.out, got, tc.want)
		}
	}
}
