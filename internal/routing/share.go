package routing

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Range is an inclusive range of counts.
type Range struct{ Lo, Hi int }

// Contains reports whether Lo <= n <= Hi.
func (r Range) Contains(n int) bool { return r.Lo <= n && n <= r.Hi }

func (r Range) String() string {
	if r.Lo == r.Hi {
		return fmt.Sprint(r.Lo)
	}
	return fmt.Sprintf("%d..%d", r.Lo, r.Hi)
}

// ratio is a non-negative rational number num/den, den > 0.
type ratio struct{ num, den int64 }

func (q ratio) floor() int { return int(q.num / q.den) }
func (q ratio) ceil() int  { return int((q.num + q.den - 1) / q.den) }
func (q ratio) rng() Range { return Range{q.floor(), q.ceil()} }
func (q ratio) div(k int) ratio {
	if k == 0 {
		return ratio{0, 1}
	}
	return ratio{q.num, q.den * int64(k)}
}

func (q ratio) String() string {
	if q.num%q.den == 0 {
		return fmt.Sprint(q.num / q.den)
	}
	return fmt.Sprintf("%.2f", float64(q.num)/float64(q.den))
}

// Share is a node's fair share of the replicas of a table; see FairShares.
type Share struct {
	Node NodeID
	// Total is the range the node's replica count (all positions) must fall
	// in: the floor and ceiling of its fair share x.
	Total Range
	// PerPosition is the range each of its position counts (primary,
	// secondary1, ...) must fall in: the floor and ceiling of x / r.
	PerPosition Range
	// Exact is x as text ("341.33"), for reports.
	Exact string
}

// layout is the placement problem a node set poses: r replicas per vnode on
// distinct groups, and each node's fair share of the r*V replicas.
type layout struct {
	v, r   int
	nodes  []Node  // sorted by ID
	group  []int   // node index -> group index
	groups [][]int // group index -> node indexes (ascending); groups sorted by name
	x      []ratio // node index -> fair share of replicas, all positions
}

// newLayout computes the fair shares of nodes (sorted, unique) for vnodes
// vnodes and redundancy R.
//
// The anti-affinity groups are the hosts, or the nodes themselves with
// replicationInHost. A vnode has r = min(R, groups) replicas on distinct
// groups, so a group can hold at most one replica of each vnode: at most V
// of the r*V replicas. The fair share is the water-filling one: an even
// share s of the r*V replicas per node, except that a group whose nodes
// would together get more than V (k*s > V, k its node count) is capped at
// exactly V, split evenly among its nodes, and s is recomputed over the
// other nodes, largest groups first, until no group exceeds V. This is the
// most even allocation the cap allows (it maximises the smallest share,
// then the next, and so on), and when no host holds more than N/r of the N
// nodes it is s = r*V/N for everyone.
func newLayout(nodes []Node, vnodes, redundancy int, replicationInHost bool) *layout {
	l := &layout{v: vnodes, nodes: nodes, group: make([]int, len(nodes)), x: make([]ratio, len(nodes))}
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = group(n, replicationInHost)
	}
	uniq := slices.Clone(names)
	slices.Sort(uniq)
	uniq = slices.Compact(uniq)
	l.groups = make([][]int, len(uniq))
	for i, name := range names {
		g, _ := slices.BinarySearch(uniq, name)
		l.group[i] = g
		l.groups[g] = append(l.groups[g], i)
	}
	l.r = min(redundancy, len(uniq))
	if len(nodes) == 0 {
		return l
	}
	// Groups by size, largest first (ties by name): the capping order.
	order := make([]int, len(l.groups))
	for g := range order {
		order[g] = g
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(len(l.groups[b]), len(l.groups[a])) })
	V := int64(vnodes)
	total, rest := int64(l.r)*V, int64(len(nodes)) // replicas and nodes not yet in a capped group
	capped := 0
	for capped < len(order) {
		k := int64(len(l.groups[order[capped]]))
		if k*total <= V*rest { // k * (total/rest) <= V: no cap needed
			break
		}
		total -= V
		rest -= k
		capped++
	}
	for j, g := range order {
		for _, i := range l.groups[g] {
			if j < capped {
				l.x[i] = ratio{V, int64(len(l.groups[g]))}
			} else {
				l.x[i] = ratio{total, rest}
			}
		}
	}
	return l
}

