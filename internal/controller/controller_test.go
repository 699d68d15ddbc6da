package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/routing"
	"github.com/sonae-kv/sonae/internal/testutil"
)

// fakeRaft records the configuration changes the controller asks for.
type fakeRaft struct {
	mu      sync.Mutex
	leader  bool
	calls   []string
	servers map[string]bool // id -> voter
	// failRemove makes the next n RemoveServer calls fail.
	failRemove int
	failAdd    int
}

var _ Raft = (*fakeRaft)(nil)

func newFakeRaft(self string) *fakeRaft {
	return &fakeRaft{leader: true, servers: map[string]bool{self: true}}
}

func (r *fakeRaft) IsLeader() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leader
}

func (r *fakeRaft) setLeader(l bool) {
	r.mu.Lock()
	r.leader = l
	r.mu.Unlock()
}

func (r *fakeRaft) add(kind, id, addr string, voter bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failAdd > 0 {
		r.failAdd--
		return errors.New("raft: injected failure")
	}
	r.calls = append(r.calls, fmt.Sprintf("%s %s %s", kind, id, addr))
	if v, ok := r.servers[id]; ok && v && !voter {
		return nil // hashicorp/raft keeps a voter a voter
	}
	r.servers[id] = voter
	return nil
}

func (r *fakeRaft) AddVoter(_ context.Context, id, addr string) error {
	return r.add("AddVoter", id, addr, true)
}

func (r *fakeRaft) AddNonvoter(_ context.Context, id, addr string) error {
	return r.add("AddNonvoter", id, addr, false)
}

func (r *fakeRaft) RemoveServer(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failRemove > 0 {
		r.failRemove--
		return errors.New("raft: injected failure")
	}
	r.calls = append(r.calls, "RemoveServer "+id)
	delete(r.servers, id)
	return nil
}

func (r *fakeRaft) DemoteVoter(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "DemoteVoter "+id)
	if _, ok := r.servers[id]; ok {
		r.servers[id] = false
	}
	return nil
}

