package routing

import (
	"fmt"
	"slices"
	"strings"
)

// Plan computes the target table for the live node set nodes, starting from
// current. It is pure and deterministic: the same current table and the same
// set of nodes (in any order) give the same target. It does not modify
// current. An empty Host in nodes means the id's address part.
//
// The target:
//
//   - holds exactly the given nodes (sorted by id) and current's settings;
//   - gives every vnode r = min(Redundancy, hosts) replicas on distinct
//     hosts (distinct nodes, with ReplicationInHost), where hosts is the
//     number of distinct hosts among nodes;
//   - is balanced at every position as Balanced documents: each node's
//     count at each position is within floor..ceil of its fair share, which
//     is V/N with no oversized host. A node's counts at its different
//     positions also differ by at most one;
//   - copies as few replicas as any such target could (see the package
//     comment), so surviving replicas stay where the balance allows;
//   - has Epoch = current's + 1 exactly for the vnodes whose primary differs
//     from current's, and Version = current's + 1 if anything differs (the
//     same Version when current is already the target, so Plan of its own
//     result changes nothing).
//
// The departed nodes are first removed as Promote does, so a vnode whose
// primary left is led by one of its survivors; the target keeps a survivor
// as its primary unless the balance cannot be met otherwise (then a mover
// copies the vnode to the new primary before the cut-over). The package
// comment describes the algorithm.
func Plan(current *Table, nodes []Node) (*Table, error) {
	p, err := newPlanner(current, nodes)
	if err != nil {
		return nil, err
	}
	p.fillAndBalanceTotals()
	p.minimizeCopies()
	p.balancePositions()
	return p.table(), nil
}

// Promote returns current with the departed nodes (those not in nodes)
// removed from every replica list, the survivors moved up in order, and the
// node set replaced by nodes. A vnode whose primary departed thus gets its
// first surviving replica as primary, with Epoch + 1; a vnode whose
// replicas all departed becomes lost. Replicas that now break host
// anti-affinity (a node's host changed) or exceed min(Redundancy, hosts)
// are dropped too, the later positions first. It moves no data, so the
// controller can commit it as soon as a node is declared gone; Plan starts
// from the same state.
func Promote(current *Table, nodes []Node) (*Table, error) {
	p, err := newPlanner(current, nodes)
	if err != nil {
		return nil, err
	}
	return p.table(), nil
}

// planner holds the working state of one Plan. Nodes are referred to by
// their index in l.nodes.
type planner struct {
	cur    *Table
	l      *layout
	r      int
	mem    [][]int // vnode -> node indexes, by position
	cnt    []int   // node -> replicas held
	pos    [][]int // node -> position -> vnodes held there
	target []int   // node -> wanted replica count
	// pinned marks the vnodes whose primary departed while another replica
	// survived; surv holds those survivors. Plan prefers them as primary.
	pinned []bool
	surv   [][]int
	// orig holds every vnode's replicas as Promote left them: the ones
	// that need no copy.
	orig [][]int
	// pair counts, for two nodes, the vnodes they share. The greedy fill
	// prefers vnodes whose members share few vnodes with the newcomer, so
	// that a node's vnodes have many different partners: when it fails,
	// its primaries are promoted on many nodes, not on one.
	pair [][]int
}

// normalizeNodes sorts a copy of nodes by id and fills empty hosts.
func normalizeNodes(nodes []Node) ([]Node, error) {
	ns := slices.Clone(nodes)
	for i := range ns {
		if ns[i].ID == "" {
			return nil, fmt.Errorf("%w: empty id", ErrBadNode)
		}
		if ns[i].Host == "" {
			ns[i].Host = ns[i].ID.Host()
		}
	}
	sortNodes(ns)
	for i := 1; i < len(ns); i++ {
		if ns[i].ID == ns[i-1].ID {
			return nil, fmt.Errorf("%w: %s", ErrDuplicateNode, ns[i].ID)
		}
	}
	if ns == nil {
		ns = []Node{}
	}
	return ns, nil
}

func sortNodes(ns []Node) {
	slices.SortStableFunc(ns, func(a, b Node) int { return strings.Compare(string(a.ID), string(b.ID)) })
}

