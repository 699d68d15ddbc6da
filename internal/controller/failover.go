package controller

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/routing"
)

// probeTimeout bounds one direct probe of a suspect node.
const probeTimeout = 300 * time.Millisecond

// failOver confirms the failures gossip reports and takes the failed nodes
// out of the table (their vnodes' in-sync secondaries take over). A member
// counts as failed when gossip has reported it failed for at least
// fail_grace, and fail_threshold consecutive direct probes from this
// leader, fail_gap apart, found it unreachable. Before committing, the
// leader withholds the node's read lease and waits until the last lease it
// granted has surely run out, so the node has stopped serving before its
// secondaries start: at most one primary of a vnode serves at any moment,
// even if the node is only cut off, not dead.
func (c *Controller) failOver(ctx context.Context, peers []Peer) error {
	st := c.d.State()
	tun := st.Tuning()
	status := map[routing.NodeID]string{}
	for _, p := range peers {
		status[p.ID] = p.Status
	}
	now := c.now()
	var suspects []meta.Member
	for _, m := range st.Members {
		if m.ID == c.cfg.Self.ID || m.Failed {
			delete(c.failedSince, m.ID)
			continue
		}
		if status[m.ID] != "failed" {
			delete(c.failedSince, m.ID)
			continue
		}
		since, ok := c.failedSince[m.ID]
		if !ok {
			c.failedSince[m.ID] = now
			since = now
			c.d.Log.Info("gossip reports a member failed", "node", m.ID)
		}
		if !tun.Failover {
			continue
		}
		if wait := tun.FailGrace - now.Sub(since); wait > 0 {
			c.retryIn(wait)
			continue
		}
		suspects = append(suspects, m)
	}
	if len(suspects) == 0 {
		return nil
	}
	// Confirm every suspect at once: one slow probe must not delay the
	// failover of another node.
	confirmed := make([]bool, len(suspects))
	var wg sync.WaitGroup
	for i, m := range suspects {
		wg.Add(1)
		go func() {
			defer wg.Done()
			confirmed[i] = c.confirm(ctx, m, tun)
		}()
	}
	wg.Wait()
	for i, m := range suspects {
		if !confirmed[i] {
			continue
		}
		if err := c.waitLeaseOut(ctx, m.ID); err != nil {
			return err
		}
		if err := c.d.Apply(ctx, meta.Command{Op: meta.OpNodeFailed, Node: m.ID, Time: c.now().UnixMilli()}); err != nil {
			c.d.WithholdLease(m.ID, false)
			return fmt.Errorf("failing %s over: %w", m.ID, err)
		}
		after := c.d.State()
		c.d.Log.Warn("node failed: its vnodes' secondaries took over", "node", m.ID,
			"since_gossip_report", c.now().Sub(c.failedSince[m.ID]).Round(time.Millisecond),
			"short_vnodes", len(after.Table.ShortVnodes()), "lost_vnodes", len(after.Table.LostVnodes()))
		delete(c.failedSince, m.ID)
	}
	return nil
}

// confirm probes m directly; it withholds m's lease while probing, and
// gives it back if m answers.
func (c *Controller) confirm(ctx context.Context, m meta.Member, tun meta.Tuning) bool {
	c.d.WithholdLease(m.ID, true)
	for i := 0; i < tun.FailThreshold; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return false
			case <-time.After(tun.FailGap):
			}
		}
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		err := c.d.Probe(pctx, m.Addr)
		cancel()
		if err == nil {
			c.d.WithholdLease(m.ID, false)
			c.d.Log.Info("gossip reports a member failed, but it answers this leader; not failing it over", "node", m.ID)
			c.retryIn(tun.FailGap)
			return false
		}
	}
	return ctx.Err() == nil
}

// waitLeaseOut waits until node's last read lease has surely ended.
func (c *Controller) waitLeaseOut(ctx context.Context, node routing.NodeID) error {
	wait := time.Until(c.d.LeaseBound(node))
	if wait <= 0 {
		return nil
	}
	c.d.Log.Info("waiting for the failed node's read lease to run out", "node", node, "wait", wait.Round(time.Millisecond))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(wait):
		return nil
	}
}

