package controller

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/routing"
)

// rebalance moves vnodes until every position is balanced (routing.Plan's
// target). A move runs in steps, each a Raft commit, so a new leader picks
// it up where it stands:
//
//  1. plan_move records the target list; its new nodes become incoming
//     (lagging) and the primary streams the vnode to them;
//  2. once every incoming node caught up (its primary marks it in sync),
//     a move that keeps the primary is cut over at once;
//  3. a move that changes the primary is first fenced: the old primary
//     stops serving the vnode; after it applied the fence (or its read
//     lease ran out, if it cannot be asked), the cut-over commits the new
//     list with epoch+1.
//
// New moves start only while the cluster is healthy: every node alive, no
// short vnode, no lagging replica outside the moves.
func (c *Controller) rebalance(ctx context.Context, peers []Peer) error {
	st := c.d.State()
	alive := withSelf(aliveSet(peers), c.cfg.Self.ID)
	if len(st.Moves) > 0 {
		return c.driveMoves(ctx, st, alive)
	}
	releasing := c.releasing(st)
	_, asked := st.Requests[meta.OpKindBalance]
	joining := len(c.joined) > 0
	if !st.Tuning().AutoBalance && !asked && releasing == "" && !joining {
		return nil
	}
	if len(st.Lagging) > 0 {
		return nil // replicas catching up first
	}
	for _, n := range st.Table.Nodes {
		if !alive[n.ID] {
			return nil // failures are handled first, not balanced around
		}
	}
	active := ActiveNodes(st, alive)
	// Short vnodes wait for auto-recover's delay (their node may come
	// back) unless an operator asks for a balance or a release needs the
	// room: Plan would refill them on the spot.
	if !asked && releasing == "" && len(planFill(st.Table, active, nil)) > 0 {
		return nil
	}
	if releasing == "" && BalancedOn(st.Table, active) {
		clear(c.joined)
		if asked {
			return c.startOp(ctx, meta.OpKindBalance, "", nil) // answers the request: nothing to do
		}
		return c.endMoveOp(ctx, st)
	}
	target, err := routing.Plan(st.Table, active)
	if err != nil {
		return fmt.Errorf("planning: %w", err)
	}
	var all []int
	var batch []meta.Command
	for v := range st.Table.Vnodes {
		want := target.Vnodes[v].Nodes
		if slices.Equal(want, st.Table.Vnodes[v].Nodes) || len(want) == 0 {
			continue
		}
		all = append(all, v)
		if len(batch) < c.cfg.MaxMoves {
			batch = append(batch, meta.Command{Op: meta.OpPlanMove, Vnode: v, Epoch: st.Table.Vnodes[v].Epoch, Nodes: want})
		}
	}
	if len(batch) == 0 {
		clear(c.joined)
		if asked {
			return c.startOp(ctx, meta.OpKindBalance, "", nil)
		}
		return c.endMoveOp(ctx, st)
	}
	kind, node := meta.OpKindBalance, routing.NodeID("")
	switch {
	case releasing != "":
		kind, node = meta.OpKindRelease, releasing
	case joining:
		kind, node = meta.OpKindJoin, slices.Min(slices.Collect(maps.Keys(c.joined)))
	}
	c.d.Log.Info("rebalancing: moves planned", "operation", kind, "vnodes", len(batch), "left", len(all)-len(batch))
	op := c.opCommand(kind, node, all)
	op.Replace = true // the plan is redone from the current table every time
	return c.d.Apply(ctx, meta.Command{Op: meta.OpBatch, Batch: append([]meta.Command{op}, batch...)})
}

// endMoveOp ends a join, release or balance operation once nothing is left
// to move (a re-plan can leave vnodes it once meant to move in place).
func (c *Controller) endMoveOp(ctx context.Context, st *meta.State) error {
	if !st.Running() || len(st.Moves) > 0 || len(st.Lagging) > 0 {
		return nil
	}
	switch st.Operation.Kind {
	case meta.OpKindJoin, meta.OpKindBalance, meta.OpKindRelease:
		return c.d.Apply(ctx, meta.Command{Op: meta.OpEndOperation, Time: c.now().UnixMilli()})
	}
	return nil
}

// releasing returns a member being released that still holds replicas.
func (c *Controller) releasing(st *meta.State) routing.NodeID {
	for _, m := range st.Members {
		if !m.Draining || m.Failed {
			continue
		}
		for _, k := range st.Table.Counts(m.ID) {
			if k > 0 {
				return m.ID
			}
		}
	}
	return ""
}

// BalancedOn reports whether t is balanced on the active nodes: no
// replica elsewhere, and every position within one of an even share.
func BalancedOn(t *routing.Table, active []routing.Node) bool {
	on := map[routing.NodeID]bool{}
	for _, n := range active {
		on[n.ID] = true
	}
	for _, r := range t.Vnodes {
		for _, id := range r.Nodes {
			if !on[id] {
				return false
			}
		}
	}
	probe := *t
	probe.Nodes = active
	ok, _ := routing.Balanced(&probe)
	return ok
}

// driveMoves takes every planned move one step further.
func (c *Controller) driveMoves(ctx context.Context, st *meta.State, alive map[routing.NodeID]bool) error {
	var cut, fence, cancel []meta.Command
	for v, target := range st.Moves {
		epoch := st.Table.Vnodes[v].Epoch
		gone := false
		for _, n := range target {
			gone = gone || !alive[n]
		}
		if gone {
			cancel = append(cancel, meta.Command{Op: meta.OpCancelMove, Vnode: v, Epoch: epoch})
			continue
		}
		ready := true
		for _, n := range target {
			ready = ready && !slices.Contains(st.Lagging[v], n)
		}
		if !ready {
			continue
		}
		if target[0] != st.Table.Vnodes[v].Primary() && !st.Fenced[v] {
			fence = append(fence, meta.Command{Op: meta.OpFence, Vnode: v, Epoch: epoch})
			continue
		}
		cut = append(cut, meta.Command{Op: meta.OpCutOver, Vnode: v, Epoch: epoch, Time: c.now().UnixMilli()})
	}
	for _, b := range [][]meta.Command{cancel, cut} {
		if len(b) > 0 {
			if err := c.d.Apply(ctx, meta.Command{Op: meta.OpBatch, Batch: b}); err != nil {
				return err
			}
		}
	}
	if len(fence) == 0 {
		return nil
	}
	if err := c.d.Apply(ctx, meta.Command{Op: meta.OpBatch, Batch: fence}); err != nil {
		return err
	}
	fencedAt := time.Now()
	after := c.d.State()
	olds := map[routing.NodeID]bool{}
	for _, f := range fence {
		olds[after.Table.Vnodes[f.Vnode].Primary()] = true
	}
	// The cut-over waits until every old primary stopped serving: it has
	// applied the fence, or its read lease has surely run out.
	for old := range olds {
		if old == c.cfg.Self.ID {
			continue // this node applied the fence before Apply returned
		}
		wctx, cancel := context.WithTimeout(ctx, c.cfg.ReadLease)
		err := c.d.WaitApplied(wctx, old, after.Index)
		cancel()
		if err != nil {
			c.d.Log.Info("old primary did not confirm the fence; waiting out its read lease", "node", old, "error", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Until(fencedAt.Add(2 * c.cfg.ReadLease))):
			}
		}
	}
	for i := range fence {
		fence[i].Op = meta.OpCutOver
		fence[i].Time = c.now().UnixMilli()
	}
	return c.d.Apply(ctx, meta.Command{Op: meta.OpBatch, Batch: fence})
}
