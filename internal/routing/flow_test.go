package routing

// minCopies returns the least number of replicas that must be copied to go
// from the table from to any valid table with the same nodes and replica
// count per vnode as to whose per-node totals are within their fair-share
// ranges (FairShares). It solves the placement exactly as a min-cost flow:
// source -> node (capacity: the range; its lower end forced by a large
// negative cost) ->
// (vnode, host) (capacity 1; cost 0 if the node holds the vnode in from,
// else 1) -> vnode (capacity: replicas per vnode) -> sink. It is a test
// oracle for small tables only.
func minCopies(from, to *Table) int {
	nodes := to.Nodes
	hostIdx := map[string]int{}
	for _, n := range nodes {
		g := group(n, to.ReplicationInHost)
		if _, ok := hostIdx[g]; !ok {
			hostIdx[g] = len(hostIdx)
		}
	}
	V, H, N := len(to.Vnodes), len(hostIdx), len(nodes)
	r := 0
	for _, rep := range to.Vnodes {
		r = max(r, len(rep.Nodes))
	}
	// Vertices: 0 source, 1 sink, nodes, (vnode, host) pairs, vnodes.
	src, snk := 0, 1
	nodeV := func(i int) int { return 2 + i }
	pairV := func(v, h int) int { return 2 + N + v*H + h }
	vnodeV := func(v int) int { return 2 + N + V*H + v }
	f := newFlow(2 + N + V*H + V)
	const force = 1 << 20
	forced := 0
	shares := to.FairShares()
	for i, n := range nodes {
		rng := shares[i].Total
		f.edge(src, nodeV(i), rng.Lo, -force)
		f.edge(src, nodeV(i), rng.Hi-rng.Lo, 0)
		forced += rng.Lo
		h := hostIdx[group(n, to.ReplicationInHost)]
		for v := range V {
			cost := 1
			if from.Vnodes[v].Has(n.ID) {
				cost = 0
			}
			f.edge(nodeV(i), pairV(v, h), 1, cost)
		}
	}
	for v := range V {
		for h := range H {
			f.edge(pairV(v, h), vnodeV(v), 1, 0)
		}
		f.edge(vnodeV(v), snk, r, 0)
	}
	flow, cost := f.run(src, snk)
	if flow != r*V {
		return -1
	}
	return cost + force*forced
}

func total(t *Table, id NodeID) int {
	n := 0
	for _, c := range t.Counts(id) {
		n += c
	}
	return n
}

// flow is a small min-cost max-flow solver (successive shortest paths with
// Bellman-Ford).
type flow struct {
	n                   int
	to, cap, cost, next []int
	head                []int
}

func newFlow(n int) *flow {
	f := &flow{n: n, head: make([]int, n)}
	for i := range f.head {
		f.head[i] = -1
	}
	return f
}

func (f *flow) edge(a, b, c, w int) {
	for _, e := range [][3]int{{a, b, 1}, {b, a, -1}} {
		f.to = append(f.to, e[1])
		if e[2] > 0 {
			f.cap = append(f.cap, c)
			f.cost = append(f.cost, w)
		} else {
			f.cap = append(f.cap, 0)
			f.cost = append(f.cost, -w)
		}
		f.next = append(f.next, f.head[e[0]])
		f.head[e[0]] = len(f.to) - 1
	}
}

func (f *flow) run(s, t int) (flow, cost int) {
	const inf = 1 << 60
	dist := make([]int, f.n)
	prev := make([]int, f.n)
	inq := make([]bool, f.n)
	for {
		for i := range dist {
			dist[i], prev[i] = inf, -1
		}
		dist[s] = 0
		queue := []int{s}
		inq[s] = true
		for len(queue) > 0 {
			u := queue[0]
			queue = queue[1:]
			inq[u] = false
			for e := f.head[u]; e >= 0; e = f.next[e] {
				if f.cap[e] > 0 && dist[u]+f.cost[e] < dist[f.to[e]] {
					dist[f.to[e]] = dist[u] + f.cost[e]
					prev[f.to[e]] = e
					if !inq[f.to[e]] {
						inq[f.to[e]] = true
						queue = append(queue, f.to[e])
					}
				}
			}
		}
		if dist[t] == inf {
			return flow, cost
		}
		push := inf
		for v := t; v != s; v = f.to[prev[v]^1] {
			push = min(push, f.cap[prev[v]])
		}
		for v := t; v != s; v = f.to[prev[v]^1] {
			f.cap[prev[v]] -= push
			f.cap[prev[v]^1] += push
		}
		flow += push
		cost += push * dist[t]
	}
}
