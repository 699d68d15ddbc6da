package meta

import (
	"fmt"
	"slices"

	"github.com/sonae-kv/sonae/internal/routing"
)

// dropNode takes node out of the table: out of the node set and of every
// replica list. A vnode whose primary it was gets its first in-sync
// secondary as primary (epoch+1): only an in-sync replica holds every
// acknowledged write. A vnode whose remaining replicas all lag is lost,
// and Lost remembers node as its last holder, so that the vnode comes back
// with node if node returns. Moves that involve node are void. It returns
// the vnodes node was a replica of, and how many got a new primary.
func (s *State) dropNode(node routing.NodeID, now int64) (held []int, promoted int) {
	s.cloneTable()
	for v, target := range s.Moves {
		if slices.Contains(target, node) || s.Table.Vnodes[v].Has(node) {
			s.endMove(v)
		}
	}
	t := s.Table
	t.Nodes = slices.DeleteFunc(t.Nodes, func(x routing.Node) bool { return x.ID == node })
	for v := range t.Vnodes {
		r := &t.Vnodes[v]
		if !r.Has(node) {
			continue
		}
		held = append(held, v)
		from := slices.Clone(r.Nodes)
		wasPrimary := r.Primary() == node
		lag := slices.DeleteFunc(s.Lagging[v], func(x routing.NodeID) bool { return x == node })
		r.Nodes = slices.DeleteFunc(r.Nodes, func(x routing.NodeID) bool { return x == node })
		if wasPrimary {
			k := slices.IndexFunc(r.Nodes, func(x routing.NodeID) bool { return !slices.Contains(lag, x) })
			switch {
			case k < 0:
				r.Nodes = nil
				lag = nil
				if s.Lost == nil {
					s.Lost = map[int][]routing.NodeID{}
				}
				s.Lost[v] = []routing.NodeID{node}
				s.record(Event{Time: now, Kind: EvLost, Node: node, Vnode: v, From: from, To: []routing.NodeID{}})
			case k > 0:
				p := r.Nodes[k]
				r.Nodes = append([]routing.NodeID{p}, slices.Delete(r.Nodes, k, k+1)...)
			}
			if len(r.Nodes) > 0 {
				promoted++
			}
			r.Epoch++
		}
		s.setLagging(v, lag)
	}
	return held, promoted
}

// applyNodeFailed records that the leader confirmed node failed and takes
// it out of the table; it stays a member, so that it can return.
func applyNodeFailed(s *State, c Command) (*State, error) {
	m, ok := s.Member(c.Node)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownMember, c.Node)
	}
	if m.Failed {
		return s, nil
	}
	n := s.clone()
	n.setMember(c.Node, func(m *Member) { m.Failed = true })
	held, promoted := n.dropNode(c.Node, c.Time)
	if len(held) > 0 {
		if n.Former == nil {
			n.Former = map[routing.NodeID][]int{}
		}
		n.Former[c.Node] = held
	}
	lost := 0
	for _, v := range held {
		if len(n.Table.Vnodes[v].Nodes) == 0 {
			lost++
		}
	}
	n.record(Event{Time: c.Time, Kind: EvFailed, Node: c.Node,
		Note: fmt.Sprintf("held %d vnodes: %d got a new primary, %d lost", len(held), promoted, lost)})
	if n.Running() {
		n.endOperation(c.Time, fmt.Sprintf(" (interrupted: %s failed)", c.Node))
	}
	return n, nil
}

