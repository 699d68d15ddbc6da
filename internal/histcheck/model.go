package histcheck

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// EnvDir names the environment variable giving the directory where a failed
// check writes its visualization. Unset, the file goes to t.TempDir(), which
// is removed when the test ends.
const EnvDir = "SONAE_HISTCHECK_DIR"

// state is the model's state of one key (the model is partitioned by key).
type state struct {
	present bool
	value   string
}

// Model returns the porcupine model of one memcached key holding unique
// values, partitioned by key. Its inputs are Input and its outputs Output
// values. An operation with an unknown outcome is accepted in every state
// (see the package documentation for how its return time is set); the
// others must match the sequential specification:
//
//	set(v)           -> STORED                       state = v
//	get              -> found(v) if state = v, NOT_FOUND if absent
//	cas(expect, v)   -> STORED if state = expect     state = v
//	                    EXISTS if present and state != expect
//	                    NOT_FOUND if absent
//	delete           -> DELETED if present           state = absent
//	                    NOT_FOUND if absent
func Model() porcupine.Model {
	return porcupine.Model{
		Partition:      partition,
		PartitionEvent: partitionEvents,
		Init:           func() any { return state{} },
		Step: func(s, in, out any) (bool, any) {
			return step(s.(state), in.(Input), out.(Output))
		},
		Equal: func(a, b any) bool { return a.(state) == b.(state) },
		Hash: func(s any) uint64 {
			st := s.(state)
			h := fnv.New64a()
			if st.present {
				h.Write([]byte{1})
				h.Write([]byte(st.value))
			}
			return h.Sum64()
		},
		DescribeOperation: func(in, out any) string {
			return in.(Input).String() + " -> " + out.(Output).String()
		},
		DescribeState: func(s any) string {
			st := s.(state)
			if !st.present {
				return "absent"
			}
			return fmt.Sprintf("%q", st.value)
		},
	}
}

// step applies in to s and reports whether out is a possible reply.
func step(s state, in Input, out Output) (bool, state) {
	unknown := out.Unknown()
	switch in.Kind {
	case KindSet:
		return unknown || out.Status == StatusStored, state{present: true, value: in.Value}
	case KindGet:
		switch {
		case unknown:
			return true, s
		case out.Status == StatusFound:
			return s.present && s.value == out.Value, s
		case out.Status == StatusNotFound:
			return !s.present, s
		}
	case KindCas:
		var got Status
		next := s
		switch {
		case !s.present:
			got = StatusNotFound
		case s.value == in.Expect:
			got, next = StatusStored, state{present: true, value: in.Value}
		default:
			got = StatusExists
		}
		return unknown || out.Status == got, next
	case KindDelete:
		if s.present {
			return unknown || out.Status == StatusDeleted, state{}
		}
		return unknown || out.Status == StatusNotFound, s
	}
	return false, s
}

// partition splits a history by key, keys in sorted order.
func partition(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	for _, op := range history {
		k := op.Input.(Input).Key
		byKey[k] = append(byKey[k], op)
	}
	out := make([][]porcupine.Operation, 0, len(byKey))
	for _, k := range sortedKeys(byKey) {
		out = append(out, byKey[k])
	}
	return out
}

