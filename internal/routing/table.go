package routing

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Errors of the package. Check them with errors.Is: the returned errors wrap
// them with the details.
var (
	// ErrInvalidTable: a table breaks one of the rules Validate checks, or
	// its shape (vnode count, redundancy, div_bits) is unusable.
	ErrInvalidTable = errors.New("routing: invalid table")
	// ErrBadNode: a node has an empty id or host.
	ErrBadNode = errors.New("routing: bad node")
	// ErrDuplicateNode: the same node id is given twice.
	ErrDuplicateNode = errors.New("routing: duplicate node")
	// ErrUnknownNode: a replica list names a node the table does not hold.
	ErrUnknownNode = errors.New("routing: unknown node")
	// ErrBadVnode: a vnode number is out of range.
	ErrBadVnode = errors.New("routing: vnode out of range")
)

// DefaultRedundancy is the default length of a vnode's replica list.
const DefaultRedundancy = 2

// NodeID names a node: "host_port" of its client address, as in ROMA
// (for example "127.0.0.1_11211").
type NodeID string

// MakeNodeID returns the id of the node listening on host:port.
func MakeNodeID(host string, port int) NodeID { return NodeID(fmt.Sprintf("%s_%d", host, port)) }

// Host returns the address part of the id: the text before the last "_", or
// the whole id without one. It is the default anti-affinity group of a node.
func (id NodeID) Host() string {
	if i := strings.LastIndexByte(string(id), '_'); i >= 0 {
		return string(id[:i])
	}
	return string(id)
}

// Node is one member of the table.
type Node struct {
	ID NodeID `json:"id"`
	// Host is the node's anti-affinity group: two replicas of a vnode never
	// share a Host unless the table allows replication in host. It is
	// normally ID.Host(), the address part of the id.
	Host string `json:"host"`
}

// NodeFromID returns the node with the given id and the default host.
func NodeFromID(id NodeID) Node { return Node{ID: id, Host: id.Host()} }

// Replicas is the ordered replica list of one vnode: Nodes[0] is the primary,
// Nodes[1] secondary1, and so on.
type Replicas struct {
	Nodes []NodeID `json:"nodes"`
	// Epoch rises by one on every change of the primary (Nodes[0]), including
	// a change from or to no primary at all.
	Epoch uint64 `json:"epoch"`
}

// Primary returns Nodes[0], or "" for a lost vnode.
func (r Replicas) Primary() NodeID {
	if len(r.Nodes) == 0 {
		return ""
	}
	return r.Nodes[0]
}

// Has reports whether id is one of the replicas.
func (r Replicas) Has(id NodeID) bool { return slices.Contains(r.Nodes, id) }

// Table is the routing table: the node set and every vnode's replica list.
// It is plain data; the meta FSM holds the committed one, and the planner
// computes new ones from it. Methods never modify the receiver except where
// stated; Clone before editing a shared table.
//
// Its JSON form (encoding/json on the struct, see Encode) is what Raft
// stores. MarshalRoutingDump gives ROMA's routingdump json shape instead.
type Table struct {
	// Version rises by one with every committed change of the table.
	Version uint64 `json:"version"`
	// DivBits gives 2^DivBits vnodes; see Vnode.
	DivBits uint `json:"div_bits"`
	// Redundancy is the wanted length of every replica list.
	Redundancy int `json:"redundancy"`
	// ReplicationInHost lets replicas of a vnode share a Host (ROMA's
	// --replication_in_host); they still sit on distinct nodes.
	ReplicationInHost bool `json:"replication_in_host,omitempty"`
	// Nodes is sorted by ID.
	Nodes []Node `json:"nodes"`
	// Vnodes has 2^DivBits entries, indexed by vnode number.
	Vnodes []Replicas `json:"vnodes"`
}

