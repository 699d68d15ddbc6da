package controller

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/clock"
	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/routing"
)

// threeNodes builds a balanced, in-sync cluster of a_1, b_1 and c_1
// (redundancy 2, 8 vnodes).
func threeNodes(t *testing.T, opts ...envOpt) *env {
	t.Helper()
	e, _ := newRebalanceEnv(t, 64)
	for _, o := range opts {
		o(&e.ctl.cfg)
	}
	e.reconcile()
	e.setPeers(alive("a_1", "b_1", "c_1"))
	e.converge(64)
	if ok, report := routing.Balanced(e.fsm.State().Table); !ok {
		t.Fatalf("three nodes not balanced: %s", report)
	}
	return e
}

func (e *env) setOption(name, value string) {
	e.t.Helper()
	if err := e.apply(context.Background(), meta.Command{Op: meta.OpSetOption, Name: name, Value: value}); err != nil {
		e.t.Fatalf("set_option %s %s: %v", name, value, err)
	}
}

func opsOf(cmds []meta.Command) []meta.Op {
	var out []meta.Op
	for _, c := range cmds {
		out = append(out, c.Op)
		for _, b := range c.Batch {
			out = append(out, b.Op)
		}
	}
	return out
}

// TestFailOverPromotes: gossip reports b_1 failed and b_1 does not answer
// a probe: the leader withholds its lease, waits the lease out, and fails
// it over; every vnode it led gets an in-sync secondary as primary, with a
// new epoch, and no vnode is lost.
func TestFailOverPromotes(t *testing.T) {
	e := threeNodes(t)
	before := e.fsm.State()
	led := before.Table.Counts("b_1")[0]
	e.mu.Lock()
	e.bound = time.Now().Add(30 * time.Millisecond) // b_1's last lease ends soon
	e.mu.Unlock()
	e.setPeers(alive("a_1", "c_1"), peers("failed", "b_1"))
	start := time.Now()
	e.takeApplied()
	e.reconcile()
	if waited := time.Since(start); waited < 25*time.Millisecond {
		t.Errorf("failed over after %s, before b_1's lease ended", waited)
	}
	if !e.withheld["b_1"] {
		t.Errorf("b_1's lease was not withheld")
	}
	if !slices.Contains(e.probes, "b:1") {
		t.Errorf("b_1 was not probed: %v", e.probes)
	}
	st := e.fsm.State()
	m, _ := st.Member("b_1")
	if !m.Failed {
		t.Fatalf("b_1 not failed: %+v", m)
	}
	promoted := 0
	for v, r := range st.Table.Vnodes {
		if r.Has("b_1") {
			t.Errorf("vnode %d still lists b_1: %v", v, r.Nodes)
		}
		if before.Table.Vnodes[v].Primary() == "b_1" {
			promoted++
			if r.Epoch != before.Table.Vnodes[v].Epoch+1 {
				t.Errorf("vnode %d promoted without a new epoch", v)
			}
			if !before.Table.Vnodes[v].Has(r.Primary()) {
				t.Errorf("vnode %d: new primary %s was not a replica", v, r.Primary())
			}
		}
	}
	if promoted != led || led == 0 {
		t.Errorf("%d vnodes promoted, b_1 led %d", promoted, led)
	}
	if l := st.Table.LostVnodes(); len(l) != 0 {
		t.Errorf("lost vnodes %v", l)
	}
	// Auto-recover waits (60 s by default): nothing is refilled yet, and
	// nothing is balanced around the hole.
	e.takeApplied()
	e.reconcile()
	if ops := opsOf(e.takeApplied()); slices.Contains(ops, meta.OpAddReplica) || slices.Contains(ops, meta.OpPlanMove) {
		t.Errorf("applied %v right after the failure", ops)
	}
}

// TestFailOverNeedsConfirmation: a member gossip reports failed that
// still answers the leader's probe keeps its place and its lease.
func TestFailOverNeedsConfirmation(t *testing.T) {
	e := threeNodes(t)
	e.setOption(meta.OptFailThreshold, "3")
	e.setOption(meta.OptFailGap, "0.01")
	e.mu.Lock()
	e.up["b:1"] = true
	e.mu.Unlock()
	e.setPeers(alive("a_1", "c_1"), peers("failed", "b_1"))
	e.reconcile()
	if m, _ := e.fsm.State().Member("b_1"); m.Failed {
		t.Fatalf("b_1 failed over although it answers")
	}
	if e.withheld["b_1"] {
		t.Errorf("b_1's lease still withheld after it answered")
	}
	// It stops answering: three probes, then the failover.
	e.mu.Lock()
	e.up["b:1"] = false
	e.probes = nil
	e.mu.Unlock()
	e.reconcile()
	if n := len(e.probes); n != 3 {
		t.Errorf("%d probes, want fail_threshold=3", n)
	}
	if m, _ := e.fsm.State().Member("b_1"); !m.Failed {
		t.Errorf("b_1 not failed over after three failed probes")
	}
}