// welcomeBack puts failed members that gossip sees alive again back into
// the table, in the same Raft entry that gives them replicas of the short
// vnodes (those they held before first, since they still have that data),
// so the returning node never sits in the table holding nothing, which
// would make it drop its old data.
func (c *Controller) welcomeBack(ctx context.Context, peers []Peer) error {
	alive := aliveSet(peers)
	for _, m := range c.d.State().Members {
		if !m.Failed || !alive[m.ID] {
			continue
		}
		st := c.d.State()
		now := c.now().UnixMilli()
		batch := []meta.Command{{Op: meta.OpNodeReturned, Node: m.ID, Time: now}}
		// The fill is planned on the table as it will be after the
		// return: with the node back in the node set.
		probe := st.Table.Clone()
		if _, ok := probe.Node(m.ID); !ok {
			probe.Nodes = append(probe.Nodes, routing.NodeFromID(m.ID))
		}
		adds := planFill(probe, []routing.Node{routing.NodeFromID(m.ID)}, st.Former[m.ID])
		batch = append(batch, adds...)
		if len(adds) > 0 {
			batch = append(batch, c.opCommand(meta.OpKindJoin, m.ID, vnodesOf(adds)))
		}
		if err := c.d.Apply(ctx, meta.Command{Op: meta.OpBatch, Batch: batch}); err != nil {
			return fmt.Errorf("readmitting %s: %w", m.ID, err)
		}
		// Leases were withheld from it when it failed; now that the table
		// gives it only what it is to resync, it may serve again.
		c.d.WithholdLease(m.ID, false)
		c.joined[m.ID] = true
		c.d.Log.Info("failed node is back; it resyncs from the current primaries", "node", m.ID,
			"replicas", len(adds), "held_before", len(st.Former[m.ID]))
	}
	return nil
}

// handleLost applies lost_action auto_assign: every lost vnode is given,
// empty, to the live node with the fewest replicas. (no_action leaves it
// refused until its last holder returns; shutdown is each node's own
// reaction, in the server.)
func (c *Controller) handleLost(ctx context.Context) error {
	st := c.d.State()
	if st.Tuning().LostAction != meta.LostAutoAssign {
		return nil
	}
	lost := st.Table.LostVnodes()
	if len(lost) == 0 {
		return nil
	}
	load := map[routing.NodeID]int{}
	var cands []routing.NodeID
	for _, n := range st.Table.Nodes {
		if m, ok := st.Member(n.ID); ok && !m.Failed && !m.Draining {
			cands = append(cands, n.ID)
			for _, k := range st.Table.Counts(n.ID) {
				load[n.ID] += k
			}
		}
	}
	if len(cands) == 0 {
		return nil
	}
	var batch []meta.Command
	for _, v := range lost {
		if _, ok := st.Assigning[v]; ok {
			continue
		}
		best := slices.MinFunc(cands, func(a, b routing.NodeID) int {
			if d := load[a] - load[b]; d != 0 {
				return d
			}
			return compareIDs(a, b)
		})
		load[best]++
		batch = append(batch, meta.Command{Op: meta.OpAssignLost, Vnode: v, Node: best, Epoch: st.Table.Vnodes[v].Epoch})
	}
	if len(batch) == 0 {
		return nil
	}
	c.d.Log.Warn("lost vnodes are given, empty, to live nodes (lost_action auto_assign)", "vnodes", len(batch))
	return c.d.Apply(ctx, meta.Command{Op: meta.OpBatch, Batch: batch})
}

func compareIDs(a, b routing.NodeID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func vnodesOf(cmds []meta.Command) []int {
	vs := make([]int, 0, len(cmds))
	for _, c := range cmds {
		vs = append(vs, c.Vnode)
	}
	return vs
}
