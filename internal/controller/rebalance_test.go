package controller

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/routing"
)

// waiter is Deps.WaitApplied: it records the calls and fails for the
// nodes listed in fail.
type waiter struct {
	mu    sync.Mutex
	calls []string
	fail  map[routing.NodeID]bool
}

func (w *waiter) wait(_ context.Context, node routing.NodeID, index uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, string(node))
	if w.fail[node] {
		return errors.New("unreachable (test)")
	}
	return nil
}

func (w *waiter) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.calls
	w.calls = nil
	return c
}

func newRebalanceEnv(t *testing.T, maxMoves int) (*env, *waiter) {
	w := &waiter{fail: map[routing.NodeID]bool{}}
	e := newEnv(t, 2, 5, func(c *Config) {
		c.MaxMoves = maxMoves
		c.ReadLease = 20 * time.Millisecond
	})
	e.ctl.d.WaitApplied = w.wait
	e.ctl.d.Changed = e.fsm.Changed
	return e, w
}

// catchUp marks every lagging replica and incoming node in sync, as their
// primaries would once synced.
func (e *env) catchUp() {
	e.t.Helper()
	st := e.fsm.State()
	for v, lag := range st.Lagging {
		for _, n := range lag {
			if err := e.apply(context.Background(), meta.Command{Op: meta.OpSetInSync, Vnode: v, Node: n, Epoch: st.Table.Vnodes[v].Epoch, InSync: true}); err != nil {
				e.t.Fatalf("marking %s in sync in vnode %d: %v", n, v, err)
			}
		}
	}
}

// converge reconciles (catching up after each round) until the table is
// balanced without moves, checking the invariants of every step: at most
// maxMoves moves, no vnode lost, a new primary only with a new epoch and
// after a fence of the vnode.
func (e *env) converge(maxMoves int) (rounds int) {
	e.t.Helper()
	prev := e.fsm.State()
	fenced := map[int]bool{}
	e.takeApplied()
	for rounds = 1; rounds <= 100; rounds++ {
		e.reconcile()
		for _, c := range e.takeApplied() {
			for _, sub := range append([]meta.Command{c}, c.Batch...) {
				if sub.Op == meta.OpFence {
					fenced[sub.Vnode] = true
				}
			}
		}
		st := e.fsm.State()
		if len(st.Moves) > maxMoves {
			e.t.Fatalf("%d moves at once, MaxMoves %d", len(st.Moves), maxMoves)
		}
		for v, r := range st.Table.Vnodes {
			old := prev.Table.Vnodes[v]
			switch {
			case r.Primary() != old.Primary() && r.Epoch <= old.Epoch:
				e.t.Fatalf("vnode %d changed primary %s -> %s without a new epoch", v, old.Primary(), r.Primary())
			case r.Primary() == old.Primary() && r.Epoch != old.Epoch:
				e.t.Fatalf("vnode %d epoch moved without a primary change", v)
			case len(r.Nodes) == 0:
				e.t.Fatalf("vnode %d lost during the rebalance", v)
			case r.Primary() != old.Primary() && !fenced[v]:
				e.t.Fatalf("vnode %d cut over to a new primary without a fence first", v)
			}
			if r.Primary() != old.Primary() {
				delete(fenced, v)
			}
		}
		replicaCounts(e.t, st)
		if ok, _ := routing.Balanced(settledTable(st)); ok && len(st.Moves) == 0 && len(st.Lagging) == 0 {
			return rounds
		}
		e.catchUp()
		e.takeApplied()
		prev = e.fsm.State()
	}
	e.t.Fatalf("not balanced after 100 rounds:\n%+v", e.fsm.State().Table.Vnodes)
	return 0
}

// twoNodes builds a healthy two-node cluster: every vnode [a_1 b_1], in
// sync, so every primary is on a_1 and the table is unbalanced.
func twoNodes(e *env) {
	e.reconcile()
	e.setPeers(alive("a_1", "b_1"))
	e.reconcile()
	if st := e.fsm.State(); len(st.Moves) != 0 {
		e.t.Fatalf("moves planned while replicas lag: %v", st.Moves)
	}
	e.catchUp()
}

// TestRebalancePlansWithinMaxMoves: a healthy, unbalanced cluster gets at
// most MaxMoves moves at once, each to a valid replica list; nothing is
// planned while a replica lags, a vnode is short, or a node is down.
func TestRebalancePlansWithinMaxMoves(t *testing.T) {
	e, _ := newRebalanceEnv(t, 2)
	twoNodes(e)

	// b_1 down: failures first, no moves.
	e.setPeers(alive("a_1"), peers("failed", "b_1"))
	e.reconcile()
	if st := e.fsm.State(); len(st.Moves) != 0 {
		t.Fatalf("moves planned with a node down")
	}
	// b_1 was failed over; back, it resyncs its replicas first.
	e.setPeers(alive("a_1", "b_1"))
	e.reconcile()
	if st := e.fsm.State(); len(st.Moves) != 0 || len(st.Lagging) == 0 {
		t.Fatalf("b_1 back: %d moves, %d lagging vnodes; want none planned while its replicas resync", len(st.Moves), len(st.Lagging))
	}
	e.catchUp()
	e.takeApplied()
	e.reconcile()
	st := e.fsm.State()
	if len(st.Moves) != 2 {
		t.Fatalf("%d moves planned, want MaxMoves=2", len(st.Moves))
	}
	applied := e.takeApplied()
	if len(applied) != 1 || applied[0].Op != meta.OpBatch || countOps(applied[0].Batch, meta.OpPlanMove) != 2 {
		t.Fatalf("applied %+v, want one batch of two plan_move", applied)
	}
	for v, target := range st.Moves {
		probe := st.Table.Clone()
		probe.Vnodes[v].Nodes = target
		if err := probe.Validate(); err != nil {
			t.Errorf("move of vnode %d to %v: %v", v, target, err)
		}
	}
}