func (r *fakeRaft) Servers() ([]RaftServer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []RaftServer
	for id, v := range r.servers {
		out = append(out, RaftServer{ID: id, Voter: v})
	}
	slices.SortFunc(out, func(a, b RaftServer) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// takeCalls returns the calls recorded since the last takeCalls.
func (r *fakeRaft) takeCalls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

// env is a controller over a real meta.FSM, a fake Raft and a settable
// peer list.
type env struct {
	t     *testing.T
	fsm   *meta.FSM
	raft  *fakeRaft
	ctl   *Controller
	nudge chan struct{}

	mu      sync.Mutex
	peers   []Peer
	idx     uint64
	applied []meta.Command // every command Apply was called with
	// up answers probes: a node answers when it is alive in peers or
	// listed here.
	up       map[string]bool
	probes   []string
	withheld map[routing.NodeID]bool
	bound    time.Time // LeaseBound's answer for every node
}

type envOpt func(*Config)

func newEnv(t *testing.T, redundancy, maxVoters int, opts ...envOpt) *env {
	t.Helper()
	e := &env{t: t, fsm: meta.NewFSM(testutil.Logger(t)), raft: newFakeRaft("a_1"), nudge: make(chan struct{}, 1),
		up: map[string]bool{}, withheld: map[routing.NodeID]bool{}}
	cfg := Config{
		Self:      meta.Member{ID: "a_1", Addr: "a:1"},
		Settings:  meta.Settings{Name: "test", DivBits: 3, Redundancy: redundancy},
		MaxVoters: maxVoters,
		Interval:  10 * time.Millisecond,
		MaxMoves:  64,
		ReadLease: time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	ctl, err := New(cfg, Deps{
		State: e.fsm.State,
		Apply: e.apply,
		Raft:  e.raft,
		Peers: e.getPeers,
		Nudge: e.nudge,
		Log:   testutil.Logger(t),
		Probe: e.probe,
		LeaseBound: func(routing.NodeID) time.Time {
			e.mu.Lock()
			defer e.mu.Unlock()
			return e.bound
		},
		WithholdLease: func(n routing.NodeID, w bool) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.withheld[n] = w
		},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.ctl = ctl
	e.setPeers(alive("a_1"))
	return e
}

// apply is Raft: one entry at a time, in index order.
func (e *env) apply(_ context.Context, c meta.Command) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.idx++
	data := c.Encode() // as Raft does: the caller may reuse c afterwards
	logged, err := meta.DecodeCommand(data)
	if err != nil {
		e.t.Fatalf("command does not decode: %v", err)
	}
	e.applied = append(e.applied, logged)
	if res := e.fsm.Apply(&raft.Log{Index: e.idx, Type: raft.LogCommand, Data: data}); res != nil {
		return res.(error)
	}
	return nil
}

func (e *env) probe(_ context.Context, addr string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.probes = append(e.probes, addr)
	if e.up[addr] {
		return nil
	}
	for _, p := range e.peers {
		if p.Addr == addr && p.Status == "alive" {
			return nil
		}
	}
	return errors.New("connection refused")
}

func (e *env) takeApplied() []meta.Command {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.applied
	e.applied = nil
	return c
}

func (e *env) getPeers() []Peer {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.peers)
}

func (e *env) setPeers(ps ...[]Peer) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.peers = nil
	for _, p := range ps {
		e.peers = append(e.peers, p...)
	}
}

func peers(status string, ids ...string) []Peer {
	var ps []Peer
	for _, id := range ids {
		ps = append(ps, Peer{ID: routing.NodeID(id), Addr: strings.Replace(id, "_", ":", 1), Status: status})
	}
	return ps
}

func alive(ids ...string) []Peer { return peers("alive", ids...) }

func (e *env) reconcile() {
	e.t.Helper()
	if err := e.ctl.Reconcile(context.Background()); err != nil {
		e.t.Fatalf("Reconcile: %v", err)
	}
}

// members returns "id" or "id(voter)" for each member.
func (e *env) members() []string {
	var out []string
	for _, m := range e.fsm.State().Members {
		s := string(m.ID)
		if m.Voter {
			s += "(voter)"
		}
		out = append(out, s)
	}
	return out
}

func wantStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// TestReconcileCreatesCluster: on an empty metadata the first reconcile
// creates the cluster with this node as its only, voting member and the
// primary of every vnode; a lone node has no candidate for secondaries.
func TestReconcileCreatesCluster(t *testing.T) {
	e := newEnv(t, 2, 3)
	e.reconcile()
	st := e.fsm.State()
	if !st.Initialized() {
		t.Fatalf("not initialized")
	}
	if st.Settings != (meta.Settings{Name: "test", DivBits: 3, Redundancy: 2}) {
		t.Errorf("settings %+v", st.Settings)
	}
	wantStrings(t, "members", e.members(), []string{"a_1(voter)"})
	for v, r := range st.Table.Vnodes {
		if !slices.Equal(r.Nodes, []routing.NodeID{"a_1"}) || r.Epoch != 1 {
			t.Errorf("vnode %d = %+v", v, r)
		}
	}
	if c := e.raft.takeCalls(); len(c) != 0 {
		t.Errorf("raft calls %q, want none (the node bootstrapped itself)", c)
	}
	if got := e.takeApplied(); len(got) != 1 || got[0].Op != meta.OpInit {
		t.Errorf("applied %+v, want one init", got)
	}
	// Again: nothing to do.
	e.reconcile()
	if got := e.takeApplied(); len(got) != 0 {
		t.Errorf("second reconcile applied %+v", got)
	}
}

// TestReconcileInitRace: an init refused because another leader created
// the cluster in between is not an error.
func TestReconcileInitRace(t *testing.T) {
	e := newEnv(t, 2, 3)
	if err := e.apply(context.Background(), meta.Command{Op: meta.OpInit,
		Settings: &meta.Settings{Name: "other", DivBits: 2, Redundancy: 2},
		Member:   &meta.Member{ID: "a_1", Addr: "a:1", Voter: true}}); err != nil {
		t.Fatal(err)
	}
	// The controller sees the uninitialized state it read before.
	stale := &meta.State{}
	e.ctl.d.State = func() *meta.State {
		if s := stale; s != nil {
			stale = nil
			return s
		}
		return e.fsm.State()
	}
	e.reconcile()
	if got := e.fsm.State().Settings.Name; got != "other" {
		t.Errorf("settings name %q, want the first init's", got)
	}
}

// TestReconcileAdmits: alive peers join Raft as voters while the voters
// are fewer than MaxVoters, then as non-voters, and are added to the
// members; peers that are failed, leaving or left are not admitted.
func TestReconcileAdmits(t *testing.T) {
	e := newEnv(t, 2, 3)
	e.reconcile()
	e.raft.takeCalls()
	e.setPeers(alive("a_1", "b_1", "c_1", "d_1", "e_1"), peers("failed", "f_1"), peers("leaving", "g_1"), peers("left", "h_1"))
	e.reconcile()
	wantStrings(t, "raft calls", e.raft.takeCalls(), []string{
		"AddVoter b_1 b:1", "AddVoter c_1 c:1", "AddNonvoter d_1 d:1", "AddNonvoter e_1 e:1",
	})
	wantStrings(t, "members", e.members(), []string{"a_1(voter)", "b_1(voter)", "c_1(voter)", "d_1", "e_1"})
	st := e.fsm.State()
	for _, id := range []routing.NodeID{"f_1", "g_1", "h_1"} {
		if _, ok := st.Member(id); ok {
			t.Errorf("%s admitted", id)
		}
	}
	if st.Voters() != 3 {
		t.Errorf("%d voters, want 3", st.Voters())
	}
	// A failed member is failed over: it stays a member, marked failed,
	// out of the table, and is neither re-added nor removed from Raft.
	e.setPeers(alive("a_1", "b_1", "c_1", "e_1"), peers("failed", "d_1"))
	e.takeApplied()
	e.reconcile()
	if c := e.raft.takeCalls(); len(c) != 0 {
		t.Errorf("raft calls %q after a failure", c)
	}
	m, ok := e.fsm.State().Member("d_1")
	if !ok || !m.Failed {
		t.Errorf("failed member d_1: %+v (present %v), want present and marked failed", m, ok)
	}
	if _, inTable := e.fsm.State().Table.Node("d_1"); inTable {
		t.Errorf("failed d_1 is still in the routing table")
	}
	failed := 0
	for _, c := range e.takeApplied() {
		switch c.Op {
		case meta.OpNodeFailed:
			failed++
		case meta.OpBatch, meta.OpOperation:
		default:
			t.Errorf("applied %s after a failure", c.Op)
		}
	}
	if failed != 1 {
		t.Errorf("%d node_failed commands, want 1", failed)
	}
}

// TestReconcileAdmitError: a Raft error stops the reconcile before the
// member is added; the next reconcile admits it.
func TestReconcileAdmitError(t *testing.T) {
	e := newEnv(t, 2, 3)
	e.reconcile()
	e.setPeers(alive("a_1", "b_1"))
	e.raft.failAdd = 1
	if err := e.ctl.Reconcile(context.Background()); err == nil || !strings.Contains(err.Error(), "b_1") {
		t.Fatalf("Reconcile = %v, want the raft error naming b_1", err)
	}
	if _, ok := e.fsm.State().Member("b_1"); ok {
		t.Fatalf("b_1 became a member although raft refused it")
	}
	e.reconcile()
	wantStrings(t, "members", e.members(), []string{"a_1(voter)", "b_1(voter)"})
}

// TestReconcileRemovesLeft: a member that left is removed from the members
// (its vnodes fail over to in-sync secondaries) and from Raft; this node is
// never removed, and a left peer that is not a member is ignored.
func TestReconcileRemovesLeft(t *testing.T) {
	e := newEnv(t, 2, 5)
	e.reconcile()
	e.setPeers(alive("a_1", "b_1", "c_1"))
	e.reconcile()
	e.raft.takeCalls()
	e.takeApplied()

	e.setPeers(alive("c_1"), peers("left", "a_1", "b_1", "z_1"))
	e.reconcile()
	wantStrings(t, "raft calls", e.raft.takeCalls(), []string{"RemoveServer b_1"})
	wantStrings(t, "members", e.members(), []string{"a_1(voter)", "c_1(voter)"})
	var ops []meta.Op
	for _, c := range e.takeApplied() {
		ops = append(ops, c.Op)
	}
	if len(ops) == 0 || ops[0] != meta.OpRemoveMember {
		t.Errorf("applied %v, want remove_member first", ops)
	}
	st := e.fsm.State()
	for v, r := range st.Table.Vnodes {
		if r.Has("b_1") {
			t.Errorf("vnode %d still holds b_1: %+v", v, r)
		}
	}
	// Once gone, nothing more is done for it.
	e.reconcile()
	if c := e.raft.takeCalls(); len(c) != 0 {
		t.Errorf("raft calls %q on the second reconcile", c)
	}
}

// TestReconcileRemoveRetry: when RemoveServer fails after the member was
// removed from the metadata, a later reconcile must still take the node
// out of Raft; otherwise a departed voter stays in the Raft configuration
// (and counts for the quorum) forever.
func TestReconcileRemoveRetry(t *testing.T) {
	e := newEnv(t, 2, 5)
	e.reconcile()
	e.setPeers(alive("a_1", "b_1"))
	e.reconcile()
	e.raft.takeCalls()
	e.setPeers(alive("a_1"), peers("left", "b_1"))
	e.raft.failRemove = 1
	if err := e.ctl.Reconcile(context.Background()); err == nil {
		t.Fatalf("Reconcile hid the RemoveServer failure")
	}
	e.reconcile()
	servers, _ := e.raft.Servers()
	for _, s := range servers {
		if s.ID == "b_1" {
			t.Fatalf("b_1 is still a raft server after a retried reconcile: %+v", servers)
		}
	}
}

// TestReconcileKeepsVoters: when a voter leaves, an alive non-voter is
// promoted (in Raft, then in the members); a failed one is not.
func TestReconcileKeepsVoters(t *testing.T) {
	e := newEnv(t, 2, 3)
	e.reconcile()
	e.setPeers(alive("a_1", "b_1", "c_1", "d_1", "e_1"))
	e.reconcile()
	wantStrings(t, "members", e.members(), []string{"a_1(voter)", "b_1(voter)", "c_1(voter)", "d_1", "e_1"})
	e.raft.takeCalls()

	// b_1 leaves, d_1 has failed: e_1 is promoted.
	e.setPeers(alive("a_1", "c_1", "e_1"), peers("failed", "d_1"), peers("left", "b_1"))
	e.reconcile()
	wantStrings(t, "raft calls", e.raft.takeCalls(), []string{"RemoveServer b_1", "AddVoter e_1 e:1"})
	wantStrings(t, "members", e.members(), []string{"a_1(voter)", "c_1(voter)", "d_1", "e_1(voter)"})

	// c_1 leaves too; d_1 is still failed: the voters stay short.
	e.setPeers(alive("a_1", "e_1"), peers("failed", "d_1"), peers("left", "c_1"))
	e.reconcile()
	wantStrings(t, "raft calls", e.raft.takeCalls(), []string{"RemoveServer c_1"})
	if got := e.fsm.State().Voters(); got != 2 {
		t.Errorf("%d voters, want 2", got)
	}
	// d_1 comes back: promoted.
	e.setPeers(alive("a_1", "d_1", "e_1"))
	e.reconcile()
	wantStrings(t, "raft calls", e.raft.takeCalls(), []string{"AddVoter d_1 d:1"})
	wantStrings(t, "members", e.members(), []string{"a_1(voter)", "d_1(voter)", "e_1(voter)"})
}

// replicaCounts counts, per node, the replicas it holds and checks that no
// vnode has two replicas on one host.
func replicaCounts(t *testing.T, st *meta.State) map[routing.NodeID]int {
	t.Helper()
	n := map[routing.NodeID]int{}
	for v, r := range st.Table.Vnodes {
		hosts := map[string]bool{}
		for _, id := range r.Nodes {
			n[id]++
			if h := id.Host(); hosts[h] && !st.Table.ReplicationInHost {
				t.Errorf("vnode %d has two replicas on host %s: %v", v, h, r.Nodes)
			}
			hosts[id.Host()] = true
		}
	}
	return n
}

// TestFillShort: short vnodes get one replica each, on alive members that
// do not share a host with the vnode's replicas, spread evenly (fewest
// replicas first, ties by id), lagging, all in one batch.
func TestFillShort(t *testing.T) {
	e := newEnv(t, 2, 5)
	e.reconcile()
	e.takeApplied()
	// a_2 shares a_1's host; z_1 has failed.
	e.setPeers(alive("a_1", "a_2", "b_1", "b_2", "c_1"), peers("failed", "z_1"))
	// z_1 is a member that failed after joining.
	if err := e.apply(context.Background(), meta.Command{Op: meta.OpAddMember, Member: &meta.Member{ID: "z_1", Addr: "z:1"}}); err != nil {
		t.Fatal(err)
	}
	e.reconcile()
	var batches []meta.Command
	for _, c := range e.takeApplied() {
		if c.Op == meta.OpBatch {
			batches = append(batches, c)
		}
	}
	if len(batches) != 1 || countOps(batches[0].Batch, meta.OpAddReplica) != 8 || countOps(batches[0].Batch, meta.OpOperation) != 1 {
		t.Fatalf("want one batch of 8 add_replica and the join operation, got %+v", batches)
	}
	st := e.fsm.State()
	if len(st.Table.ShortVnodes()) != 0 {
		t.Errorf("short vnodes left: %v", st.Table.ShortVnodes())
	}
	counts := replicaCounts(t, st)
	// 8 secondaries over b_1, b_2, c_1 (a_2 shares the primary's host, z_1
	// has failed): 3, 3, 2.
	want := map[routing.NodeID]int{"a_1": 8, "b_1": 3, "b_2": 3, "c_1": 2}
	for id, n := range want {
		if counts[id] != n {
			t.Errorf("%s holds %d replicas, want %d (all: %v)", id, counts[id], n, counts)
		}
	}
	if counts["a_2"] != 0 || counts["z_1"] != 0 {
		t.Errorf("a_2 or z_1 got replicas: %v", counts)
	}
	for v := range st.Table.Vnodes {
		if sec := st.Table.Vnodes[v].Nodes[1]; st.InSync(v, sec) {
			t.Errorf("vnode %d: new replica %s is in sync, want lagging", v, sec)
		}
	}
	// Idempotent: the second reconcile changes nothing.
	before := st.Table.Version
	e.raft.takeCalls()
	e.reconcile()
	if got := e.takeApplied(); len(got) != 0 {
		t.Errorf("second reconcile applied %+v", got)
	}
	if c := e.raft.takeCalls(); len(c) != 0 {
		t.Errorf("second reconcile called raft: %q", c)
	}
	if e.fsm.State().Table.Version != before {
		t.Errorf("table version moved on the second reconcile")
	}
}

// TestFillShortRedundancy3: the reconcile that admits new nodes gives
// every short vnode all the replicas it misses on them, never on a host
// the vnode already uses; with three hosts and redundancy 3 one round
// fills every vnode, and the next changes nothing.
func TestFillShortRedundancy3(t *testing.T) {
	e := newEnv(t, 3, 5)
	e.reconcile()
	e.setPeers(alive("a_1", "b_1", "b_2", "c_1"))
	for round := 1; round <= 2; round++ {
		e.takeApplied()
		e.reconcile()
		applied := e.takeApplied()
		st := e.fsm.State()
		replicaCounts(t, st)
		switch round {
		case 1:
			if len(applied) == 0 {
				t.Fatalf("round %d applied nothing", round)
			}
		case 2:
			if len(applied) != 0 {
				t.Errorf("round 2 applied %+v", applied)
			}
			if s := st.Table.ShortVnodes(); len(s) != 0 {
				t.Errorf("short after the join: %v", s)
			}
		}
	}
	// Every vnode: a_1, one of b_1/b_2, c_1.
	st := e.fsm.State()
	for v, r := range st.Table.Vnodes {
		if len(r.Nodes) != 3 || !r.Has("a_1") || !r.Has("c_1") || (!r.Has("b_1") && !r.Has("b_2")) {
			t.Errorf("vnode %d = %v", v, r.Nodes)
		}
	}
	c := replicaCounts(t, st)
	if c["b_1"] != 4 || c["b_2"] != 4 {
		t.Errorf("b_1/b_2 hold %d/%d replicas, want 4/4", c["b_1"], c["b_2"])
	}
}

// TestFillShortNoCandidate: a short vnode without a candidate (only nodes
// on the primary's host, or nodes that are not alive) is left short and
// nothing is applied.
func TestFillShortNoCandidate(t *testing.T) {
	e := newEnv(t, 2, 5)
	e.reconcile()
	e.setPeers(alive("a_1", "a_2"), peers("failed", "b_1"))
	e.reconcile()
	if err := e.apply(context.Background(), meta.Command{Op: meta.OpAddMember, Member: &meta.Member{ID: "b_1", Addr: "b:1"}}); err != nil {
		t.Fatal(err)
	}
	e.takeApplied()
	e.reconcile()
	for _, c := range e.takeApplied() {
		if c.Op == meta.OpBatch || c.Op == meta.OpAddReplica {
			t.Errorf("applied %+v without a candidate", c)
		}
	}
	if s := e.fsm.State().Table.ShortVnodes(); len(s) != 8 {
		t.Errorf("%d short vnodes, want 8", len(s))
	}
}

// TestFillShortInHost: with replication_in_host a node of the same host is
// a candidate.
func TestFillShortInHost(t *testing.T) {
	e := newEnv(t, 2, 5, func(c *Config) { c.Settings.ReplicationInHost = true })
	e.reconcile()
	e.setPeers(alive("a_1", "a_2"))
	e.reconcile()
	st := e.fsm.State()
	if s := st.Table.ShortVnodes(); len(s) != 0 {
		t.Errorf("short vnodes %v", s)
	}
	if c := replicaCounts(t, st); c["a_2"] != 8 {
		t.Errorf("a_2 holds %d replicas, want 8", c["a_2"])
	}
}

// TestReconcileIdempotent: once converged, reconciling again changes
// nothing, neither in the metadata nor in Raft.
func TestReconcileIdempotent(t *testing.T) {
	e := newEnv(t, 2, 3)
	e.setPeers(alive("a_1", "b_1", "c_1", "d_1"), peers("left", "x_1"), peers("failed", "y_1"))
	e.reconcile()
	st := e.fsm.State()
	if len(st.Members) != 4 || len(st.Table.ShortVnodes()) != 0 {
		t.Fatalf("not converged after one reconcile: members %v, short %v", e.members(), st.Table.ShortVnodes())
	}
	e.raft.takeCalls()
	e.takeApplied()
	for range 3 {
		e.reconcile()
	}
	if got := e.takeApplied(); len(got) != 0 {
		t.Errorf("applied %+v", got)
	}
	if c := e.raft.takeCalls(); len(c) != 0 {
		t.Errorf("raft calls %q", c)
	}
	if now := e.fsm.State(); now.Index != st.Index || now.Table.Version != st.Table.Version {
		t.Errorf("state moved from index %d version %d to %d %d", st.Index, st.Table.Version, now.Index, now.Table.Version)
	}
}

// TestRun: Run reconciles only while this node leads, on a nudge or the
// interval, and returns when its context ends.
func TestRun(t *testing.T) {
	e := newEnv(t, 2, 3)
	e.raft.setLeader(false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.ctl.Run(ctx)
	}()
	// Not leading: several intervals pass without a reconcile.
	ticks := 0
	testutil.Eventually(t, 5*time.Second, "a few nudges to go by", func() error {
		select {
		case e.nudge <- struct{}{}:
			ticks++
		default:
		}
		if ticks < 5 {
			return errors.New("more")
		}
		return nil
	})
	if e.fsm.State().Initialized() {
		t.Fatalf("a follower created the cluster")
	}
	e.raft.setLeader(true)
	e.setPeers(alive("a_1", "b_1"))
	e.nudge <- struct{}{}
	testutil.Eventually(t, 5*time.Second, "the leader to reconcile", func() error {
		if st := e.fsm.State(); !st.Initialized() || len(st.Members) != 2 || len(st.Table.ShortVnodes()) != 0 {
			return fmt.Errorf("state %+v", st.Members)
		}
		return nil
	})
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("Run did not return after cancel")
	}
}

// TestConfigValidate: New refuses bad configurations, naming the field.
func TestConfigValidate(t *testing.T) {
	good := Config{Self: meta.Member{ID: "a_1", Addr: "a:1"}, MaxVoters: 3, Interval: time.Second, MaxMoves: 1, ReadLease: time.Second}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Self.ID = "" }, "Self"},
		{func(c *Config) { c.Self.Addr = "" }, "Self"},
		{func(c *Config) { c.MaxVoters = 0 }, "MaxVoters"},
		{func(c *Config) { c.MaxVoters = 6 }, "MaxVoters"},
		{func(c *Config) { c.Interval = 0 }, "Interval"},
		{func(c *Config) { c.MaxMoves = 0 }, "MaxMoves"},
		{func(c *Config) { c.ReadLease = 0 }, "ReadLease"},
	} {
		c := good
		tc.mod(&c)
		if _, err := New(c, Deps{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error naming %s", c, err, tc.want)
		}
	}
}