// NewTable returns a table of 2^divBits vnodes without nodes or replicas,
// at version 0.
func NewTable(divBits uint, redundancy int, replicationInHost bool) (*Table, error) {
	if err := ValidateDivBits(int(divBits)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidTable, err)
	}
	if redundancy < 1 {
		return nil, fmt.Errorf("%w: redundancy %d < 1", ErrInvalidTable, redundancy)
	}
	return &Table{
		DivBits:           divBits,
		Redundancy:        redundancy,
		ReplicationInHost: replicationInHost,
		Nodes:             []Node{},
		Vnodes:            make([]Replicas, VnodeCount(divBits)),
	}, nil
}

// VnodeCount returns the number of vnodes, len(t.Vnodes).
func (t *Table) VnodeCount() int { return len(t.Vnodes) }

// Replicas returns the replica list of vnode v. The caller must not modify
// the returned slice. It panics if v is out of range.
func (t *Table) Replicas(v int) Replicas { return t.Vnodes[v] }

// Primary returns the primary of vnode v, or "" when it has no replica.
func (t *Table) Primary(v int) NodeID { return t.Vnodes[v].Primary() }

// Lookup maps key to its vnode and that vnode's replica list.
func (t *Table) Lookup(key []byte) (int, Replicas) {
	v := int(Vnode(key, t.DivBits))
	return v, t.Vnodes[v]
}

// Node returns the node with the given id.
func (t *Table) Node(id NodeID) (Node, bool) {
	i, ok := slices.BinarySearchFunc(t.Nodes, id, func(n Node, id NodeID) int { return strings.Compare(string(n.ID), string(id)) })
	if !ok {
		return Node{}, false
	}
	return t.Nodes[i], true
}

// NodeIDs returns the ids of the nodes, sorted.
func (t *Table) NodeIDs() []NodeID {
	ids := make([]NodeID, len(t.Nodes))
	for i, n := range t.Nodes {
		ids[i] = n.ID
	}
	return ids
}

// Counts returns how many vnodes have node id at each position: index 0 is
// the primary count, index i the secondary-i count (ROMA's routing.primary,
// routing.secondary1..N). The slice has Redundancy entries.
func (t *Table) Counts(id NodeID) []int {
	c := make([]int, t.Redundancy)
	for _, r := range t.Vnodes {
		for p, n := range r.Nodes {
			if n == id && p < len(c) {
				c[p]++
			}
		}
	}
	return c
}

// ShortVnodes returns the vnodes that have at least one replica but fewer
// than Redundancy, in order (ROMA's routing.short_vnodes is its length).
// While there are fewer hosts than the redundancy every vnode is short.
func (t *Table) ShortVnodes() []int {
	var vs []int
	for v, r := range t.Vnodes {
		if n := len(r.Nodes); n > 0 && n < t.Redundancy {
			vs = append(vs, v)
		}
	}
	return vs
}

// LostVnodes returns the vnodes without any replica, in order (ROMA's
// routing.lost_vnodes is its length).
func (t *Table) LostVnodes() []int {
	var vs []int
	for v, r := range t.Vnodes {
		if len(r.Nodes) == 0 {
			vs = append(vs, v)
		}
	}
	return vs
}

// Clone returns a deep copy of t.
func (t *Table) Clone() *Table {
	c := *t
	c.Nodes = slices.Clone(t.Nodes)
	if c.Nodes == nil {
		c.Nodes = []Node{}
	}
	c.Vnodes = make([]Replicas, len(t.Vnodes))
	for v, r := range t.Vnodes {
		c.Vnodes[v] = Replicas{Nodes: slices.Clone(r.Nodes), Epoch: r.Epoch}
	}
	return &c
}