func newPlanner(current *Table, nodes []Node) (*planner, error) {
	if err := ValidateDivBits(int(current.DivBits)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidTable, err)
	}
	if len(current.Vnodes) != VnodeCount(current.DivBits) || current.Redundancy < 1 {
		return nil, fmt.Errorf("%w: %d vnodes for div_bits %d, redundancy %d", ErrInvalidTable,
			len(current.Vnodes), current.DivBits, current.Redundancy)
	}
	ns, err := normalizeNodes(nodes)
	if err != nil {
		return nil, err
	}
	V := len(current.Vnodes)
	l := newLayout(ns, V, current.Redundancy, current.ReplicationInHost)
	p := &planner{
		cur: current, l: l, r: l.r,
		mem: make([][]int, V), cnt: make([]int, len(ns)), pos: make([][]int, len(ns)),
		pinned: make([]bool, V), surv: make([][]int, V), orig: make([][]int, V),
	}
	p.pair = make([][]int, len(ns))
	for i := range p.pos {
		p.pos[i] = make([]int, max(p.r, 1))
		p.pair[i] = make([]int, len(ns))
	}
	index := make(map[NodeID]int, len(ns))
	for i, n := range ns {
		index[n.ID] = i
	}
	seen := make([]bool, len(l.groups))
	for v, rep := range current.Vnodes {
		m := make([]int, 0, p.r)
		for _, id := range rep.Nodes {
			i, ok := index[id]
			if !ok || len(m) == p.r || seen[l.group[i]] {
				continue // departed, too many, or a second replica on a host
			}
			seen[l.group[i]] = true
			m = append(m, i)
		}
		for _, i := range m {
			seen[l.group[i]] = false
			p.add(v, len(p.mem[v]), i)
		}
		p.orig[v] = slices.Clone(p.mem[v])
		if _, alive := index[rep.Primary()]; len(rep.Nodes) > 0 && !alive && len(m) > 0 {
			p.pinned[v] = true
			p.surv[v] = slices.Clone(m)
		}
	}
	return p, nil
}

// add appends node i to vnode v at position k (k == len(mem[v])).
func (p *planner) add(v, k, i int) {
	p.pairs(v, i, 1)
	p.mem[v] = append(p.mem[v], i)
	p.cnt[i]++
	p.pos[i][k]++
}

// replace puts node i at position k of vnode v instead of its holder.
func (p *planner) replace(v, k, i int) {
	a := p.mem[v][k]
	p.pairs(v, a, -1)
	p.cnt[a]--
	p.pos[a][k]--
	p.mem[v][k] = i
	p.pairs(v, i, 1)
	p.cnt[i]++
	p.pos[i][k]++
}

// pairs adds d to the pair counts of node i with the other members of v.
func (p *planner) pairs(v, i, d int) {
	for _, b := range p.mem[v] {
		if b != i {
			p.pair[i][b] += d
			p.pair[b][i] += d
		}
	}
}

// pairScore is the number of vnodes node y would share with the members of
// v other than the one in slot skip (-1 for none).
func (p *planner) pairScore(v, y, skip int) int {
	s := 0
	for k, b := range p.mem[v] {
		if k != skip {
			s += p.pair[y][b]
		}
	}
	return s
}

// table returns the planner's state as a table relative to p.cur.
func (p *planner) table() *Table {
	t := &Table{
		Version: p.cur.Version, DivBits: p.cur.DivBits, Redundancy: p.cur.Redundancy,
		ReplicationInHost: p.cur.ReplicationInHost, Nodes: p.l.nodes,
		Vnodes: make([]Replicas, len(p.mem)),
	}
	for v, m := range p.mem {
		var ids []NodeID
		for _, i := range m {
			ids = append(ids, p.l.nodes[i].ID)
		}
		e := p.cur.Vnodes[v].Epoch
		if (Replicas{Nodes: ids}).Primary() != p.cur.Vnodes[v].Primary() {
			e++
		}
		t.Vnodes[v] = Replicas{Nodes: ids, Epoch: e}
	}
	if !t.Equal(p.cur) {
		t.Version++
	}
	return t
}

