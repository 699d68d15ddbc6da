package controller

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/routing"
)

// planFill gives short vnodes of t replicas on the candidates: each time
// to the candidate with the fewest replicas that does not hold the vnode
// and whose host the vnode does not use yet (unless replication in host),
// until the vnode is full or no candidate fits. The vnodes in prefer go
// first (a returning node's old vnodes, whose data it still has). The new
// replicas start lagging; their primaries bring them in sync.
func planFill(t *routing.Table, cands []routing.Node, prefer []int) []meta.Command {
	short := t.ShortVnodes()
	if len(short) == 0 || len(cands) == 0 {
		return nil
	}
	first := map[int]bool{}
	for _, v := range prefer {
		first[v] = true
	}
	slices.SortStableFunc(short, func(a, b int) int {
		switch {
		case first[a] && !first[b]:
			return -1
		case first[b] && !first[a]:
			return 1
		}
		return 0
	})
	load := map[routing.NodeID]int{}
	for _, n := range cands {
		for _, k := range t.Counts(n.ID) {
			load[n.ID] += k
		}
	}
	var out []meta.Command
	for _, v := range short {
		r := t.Vnodes[v]
		nodes := slices.Clone(r.Nodes)
		hosts := map[string]bool{}
		for _, id := range nodes {
			if n, ok := t.Node(id); ok {
				hosts[n.Host] = true
			}
		}
		for len(nodes) < t.Redundancy {
			var best *routing.Node
			for i := range cands {
				n := &cands[i]
				if slices.Contains(nodes, n.ID) || (!t.ReplicationInHost && hosts[n.Host]) {
					continue
				}
				if best == nil || cmp.Or(cmp.Compare(load[n.ID], load[best.ID]), cmp.Compare(n.ID, best.ID)) < 0 {
					best = n
				}
			}
			if best == nil {
				break
			}
			load[best.ID]++
			nodes = append(nodes, best.ID)
			hosts[best.Host] = true
			out = append(out, meta.Command{Op: meta.OpAddReplica, Vnode: v, Node: best.ID, Epoch: r.Epoch})
		}
	}
	return out
}

// ActiveNodes are the table's nodes that serve and may receive data:
// alive in gossip, not failed, not being released.
func ActiveNodes(st *meta.State, alive map[routing.NodeID]bool) []routing.Node {
	var out []routing.Node
	for _, n := range st.Table.Nodes {
		m, ok := st.Member(n.ID)
		if ok && !m.Failed && !m.Draining && alive[n.ID] {
			out = append(out, n)
		}
	}
	return out
}

// Refillable counts the replicas recover could add now to st's short
// vnodes on the active nodes.
func Refillable(st *meta.State, alive map[routing.NodeID]bool) int {
	return len(planFill(st.Table, ActiveNodes(st, alive), nil))
}

// fillJoined gives the short vnodes replicas on nodes that just joined:
// new capacity is used at once (ROMA's join also takes short vnodes
// first). It is part of the join operation.
func (c *Controller) fillJoined(ctx context.Context, joined []routing.NodeID) error {
	st := c.d.State()
	var cands []routing.Node
	for _, id := range joined {
		if n, ok := st.Table.Node(id); ok {
			cands = append(cands, n)
		}
	}
	adds := planFill(st.Table, cands, nil)
	if len(adds) == 0 {
		return nil
	}
	batch := append(adds, c.opCommand(meta.OpKindJoin, adds[0].Node, vnodesOf(adds)))
	if err := c.d.Apply(ctx, meta.Command{Op: meta.OpBatch, Batch: batch}); err != nil {
		return fmt.Errorf("giving short vnodes to the new nodes: %w", err)
	}
	c.d.Log.Info("short vnodes get replicas on the new nodes", "nodes", joined, "replicas", len(adds))
	return nil
}

// recoverShort re-creates the missing replicas of short vnodes on the
// active nodes, when an operator asked (recover) or when auto-recover's
// delay has passed since the table became short.
func (c *Controller) recoverShort(ctx context.Context, peers []Peer) error {
	st := c.d.State()
	_, asked := st.Requests[meta.OpKindRecover]
	tun := st.Tuning()
	auto := false
	if !asked && tun.AutoRecover && st.ShortSince > 0 {
		due := st.ShortSince + tun.AutoRecoverTime.Milliseconds()
		if wait := due - c.now().UnixMilli(); wait > 0 {
			c.retryIn(msDuration(wait))
		} else {
			auto = true
		}
	}
	if !asked && !auto {
		return nil
	}
	adds := planFill(st.Table, ActiveNodes(st, withSelf(aliveSet(peers), c.cfg.Self.ID)), nil)
	if len(adds) == 0 {
		if asked {
			// Nothing can be refilled now: close the request visibly.
			return c.startOp(ctx, meta.OpKindRecover, "", nil)
		}
		return nil
	}
	batch := append(adds, c.opCommand(meta.OpKindRecover, "", vnodesOf(adds)))
	if err := c.d.Apply(ctx, meta.Command{Op: meta.OpBatch, Batch: batch}); err != nil {
		return fmt.Errorf("recovering short vnodes: %w", err)
	}
	why := "auto-recover"
	if asked {
		why = "recover"
	}
	c.d.Log.Info("short vnodes get new replicas", "by", why, "replicas", len(adds))
	return nil
}

// startOp records (or extends) the running operation on its own.
func (c *Controller) startOp(ctx context.Context, kind string, node routing.NodeID, vnodes []int) error {
	return c.d.Apply(ctx, c.opCommand(kind, node, vnodes))
}

// opCommand is the command that records (or extends) the running
// operation; it goes in the same batch as the work it describes.
func (c *Controller) opCommand(kind string, node routing.NodeID, vnodes []int) meta.Command {
	return meta.Command{Op: meta.OpOperation, Kind: kind, Node: node, Vnodes: vnodes, Time: c.now().UnixMilli()}
}

func withSelf(alive map[routing.NodeID]bool, self routing.NodeID) map[routing.NodeID]bool {
	alive[self] = true
	return alive
}
