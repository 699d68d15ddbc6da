package meta

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/sonae-kv/sonae/internal/routing"
	"github.com/sonae-kv/sonae/internal/testutil"
)

// applier drives an FSM with increasing Raft indexes.
type applier struct {
	t   testing.TB
	fsm *FSM
	idx uint64
}

func newApplier(t testing.TB) *applier {
	return &applier{t: t, fsm: NewFSM(testutil.Logger(t))}
}

// apply applies c at the next index and returns the Apply result as an error.
func (a *applier) apply(c Command) error {
	a.t.Helper()
	a.idx++
	res := a.fsm.Apply(&raft.Log{Index: a.idx, Type: raft.LogCommand, Data: c.Encode()})
	if res == nil {
		return nil
	}
	err, ok := res.(error)
	if !ok {
		a.t.Fatalf("Apply returned %T, want error or nil", res)
	}
	return err
}

// must applies c and fails the test if it is refused.
func (a *applier) must(c Command) {
	a.t.Helper()
	if err := a.apply(c); err != nil {
		a.t.Fatalf("%s refused: %v", c.Op, err)
	}
}

func member(id string, voter bool) *Member {
	return &Member{ID: routing.NodeID(id), Addr: strings.Replace(id, "_", ":", 1), Voter: voter}
}

// richState builds a state with every kind of content: several members,
// voters, namespaces, in-sync and lagging replicas, a lost vnode and an
// epoch above 1.
func richState(t testing.TB) *applier {
	a := newApplier(t)
	a.must(Command{Op: OpInit, Settings: &Settings{Name: "c", DivBits: 2, Redundancy: 3}, Member: member("a_1", true)})
	a.must(Command{Op: OpBatch, Batch: []Command{
		{Op: OpAddMember, Member: member("b_1", true)},
		{Op: OpAddMember, Member: member("c_1", false)},
		{Op: OpAddMember, Member: member("d_1", false)},
		{Op: OpCreateNamespace, Namespace: "users"},
		{Op: OpAddReplica, Vnode: 0, Node: "b_1", Epoch: 1},
		{Op: OpSetInSync, Vnode: 0, Node: "b_1", Epoch: 1, InSync: true},
		{Op: OpAddReplica, Vnode: 0, Node: "c_1", Epoch: 1},
		{Op: OpAddReplica, Vnode: 1, Node: "c_1", Epoch: 1},
		{Op: OpAddReplica, Vnode: 2, Node: "d_1", Epoch: 1},
		{Op: OpSetInSync, Vnode: 2, Node: "d_1", Epoch: 1, InSync: true},
	}})
	// d_1 leaves: vnode 2 loses a secondary. Then a_1 leaves: vnode 0 is
	// taken over by b_1 (epoch 2), vnode 1 is lost (c_1 lags).
	a.must(Command{Op: OpRemoveMember, Node: "d_1"})
	a.must(Command{Op: OpRemoveMember, Node: "a_1"})
	st := a.fsm.State()
	if got := st.Table.Vnodes[0]; got.Epoch != 2 || got.Primary() != "b_1" {
		t.Fatalf("vnode 0 = %+v, want b_1 at epoch 2", got)
	}
	if len(st.Table.LostVnodes()) == 0 || len(st.Lagging) == 0 {
		t.Fatalf("want a lost vnode and a lagging replica:\n%s", showState(st))
	}
	return a
}

func snapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed || sink.canceled {
		t.Fatalf("Persist left the sink closed=%v canceled=%v, want closed", sink.closed, sink.canceled)
	}
	return sink.Bytes()
}