// TestRebalanceConverges: two nodes with every primary on one; the
// controller moves primaries through fence and cut-over (epoch+1) until
// the table is balanced; then a third node joins as incoming replicas,
// which are cut over once caught up. Old primaries other than this node
// are asked to confirm the fence; when one cannot, its read lease is
// waited out.
func TestRebalanceConverges(t *testing.T) {
	e, w := newRebalanceEnv(t, 3)
	twoNodes(e)
	e.converge(3)
	st := e.fsm.State()
	if c := st.Table.Counts("a_1"); c[0] != 4 {
		t.Errorf("a_1 is primary of %d vnodes, want 4", c[0])
	}
	if got := w.take(); len(got) != 0 {
		t.Errorf("WaitApplied called for %v: only this node was an old primary", got)
	}

	// c_1 joins; b_1 cannot confirm fences.
	w.fail["b_1"] = true
	e.setPeers(alive("a_1", "b_1", "c_1"))
	e.converge(3)
	st = e.fsm.State()
	for _, id := range []routing.NodeID{"a_1", "b_1", "c_1"} {
		if c := st.Table.Counts(id); c[0] < 2 || c[0] > 3 || c[1] < 2 || c[1] > 3 {
			t.Errorf("%s counts %v, want 2..3 per position", id, c)
		}
	}
	calls := w.take()
	if !slices.Contains(calls, "b_1") {
		t.Errorf("WaitApplied calls %v: b_1's fences were not waited for", calls)
	}
	if slices.Contains(calls, "a_1") {
		t.Errorf("WaitApplied called for this node")
	}
	// Converged: nothing more.
	e.takeApplied()
	e.reconcile()
	if got := e.takeApplied(); len(got) != 0 {
		t.Errorf("reconcile after convergence applied %+v", got)
	}
}

// TestRebalanceCancel: a move whose target node fails is canceled, and
// its incoming node's lagging mark goes with it.
func TestRebalanceCancel(t *testing.T) {
	e, _ := newRebalanceEnv(t, 8)
	twoNodes(e)
	e.converge(8)
	e.setPeers(alive("a_1", "b_1", "c_1"))
	e.reconcile()
	st := e.fsm.State()
	var moving []int
	for v, target := range st.Moves {
		if slices.Contains(target, "c_1") {
			moving = append(moving, v)
		}
	}
	if len(moving) == 0 {
		t.Fatalf("no move to c_1 planned: %v", st.Moves)
	}
	for _, v := range moving {
		if !slices.Contains(st.Incoming(v), "c_1") || st.Ready(v, "c_1") {
			t.Fatalf("c_1 is not a lagging incoming node of vnode %d", v)
		}
	}
	e.setPeers(alive("a_1", "b_1"), peers("failed", "c_1"))
	e.reconcile()
	st = e.fsm.State()
	for _, v := range moving {
		if _, ok := st.Moves[v]; ok {
			t.Errorf("move of vnode %d not canceled", v)
		}
		if slices.Contains(st.Lagging[v], "c_1") {
			t.Errorf("c_1 still lagging in vnode %d after the cancel", v)
		}
		if st.Table.Vnodes[v].Has("c_1") {
			t.Errorf("vnode %d holds c_1", v)
		}
	}
	if len(st.Moves) != 0 {
		t.Errorf("moves left: %v", st.Moves)
	}
}

// TestRunReactsToChanged: Run reconciles on a metadata change, not only
// on the interval or a nudge.
func TestRunReactsToChanged(t *testing.T) {
	e, _ := newRebalanceEnv(t, 8)
	e.ctl.cfg.Interval = time.Hour
	twoNodes(e)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.ctl.Run(ctx)
	}()
	// The first pass plans moves; from then on only catch-ups (metadata
	// changes) drive the moves to the end.
	deadline := time.After(10 * time.Second)
	for {
		ch := e.fsm.Changed()
		st := e.fsm.State()
		if ok, _ := routing.Balanced(st.Table); ok && len(st.Moves) == 0 {
			break
		}
		e.catchUp()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("not balanced: moves %v", e.fsm.State().Moves)
		}
	}
	cancel()
	<-done
}

func countOps(cmds []meta.Command, op meta.Op) int {
	n := 0
	for _, c := range cmds {
		if c.Op == op {
			n++
		}
	}
	return n
}

// settledTable is st's table without the released (draining) nodes that
// hold nothing any more: what a finished release should balance.
func settledTable(st *meta.State) *routing.Table {
	t := *st.Table
	t.Nodes = slices.DeleteFunc(slices.Clone(t.Nodes), func(n routing.Node) bool {
		m, _ := st.Member(n.ID)
		return m.Draining && slices.Equal(st.Table.Counts(n.ID), make([]int, len(st.Table.Counts(n.ID))))
	})
	return &t
}
