package routing

import (
	"fmt"
	"slices"
)

// Move is one changed slot between two tables: at position Pos of vnode
// Vnode, node From is replaced by node To. From is "" when the slot was
// empty (a short vnode gains a replica), To is "" when the slot is dropped.
// Copy is true when To did not hold the vnode before, so the vnode's data
// must be streamed to To before the new list is committed; a Move with
// Copy false only changes roles (a promotion or a swap of positions). The
// data source of a copy is the vnode's current primary, not From: From may
// be a departed node.
type Move struct {
	Vnode    int
	Pos      int
	From, To NodeID
	Copy     bool
}

func (m Move) String() string {
	from, to := m.From, m.To
	if from == "" {
		from = "-"
	}
	if to == "" {
		to = "-"
	}
	s := fmt.Sprintf("v%d %s: %s -> %s", m.Vnode, PositionName(m.Pos), from, to)
	if m.Copy {
		s += " (copy)"
	}
	return s
}

// Moves returns the slots that differ between from and to, ordered by
// vnode then position. Both tables must have the same vnode count. A mover
// executes them vnode by vnode: copy the vnode to every To of a Copy move,
// then commit to's replica list for that vnode (CutOver).
func Moves(from, to *Table) []Move {
	var ms []Move
	for v := range min(len(from.Vnodes), len(to.Vnodes)) {
		a, b := from.Vnodes[v].Nodes, to.Vnodes[v].Nodes
		for k := range max(len(a), len(b)) {
			var x, y NodeID
			if k < len(a) {
				x = a[k]
			}
			if k < len(b) {
				y = b[k]
			}
			if x != y {
				ms = append(ms, Move{Vnode: v, Pos: k, From: x, To: y, Copy: y != "" && !slices.Contains(a, y)})
			}
		}
	}
	return ms
}

// CutOver returns a copy of t in which vnode v has target's replica list,
// with the epoch raised by one if the primary changes and Version + 1 (t
// itself is returned unchanged, at the same version, when the list is
// already the same). Every node of the new list must be a node of t: commit
// the node set first (Promote does), and the result must be valid. This is the step a mover commits once
// the new replicas have caught up.
func CutOver(t, target *Table, v int) (*Table, error) {
	if v < 0 || v >= len(t.Vnodes) || v >= len(target.Vnodes) {
		return nil, fmt.Errorf("%w: %d", ErrBadVnode, v)
	}
	want := target.Vnodes[v].Nodes
	if slices.Equal(t.Vnodes[v].Nodes, want) {
		return t, nil
	}
	for _, id := range want {
		if _, ok := t.Node(id); !ok {
			return nil, fmt.Errorf("%w: %s in vnode %d", ErrUnknownNode, id, v)
		}
	}
	c := t.Clone()
	rep := Replicas{Nodes: slices.Clone(want), Epoch: t.Vnodes[v].Epoch}
	if rep.Primary() != t.Vnodes[v].Primary() {
		rep.Epoch++
	}
	c.Vnodes[v] = rep
	c.Version++
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}
