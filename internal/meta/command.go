package meta

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/sonae-kv/sonae/internal/routing"
	"github.com/sonae-kv/sonae/internal/storage"
)

// Op names a command.
type Op string

// The commands.
const (
	// OpInit creates the cluster: its settings and its first member, which
	// becomes the primary of every vnode.
	OpInit Op = "init"
	// OpAddMember adds a node to the members and to the table's node set
	// (it holds no replica yet).
	OpAddMember Op = "add_member"
	// OpRemoveMember removes a node: from the members, from the table's
	// node set and from every replica list. A vnode whose primary it was
	// gets its first in-sync secondary as primary, epoch+1.
	OpRemoveMember Op = "remove_member"
	// OpSetVoter records whether a member votes.
	OpSetVoter Op = "set_voter"
	// OpCreateNamespace and OpDeleteNamespace: createhash and deletehash.
	OpCreateNamespace Op = "create_namespace"
	OpDeleteNamespace Op = "delete_namespace"
	// OpAddReplica appends Node to vnode Vnode's replica list as a lagging
	// replica, if the epoch still is Epoch and the list is short.
	OpAddReplica Op = "add_replica"
	// OpSetInSync marks Node in sync (InSync true) or lagging (false) in
	// vnode Vnode, if the epoch still is Epoch. The primary cannot be
	// marked lagging.
	OpSetInSync Op = "set_in_sync"
	// OpPlanMove starts moving vnode Vnode to the replica list Nodes: the
	// nodes of Nodes that are not replicas become incoming (and lagging).
	OpPlanMove Op = "plan_move"
	// OpFence makes the primary of Vnode stop serving ahead of a cut-over
	// that changes the primary.
	OpFence Op = "fence"
	// OpCutOver commits a planned move: the replica list becomes the
	// move's target, epoch+1 when the primary changes (which needs the
	// fence). Every node of the target must be an in-sync replica or a
	// caught-up incoming node.
	OpCutOver Op = "cut_over"
	// OpCancelMove drops a planned move (and its fence).
	OpCancelMove Op = "cancel_move"
	// OpNodeFailed: the leader confirmed Node failed. It leaves the table
	// (its vnodes' in-sync secondaries take over, epoch+1) but stays a
	// member, marked failed.
	OpNodeFailed Op = "node_failed"
	// OpNodeReturned: a failed member is alive again; it rejoins the node
	// set, holding nothing until the controller gives it replicas.
	OpNodeReturned Op = "node_returned"
	// OpAssignLost and OpAssignedLost give a lost vnode, empty, to Node
	// (lost_action auto_assign), in two steps so that Node empties its
	// copy before it serves the vnode.
	OpAssignLost   Op = "assign_lost"
	OpAssignedLost Op = "assigned_lost"
	// OpSetDraining marks Node for release (Draining true) or clears it.
	OpSetDraining Op = "set_draining"
	// OpOperation starts a data-movement operation of Kind (or adds
	// Vnodes to the running one); OpEndOperation ends it.
	OpOperation    Op = "operation"
	OpEndOperation Op = "end_operation"
	// OpRequest records an operator's request of Kind (recover, balance).
	OpRequest Op = "request"
	// OpSetOption sets runtime option Name to Value.
	OpSetOption Op = "set_option"
	// OpBatch applies Batch in order as one log entry. A command of the
	// batch that is refused is skipped; the others still apply.
	OpBatch Op = "batch"
)

// Command is one entry of the Raft log.
type Command struct {
	Op        Op             `json:"op"`
	Settings  *Settings      `json:"settings,omitempty"`
	Member    *Member        `json:"member,omitempty"`
	Node      routing.NodeID `json:"node,omitempty"`
	Namespace string         `json:"namespace,omitempty"`
	Vnode     int            `json:"vnode,omitempty"`
	Epoch     uint64         `json:"epoch,omitempty"`
	InSync    bool           `json:"in_sync,omitempty"`
	Voter     bool           `json:"voter,omitempty"`
	Batch     []Command      `json:"batch,omitempty"`
	// Nodes is the target replica list of plan_move.
	Nodes []routing.NodeID `json:"nodes,omitempty"`
	// Time is the proposer's clock (Unix ms), for the history.
	Time     int64  `json:"time,omitempty"`
	Kind     string `json:"kind,omitempty"`
	Name     string `json:"name,omitempty"`
	Value    string `json:"value,omitempty"`
	Note     string `json:"note,omitempty"`
	Vnodes   []int  `json:"vnodes,omitempty"`
	Draining bool   `json:"draining,omitempty"`
	// Replace makes an operation command set the pending vnodes instead
	// of adding to them (a re-plan); those dropped count as done.
	Replace bool `json:"replace,omitempty"`

	// index is the Raft index of the entry, set by the FSM.
	index uint64
}