// TestSnapshotRestore: a snapshot restored into a new FSM gives the same
// State, Changed fires on the restore, and the restored FSM applies the
// next commands exactly as the original.
func TestSnapshotRestore(t *testing.T) {
	a := richState(t)
	b := snapshotBytes(t, a.fsm)

	g := NewFSM(testutil.Logger(t))
	ch := g.Changed()
	if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !isClosed(ch) {
		t.Errorf("Restore did not fire Changed")
	}
	if !reflect.DeepEqual(normalize(a.fsm.State()), normalize(g.State())) {
		t.Fatalf("restored state differs:\nhave:\n%s\nrestored:\n%s", showState(a.fsm.State()), showState(g.State()))
	}
	if g.State().Index != a.idx {
		t.Errorf("restored index %d, want %d", g.State().Index, a.idx)
	}
	if !g.State().Table.Equal(a.fsm.State().Table) || g.State().Table.Version != a.fsm.State().Table.Version {
		t.Errorf("restored table differs")
	}

	// Both FSMs go on identically.
	ga := &applier{t: t, fsm: g, idx: a.idx}
	for _, c := range []Command{
		{Op: OpAddMember, Member: member("e_1", false)},
		{Op: OpAddReplica, Vnode: 0, Node: "e_1", Epoch: 2},
		{Op: OpSetInSync, Vnode: 0, Node: "e_1", Epoch: 1, InSync: true}, // stale epoch
		{Op: OpSetInSync, Vnode: 0, Node: "c_1", Epoch: 2, InSync: true},
	} {
		e1, e2 := a.apply(c), ga.apply(c)
		if (e1 == nil) != (e2 == nil) || (e1 != nil && e1.Error() != e2.Error()) {
			t.Errorf("%s: original %v, restored %v", c.Op, e1, e2)
		}
	}
	if !reflect.DeepEqual(normalize(a.fsm.State()), normalize(g.State())) {
		t.Fatalf("states diverged:\n%s\n%s", showState(a.fsm.State()), showState(g.State()))
	}

	// An uninitialized FSM round-trips too.
	empty := NewFSM(testutil.Logger(t))
	h := NewFSM(testutil.Logger(t))
	if err := h.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, empty)))); err != nil {
		t.Fatalf("Restore of an empty snapshot: %v", err)
	}
	if h.State().Initialized() {
		t.Errorf("restored empty state is initialized")
	}
}

// closeRecorder is a ReadCloser that records Close.
type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