// applyNodeReturned puts a failed member back into the node set (holding
// nothing yet; the controller gives it replicas, which it syncs from their
// primaries, reusing its old data where its history is a prefix of
// theirs). A lost vnode whose last holder it was comes back with it as its
// only replica.
func applyNodeReturned(s *State, c Command) (*State, error) {
	m, ok := s.Member(c.Node)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownMember, c.Node)
	}
	if !m.Failed {
		return s, nil
	}
	n := s.clone()
	n.setMember(c.Node, func(m *Member) { m.Failed = false })
	n.cloneTable()
	n.insertNode(c.Node)
	restored := 0
	for v, holders := range n.Lost {
		if !slices.Contains(holders, c.Node) || len(n.Table.Vnodes[v].Nodes) > 0 {
			continue
		}
		r := &n.Table.Vnodes[v]
		r.Nodes = []routing.NodeID{c.Node}
		r.Epoch++
		delete(n.Lost, v)
		delete(n.Assigning, v)
		restored++
		n.record(Event{Time: c.Time, Kind: EvRestored, Node: c.Node, Vnode: v, To: r.Nodes})
	}
	delete(n.Former, c.Node)
	note := ""
	if restored > 0 {
		note = fmt.Sprintf("restored %d lost vnodes", restored)
	}
	n.record(Event{Time: c.Time, Kind: EvReturned, Node: c.Node, Note: note})
	return n, nil
}

// applyAssignLost starts giving a lost vnode, empty, to a live node
// (lost_action auto_assign). The node empties its copy of the vnode and
// then confirms with assigned_lost, so no stale record of the vnode is
// ever served.
func applyAssignLost(s *State, c Command) (*State, error) {
	if err := checkVnode(s, c); err != nil {
		return nil, err
	}
	if len(s.Table.Vnodes[c.Vnode].Nodes) > 0 {
		return nil, fmt.Errorf("%w: vnode %d is not lost", ErrBadCommand, c.Vnode)
	}
	if m, ok := s.Member(c.Node); !ok || m.Failed {
		return nil, fmt.Errorf("%w: %s is not a live member", ErrUnknownMember, c.Node)
	}
	if s.Assigning[c.Vnode] == c.Node {
		return s, nil
	}
	n := s.clone()
	if n.Assigning == nil {
		n.Assigning = map[int]routing.NodeID{}
	}
	n.Assigning[c.Vnode] = c.Node
	return n, nil
}

// applyAssignedLost finishes applyAssignLost: the node has emptied the
// vnode and becomes its primary, epoch+1.
func applyAssignedLost(s *State, c Command) (*State, error) {
	if err := checkVnode(s, c); err != nil {
		return nil, err
	}
	if s.Assigning[c.Vnode] != c.Node {
		return nil, fmt.Errorf("%w: vnode %d is not being assigned to %s", ErrBadCommand, c.Vnode, c.Node)
	}
	n := s.clone()
	n.cloneTable()
	r := &n.Table.Vnodes[c.Vnode]
	r.Nodes = []routing.NodeID{c.Node}
	r.Epoch++
	delete(n.Assigning, c.Vnode)
	delete(n.Lost, c.Vnode)
	n.record(Event{Time: c.Time, Kind: EvAssigned, Node: c.Node, Vnode: c.Vnode, To: r.Nodes, Note: "empty (lost_action auto_assign)"})
	return n, nil
}

// applySetDraining marks a member for release (the planner moves every
// replica off it) or clears the mark.
func applySetDraining(s *State, c Command) (*State, error) {
	m, ok := s.Member(c.Node)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownMember, c.Node)
	}
	if m.Draining == c.Draining {
		return s, nil
	}
	n := s.clone()
	n.setMember(c.Node, func(m *Member) { m.Draining = c.Draining })
	note := "asked"
	if !c.Draining {
		note = "cancelled"
	}
	n.record(Event{Time: c.Time, Kind: EvRelease, Node: c.Node, Note: note})
	return n, nil
}