// Encode returns the command's log form.
func (c Command) Encode() []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("meta: encoding a command: %v", err)) // plain fields: cannot fail
	}
	return b
}

// DecodeCommand parses a log entry.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	return c, nil
}

// apply returns the state after c, or an error refusing c (s unchanged).
// It keeps ShortSince up to date (a batch does so through each of its
// sub-commands).
func apply(s *State, c Command) (*State, error) {
	n, err := applyCommand(s, c)
	if err != nil || n == s || c.Op == OpBatch || !n.Initialized() {
		return n, err
	}
	n.noteShort(s, c.Time)
	return n, nil
}

// applyCommand returns the state after c, or an error refusing c.
func applyCommand(s *State, c Command) (*State, error) {
	if c.Op != OpInit && !s.Initialized() {
		return nil, ErrNotInitialized
	}
	switch c.Op {
	case OpInit:
		return applyInit(s, c)
	case OpAddMember:
		return applyAddMember(s, c)
	case OpRemoveMember:
		return applyRemoveMember(s, c)
	case OpSetVoter:
		i := slices.IndexFunc(s.Members, func(m Member) bool { return m.ID == c.Node })
		if i < 0 {
			return nil, fmt.Errorf("%w: %s", ErrUnknownMember, c.Node)
		}
		if s.Members[i].Voter == c.Voter {
			return s, nil
		}
		n := s.clone()
		n.Members[i].Voter = c.Voter
		return n, nil
	case OpCreateNamespace:
		if err := storage.ValidNamespace(c.Namespace); err != nil {
			return nil, err
		}
		if s.HasNamespace(c.Namespace) {
			return nil, fmt.Errorf("%w: %s", ErrNamespaceExists, c.Namespace)
		}
		n := s.clone()
		n.Namespaces = append(n.Namespaces, c.Namespace)
		slices.Sort(n.Namespaces)
		return n, nil
	case OpDeleteNamespace:
		if c.Namespace == DefaultNamespace {
			return nil, ErrDefaultNamespace
		}
		i := slices.Index(s.Namespaces, c.Namespace)
		if i < 0 {
			return nil, fmt.Errorf("%w: %s", ErrNoNamespace, c.Namespace)
		}
		n := s.clone()
		n.Namespaces = slices.Delete(n.Namespaces, i, i+1)
		return n, nil
	case OpAddReplica:
		return applyAddReplica(s, c)
	case OpSetInSync:
		return applySetInSync(s, c)
	case OpPlanMove:
		return applyPlanMove(s, c)
	case OpFence:
		if err := checkVnode(s, c); err != nil {
			return nil, err
		}
		if _, moving := s.Moves[c.Vnode]; !moving {
			return nil, fmt.Errorf("%w: vnode %d is not being moved", ErrBadCommand, c.Vnode)
		}
		if s.Fenced[c.Vnode] {
			return s, nil
		}
		n := s.clone()
		n.cloneTable()
		if n.Fenced == nil {
			n.Fenced = map[int]bool{}
		}
		n.Fenced[c.Vnode] = true
		return n, nil
	case OpCutOver:
		return applyCutOver(s, c)
	case OpCancelMove:
		if err := checkVnode(s, c); err != nil {
			return nil, err
		}
		if _, moving := s.Moves[c.Vnode]; !moving {
			return s, nil
		}
		n := s.clone()
		n.cloneTable()
		n.endMove(c.Vnode)
		return n, nil
	case OpNodeFailed:
		return applyNodeFailed(s, c)
	case OpNodeReturned:
		return applyNodeReturned(s, c)
	case OpAssignLost:
		return applyAssignLost(s, c)
	case OpAssignedLost:
		return applyAssignedLost(s, c)
	case OpSetDraining:
		return applySetDraining(s, c)
	case OpOperation:
		return applyOperation(s, c)
	case OpEndOperation:
		return applyEndOperation(s, c)
	case OpRequest:
		return applyRequest(s, c)
	case OpSetOption:
		return applySetOption(s, c)
	case OpBatch:
		cur := s
		for _, sub := range c.Batch {
			if sub.Op == OpBatch || sub.Op == OpInit {
				return nil, fmt.Errorf("%w: %s inside a batch", ErrBadCommand, sub.Op)
			}
			sub.index = c.index
			if next, err := apply(cur, sub); err == nil {
				cur = next
			}
		}
		return cur, nil
	}
	return nil, fmt.Errorf("%w: unknown op %q", ErrBadCommand, c.Op)
}