// targets rounds the fair shares to whole replica counts: every node gets
// the floor or the ceiling of its share, the counts add up to r*V, and no
// group gets more than V. Among the nodes with a fractional share, the
// ceilings go first to the nodes that already hold at least the ceiling
// (each saves a copy), then to the ones holding the most, then by id. A
// balanced table thus keeps its counts.
func (l *layout) targets(held []int) []int {
	m := make([]int, len(l.nodes))
	sum := 0
	room := make([]int, len(l.groups)) // how many more replicas each group may take
	for g := range room {
		room[g] = l.v
	}
	var frac []int
	for i, x := range l.x {
		m[i] = x.floor()
		sum += m[i]
		room[l.group[i]] -= m[i]
		if x.ceil() > m[i] {
			frac = append(frac, i)
		}
	}
	// A ceiling saves a copy only for a node that already holds that many.
	atCeil := func(i int) bool { return held[i] >= l.x[i].ceil() }
	slices.SortStableFunc(frac, func(a, b int) int {
		if atCeil(a) != atCeil(b) {
			if atCeil(a) {
				return -1
			}
			return 1
		}
		return cmp.Compare(held[b], held[a])
	})
	extra := l.r*l.v - sum
	for _, i := range frac {
		if extra == 0 {
			break
		}
		if g := l.group[i]; room[g] > 0 {
			m[i]++
			room[g]--
			extra--
		}
	}
	return m
}

// shares returns the Share of every node.
func (l *layout) shares() []Share {
	s := make([]Share, len(l.nodes))
	for i, n := range l.nodes {
		s[i] = Share{Node: n.ID, Total: l.x[i].rng(), PerPosition: l.x[i].div(l.r).rng(), Exact: l.x[i].String()}
	}
	return s
}

// FairShares returns every node's fair share of t's replicas, in node
// order; see Balanced for what they mean.
func (t *Table) FairShares() []Share {
	return newLayout(t.Nodes, len(t.Vnodes), t.Redundancy, t.ReplicationInHost).shares()
}

// Balanced checks the balance guarantee of Plan on t. With N nodes in G
// anti-affinity groups (hosts, or nodes with ReplicationInHost), V vnodes,
// r = min(Redundancy, G) and x the fair share of a node (see FairShares;
// x = r*V/N unless a host holds more than N/r of the nodes):
//
//   - every vnode has exactly r replicas;
//   - every node holds between floor(x) and ceil(x) replicas in all;
//   - at every position (primary, secondary1, ...) every node holds
//     between floor(x/r) and ceil(x/r) vnodes; with no oversized host that
//     is floor(V/N)..ceil(V/N), the even share within one.
//
// The report names every violation, or summarises the shares when ok.
func Balanced(t *Table) (ok bool, report string) {
	l := newLayout(t.Nodes, len(t.Vnodes), t.Redundancy, t.ReplicationInHost)
	var bad []string
	wrong := 0
	for _, rep := range t.Vnodes {
		if len(rep.Nodes) != l.r {
			wrong++
		}
	}
	if wrong > 0 {
		bad = append(bad, fmt.Sprintf("%d vnodes do not have %d replicas", wrong, l.r))
	}
	counts := make(map[NodeID][]int, len(t.Nodes))
	for _, n := range t.Nodes {
		counts[n.ID] = make([]int, max(l.r, 1))
	}
	for _, rep := range t.Vnodes {
		for p, id := range rep.Nodes {
			if c := counts[id]; c != nil && p < len(c) {
				c[p]++
			}
		}
	}
	shares := l.shares()
	for _, s := range shares {
		c := counts[s.Node]
		total := 0
		for _, n := range c {
			total += n
		}
		if !s.Total.Contains(total) {
			bad = append(bad, fmt.Sprintf("%s holds %d replicas, share %s (%s)", s.Node, total, s.Exact, s.Total))
		}
		for p := 0; p < l.r; p++ {
			if !s.PerPosition.Contains(c[p]) {
				bad = append(bad, fmt.Sprintf("%s is %s of %d vnodes, want %s", s.Node, PositionName(p), c[p], s.PerPosition))
			}
		}
	}
	if len(bad) > 0 {
		return false, strings.Join(bad, "\n")
	}
	if len(shares) == 0 {
		return true, "balanced: no nodes"
	}
	// Summarise the distinct shares: "balanced: r=2; a_1 b_1: 341..342 (170..171 per position)".
	var parts []string
	for i := 0; i < len(shares); {
		j := i
		var ids []string
		for ; j < len(shares) && shares[j].Total == shares[i].Total && shares[j].PerPosition == shares[i].PerPosition; j++ {
			ids = append(ids, string(shares[j].Node))
		}
		parts = append(parts, fmt.Sprintf("%s: %s (%s per position)", strings.Join(ids, " "), shares[i].Total, shares[i].PerPosition))
		i = j
	}
	return true, fmt.Sprintf("balanced: r=%d; %s", l.r, strings.Join(parts, "; "))
}

// PositionName returns ROMA's name of position p: "primary", "secondary1", ...
func PositionName(p int) string {
	if p == 0 {
		return "primary"
	}
	return fmt.Sprintf("secondary%d", p)
}