// partitionEvents splits an event history by key, keys in sorted order; a
// return event goes with its call event (same Id).
func partitionEvents(history []porcupine.Event) [][]porcupine.Event {
	keyOf := map[int]string{}
	byKey := map[string][]porcupine.Event{}
	for _, e := range history {
		if e.Kind == porcupine.CallEvent {
			keyOf[e.Id] = e.Value.(Input).Key
		}
		k := keyOf[e.Id]
		byKey[k] = append(byKey[k], e)
	}
	out := make([][]porcupine.Event, 0, len(byKey))
	for _, k := range sortedKeys(byKey) {
		out = append(out, byKey[k])
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// validate checks what the model relies on: replies that fit their command
// and, per key, values written at most once.
func validate(ops []Op) error {
	var errs []error
	written := map[string]map[string]bool{}
	for _, op := range ops {
		in := op.Input
		switch {
		case in.Kind < KindSet || in.Kind > KindDelete:
			errs = append(errs, fmt.Errorf("histcheck: invalid input %v", in))
			continue
		case !op.Output.valid(in.Kind):
			errs = append(errs, fmt.Errorf("histcheck: %v is not a reply to %v", op.Output.Status, in))
		case !op.Output.Unknown() && op.Return < op.Call:
			errs = append(errs, fmt.Errorf("histcheck: %v returns before its call", op))
		}
		if in.Kind != KindSet && in.Kind != KindCas {
			continue
		}
		if in.Kind == KindCas && in.Value == in.Expect {
			errs = append(errs, fmt.Errorf("histcheck: %v writes the value it expects: values must be unique per write", in))
		}
		if written[in.Key] == nil {
			written[in.Key] = map[string]bool{}
		}
		if written[in.Key][in.Value] {
			errs = append(errs, fmt.Errorf("histcheck: value %q written twice to key %s: values must be unique per write", in.Value, in.Key))
		}
		written[in.Key][in.Value] = true
	}
	return errors.Join(errs...)
}

// operations converts a history for porcupine. Reads with an unknown outcome
// constrain nothing and are dropped. A set or cas with an unknown outcome
// whose value some definite operation observed (a get that found it, a cas
// that expected it and stored) must take effect before each of those
// observers, so it returns when the earliest of them returns. Any other
// operation with an unknown outcome returns after every other event of the
// history (horizon), so the checker may place it anywhere after its call;
// since the model accepts it in every state and nothing definite follows it
// at the end, "never happened" is covered too.
//
// With dropUnobserved, an unknown set or cas whose value nobody observed is
// left out instead (unknown lists only the ops kept). That history is a
// stricter test: a linearization of it is one of the whole history with the
// dropped writes at the horizon, but the dropped writes can no longer
// explain an EXISTS or a presence. Linearizable uses it as a fast first pass
// and checks the whole history when it fails.
func operations(ops []Op, dropUnobserved bool) (out []porcupine.Operation, unknown int) {
	horizon := int64(math.MinInt64)
	type write struct{ key, value string }
	observed := map[write]int64{} // earliest return of an observer
	for _, op := range ops {
		horizon = max(horizon, op.Call, op.Return)
		if op.Output.Unknown() {
			continue
		}
		var w write
		switch {
		case op.Input.Kind == KindGet && op.Output.Status == StatusFound:
			w = write{op.Input.Key, op.Output.Value}
		case op.Input.Kind == KindCas && op.Output.Status == StatusStored:
			w = write{op.Input.Key, op.Input.Expect}
		default:
			continue
		}
		if r, ok := observed[w]; !ok || op.Return < r {
			observed[w] = op.Return
		}
	}
	if horizon < math.MaxInt64 {
		horizon++
	}
	out = make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		ret := op.Return
		if op.Output.Unknown() {
			if !op.Input.writes() {
				continue
			}
			ret = horizon
			if op.Input.Kind != KindDelete {
				r, seen := observed[write{op.Input.Key, op.Input.Value}]
				switch {
				case seen:
					ret = max(r, op.Call)
				case dropUnobserved:
					continue
				}
			}
			unknown++
		}
		out = append(out, porcupine.Operation{
			ClientId: op.Client, Input: op.Input, Call: op.Call, Output: op.Output, Return: ret,
		})
	}
	return out, unknown
}

// Result is the outcome of a linearizability check.
type Result struct {
	// Verdict is porcupine.Ok, porcupine.Illegal, or porcupine.Unknown when
	// the search timed out (which proves nothing either way).
	Verdict porcupine.CheckResult
	// Ops is the number of operations checked and Unknown how many of them
	// had an unknown outcome (reads with an unknown outcome are dropped).
	Ops, Unknown int
	// Keys is the number of keys (partitions).
	Keys int
	// IllegalKeys lists, for an Illegal verdict, the keys without a
	// complete linearization: the violating keys, plus any key whose search
	// the timeout cut short.
	IllegalKeys []string
	// Elapsed is how long the search took.
	Elapsed time.Duration

	illegal []illegalKey // for an Illegal verdict, parallel to IllegalKeys
	info    porcupine.LinearizationInfo
}

func (r Result) String() string {
	s := fmt.Sprintf("%s: %d ops (%d with unknown outcome) on %d keys, checked in %v",
		r.Verdict, r.Ops, r.Unknown, r.Keys, r.Elapsed.Round(time.Millisecond))
	if len(r.IllegalKeys) > 0 {
		s += fmt.Sprintf("; not linearizable: keys %q", r.IllegalKeys)
	}
	return s
}

// Visualize writes porcupine's HTML visualization of the check to path.
func (r Result) Visualize(path string) error {
	return porcupine.VisualizePath(Model(), r.info, path)
}

// Linearizable checks a history against Model with porcupine, giving up after
// timeout (0: no limit). The error reports a history the model cannot judge:
// a reply that does not fit its command, or a value written twice to a key.
func Linearizable(ops []Op, timeout time.Duration) (Result, error) {
	if err := validate(ops); err != nil {
		return Result{}, err
	}
	start := time.Now()
	history, unknown := operations(ops, true)
	verdict, info := porcupine.CheckOperationsVerbose(Model(), history, timeout)
	if verdict != porcupine.Ok {
		if timeout > 0 {
			timeout = max(timeout-time.Since(start), time.Second)
		}
		history, unknown = operations(ops, false)
		verdict, info = porcupine.CheckOperationsVerbose(Model(), history, timeout)
	}
	parts := partition(history)
	res := Result{
		Verdict: verdict, Ops: len(history), Unknown: unknown, Keys: len(parts),
		Elapsed: time.Since(start), info: info,
	}
	if verdict == porcupine.Illegal {
		partials := info.PartialLinearizations()
		for i, part := range parts {
			var longest []int
			if i < len(partials) {
				for _, l := range partials[i] {
					if len(l) > len(longest) {
						longest = l
					}
				}
			}
			if len(longest) < len(part) {
				ik := newIllegalKey(part, longest)
				res.IllegalKeys = append(res.IllegalKeys, ik.key)
				res.illegal = append(res.illegal, ik)
			}
		}
	}
	return res, nil
}

// Options tune CheckOps.
type Options struct {
	// Timeout bounds the search. If zero, there is no limit.
	Timeout time.Duration
	// AllowUnknown lets a search that timed out pass with a log line. By
	// default it fails the test: an unfinished search establishes nothing.
	AllowUnknown bool
	// Dir is where a failed check writes its visualization. If blank, it
	// defaults to $SONAE_HISTCHECK_DIR, else to t.TempDir().
	Dir string
}

// Check checks the history recorded by rec for linearizability, giving up
// after timeout (0: no limit). It fails t if the history is not
// linearizable, after writing a visualization (see Options.Dir), and also if
// the search timed out. It does not stop the test.
func Check(t testing.TB, rec *Recorder, timeout time.Duration) Result {
	t.Helper()
	return CheckOps(t, rec.Ops(), Options{Timeout: timeout})
}

// illegalKey is a key without a complete linearization, for the report.
type illegalKey struct {
	key   string
	ops   []Op // by call time
	stuck int  // index in ops of the first operation (by return) the longest partial linearization misses
}

// newIllegalKey describes the partition part (operation ids are indices in
// part) given its longest partial linearization.
func newIllegalKey(part []porcupine.Operation, longest []int) illegalKey {
	linearized := make([]bool, len(part))
	for _, id := range longest {
		if id >= 0 && id < len(part) {
			linearized[id] = true
		}
	}
	ops := make([]Op, len(part))
	stuck := -1
	for i, p := range part {
		ops[i] = Op{Client: p.ClientId, Input: p.Input.(Input), Output: p.Output.(Output), Call: p.Call, Return: p.Return}
		if !linearized[i] && (stuck < 0 || p.Return < part[stuck].Return) {
			stuck = i
		}
	}
	var stuckOp *Op
	if stuck >= 0 {
		stuckOp = &ops[stuck]
	}
	ik := illegalKey{key: part[0].Input.(Input).Key, stuck: -1}
	ik.ops = slices.Clone(ops)
	slices.SortStableFunc(ik.ops, func(a, b Op) int { return cmp.Compare(a.Call, b.Call) })
	if stuckOp != nil {
		ik.stuck = slices.Index(ik.ops, *stuckOp)
	}
	return ik
}

// maxReportedKeys, opsBeforeStuck and opsAfterStuck bound the history
// printed in the test log for a failed check; the visualization has all of
// it.
const (
	maxReportedKeys = 3
	opsBeforeStuck  = 30
	opsAfterStuck   = 10
)

// describe lists the operations of the key around the one the checker
// could not linearize.
func (ik illegalKey) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nkey %s: %d operations; by call time, around the first one no linearization reaches:", ik.key, len(ik.ops))
	center := max(ik.stuck, 0)
	from, to := max(center-opsBeforeStuck, 0), min(center+opsAfterStuck+1, len(ik.ops))
	if from > 0 {
		fmt.Fprintf(&b, "\n  (%d earlier)", from)
	}
	for i := from; i < to; i++ {
		mark := ""
		if i == ik.stuck {
			mark = "   <-- here"
		}
		fmt.Fprintf(&b, "\n  %v%s", ik.ops[i], mark)
	}
	if to < len(ik.ops) {
		fmt.Fprintf(&b, "\n  (%d later)", len(ik.ops)-to)
	}
	return b.String()
}