// TestRestoreRejectsInvalid: Restore refuses a snapshot that is not JSON
// or breaks an invariant, and keeps the FSM's state.
func TestRestoreRejectsInvalid(t *testing.T) {
	a := richState(t)
	good := string(snapshotBytes(t, a.fsm))
	table := `"table":{"version":3,"div_bits":1,"redundancy":2,"nodes":[{"id":"a_1","host":"a"},{"id":"b_1","host":"b"}],"vnodes":[%s]}`
	state := func(members, vnodes, lagging string) string {
		s := `{"index":9,"settings":{"name":"c","div_bits":1,"redundancy":2},"members":` + members +
			`,"namespaces":["default"],` + strings.Replace(table, "%s", vnodes, 1)
		if lagging != "" {
			s += `,"lagging":` + lagging
		}
		return s + "}"
	}
	sorted := `[{"id":"a_1","addr":"a:1","voter":true},{"id":"b_1","addr":"b:1","voter":false}]`
	okVnodes := `{"nodes":["a_1","b_1"],"epoch":1},{"nodes":["b_1"],"epoch":1}`

	// The helper builds a valid state unless told otherwise.
	if err := NewFSM(testutil.Logger(t)).Restore(io.NopCloser(strings.NewReader(state(sorted, okVnodes, `{"0":["b_1"]}`)))); err != nil {
		t.Fatalf("the valid base state is refused: %v", err)
	}

	for _, tc := range []struct {
		name, snap string
	}{
		{"not json", `{"index":`},
		{"wrong type", `{"members":"x"}`},
		{"members not sorted", state(`[{"id":"b_1","addr":"b:1"},{"id":"a_1","addr":"a:1"}]`, okVnodes, "")},
		{"replica not a node", state(sorted, `{"nodes":["a_1","z_1"],"epoch":1},{"nodes":["b_1"],"epoch":1}`, "")},
		{"too many replicas", state(sorted, `{"nodes":["a_1","b_1","a_1"],"epoch":1},{"nodes":["b_1"],"epoch":1}`, "")},
		{"wrong vnode count", state(sorted, `{"nodes":["a_1"],"epoch":1}`, "")},
		{"lagging vnode out of range", state(sorted, okVnodes, `{"2":["b_1"]}`)},
		{"lagging non-replica", state(sorted, okVnodes, `{"1":["a_1"]}`)},
		{"primary lagging", state(sorted, okVnodes, `{"0":["a_1"]}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFSM(testutil.Logger(t))
			if err := f.Restore(io.NopCloser(strings.NewReader(good))); err != nil {
				t.Fatalf("Restore of a good snapshot: %v", err)
			}
			before := f.State()
			ch := f.Changed()
			rc := &closeRecorder{Reader: strings.NewReader(tc.snap)}
			err := f.Restore(rc)
			if err == nil {
				t.Fatalf("Restore accepted %s", tc.snap)
			}
			if !strings.HasPrefix(err.Error(), "meta: restore: ") {
				t.Errorf("error %q does not say it is a restore", err)
			}
			if !rc.closed {
				t.Errorf("Restore did not close its reader")
			}
			if f.State() != before || isClosed(ch) {
				t.Errorf("a refused Restore changed the state")
			}
		})
	}
}

// TestChanged: Changed fires when a command changes the state, and not
// for a refused command, a command that changes nothing, or a log entry
// that is not a command. A channel taken before a change fires; one taken
// after it waits for the next change.
func TestChanged(t *testing.T) {
	a := newApplier(t)
	ch := a.fsm.Changed()
	if isClosed(ch) {
		t.Fatalf("Changed fired before anything happened")
	}
	a.must(Command{Op: OpInit, Settings: &Settings{Name: "c", DivBits: 2, Redundancy: 2}, Member: member("a_1", true)})
	if !isClosed(ch) {
		t.Fatalf("init did not fire Changed")
	}
	ch = a.fsm.Changed()
	st := a.fsm.State()

	// Refused: a second init, a stale epoch, an unknown member.
	for _, c := range []Command{
		{Op: OpInit, Settings: &Settings{DivBits: 2, Redundancy: 2}, Member: member("b_1", true)},
		{Op: OpAddReplica, Vnode: 0, Node: "a_1", Epoch: 5},
		{Op: OpRemoveMember, Node: "zz_1"},
	} {
		if err := a.apply(c); err == nil {
			t.Fatalf("%s was not refused", c.Op)
		}
	}
	// Changes nothing: a retried join of the same member, an empty batch.
	a.must(Command{Op: OpAddMember, Member: member("a_1", true)})
	a.must(Command{Op: OpBatch})
	// Not a command: a configuration entry; the index stays.
	idx := a.fsm.State().Index
	a.idx++
	if res := a.fsm.Apply(&raft.Log{Index: a.idx, Type: raft.LogConfiguration}); res != nil {
		t.Errorf("Apply of a configuration entry = %v, want nil", res)
	}
	if got := a.fsm.State().Index; got != idx {
		t.Errorf("index moved to %d on a non-command entry", got)
	}
	if isClosed(ch) {
		t.Fatalf("Changed fired without a change")
	}
	if !reflect.DeepEqual(normalize(st), normalize(withIndex(a.fsm.State(), st.Index))) {
		t.Fatalf("state changed without Changed")
	}

	a.must(Command{Op: OpCreateNamespace, Namespace: "ns"})
	if !isClosed(ch) {
		t.Fatalf("create_namespace did not fire Changed")
	}
	if next := a.fsm.Changed(); isClosed(next) {
		t.Fatalf("a new Changed channel is already closed")
	}
}

func withIndex(s *State, idx uint64) *State {
	c := *s
	c.Index = idx
	return &c
}

// TestApplyErrors: Apply results wrap the sentinels, so callers (the
// controller, replication's demotion) can tell refusals apart.
func TestApplyErrors(t *testing.T) {
	a := newApplier(t)
	if err := a.apply(Command{Op: OpAddMember, Member: member("b_1", false)}); !errors.Is(err, ErrNotInitialized) {
		t.Errorf("before init: %v, want ErrNotInitialized", err)
	}
	a.must(Command{Op: OpInit, Settings: &Settings{Name: "c", DivBits: 2, Redundancy: 2}, Member: member("a_1", true)})
	a.must(Command{Op: OpAddMember, Member: member("b_1", false)})
	a.must(Command{Op: OpAddReplica, Vnode: 1, Node: "b_1", Epoch: 1})
	for _, tc := range []struct {
		c    Command
		want error
	}{
		{Command{Op: OpInit, Settings: &Settings{DivBits: 2, Redundancy: 2}, Member: member("a_1", true)}, ErrAlreadyInitialized},
		{Command{Op: OpAddReplica, Vnode: 0, Node: "b_1", Epoch: 2}, ErrStaleEpoch},
		{Command{Op: OpSetInSync, Vnode: 1, Node: "b_1", Epoch: 0, InSync: true}, ErrStaleEpoch},
		{Command{Op: OpAddReplica, Vnode: 0, Node: "x_1", Epoch: 1}, ErrUnknownMember},
		{Command{Op: OpSetVoter, Node: "x_1", Voter: true}, ErrUnknownMember},
		{Command{Op: OpRemoveMember, Node: "x_1"}, ErrUnknownMember},
		{Command{Op: OpSetInSync, Vnode: 0, Node: "b_1", Epoch: 1, InSync: true}, ErrNotReplica},
		{Command{Op: OpSetInSync, Vnode: 1, Node: "a_1", Epoch: 1, InSync: false}, ErrBadCommand},
		{Command{Op: OpAddReplica, Vnode: 1, Node: "b_1", Epoch: 1}, nil}, // already there
		{Command{Op: OpCreateNamespace, Namespace: DefaultNamespace}, ErrNamespaceExists},
		{Command{Op: OpDeleteNamespace, Namespace: "nope"}, ErrNoNamespace},
		{Command{Op: OpDeleteNamespace, Namespace: DefaultNamespace}, ErrDefaultNamespace},
		{Command{Op: OpBatch, Batch: []Command{{Op: OpInit}}}, ErrBadCommand},
		{Command{Op: "nope"}, ErrBadCommand},
	} {
		err := a.apply(tc.c)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s %+v: %v, want %v", tc.c.Op, tc.c, err, tc.want)
		}
	}
	a.idx++
	if res := a.fsm.Apply(&raft.Log{Index: a.idx, Type: raft.LogCommand, Data: []byte("{")}); !errors.Is(res.(error), ErrBadCommand) {
		t.Errorf("undecodable entry: %v, want ErrBadCommand", res)
	}
}

// TestCommandEncodeDecode: a command survives its log form.
func TestCommandEncodeDecode(t *testing.T) {
	c := Command{Op: OpBatch, Batch: []Command{
		{Op: OpInit, Settings: &Settings{Name: "n", DivBits: 3, Redundancy: 2, ReplicationInHost: true}, Member: member("a_1", true)},
		{Op: OpSetInSync, Node: "b_1", Vnode: 7, Epoch: 9, InSync: true},
		{Op: OpCreateNamespace, Namespace: "x"},
		{Op: OpSetVoter, Node: "b_1", Voter: true},
	}}
	got, err := DecodeCommand(c.Encode())
	if err != nil {
		t.Fatalf("DecodeCommand: %v", err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, c)
	}
	if _, err := DecodeCommand([]byte("[")); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("DecodeCommand of garbage: %v, want ErrBadCommand", err)
	}
}

// TestStateQueries covers the read helpers the other packages use.
func TestStateQueries(t *testing.T) {
	a := richState(t)
	st := a.fsm.State()
	if m, ok := st.Member("b_1"); !ok || m.Addr != "b:1" || !m.Voter {
		t.Errorf("Member(b_1) = %+v, %v", m, ok)
	}
	if _, ok := st.Member("a_1"); ok {
		t.Errorf("Member(a_1) found after its removal")
	}
	if got := st.Voters(); got != 1 {
		t.Errorf("Voters = %d, want 1 (b_1)", got)
	}
	if !st.HasNamespace("users") || !st.HasNamespace(DefaultNamespace) || st.HasNamespace("x") {
		t.Errorf("HasNamespace wrong: %v", st.Namespaces)
	}
	// Vnode 0: [b_1 c_1], c_1 lagging.
	if !st.InSync(0, "b_1") || st.InSync(0, "c_1") || st.InSync(0, "a_1") {
		t.Errorf("InSync wrong for vnode 0:\n%s", showState(st))
	}
	if got := st.InSyncReplicas(0); !reflect.DeepEqual(got, []routing.NodeID{"b_1"}) {
		t.Errorf("InSyncReplicas(0) = %v", got)
	}
	if got := st.InSyncReplicas(3); len(got) != 0 {
		t.Errorf("InSyncReplicas of a lost vnode = %v", got)
	}
	var empty State
	if empty.Initialized() {
		t.Errorf("the zero State is initialized")
	}
}

// TestSetVoterNoOp: setting the voter flag a member already has changes
// nothing, so it must not fire Changed (FSM.advance's contract: watchers
// only care about content).
func TestSetVoterNoOp(t *testing.T) {
	a := newApplier(t)
	a.must(Command{Op: OpInit, Settings: &Settings{Name: "c", DivBits: 2, Redundancy: 2}, Member: member("a_1", true)})
	ch := a.fsm.Changed()
	a.must(Command{Op: OpSetVoter, Node: "a_1", Voter: true})
	if isClosed(ch) {
		t.Fatalf("set_voter to the current value fired Changed")
	}
}

// TestBadMemberID: a member id without a host part ("_5") makes a table
// node with an empty host, which routing.Table.Validate rejects. The FSM
// must refuse such a member; otherwise the table is poisoned: every later
// add_replica (which validates the whole table) is refused, and the FSM's
// own snapshot no longer restores.
func TestBadMemberID(t *testing.T) {
	a := newApplier(t)
	a.must(Command{Op: OpInit, Settings: &Settings{Name: "c", DivBits: 2, Redundancy: 2}, Member: member("a_1", true)})
	a.must(Command{Op: OpAddMember, Member: member("b_1", false)})
	if err := a.apply(Command{Op: OpAddMember, Member: &Member{ID: "_5", Addr: ":5"}}); err == nil {
		t.Errorf("add_member of id _5 accepted")
	}
	if err := a.apply(Command{Op: OpAddReplica, Vnode: 0, Node: "b_1", Epoch: 1}); err != nil {
		t.Errorf("add_replica of a good node refused: %v", err)
	}
	if err := NewFSM(testutil.Logger(t)).Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, a.fsm)))); err != nil {
		t.Errorf("Restore of the FSM's own snapshot: %v", err)
	}
}

// TestRestoreRejectsInvalidMoves: Restore must refuse moves and fences of
// vnodes out of range (and move targets that are no valid replica list):
// the FSM indexes the table with their vnode numbers, so such a state
// makes the next remove_member (or the controller's driveMoves) panic.
func TestRestoreRejectsInvalidMoves(t *testing.T) {
	a := richState(t)
	var st map[string]any
	if err := json.Unmarshal(snapshotBytes(t, a.fsm), &st); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(map[string]any){
		"move out of range":  func(m map[string]any) { m["moves"] = map[string]any{"9": []string{"b_1"}} },
		"fence out of range": func(m map[string]any) { m["fenced"] = map[string]any{"9": true} },
		"move to an unknown": func(m map[string]any) { m["moves"] = map[string]any{"0": []string{"zz_1"}} },
		"fence without move": func(m map[string]any) { m["fenced"] = map[string]any{"0": true} },
	} {
		t.Run(name, func(t *testing.T) {
			m := map[string]any{}
			for k, v := range st {
				m[k] = v
			}
			mod(m)
			b, _ := json.Marshal(m)
			f := NewFSM(testutil.Logger(t))
			if err := f.Restore(io.NopCloser(bytes.NewReader(b))); err == nil {
				defer func() {
					if p := recover(); p != nil {
						t.Errorf("Restore accepted the state, and remove_member then panicked: %v", p)
					}
				}()
				f.Apply(&raft.Log{Index: f.State().Index + 1, Type: raft.LogCommand, Data: Command{Op: OpRemoveMember, Node: "b_1"}.Encode()})
				t.Errorf("Restore accepted %s", b)
			}
		})
	}
}
