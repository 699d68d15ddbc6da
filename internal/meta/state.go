package meta

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/sonae-kv/sonae/internal/routing"
)

// Sentinel errors of the meta package. Apply results wrap them.
var (
	// ErrNotInitialized: a command other than init arrived before init.
	ErrNotInitialized = errors.New("meta: cluster not initialized")
	// ErrAlreadyInitialized: a second init.
	ErrAlreadyInitialized = errors.New("meta: cluster already initialized")
	// ErrStaleEpoch: the command names an epoch the vnode no longer has.
	ErrStaleEpoch = errors.New("meta: stale epoch")
	// ErrUnknownMember: the command names a node that is not a member.
	ErrUnknownMember = errors.New("meta: unknown member")
	// ErrNotReplica: the node is not a replica of the vnode.
	ErrNotReplica = errors.New("meta: not a replica of the vnode")
	// ErrNamespaceExists and ErrNoNamespace: createhash/deletehash refusals.
	ErrNamespaceExists = errors.New("meta: namespace exists")
	ErrNoNamespace     = errors.New("meta: no such namespace")
	// ErrDefaultNamespace: the default namespace cannot be deleted.
	ErrDefaultNamespace = errors.New("meta: the default namespace cannot be deleted")
	// ErrBadCommand: the command cannot be decoded or is malformed.
	ErrBadCommand = errors.New("meta: bad command")
	// ErrUnknownOption and ErrBadOption: set_option refusals.
	ErrUnknownOption = errors.New("meta: unknown option")
	ErrBadOption     = errors.New("meta: bad option value")
)

// DefaultNamespace always exists.
const DefaultNamespace = "default"

// Settings are fixed when the cluster is created.
type Settings struct {
	Name              string `json:"name"`
	DivBits           uint   `json:"div_bits"`
	Redundancy        int    `json:"redundancy"`
	ReplicationInHost bool   `json:"replication_in_host,omitempty"`
}

// Member is one node of the cluster as the metadata knows it.
type Member struct {
	ID routing.NodeID `json:"id"`
	// Addr is host:port: the client port, where every other kind of
	// traffic (Raft, gossip, peer RPC) also arrives.
	Addr string `json:"addr"`
	// Voter is whether the node votes in Raft.
	Voter bool `json:"voter"`
	// Failed: the leader confirmed the node failed. It is out of the
	// routing table until it returns (or is removed).
	Failed bool `json:"failed,omitempty"`
	// Draining: release was asked; the planner moves every replica off
	// the node.
	Draining bool `json:"draining,omitempty"`
}

// State is the whole metadata at one Raft index. A published State is never
// modified; commands build a new one.
type State struct {
	// Index is the Raft index of the last command applied.
	Index    uint64   `json:"index"`
	Settings Settings `json:"settings"`
	// Members is sorted by ID.
	Members    []Member `json:"members"`
	Namespaces []string `json:"namespaces"`
	// Table is nil until init. Its Version rises on every change of the
	// table or of Lagging.
	Table *routing.Table `json:"table"`
	// Lagging lists, per vnode, the replicas that are not in sync with the
	// primary: they receive the vnode's changes but do not count for
	// acknowledgements and do not serve reads. Vnodes absent from the map
	// have every replica in sync.
	Lagging map[int][]routing.NodeID `json:"lagging,omitempty"`
	// Moves holds, per vnode being moved, the replica list it moves to.
	// Its nodes that are not replicas yet are the vnode's incoming nodes:
	// they receive its data ahead of the cut-over, are listed in Lagging
	// until they caught up, and once caught up every write waits for
	// their ack, so the cut-over loses nothing.
	Moves map[int][]routing.NodeID `json:"moves,omitempty"`
	// Fenced lists the vnodes whose primary must stop serving because a
	// cut-over to another primary is about to be committed. The cut-over
	// is only committed after the old primary applied the fence (or
	// its read lease ran out), so the two never serve at once.
	Fenced map[int]bool `json:"fenced,omitempty"`

	// Options are the runtime options an operator set (options.go).
	Options map[string]string `json:"options,omitempty"`
	// Former lists, per failed member, the vnodes it held when it failed:
	// it still has their data, and gets them back first when it returns.
	Former map[routing.NodeID][]int `json:"former,omitempty"`
	// Lost lists, per lost vnode, the node that held it last: if that node
	// returns, the vnode comes back with it.
	Lost map[int][]routing.NodeID `json:"lost,omitempty"`
	// Assigning lists the lost vnodes being given, empty, to a live node
	// (lost_action auto_assign), which empties its copy first.
	Assigning map[int]routing.NodeID `json:"assigning,omitempty"`
	// Operation is the last data-movement operation (running while its
	// Ended is 0).
	Operation *Operation `json:"operation,omitempty"`
	// Requests are operators' requests (recover, balance) waiting for the
	// controller, with the time they were made.
	Requests map[string]int64 `json:"requests,omitempty"`
	// ShortSince is when the table last became short (Unix ms), 0 while no
	// vnode is short.
	ShortSince int64 `json:"short_since,omitempty"`
	// History is the routing history, oldest first.
	History []Event `json:"history,omitempty"`
}

// Initialized reports whether init has been applied.
func (s *State) Initialized() bool { return s.Table != nil }