func applyInit(s *State, c Command) (*State, error) {
	if s.Initialized() {
		return nil, ErrAlreadyInitialized
	}
	if c.Settings == nil || c.Member == nil {
		return nil, fmt.Errorf("%w: init needs settings and a member", ErrBadCommand)
	}
	if err := validNodeID(c.Member.ID); err != nil {
		return nil, err
	}
	t, err := routing.NewTable(c.Settings.DivBits, c.Settings.Redundancy, c.Settings.ReplicationInHost)
	if err != nil {
		return nil, err
	}
	t.Nodes = []routing.Node{routing.NodeFromID(c.Member.ID)}
	for v := range t.Vnodes {
		t.Vnodes[v] = routing.Replicas{Nodes: []routing.NodeID{c.Member.ID}, Epoch: 1}
	}
	t.Version = 1
	n := s.clone()
	n.Settings = *c.Settings
	n.Members = []Member{*c.Member}
	n.Namespaces = []string{DefaultNamespace}
	n.Table = t
	return n, nil
}

func applyAddMember(s *State, c Command) (*State, error) {
	if c.Member == nil || c.Member.Addr == "" {
		return nil, fmt.Errorf("%w: add_member needs a member with id and addr", ErrBadCommand)
	}
	if err := validNodeID(c.Member.ID); err != nil {
		return nil, err
	}
	n := s.clone()
	i, found := slices.BinarySearchFunc(n.Members, c.Member.ID, func(m Member, id routing.NodeID) int {
		return compareIDs(m.ID, id)
	})
	if found {
		m := *c.Member
		m.Failed, m.Draining = n.Members[i].Failed, n.Members[i].Draining
		if n.Members[i] == m {
			return s, nil // a retried join: nothing to change
		}
		n.Members[i] = m
		return n, nil
	}
	n.Members = slices.Insert(n.Members, i, *c.Member)
	if _, ok := n.Table.Node(c.Member.ID); !ok {
		n.cloneTable()
		n.insertNode(c.Member.ID)
	}
	n.record(Event{Time: c.Time, Kind: EvJoin, Node: c.Member.ID, Note: c.Member.Addr})
	return n, nil
}

func applyRemoveMember(s *State, c Command) (*State, error) {
	if _, ok := s.Member(c.Node); !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownMember, c.Node)
	}
	n := s.clone()
	n.Members = slices.DeleteFunc(n.Members, func(m Member) bool { return m.ID == c.Node })
	held, promoted := n.dropNode(c.Node, c.Time)
	delete(n.Former, c.Node)
	for v, holders := range n.Lost {
		if slices.Contains(holders, c.Node) {
			rest := slices.DeleteFunc(slices.Clone(holders), func(x routing.NodeID) bool { return x == c.Node })
			if len(rest) == 0 {
				delete(n.Lost, v) // nobody left to bring it back
			} else {
				n.Lost[v] = rest
			}
		}
	}
	for v, node := range n.Assigning {
		if node == c.Node {
			delete(n.Assigning, v)
		}
	}
	n.record(Event{Time: c.Time, Kind: EvLeave, Node: c.Node,
		Note: fmt.Sprintf("held %d vnodes: %d got a new primary", len(held), promoted)})
	return n, nil
}

func applyAddReplica(s *State, c Command) (*State, error) {
	if err := checkVnode(s, c); err != nil {
		return nil, err
	}
	if _, ok := s.Table.Node(c.Node); !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownMember, c.Node)
	}
	r := s.Table.Vnodes[c.Vnode]
	if r.Has(c.Node) {
		return s, nil
	}
	if len(r.Nodes) == 0 {
		return nil, fmt.Errorf("%w: vnode %d is lost; a replica cannot be added", ErrBadCommand, c.Vnode)
	}
	if len(r.Nodes) >= s.Table.Redundancy {
		return nil, fmt.Errorf("%w: vnode %d already has %d replicas", ErrBadCommand, c.Vnode, len(r.Nodes))
	}
	n := s.clone()
	n.cloneTable()
	nr := &n.Table.Vnodes[c.Vnode]
	nr.Nodes = append(nr.Nodes, c.Node)
	if err := n.Table.Validate(); err != nil {
		return nil, err
	}
	n.setLagging(c.Vnode, append(n.Lagging[c.Vnode], c.Node))
	return n, nil
}

func applySetInSync(s *State, c Command) (*State, error) {
	if err := checkVnode(s, c); err != nil {
		return nil, err
	}
	r := s.Table.Vnodes[c.Vnode]
	if !r.Has(c.Node) && !slices.Contains(s.Incoming(c.Vnode), c.Node) {
		return nil, fmt.Errorf("%w: %s, vnode %d", ErrNotReplica, c.Node, c.Vnode)
	}
	if r.Primary() == c.Node && !c.InSync {
		return nil, fmt.Errorf("%w: the primary of vnode %d cannot lag", ErrBadCommand, c.Vnode)
	}
	lagging := slices.Contains(s.Lagging[c.Vnode], c.Node)
	if lagging == !c.InSync {
		return s, nil
	}
	n := s.clone()
	n.cloneTable() // the version tells clients the in-sync set changed
	lag := n.Lagging[c.Vnode]
	if c.InSync {
		lag = slices.DeleteFunc(lag, func(x routing.NodeID) bool { return x == c.Node })
	} else {
		lag = append(lag, c.Node)
	}
	n.setLagging(c.Vnode, lag)
	if c.InSync && len(n.Lagging[c.Vnode]) == 0 && n.Running() {
		if k := n.Operation.Kind; k == OpKindRecover || k == OpKindJoin {
			if _, moving := n.Moves[c.Vnode]; !moving {
				n.opDone(c.Vnode, c.Time)
			}
		}
	}
	return n, nil
}

