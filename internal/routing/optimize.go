package routing

// This file holds the last stage of the membership planning: after the
// greedy fill (fillAndBalanceTotals) every node holds its target count, but
// the greedy choices may copy more replicas than needed. minimizeCopies
// makes the result optimal by cycle cancelling, the classical min-cost flow
// method.
//
// The placement is a flow: each node sends its target count of units, one
// per vnode it holds, through (vnode, host) pairs of capacity one (host
// anti-affinity) to the vnodes, each of which takes r. A unit on (node n,
// vnode v) costs 1 when n did not hold v before planning (a copy), else 0.
// A placement copies as little as possible exactly when its residual graph
// has no negative cycle. Compressed to nodes and vnodes, the residual edges
// are:
//
//	join     x -> v  x is not in v and no node of x's host is: cost [x new in v]
//	leave    v -> a  a leaves v:                                 cost -[a new in v]
//	replace  x -> a  x takes a's place in v, a on x's host:       cost [x new in v] - [a new in v]
//	drop     a -> S  a may hold one less (above floor(x_a)):       cost 0
//	add      S -> b  b may hold one more (below ceil(x_b)):        cost 0
//
// A cycle is a sequence of nodes each taking one vnode from the next, so
// every vnode keeps its size; every node keeps its count too, except that
// a cycle through S moves one unit of count from a node to another within
// their fair-share ranges. So the optimum is over every balanced target,
// not only over the rounding fillAndBalanceTotals started from. A negative
// cycle saves copies. Bellman-Ford finds one (a cycle in its predecessor graph is
// negative); applying it lowers the cost by at least one, so the loop ends.

// edge is a predecessor edge of the residual graph. Vertices are node
// indexes, then vnode v as len(p.cnt)+v.
type edge struct {
	from int // vertex
	v, k int // the vnode and the position whose holder leaves or is replaced
	kind byte
}

const (
	edgeJoin byte = iota + 1
	edgeLeave
	edgeReplace
	edgeDrop
	edgeAdd
)

// isNew reports whether node i did not hold vnode v before planning.
func (p *planner) isNew(v, i int) int {
	for _, o := range p.orig[v] {
		if o == i {
			return 0
		}
	}
	return 1
}

// frozen reports whether the holder of slot k of vnode v must stay: the
// surviving primary of a pinned vnode.
func (p *planner) frozen(v, k int) bool { return k == 0 && p.pinned[v] }

// minimizeCopies cancels negative cycles until there is none.
func (p *planner) minimizeCopies() {
	for p.cancelCycle() {
	}
}

// cancelCycle runs Bellman-Ford from a virtual source joined to every
// vertex at cost 0; if a negative cycle shows up it applies it and reports
// true.
func (p *planner) cancelCycle() bool {
	n, V := len(p.cnt), len(p.mem)
	S := n + V
	dist := make([]int, n+V+1)
	pred := make([]edge, n+V+1)
	for range n + V + 1 {
		changed := false
		relax := func(to, d int, e edge) {
			if d < dist[to] {
				dist[to] = d
				pred[to] = e
				changed = true
			}
		}
		for x := range n {
			gx := p.l.group[x]
			for v, m := range p.mem {
				holder := -1
				in := false
				for k, a := range m {
					if a == x {
						in = true
						break
					}
					if p.l.group[a] == gx {
						holder = k
					}
				}
				if in {
					continue
				}
				cx := p.isNew(v, x)
				if holder < 0 {
					relax(n+v, dist[x]+cx, edge{from: x, v: v, k: -1, kind: edgeJoin})
				} else if !p.frozen(v, holder) {
					a := m[holder]
					relax(a, dist[x]+cx-p.isNew(v, a), edge{from: x, v: v, k: holder, kind: edgeReplace})
				}
			}
		}
		for v, m := range p.mem {
			for k, a := range m {
				if !p.frozen(v, k) {
					relax(a, dist[n+v]-p.isNew(v, a), edge{from: n + v, v: v, k: k, kind: edgeLeave})
				}
			}
		}
		for a := range n {
			if x := p.l.x[a]; p.cnt[a] > x.floor() {
				relax(S, dist[a], edge{from: a, kind: edgeDrop})
			}
			if x := p.l.x[a]; p.cnt[a] < x.ceil() {
				relax(a, dist[S], edge{from: S, kind: edgeAdd})
			}
		}
		if !changed {
			return false
		}
		if cyc := predCycle(pred); cyc != nil {
			p.applyCycle(cyc, pred)
			return true
		}
	}
	return false
}

// predCycle returns the vertices of a cycle of the predecessor graph, or
// nil. Vertices without a predecessor have kind 0.
func predCycle(pred []edge) []int {
	state := make([]byte, len(pred)) // 0 unseen, 1 on the current walk, 2 done
	for s := range pred {
		if state[s] != 0 {
			continue
		}
		var walk []int
		u := s
		for u >= 0 && state[u] == 0 {
			state[u] = 1
			walk = append(walk, u)
			if pred[u].kind == 0 {
				u = -1
			} else {
				u = pred[u].from
			}
		}
		if u >= 0 && state[u] == 1 {
			for i, w := range walk {
				if w == u {
					return walk[i:]
				}
			}
		}
		for _, w := range walk {
			state[w] = 2
		}
	}
	return nil
}

// applyCycle applies the moves of a cycle: every replace edge, and every
// leave edge together with the join edge into its vnode, puts the edge's
// source node in the place of the leaving one.
func (p *planner) applyCycle(cyc []int, pred []edge) {
	type change struct{ v, k, to int }
	var cs []change
	for _, u := range cyc {
		switch e := pred[u]; e.kind {
		case edgeReplace:
			cs = append(cs, change{e.v, e.k, e.from})
		case edgeLeave:
			cs = append(cs, change{e.v, e.k, pred[e.from].from})
		}
	}
	for _, c := range cs {
		p.replace(c.v, c.k, c.to)
	}
}