// applyOperation starts an operation, or adds vnodes to the running one of
// the same kind and node. A running operation of another kind ends first.
func applyOperation(s *State, c Command) (*State, error) {
	switch c.Kind {
	case OpKindJoin, OpKindRelease, OpKindRecover, OpKindBalance:
	default:
		return nil, fmt.Errorf("%w: operation kind %q", ErrBadCommand, c.Kind)
	}
	for _, v := range c.Vnodes {
		if v < 0 || v >= s.Table.VnodeCount() {
			return nil, fmt.Errorf("%w: vnode %d out of range", ErrBadCommand, v)
		}
	}
	n := s.clone()
	delete(n.Requests, c.Kind)
	if n.Running() && n.Operation.Kind == c.Kind && n.Operation.Node == c.Node {
		o := n.Operation.clone()
		if c.Replace {
			// A re-plan: what it no longer needs to move is done, so
			// Total stays what the operation has covered.
			keep := slices.Clone(c.Vnodes)
			slices.Sort(keep)
			keep = slices.Compact(keep)
			for _, v := range o.Pending {
				if _, found := slices.BinarySearch(keep, v); !found {
					o.Done++
				}
			}
			o.Pending = keep
		} else {
			for _, v := range c.Vnodes {
				if i, found := slices.BinarySearch(o.Pending, v); !found {
					o.Pending = slices.Insert(o.Pending, i, v)
				}
			}
		}
		n.Operation = o
		if len(o.Pending) == 0 {
			n.endOperation(c.Time, "")
		}
		return n, nil
	}
	if n.Running() {
		n.endOperation(c.Time, " (superseded by "+c.Kind+")")
	}
	pending := slices.Clone(c.Vnodes)
	slices.Sort(pending)
	pending = slices.Compact(pending)
	n.Operation = &Operation{ID: c.index, Kind: c.Kind, Node: c.Node, Started: c.Time, Pending: pending}
	n.record(Event{Time: c.Time, Kind: EvOpStart, Node: c.Node, Note: fmt.Sprintf("%s: %d vnodes", c.Kind, len(pending))})
	if len(pending) == 0 {
		n.endOperation(c.Time, "")
	}
	return n, nil
}

// applyEndOperation ends the running operation (Note says why).
func applyEndOperation(s *State, c Command) (*State, error) {
	if !s.Running() {
		return s, nil
	}
	n := s.clone()
	note := ""
	if c.Note != "" {
		note = " (" + c.Note + ")"
	}
	n.endOperation(c.Time, note)
	return n, nil
}

// applyRequest records an operator's request (recover, balance) for the
// controller, which clears it when it starts the operation.
func applyRequest(s *State, c Command) (*State, error) {
	switch c.Kind {
	case OpKindRecover, OpKindBalance:
	default:
		return nil, fmt.Errorf("%w: request kind %q", ErrBadCommand, c.Kind)
	}
	n := s.clone()
	if n.Requests == nil {
		n.Requests = map[string]int64{}
	}
	n.Requests[c.Kind] = max(c.Time, 1)
	return n, nil
}

// applySetOption sets a runtime option (the value is checked again, so a
// bad entry in the log is refused identically everywhere).
func applySetOption(s *State, c Command) (*State, error) {
	v, err := CheckOption(c.Name, c.Value)
	if err != nil {
		return nil, err
	}
	if s.Option(c.Name) == v {
		if _, set := s.Options[c.Name]; set {
			return s, nil
		}
	}
	n := s.clone()
	if n.Options == nil {
		n.Options = map[string]string{}
	}
	n.Options[c.Name] = v
	n.record(Event{Time: c.Time, Kind: EvOption, Note: c.Name + "=" + v})
	return n, nil
}

func (s *State) setMember(id routing.NodeID, f func(*Member)) {
	i := slices.IndexFunc(s.Members, func(m Member) bool { return m.ID == id })
	if i >= 0 {
		f(&s.Members[i])
	}
}

// insertNode adds id to the table's node set (the table must be a clone).
func (s *State) insertNode(id routing.NodeID) {
	if _, ok := s.Table.Node(id); ok {
		return
	}
	node := routing.NodeFromID(id)
	j, _ := slices.BinarySearchFunc(s.Table.Nodes, node.ID, func(x routing.Node, id routing.NodeID) int {
		return compareIDs(x.ID, id)
	})
	s.Table.Nodes = slices.Insert(s.Table.Nodes, j, node)
}

// noteShort keeps ShortSince: when the table last went from no short
// vnode to some (auto-recover waits from then), 0 while none is short.
func (s *State) noteShort(prev *State, now int64) {
	short := len(s.Table.ShortVnodes()) > 0
	switch {
	case !short:
		s.ShortSince = 0
	case prev.ShortSince == 0 || !prev.Initialized():
		s.ShortSince = max(now, 1)
	}
}