// Member returns the member with the given id.
func (s *State) Member(id routing.NodeID) (Member, bool) {
	i, ok := slices.BinarySearchFunc(s.Members, id, func(m Member, id routing.NodeID) int {
		switch {
		case m.ID < id:
			return -1
		case m.ID > id:
			return 1
		}
		return 0
	})
	if !ok {
		return Member{}, false
	}
	return s.Members[i], true
}

// Voters counts the voting members that have not failed.
func (s *State) Voters() int {
	n := 0
	for _, m := range s.Members {
		if m.Voter && !m.Failed {
			n++
		}
	}
	return n
}

// HasNamespace reports whether the namespace exists.
func (s *State) HasNamespace(name string) bool { return slices.Contains(s.Namespaces, name) }

// InSync reports whether node is an in-sync replica of vnode v.
func (s *State) InSync(v int, node routing.NodeID) bool {
	return s.Table.Vnodes[v].Has(node) && !slices.Contains(s.Lagging[v], node)
}

// Incoming returns the nodes that receive vnode v's data ahead of a
// cut-over (the move's target nodes that are not replicas yet).
func (s *State) Incoming(v int) []routing.NodeID {
	t, ok := s.Moves[v]
	if !ok {
		return nil
	}
	var in []routing.NodeID
	for _, n := range t {
		if !s.Table.Vnodes[v].Has(n) {
			in = append(in, n)
		}
	}
	return in
}

// Ready reports whether node, an incoming node of v, has caught up.
func (s *State) Ready(v int, node routing.NodeID) bool {
	return !slices.Contains(s.Lagging[v], node)
}

// InSyncReplicas returns vnode v's in-sync replicas in replica-list order
// (the primary first).
func (s *State) InSyncReplicas(v int) []routing.NodeID {
	r := s.Table.Vnodes[v].Nodes
	lag := s.Lagging[v]
	if len(lag) == 0 {
		return r
	}
	out := make([]routing.NodeID, 0, len(r))
	for _, n := range r {
		if !slices.Contains(lag, n) {
			out = append(out, n)
		}
	}
	return out
}

// clone returns a copy deep enough for a command to edit: members,
// namespaces and lagging are copied; the table is cloned only by commands
// that change it (cloneTable).
func (s *State) clone() *State {
	c := *s
	c.Members = slices.Clone(s.Members)
	c.Namespaces = slices.Clone(s.Namespaces)
	if s.Lagging != nil {
		c.Lagging = make(map[int][]routing.NodeID, len(s.Lagging))
		for v, l := range s.Lagging {
			c.Lagging[v] = slices.Clone(l)
		}
	}
	if s.Moves != nil {
		c.Moves = make(map[int][]routing.NodeID, len(s.Moves))
		for v, l := range s.Moves {
			c.Moves[v] = slices.Clone(l)
		}
	}
	if s.Fenced != nil {
		c.Fenced = make(map[int]bool, len(s.Fenced))
		for v := range s.Fenced {
			c.Fenced[v] = true
		}
	}
	c.Options = maps.Clone(s.Options)
	c.Former = maps.Clone(s.Former)
	c.Lost = maps.Clone(s.Lost)
	c.Assigning = maps.Clone(s.Assigning)
	c.Requests = maps.Clone(s.Requests)
	return &c
}

func (s *State) cloneTable() {
	s.Table = s.Table.Clone()
	s.Table.Version++
}

func (s *State) setLagging(v int, lag []routing.NodeID) {
	if len(lag) == 0 {
		delete(s.Lagging, v)
		return
	}
	if s.Lagging == nil {
		s.Lagging = map[int][]routing.NodeID{}
	}
	slices.Sort(lag)
	s.Lagging[v] = lag
}

// validate checks the invariants the FSM keeps; restore and tests use it.
func (s *State) validate() error {
	if !slices.IsSortedFunc(s.Members, func(a, b Member) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	}) {
		return fmt.Errorf("%w: members not sorted", ErrBadCommand)
	}
	if s.Table == nil {
		return nil
	}
	if err := s.Table.Validate(); err != nil {
		return err
	}
	for v, target := range s.Moves {
		if v < 0 || v >= s.Table.VnodeCount() {
			return fmt.Errorf("%w: move of vnode %d out of range", ErrBadCommand, v)
		}
		if len(target) == 0 || len(target) > s.Table.Redundancy {
			return fmt.Errorf("%w: move of vnode %d to %d nodes", ErrBadCommand, v, len(target))
		}
		for _, n := range target {
			if _, ok := s.Table.Node(n); !ok {
				return fmt.Errorf("%w: move of vnode %d to unknown node %s", ErrBadCommand, v, n)
			}
		}
	}
	for v := range s.Fenced {
		if _, moving := s.Moves[v]; !moving {
			return fmt.Errorf("%w: vnode %d fenced without a move", ErrBadCommand, v)
		}
	}
	for v, lag := range s.Lagging {
		if v < 0 || v >= s.Table.VnodeCount() {
			return fmt.Errorf("%w: lagging vnode %d out of range", ErrBadCommand, v)
		}
		for _, n := range lag {
			if !s.Table.Vnodes[v].Has(n) && !slices.Contains(s.Moves[v], n) {
				return fmt.Errorf("%w: vnode %d lagging %s is not a replica", ErrBadCommand, v, n)
			}
		}
		if slices.Contains(lag, s.Table.Vnodes[v].Primary()) {
			return fmt.Errorf("%w: vnode %d primary %s marked lagging", ErrBadCommand, v, s.Table.Vnodes[v].Primary())
		}
	}
	return nil
}