// Equal reports whether t and o hold the same settings, nodes and replica
// lists with the same epochs. Versions are not compared, and a nil slice
// equals an empty one.
func (t *Table) Equal(o *Table) bool {
	if t.DivBits != o.DivBits || t.Redundancy != o.Redundancy || t.ReplicationInHost != o.ReplicationInHost ||
		!slices.Equal(t.Nodes, o.Nodes) || len(t.Vnodes) != len(o.Vnodes) {
		return false
	}
	for v := range t.Vnodes {
		if t.Vnodes[v].Epoch != o.Vnodes[v].Epoch || !slices.Equal(t.Vnodes[v].Nodes, o.Vnodes[v].Nodes) {
			return false
		}
	}
	return true
}

// group returns n's anti-affinity group in a table with the given setting.
func group(n Node, replicationInHost bool) string {
	if replicationInHost {
		return string(n.ID)
	}
	return n.Host
}

// maxProblems bounds the problems Validate lists one by one.
const maxProblems = 10

// Validate checks the shape and the replica lists: div_bits in range, the
// vnode count 2^DivBits, Redundancy >= 1, nodes with an id and a host,
// sorted and unique; and for every vnode at most Redundancy replicas, all
// distinct, all nodes of the table, on distinct hosts unless
// ReplicationInHost. It reports every problem (the first few in detail),
// each wrapping ErrInvalidTable, ErrBadNode, ErrDuplicateNode or
// ErrUnknownNode. Short and lost vnodes are valid.
func (t *Table) Validate() error {
	var errs []error
	more := 0
	add := func(err error) {
		if len(errs) < maxProblems {
			errs = append(errs, err)
		} else {
			more++
		}
	}
	if err := ValidateDivBits(int(t.DivBits)); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidTable, err)
	}
	if t.Redundancy < 1 {
		add(fmt.Errorf("%w: redundancy %d < 1", ErrInvalidTable, t.Redundancy))
	}
	if len(t.Vnodes) != VnodeCount(t.DivBits) {
		add(fmt.Errorf("%w: %d vnodes, want %d for div_bits %d", ErrInvalidTable, len(t.Vnodes), VnodeCount(t.DivBits), t.DivBits))
	}
	for i, n := range t.Nodes {
		switch {
		case n.ID == "" || n.Host == "":
			add(fmt.Errorf("%w: node %d has id %q and host %q", ErrBadNode, i, n.ID, n.Host))
		case i > 0 && n.ID == t.Nodes[i-1].ID:
			add(fmt.Errorf("%w: %s", ErrDuplicateNode, n.ID))
		case i > 0 && n.ID < t.Nodes[i-1].ID:
			add(fmt.Errorf("%w: nodes not sorted at %s", ErrInvalidTable, n.ID))
		}
	}
	for v, r := range t.Vnodes {
		if len(r.Nodes) > t.Redundancy {
			add(fmt.Errorf("%w: vnode %d has %d replicas, redundancy %d", ErrInvalidTable, v, len(r.Nodes), t.Redundancy))
		}
		for i, id := range r.Nodes {
			n, ok := t.Node(id)
			if !ok {
				add(fmt.Errorf("%w: vnode %d replica %q", ErrUnknownNode, v, id))
				continue
			}
			for _, prev := range r.Nodes[:i] {
				if prev == id {
					add(fmt.Errorf("%w: vnode %d holds %s twice", ErrInvalidTable, v, id))
				} else if pn, ok := t.Node(prev); ok && !t.ReplicationInHost && pn.Host == n.Host {
					add(fmt.Errorf("%w: vnode %d has %s and %s on host %s", ErrInvalidTable, v, prev, id, n.Host))
				}
			}
		}
	}
	if more > 0 {
		errs = append(errs, fmt.Errorf("%w: and %d more problems", ErrInvalidTable, more))
	}
	return errors.Join(errs...)
}

// Encode returns the table's JSON form, the one Raft stores.
func (t *Table) Encode() ([]byte, error) { return json.Marshal(t) }

// DecodeTable parses Encode's output and validates it.
func DecodeTable(b []byte) (*Table, error) {
	var t Table
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidTable, err)
	}
	if t.Nodes == nil {
		t.Nodes = []Node{}
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}