// TestFailOverGraceAndSwitch: fail_grace delays the failover, failover
// off prevents it.
func TestFailOverGraceAndSwitch(t *testing.T) {
	e := threeNodes(t)
	clk := clock.NewFake(time.Now())
	e.ctl.d.Clock = clk
	e.setOption(meta.OptFailGrace, "5")
	e.setPeers(alive("a_1", "c_1"), peers("failed", "b_1"))
	e.reconcile()
	if m, _ := e.fsm.State().Member("b_1"); m.Failed {
		t.Fatalf("failed over within the grace period")
	}
	clk.Advance(5 * time.Second)
	e.setOption(meta.OptFailover, "off")
	e.reconcile()
	if m, _ := e.fsm.State().Member("b_1"); m.Failed {
		t.Fatalf("failed over with failover off")
	}
	e.setOption(meta.OptFailover, "on")
	e.reconcile()
	if m, _ := e.fsm.State().Member("b_1"); !m.Failed {
		t.Fatalf("not failed over once the grace passed and failover is on")
	}
}

// TestReturnResyncsThenBalances: a failed node that comes back is put in
// the table together with replicas of the short vnodes, those it held
// first; once they are in sync the table is balanced again.
func TestReturnResyncsThenBalances(t *testing.T) {
	e := threeNodes(t)
	held := []int{}
	for v, r := range e.fsm.State().Table.Vnodes {
		if r.Has("b_1") {
			held = append(held, v)
		}
	}
	e.setPeers(alive("a_1", "c_1"), peers("failed", "b_1"))
	e.reconcile()
	e.setPeers(alive("a_1", "b_1", "c_1"))
	e.takeApplied()
	e.reconcile()
	applied := e.takeApplied()
	if len(applied) == 0 || applied[0].Op != meta.OpBatch || applied[0].Batch[0].Op != meta.OpNodeReturned {
		t.Fatalf("applied %v, want one batch starting with node_returned", opsOf(applied))
	}
	st := e.fsm.State()
	for _, v := range held {
		if !st.Table.Vnodes[v].Has("b_1") || st.InSync(v, "b_1") {
			t.Errorf("vnode %d it held: %v, want b_1 back as a lagging replica", v, st.Table.Vnodes[v].Nodes)
		}
	}
	if e.withheld["b_1"] {
		t.Errorf("b_1's lease is still withheld after its return")
	}
	if o := st.Operation; o == nil || o.Kind != meta.OpKindJoin || o.Node != "b_1" || o.Ended != 0 {
		t.Errorf("operation %+v, want a running join of b_1", o)
	}
	e.converge(64)
	st = e.fsm.State()
	if ok, report := routing.Balanced(st.Table); !ok {
		t.Errorf("not balanced after the return: %s", report)
	}
	if st.Running() {
		t.Errorf("operation still running: %+v", st.Operation)
	}
}

// TestRecoverRequestAndAutoRecover: short vnodes are refilled on the
// live nodes when asked, or once auto_recover_time has passed.
func TestRecoverRequestAndAutoRecover(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(e *env, clk *clock.Fake)
	}{
		{"request", func(e *env, _ *clock.Fake) {
			if err := e.apply(context.Background(), meta.Command{Op: meta.OpRequest, Kind: meta.OpKindRecover, Time: 1}); err != nil {
				t.Fatal(err)
			}
		}},
		{"auto", func(e *env, clk *clock.Fake) { clk.Advance(61 * time.Second) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := threeNodes(t)
			e.reconcile()
			e.setPeers(alive("a_1", "b_1", "c_1", "d_1"))
			e.converge(64)
			clk := clock.NewFake(time.Now())
			e.ctl.d.Clock = clk
			e.setPeers(alive("a_1", "b_1", "c_1"), peers("failed", "d_1"))
			e.reconcile()
			if len(e.fsm.State().Table.ShortVnodes()) == 0 {
				t.Fatalf("no short vnode after d_1 failed")
			}
			e.reconcile()
			if len(e.fsm.State().Table.ShortVnodes()) == 0 {
				t.Fatalf("refilled before the delay or a request")
			}
			tc.set(e, clk)
			e.reconcile()
			st := e.fsm.State()
			if s := st.Table.ShortVnodes(); len(s) != 0 {
				t.Fatalf("short vnodes %v after %s", s, tc.name)
			}
			if o := st.Operation; o == nil || o.Kind != meta.OpKindRecover {
				t.Errorf("operation %+v, want recover", o)
			}
			if _, left := st.Requests[meta.OpKindRecover]; left {
				t.Errorf("the recover request was not cleared")
			}
			e.converge(64)
			if st := e.fsm.State(); st.Running() {
				t.Errorf("recover still running after catch-up: %+v", st.Operation)
			}
		})
	}
}

