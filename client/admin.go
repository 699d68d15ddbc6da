package client

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// MaxDivBits bounds a routing table at 2^16 vnodes, as the server does.
const MaxDivBits = 16

// Vnode returns the vnode of key in a table of 2^divBits vnodes: the top
// divBits bits of the key's xxhash64, as the server computes it. A ROMA
// namespace suffix ("key\x1bns") is not part of the hashed key: the server
// hashes the key before its first ESC byte. divBits must be in
// 1..MaxDivBits.
func Vnode(key string, divBits uint) int {
	if i := strings.IndexByte(key, 0x1b); i >= 0 {
		key = key[:i]
	}
	return int(xxhash.Sum64String(key) >> (64 - divBits))
}

// RoutingTable is a node's answer to `routingdump sonae`: the committed
// routing table. Vnodes[v].Nodes[0] is vnode v's primary, Nodes[1] its
// secondary1, and so on. Treat a table as read-only once shared.
type RoutingTable struct {
	// Version rises with every committed change of the table.
	Version uint64 `json:"version"`
	// DivBits gives 2^DivBits vnodes.
	DivBits uint `json:"div_bits"`
	// Redundancy is the wanted length of every replica list.
	Redundancy int `json:"redundancy"`
	// ReplicationInHost lets replicas of a vnode share a host.
	ReplicationInHost bool `json:"replication_in_host"`
	// Nodes are the table's members. Host is the node's anti-affinity group
	// (normally the id's address part), not an address to dial: a node is
	// dialled at its id, "host_port" -> "host:port".
	Nodes []RoutingNode `json:"nodes"`
	// Vnodes has 2^DivBits entries, indexed by vnode number.
	Vnodes []VnodeReplicas `json:"vnodes"`
	// Members are the cluster's members, those failed over included.
	Members []RoutingMember `json:"members,omitempty"`
}

// RoutingMember is one member as the metadata knows it.
type RoutingMember struct {
	ID       string `json:"id"`
	Addr     string `json:"addr"`
	Voter    bool   `json:"voter"`
	Failed   bool   `json:"failed,omitempty"`
	Draining bool   `json:"draining,omitempty"`
}

// RoutingNode is one member of a RoutingTable.
type RoutingNode struct {
	ID   string `json:"id"`
	Host string `json:"host"`
}

// VnodeReplicas is one vnode's ordered replica list.
type VnodeReplicas struct {
	// Nodes are node ids, primary first; empty for a lost vnode.
	Nodes []string `json:"nodes"`
	// Epoch rises with every change of the primary.
	Epoch uint64 `json:"epoch"`
	// Lagging are replicas still catching up: they do not serve reads yet.
	Lagging []string `json:"lagging,omitempty"`
}

// ParseRoutingTable decodes and checks a `routingdump sonae` line. Errors
// match ErrBadTable.
func ParseRoutingTable(b []byte) (*RoutingTable, error) {
	var t RoutingTable
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTable, err)
	}
	if t.DivBits < 1 || t.DivBits > MaxDivBits {
		return nil, fmt.Errorf("%w: div_bits %d outside 1..%d", ErrBadTable, t.DivBits, MaxDivBits)
	}
	if len(t.Vnodes) != 1<<t.DivBits {
		return nil, fmt.Errorf("%w: %d vnodes, want 2^%d", ErrBadTable, len(t.Vnodes), t.DivBits)
	}
	ids := make(map[string]bool, len(t.Nodes))
	for _, n := range t.Nodes {
		if n.ID == "" || ids[n.ID] {
			return nil, fmt.Errorf("%w: node id %q empty or repeated", ErrBadTable, n.ID)
		}
		ids[n.ID] = true
	}
	for v, r := range t.Vnodes {
		for _, id := range r.Nodes {
			if !ids[id] {
				return nil, fmt.Errorf("%w: vnode %d names unknown node %q", ErrBadTable, v, id)
			}
		}
	}
	return &t, nil
}

// Vnode returns the vnode of key in t.
func (t *RoutingTable) Vnode(key string) int { return Vnode(key, t.DivBits) }

// Primary returns the primary of vnode v, or "" for a lost vnode.
func (t *RoutingTable) Primary(v int) string {
	if ns := t.Vnodes[v].Nodes; len(ns) > 0 {
		return ns[0]
	}
	return ""
}

// Counts returns how many vnodes have node id at each position of their
// replica list: index 0 counts primaries, index i secondary-i. The slice
// has max(Redundancy, longest replica list) entries.
func (t *RoutingTable) Counts(id string) []int {
	n := t.Redundancy
	for _, r := range t.Vnodes {
		n = max(n, len(r.Nodes))
	}
	c := make([]int, n)
	for _, r := range t.Vnodes {
		for p, nid := range r.Nodes {
			if nid == id {
				c[p]++
			}
		}
	}
	return c
}