// CheckOps is Check for a history given as operations, with options.
func CheckOps(t testing.TB, ops []Op, opts Options) Result {
	t.Helper()
	res, err := Linearizable(ops, opts.Timeout)
	if err != nil {
		t.Errorf("histcheck: cannot check the history: %v", err)
		return res
	}
	switch res.Verdict {
	case porcupine.Ok:
		t.Logf("histcheck: %v", res)
	case porcupine.Unknown:
		if opts.AllowUnknown {
			t.Logf("histcheck: %v; the search timed out after %v, accepted (AllowUnknown)", res, opts.Timeout)
		} else {
			t.Errorf("histcheck: %v; the search timed out after %v, so linearizability is NOT established: "+
				"raise the timeout, record fewer operations per key, or set Options.AllowUnknown", res, opts.Timeout)
		}
	default:
		var b strings.Builder
		fmt.Fprintf(&b, "histcheck: %v", res)
		if path, err := writeVisualization(t, res, opts.Dir); err != nil {
			fmt.Fprintf(&b, "\nvisualization not written: %v", err)
		} else {
			fmt.Fprintf(&b, "\nvisualization: %s", path)
			if opts.Dir == "" && os.Getenv(EnvDir) == "" {
				fmt.Fprintf(&b, " (removed when the test ends: set %s to keep it)", EnvDir)
			}
		}
		for i, ik := range res.illegal {
			if i == maxReportedKeys {
				fmt.Fprintf(&b, "\n(%d more keys)", len(res.illegal)-i)
				break
			}
			b.WriteString(ik.describe())
		}
		t.Error(b.String())
	}
	return res
}

// writeVisualization writes res's visualization into dir (see Options.Dir)
// and returns the file's path.
func writeVisualization(t testing.TB, res Result, dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv(EnvDir)
	}
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, fileName(t.Name())+"-*.html")
	if err != nil {
		return "", err
	}
	path := f.Name()
	if err := f.Close(); err != nil {
		return "", err
	}
	if err := res.Visualize(path); err != nil {
		return "", err
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return path, nil
}

// fileName makes a test name safe as a file name.
func fileName(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, name)
}