// isSurvivor reports whether node i may be the primary of vnode v: any node
// unless v is pinned, else one of its survivors.
func (p *planner) isSurvivor(v, i int) bool { return !p.pinned[v] || slices.Contains(p.surv[v], i) }

// fillAndBalanceTotals brings every node to its target replica count (step
// 3 of the package comment's algorithm).
func (p *planner) fillAndBalanceTotals() {
	p.target = p.l.targets(p.cnt)
	for progress := true; progress; {
		progress = false
		for x := range p.cnt {
			if p.cnt[x] < p.target[x] && (p.augment(x, true) || p.augment(x, false)) {
				progress = true
			}
		}
	}
}

// step is one link of an augmenting chain: node to takes the slot k of
// vnode v from its holder.
type step struct{ v, k, to int }

// candidate is a way to end an augmenting chain: node y fills a hole (slot
// k == len(mem[v])) or takes slot k of v from a node above its target.
type candidate struct {
	y, v, k int
	score   int // lower is better: how much it unbalances positions
	pairs   int // lower is better: vnodes y already shares with the others
	hole    bool
}

func (c candidate) better(o candidate) bool {
	if c.pairs != o.pairs {
		return c.pairs < o.pairs
	}
	if c.score != o.score {
		return c.score < o.score
	}
	if c.hole != o.hole {
		return c.hole
	}
	if c.v != o.v {
		return c.v < o.v
	}
	return c.k < o.k
}

// augment gives node x one more replica, along the shortest chain that ends
// at a hole or at a node above its target. With strict, no chain puts a
// non-survivor at the primary slot of a pinned vnode. It reports whether it
// found a chain.
func (p *planner) augment(x int, strict bool) bool {
	n := len(p.cnt)
	visited := make([]bool, n)
	parent := make([]step, n) // parent[a]: the step in which parent[a].to takes a's slot
	visited[x] = true
	frontier := []int{x}
	for len(frontier) > 0 {
		var best candidate
		found := false
		consider := func(c candidate) {
			if !found || c.better(best) {
				best, found = c, true
			}
		}
		// worse reports whether a candidate sharing pairs vnodes cannot
		// beat the best one, to skip scoring it.
		worse := func(pairs int) bool { return found && pairs > best.pairs }
		var next []int
		for _, y := range frontier {
			chain := p.chainVnodes(x, y, parent)
			gy := p.l.group[y]
			minY := slices.Min(p.pos[y][:p.r])
			for v, m := range p.mem {
				holder, in := -1, false
				for k, a := range m {
					if a == y {
						in = true
						break
					}
					if p.l.group[a] == gy {
						holder = k
					}
				}
				if in || slices.Contains(chain, v) {
					continue
				}
				if holder < 0 && len(m) < p.r {
					if ps := p.pairScore(v, y, -1); !worse(ps) {
						consider(candidate{y: y, v: v, k: len(m), score: p.pos[y][len(m)] - minY, pairs: ps, hole: true})
					}
				}
				for k, a := range m {
					if holder >= 0 && k != holder {
						continue // y's host is already there: y can only replace that node
					}
					if strict && k == 0 && !p.isSurvivor(v, y) {
						continue
					}
					if p.cnt[a] > p.target[a] {
						if ps := p.pairScore(v, y, k); !worse(ps) {
							score := p.pos[y][k] - minY + slices.Max(p.pos[a][:p.r]) - p.pos[a][k]
							consider(candidate{y: y, v: v, k: k, score: score, pairs: ps})
						}
					} else if !visited[a] {
						visited[a] = true
						parent[a] = step{v: v, k: k, to: y}
						next = append(next, a)
					}
				}
			}
		}
		if found {
			if best.hole {
				p.add(best.v, best.k, best.y)
			} else {
				p.replace(best.v, best.k, best.y)
			}
			for y := best.y; y != x; {
				s := parent[y]
				p.replace(s.v, s.k, s.to)
				y = s.to
			}
			return true
		}
		frontier = next
	}
	return false
}

// chainVnodes returns the vnodes of the chain from x to y, so that a chain
// never passes through one vnode twice.
func (p *planner) chainVnodes(x, y int, parent []step) []int {
	var vs []int
	for y != x {
		vs = append(vs, parent[y].v)
		y = parent[y].to
	}
	return vs
}