func applyPlanMove(s *State, c Command) (*State, error) {
	if err := checkVnode(s, c); err != nil {
		return nil, err
	}
	if _, moving := s.Moves[c.Vnode]; moving {
		return nil, fmt.Errorf("%w: vnode %d is already being moved", ErrBadCommand, c.Vnode)
	}
	cur := s.Table.Vnodes[c.Vnode]
	if len(cur.Nodes) == 0 {
		return nil, fmt.Errorf("%w: vnode %d is lost", ErrBadCommand, c.Vnode)
	}
	if len(c.Nodes) == 0 || len(c.Nodes) > s.Table.Redundancy {
		return nil, fmt.Errorf("%w: vnode %d: a move needs 1..%d nodes, not %d", ErrBadCommand, c.Vnode, s.Table.Redundancy, len(c.Nodes))
	}
	// The target must be a valid replica list.
	probe := s.Table.Clone()
	probe.Vnodes[c.Vnode].Nodes = slices.Clone(c.Nodes)
	if err := probe.Validate(); err != nil {
		return nil, err
	}
	n := s.clone()
	n.cloneTable()
	if n.Moves == nil {
		n.Moves = map[int][]routing.NodeID{}
	}
	n.Moves[c.Vnode] = slices.Clone(c.Nodes)
	lag := n.Lagging[c.Vnode]
	for _, id := range c.Nodes {
		if !cur.Has(id) {
			lag = append(lag, id)
		}
	}
	n.setLagging(c.Vnode, lag)
	return n, nil
}

func applyCutOver(s *State, c Command) (*State, error) {
	if err := checkVnode(s, c); err != nil {
		return nil, err
	}
	target, moving := s.Moves[c.Vnode]
	if !moving {
		return nil, fmt.Errorf("%w: vnode %d is not being moved", ErrBadCommand, c.Vnode)
	}
	cur := s.Table.Vnodes[c.Vnode]
	for _, id := range target {
		if slices.Contains(s.Lagging[c.Vnode], id) {
			return nil, fmt.Errorf("%w: vnode %d: %s has not caught up", ErrBadCommand, c.Vnode, id)
		}
	}
	primaryChanges := target[0] != cur.Primary()
	if primaryChanges && !s.Fenced[c.Vnode] {
		return nil, fmt.Errorf("%w: vnode %d: a new primary needs the old one fenced first", ErrBadCommand, c.Vnode)
	}
	n := s.clone()
	n.cloneTable()
	r := &n.Table.Vnodes[c.Vnode]
	r.Nodes = slices.Clone(target)
	if primaryChanges {
		r.Epoch++
	}
	n.endMove(c.Vnode)
	n.record(Event{Time: c.Time, Kind: EvMove, Vnode: c.Vnode, From: cur.Nodes, To: r.Nodes})
	n.opDone(c.Vnode, c.Time)
	return n, nil
}

// endMove forgets vnode v's move: its fence, its target, and the lagging
// marks of incoming nodes that did not become replicas.
func (s *State) endMove(v int) {
	delete(s.Moves, v)
	delete(s.Fenced, v)
	r := s.Table.Vnodes[v]
	s.setLagging(v, slices.DeleteFunc(s.Lagging[v], func(id routing.NodeID) bool { return !r.Has(id) }))
}

func checkVnode(s *State, c Command) error {
	if c.Vnode < 0 || c.Vnode >= s.Table.VnodeCount() {
		return fmt.Errorf("%w: vnode %d out of range", ErrBadCommand, c.Vnode)
	}
	if e := s.Table.Vnodes[c.Vnode].Epoch; e != c.Epoch {
		return fmt.Errorf("%w: vnode %d is at epoch %d, not %d", ErrStaleEpoch, c.Vnode, e, c.Epoch)
	}
	return nil
}

// validNodeID checks that id is HOST_PORT with a host: the table groups
// replicas by that host.
func validNodeID(id routing.NodeID) error {
	i := strings.LastIndexByte(string(id), '_')
	if i <= 0 || i == len(id)-1 {
		return fmt.Errorf("%w: node id %q is not HOST_PORT", ErrBadCommand, id)
	}
	return nil
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