// TestLostAutoAssign: with lost_action auto_assign a lost vnode is given
// to the live node with the fewest replicas, in two steps.
func TestLostAutoAssign(t *testing.T) {
	e := newEnv(t, 1, 3)
	e.reconcile()
	e.setPeers(alive("a_1", "b_1"))
	e.reconcile()
	e.setPeers(alive("a_1"), peers("failed", "b_1"))
	// b_1 holds nothing with redundancy 1 until balanced; fail a_1's
	// view by hand: give b_1 a vnode first.
	st := e.fsm.State()
	if err := e.apply(context.Background(), meta.Command{Op: meta.OpBatch, Batch: []meta.Command{
		{Op: meta.OpPlanMove, Vnode: 0, Epoch: st.Table.Vnodes[0].Epoch, Nodes: []routing.NodeID{"b_1"}},
		{Op: meta.OpSetInSync, Vnode: 0, Node: "b_1", Epoch: st.Table.Vnodes[0].Epoch, InSync: true},
		{Op: meta.OpFence, Vnode: 0, Epoch: st.Table.Vnodes[0].Epoch},
		{Op: meta.OpCutOver, Vnode: 0, Epoch: st.Table.Vnodes[0].Epoch},
	}}); err != nil {
		t.Fatal(err)
	}
	if e.fsm.State().Table.Vnodes[0].Primary() != "b_1" {
		t.Fatalf("setup: vnode 0 = %v", e.fsm.State().Table.Vnodes[0].Nodes)
	}
	e.reconcile()
	st = e.fsm.State()
	if lost := st.Table.LostVnodes(); !slices.Equal(lost, []int{0}) {
		t.Fatalf("lost %v, want [0]", lost)
	}
	if _, ok := st.Assigning[0]; ok {
		t.Fatalf("assigned with lost_action no_action")
	}
	e.setOption(meta.OptLostAction, meta.LostAutoAssign)
	e.reconcile()
	if got := e.fsm.State().Assigning[0]; got != "a_1" {
		t.Fatalf("assigning vnode 0 to %q, want a_1", got)
	}
}

// TestDemoteFailedVoter: a failed voter gives its vote to an alive
// non-voter.
func TestDemoteFailedVoter(t *testing.T) {
	e := newEnv(t, 2, 3)
	e.reconcile()
	e.setPeers(alive("a_1", "b_1", "c_1", "d_1"))
	e.reconcile()
	wantStrings(t, "members", e.members(), []string{"a_1(voter)", "b_1(voter)", "c_1(voter)", "d_1"})
	e.raft.takeCalls()
	e.setPeers(alive("a_1", "c_1", "d_1"), peers("failed", "b_1"))
	e.reconcile()
	wantStrings(t, "members", e.members(), []string{"a_1(voter)", "b_1", "c_1(voter)", "d_1(voter)"})
	wantStrings(t, "raft calls", e.raft.takeCalls(), []string{"DemoteVoter b_1", "AddVoter d_1 d:1"})
}

// TestRelease: a draining node's replicas all move off it, as a release
// operation, and the others stay balanced.
func TestRelease(t *testing.T) {
	e := threeNodes(t)
	if err := e.apply(context.Background(), meta.Command{Op: meta.OpSetDraining, Node: "c_1", Draining: true}); err != nil {
		t.Fatal(err)
	}
	e.reconcile()
	if o := e.fsm.State().Operation; o == nil || o.Kind != meta.OpKindRelease || o.Node != "c_1" {
		t.Fatalf("operation %+v, want a release of c_1", o)
	}
	e.converge(64)
	st := e.fsm.State()
	for v, r := range st.Table.Vnodes {
		if r.Has("c_1") || len(r.Nodes) != 2 {
			t.Errorf("vnode %d = %v after the release", v, r.Nodes)
		}
	}
	if st.Running() {
		t.Errorf("release still running: %+v", st.Operation)
	}
	probe := *st.Table
	probe.Nodes = slices.DeleteFunc(slices.Clone(probe.Nodes), func(n routing.Node) bool { return n.ID == "c_1" })
	if ok, report := routing.Balanced(&probe); !ok {
		t.Errorf("the others are not balanced after the release: %s", report)
	}
}