// RoutingDump sends `routingdump sonae` and returns the JSON line as the
// node sent it.
func (c *Conn) RoutingDump() ([]byte, error) {
	lines, err := c.Lines("routingdump sonae")
	if err != nil {
		return nil, err
	}
	if len(lines) != 1 {
		return nil, fmt.Errorf("%w: routingdump sonae answered %d lines, want 1", ErrProtocol, len(lines))
	}
	return []byte(lines[0]), nil
}

// RoutingTable fetches and parses the node's routing table.
func (c *Conn) RoutingTable() (*RoutingTable, error) {
	b, err := c.RoutingDump()
	if err != nil {
		return nil, err
	}
	return ParseRoutingTable(b)
}

// Member is one line of the members command: a serf member.
type Member struct {
	Name string `json:"name"`
	// Addr is the member's host:port.
	Addr string `json:"addr"`
	// Status is alive, failed, left or leaving.
	Status string            `json:"status"`
	Tags   map[string]string `json:"tags"`
}

// Members sends `members` and parses the MEMBER lines.
func (c *Conn) Members() ([]Member, error) {
	lines, err := c.Lines("members")
	if err != nil {
		return nil, err
	}
	out := make([]Member, 0, len(lines))
	for _, l := range lines {
		m, err := parseMember(l)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// parseMember reads "MEMBER <name> <host:port> <status> [<k=v,k=v>]". The
// tags field may be missing or empty.
func parseMember(line string) (Member, error) {
	f := strings.Fields(line)
	if len(f) < 4 || len(f) > 5 || f[0] != "MEMBER" {
		return Member{}, fmt.Errorf("%w: members answered %q", ErrProtocol, line)
	}
	m := Member{Name: f[1], Addr: f[2], Status: f[3], Tags: map[string]string{}}
	if len(f) == 5 {
		for kv := range strings.SplitSeq(f[4], ",") {
			if kv == "" {
				continue
			}
			k, v, _ := strings.Cut(kv, "=")
			m.Tags[k] = v
		}
	}
	return m, nil
}

// KeyInfo is the answer to get_key_info: where a key lives.
type KeyInfo struct {
	Key   string `json:"key"`
	Vnode int    `json:"vnode"`
	Epoch uint64 `json:"epoch"`
	// Primary is the node id of the primary ("" for a lost vnode).
	Primary string `json:"primary"`
	// Secondaries are secondary1, secondary2, ... in order.
	Secondaries []string `json:"secondaries"`
	// InSync are the replicas that hold every acknowledged write.
	InSync []string `json:"in_sync"`
}

// KeyInfo sends `get_key_info KEY`. Lines the client does not know are
// ignored.
func (c *Conn) KeyInfo(key string) (KeyInfo, error) {
	if err := checkKey(key); err != nil {
		return KeyInfo{}, err
	}
	lines, err := c.Lines("get_key_info " + key)
	if err != nil {
		return KeyInfo{}, err
	}
	ki := KeyInfo{Key: key, Secondaries: []string{}, InSync: []string{}}
	seen := false
	for _, l := range lines {
		name, value, _ := strings.Cut(l, " ")
		value = strings.TrimSpace(value)
		switch {
		case name == "vnode":
			if ki.Vnode, err = strconv.Atoi(value); err != nil {
				return KeyInfo{}, fmt.Errorf("%w: get_key_info answered %q", ErrProtocol, l)
			}
			seen = true
		case name == "epoch":
			if ki.Epoch, err = strconv.ParseUint(value, 10, 64); err != nil {
				return KeyInfo{}, fmt.Errorf("%w: get_key_info answered %q", ErrProtocol, l)
			}
		case name == "primary":
			ki.Primary = value
		case strings.HasPrefix(name, "secondary"):
			i, err := strconv.Atoi(name[len("secondary"):])
			if err != nil || i < 1 {
				continue
			}
			for len(ki.Secondaries) < i {
				ki.Secondaries = append(ki.Secondaries, "")
			}
			ki.Secondaries[i-1] = value
		case name == "in_sync":
			for id := range strings.SplitSeq(value, ",") {
				if id = strings.TrimSpace(id); id != "" {
					ki.InSync = append(ki.InSync, id)
				}
			}
		}
	}
	if !seen {
		return KeyInfo{}, fmt.Errorf("%w: get_key_info answered no vnode line: %q", ErrProtocol, lines)
	}
	return ki, nil
}
