package routing

// Positions. After the membership stage every node holds its target count
// M of replicas; this stage only reorders replica lists, so it moves no
// data. It ends with every node's count at each position in
// {floor(M/r), ceil(M/r)}, which is within floor..ceil of the fair share
// per position (M is within floor..ceil of the share x, and
// floor(floor(x)/r) = floor(x/r)).
//
// Only a change of primary costs anything (an epoch bump and a short write
// pause on the vnode), so primaries are balanced first, each fix swapping
// the primary with a secondary of the same vnode along a shortest chain;
// then the secondary positions are balanced among themselves, at no cost.
//
// With a = floor(M/r) and M = a*r + b: once a node is primary of a or a+1
// vnodes (a+1 only if b > 0) and its secondary counts differ by at most
// one, all its counts are a or a+1.

// balancePositions runs both steps; see above.
func (p *planner) balancePositions() {
	if p.r < 2 {
		return
	}
	p.balancePrimaries()
	p.balanceSecondaries()
}

// primaryRange is the range node i's primary count must end in.
func (p *planner) primaryRange(i int) Range {
	return Range{p.cnt[i] / p.r, (p.cnt[i] + p.r - 1) / p.r}
}

// balancePrimaries brings every node's primary count into primaryRange:
// first it lowers the counts above the range, then it raises the counts
// below it. Each fix is a chain of swaps (primaryChain); the second pass
// never pushes a count back above the range.
func (p *planner) balancePrimaries() {
	for _, down := range []bool{true, false} {
		for progress := true; progress; {
			progress = false
			for i := range p.cnt {
				for {
					c, want := p.pos[i][0], p.primaryRange(i)
					if down && c <= want.Hi || !down && c >= want.Lo {
						break
					}
					if !p.primaryChain(i, down, true) && !p.primaryChain(i, down, false) {
						break
					}
					progress = true
				}
			}
		}
	}
}

// primaryChain moves one primary away from node i (down) or to it (!down)
// along a shortest chain of swaps, each making a secondary of a vnode its
// primary and the primary that secondary. Going down, the chain runs from
// i to a secondary z of one of i's vnodes, from z to a secondary of one of
// z's vnodes, and so on, until a node that is primary of fewer than its
// range's top; only i and that last node change counts. Such a chain
// exists while i is above its range: otherwise the nodes reachable from i
// would all be at or above the top of their range, yet every vnode they
// lead has all its r replicas among them, so r times their primaries would
// exceed their replicas. Going up is the mirror image: from i to the
// primary w of a vnode where i is secondary, and so on, until a node above
// its range's bottom. With strict, no swap makes a non-survivor the
// primary of a pinned vnode. Among the shortest chains, one that ends at a
// node outside its range wins.
func (p *planner) primaryChain(i int, down, strict bool) bool {
	n := len(p.cnt)
	visited := make([]bool, n)
	parent := make([]step, n) // parent[z]: z swaps with parent[z].to in vnode parent[z].v
	visited[i] = true
	frontier := []int{i}
	for len(frontier) > 0 {
		var next []int
		end, endOut := -1, false
		for _, y := range frontier {
			for v, m := range p.mem {
				// Going down, y is the primary and swaps with any secondary
				// z; going up, y is a secondary and swaps with the primary.
				ks := []int{indexOf(m, y)}
				if ks[0] < 0 || down != (ks[0] == 0) {
					continue
				}
				if down {
					ks = ks[:0]
					for k := 1; k < len(m); k++ {
						ks = append(ks, k)
					}
				}
				for _, k := range ks {
					z, newPrimary := m[0], y
					if down {
						z, newPrimary = m[k], m[k]
					}
					if visited[z] || strict && !p.isSurvivor(v, newPrimary) {
						continue
					}
					visited[z] = true
					parent[z] = step{v: v, k: k, to: y}
					c, want := p.pos[z][0], p.primaryRange(z)
					if down && c < want.Hi || !down && c > want.Lo {
						out := down && c < want.Lo || !down && c > want.Hi
						if end < 0 || out && !endOut {
							end, endOut = z, out
						}
					}
					next = append(next, z)
				}
			}
		}
		if end >= 0 {
			for z := end; z != i; {
				s := parent[z]
				m := p.mem[s.v]
				m[0], m[s.k] = m[s.k], m[0]
				if down { // s.to was primary, z at s.k
					p.pos[s.to][0]--
					p.pos[s.to][s.k]++
					p.pos[z][s.k]--
					p.pos[z][0]++
				} else { // z was primary, s.to at s.k
					p.pos[z][0]--
					p.pos[z][s.k]++
					p.pos[s.to][s.k]--
					p.pos[s.to][0]++
				}
				z = s.to
			}
			return true
		}
		frontier = next
	}
	return false
}

func indexOf(m []int, i int) int {
	for k, a := range m {
		if a == i {
			return k
		}
	}
	return -1
}

// balanceSecondaries evens out every node's secondary position counts
// until they differ by at most one, with swapChain.
func (p *planner) balanceSecondaries() {
	for changed := true; changed; {
		changed = false
		for i := range p.cnt {
			for {
				c := p.pos[i][1:p.r]
				hi := 1 + slicesIndexMax(c)
				lo := 1 + slicesIndexMin(c)
				if p.pos[i][hi]-p.pos[i][lo] < 2 || !p.swapChain(i, hi, lo) {
					break
				}
				changed = true
			}
		}
	}
}

func slicesIndexMax(c []int) int {
	best := 0
	for k := range c {
		if c[k] > c[best] {
			best = k
		}
	}
	return best
}

func slicesIndexMin(c []int) int {
	best := 0
	for k := range c {
		if c[k] < c[best] {
			best = k
		}
	}
	return best
}

// swapChain moves one vnode of node i from secondary position hi to
// secondary position lo. It finds the shortest chain i = y0, y1, ..., yk
// where y(j+1) holds position lo of a vnode in which y(j) holds position
// hi, and yk has fewer vnodes at hi than at lo; swapping hi and lo in each
// of those vnodes changes only y0's and yk's counts. Such a chain exists
// when i has at least two more vnodes at hi than at lo: the nodes reachable
// from i hold position lo in every vnode where they hold hi, so together
// they hold lo at least as often as hi, and one of them holds hi less
// often than lo.
func (p *planner) swapChain(i, hi, lo int) bool {
	n := len(p.cnt)
	visited := make([]bool, n)
	parent := make([]step, n) // parent[z]: z swaps with parent[z].to in vnode parent[z].v
	visited[i] = true
	frontier := []int{i}
	for len(frontier) > 0 {
		var next []int
		for _, y := range frontier {
			for v, m := range p.mem {
				if len(m) <= max(hi, lo) || m[hi] != y {
					continue
				}
				z := m[lo]
				if visited[z] {
					continue
				}
				visited[z] = true
				parent[z] = step{v: v, to: y}
				if p.pos[z][lo] > p.pos[z][hi] {
					for z != i {
						s := parent[z]
						m := p.mem[s.v]
						m[hi], m[lo] = m[lo], m[hi]
						p.pos[s.to][hi]--
						p.pos[s.to][lo]++
						p.pos[z][lo]--
						p.pos[z][hi]++
						z = s.to
					}
					return true
				}
				next = append(next, z)
			}
		}
		frontier = next
	}
	return false
}
