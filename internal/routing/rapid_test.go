package routing

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestRapidPlan drives Plan with random sequences of joins and leaves on
// random host groupings (several nodes per host are common, so host
// anti-affinity often caps a host) and checks after every plan:
//
//   - the target validates, and is Balanced (the documented guarantee);
//   - every node's position counts differ by at most one;
//   - Plan is deterministic (also for the nodes shuffled) and idempotent;
//   - epochs rise by one exactly where the primary changed, the version by
//     one exactly when something changed;
//   - minimal movement: the copies equal the least any balanced target
//     needs (an exact min-cost flow over every placement whose per-node
//     totals are within the fair-share ranges, minCopies), so a surviving
//     replica is only dropped when balance requires it;
//   - Promote makes the first survivor primary of a vnode whose primary
//     left, and never a node that did not hold the vnode.
func TestRapidPlan(t *testing.T) {
	var stats planStats
	checkRounds(t, func(rt *rapid.T) {
		divBits := uint(rapid.IntRange(1, 6).Draw(rt, "div_bits"))
		redundancy := rapid.IntRange(1, 3).Draw(rt, "redundancy")
		inHost := rapid.Bool().Draw(rt, "replication_in_host")
		tab, err := NewTable(divBits, redundancy, inHost)
		if err != nil {
			rt.Fatal(err)
		}
		hosts := rapid.IntRange(1, 5).Draw(rt, "hosts")
		hostOf := func(i int) string { return fmt.Sprintf("h%d", i%hosts) }
		live := map[int]string{} // pool index -> host
		for step := range rapid.IntRange(1, 10).Draw(rt, "steps") {
			// Leave some, join some (a join may bring a node back on another host).
			for _, i := range sortedKeys(live) {
				if rapid.IntRange(0, 3).Draw(rt, fmt.Sprintf("leave%d_%d", step, i)) == 0 {
					delete(live, i)
				}
			}
			for range rapid.IntRange(0, 3).Draw(rt, fmt.Sprintf("joins%d", step)) {
				i := rapid.IntRange(0, 11).Draw(rt, "node")
				live[i] = hostOf(rapid.IntRange(0, 11).Draw(rt, "host"))
			}
			var nodes []Node
			for _, i := range sortedKeys(live) {
				nodes = append(nodes, Node{ID: NodeID(fmt.Sprintf("n%d_1", i)), Host: live[i]})
			}
			tab = checkPlan(rt, tab, nodes, &stats)
		}
	})
	t.Logf("%d plans, %d copies, %d pinned vnodes, %d of them not led by a survivor in the target",
		stats.plans, stats.copies, stats.pinned, stats.pinnedLost)
}

// rapidRounds is how many times checkRounds runs rapid.Check (each with
// -rapid.checks cases, 100 by default, and its own seed): plans are cheap,
// so the default run covers a few thousand random histories in seconds.
const rapidRounds = 10

// checkRounds runs rapid.Check rapidRounds times, or once with -short.
func checkRounds(t *testing.T, prop func(*rapid.T)) {
	t.Helper()
	rounds := rapidRounds
	if testing.Short() {
		rounds = 1
	}
	for range rounds {
		if rapid.Check(t, prop); t.Failed() {
			return
		}
	}
}

type planStats struct{ plans, copies, pinned, pinnedLost int }

func sortedKeys(m map[int]string) []int {
	ks := make([]int, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// checkPlan plans cur for nodes, checks every property and returns the
// target.
func checkPlan(rt *rapid.T, cur *Table, nodes []Node, stats *planStats) *Table {
	next, err := Plan(cur, nodes)
	if err != nil {
		rt.Fatal(err)
	}
	stats.plans++
	if err := next.Validate(); err != nil {
		rt.Fatalf("invalid target: %v", err)
	}
	if ok, report := Balanced(next); !ok {
		rt.Fatalf("not balanced:\n%s", report)
	}
	r := len(next.Vnodes[0].Nodes) // the same for every vnode: Balanced checked it
	for _, n := range next.Nodes {
		c := next.Counts(n.ID)[:r]
		if len(c) > 0 && slices.Max(c)-slices.Min(c) > 1 {
			rt.Fatalf("%s has position counts %v", n.ID, c)
		}
	}
	// Determinism and idempotence.
	shuffled := slices.Clone(nodes)
	rand.New(rand.NewPCG(uint64(len(nodes)), 7)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	if again, _ := Plan(cur, shuffled); !again.Equal(next) || again.Version != next.Version {
		rt.Fatalf("Plan depends on the order of the nodes")
	}
	if again, _ := Plan(next, nodes); !again.Equal(next) || again.Version != next.Version {
		rt.Fatalf("Plan is not idempotent: %v", Moves(next, again))
	}
	// Epochs and version.
	changed := !cur.Equal(next)
	for v := range next.Vnodes {
		want := cur.Vnodes[v].Epoch
		if next.Primary(v) != cur.Primary(v) {
			want++
			changed = true
		}
		if next.Vnodes[v].Epoch != want {
			rt.Fatalf("vnode %d: epoch %d -> %d, primary %q -> %q", v, cur.Vnodes[v].Epoch, next.Vnodes[v].Epoch, cur.Primary(v), next.Primary(v))
		}
	}
	if wantV := cur.Version + map[bool]uint64{true: 1}[changed]; next.Version != wantV {
		rt.Fatalf("version %d -> %d, changed %v", cur.Version, next.Version, changed)
	}
	// Promote: survivors lead.
	prom, err := Promote(cur, nodes)
	if err != nil {
		rt.Fatal(err)
	}
	alive := map[NodeID]bool{}
	for _, n := range nodes {
		alive[n.ID] = true
	}
	for v, rep := range cur.Vnodes {
		var surv []NodeID
		for _, id := range rep.Nodes {
			if alive[id] {
				surv = append(surv, id)
			}
		}
		if p := prom.Primary(v); p != "" && !slices.Contains(rep.Nodes, p) {
			rt.Fatalf("vnode %d: Promote made %s primary, not a replica", v, p)
		}
		if len(rep.Nodes) > 0 && !alive[rep.Nodes[0]] && len(surv) > 0 {
			if prom.Primary(v) != surv[0] {
				rt.Fatalf("vnode %d: primary %s left, Promote chose %s, not %s", v, rep.Nodes[0], prom.Primary(v), surv[0])
			}
			stats.pinned++
			if !slices.Contains(surv, next.Primary(v)) {
				stats.pinnedLost++
			}
		}
	}
	// Minimal movement against the exact optimum.
	copies := 0
	for _, m := range Moves(prom, next) {
		if m.Copy {
			copies++
		}
	}
	stats.copies += copies
	if best := minCopies(prom, next); copies != best {
		rt.Fatalf("%d copies, but %d are enough for the same totals", copies, best)
	}
	return next
}

// TestRapidSingleChange starts from a planned cluster on random hosts and
// applies one join or one leave, the common case (checkPlan checks the
// general properties, including that no balanced target copies less):
//
//   - with one node per host (or replication_in_host), where a join cannot
//     shift the hosts' caps, a join copies only to the new node, exactly
//     its share;
//   - a leave makes one of the survivors primary of each vnode whose
//     primary left.
//
// A leave usually keeps every surviving replica in place; it must move one
// only when the departed node's vnodes cannot be matched to the nodes below
// their share (the min-cost check in checkPlan proves that no balanced
// target copies less). The test logs how often that happens.
func TestRapidSingleChange(t *testing.T) {
	leaves, moved := 0, 0
	defer func() { t.Logf("%d leaves, %d moved a surviving replica", leaves, moved) }()
	checkRounds(t, func(rt *rapid.T) {
		divBits := uint(rapid.IntRange(1, 7).Draw(rt, "div_bits"))
		redundancy := rapid.IntRange(1, 3).Draw(rt, "redundancy")
		inHost := rapid.Bool().Draw(rt, "replication_in_host")
		hosts := rapid.IntRange(1, 6).Draw(rt, "hosts")
		n := rapid.IntRange(1, 10).Draw(rt, "nodes")
		var nodes []Node
		for i := range n {
			nodes = append(nodes, Node{ID: NodeID(fmt.Sprintf("n%d_1", i)), Host: fmt.Sprintf("h%d", rapid.IntRange(0, hosts-1).Draw(rt, "host"))})
		}
		empty, _ := NewTable(divBits, redundancy, inHost)
		var stats planStats
		cur := checkPlan(rt, empty, nodes, &stats)
		if rapid.Bool().Draw(rt, "join") {
			nn := Node{ID: "new_1", Host: fmt.Sprintf("h%d", rapid.IntRange(0, hosts).Draw(rt, "new host"))}
			all := append(slices.Clone(nodes), nn)
			next := checkPlan(rt, cur, all, &stats)
			if !inHost && !oneHostEach(all) {
				return
			}
			copies := 0
			for _, m := range Moves(cur, next) {
				if m.Copy {
					copies++
					if m.To != nn.ID {
						rt.Fatalf("join copies to %s: %v", m.To, m)
					}
				}
			}
			if total := total(next, nn.ID); copies != total {
				rt.Fatalf("new node holds %d, %d copies", total, copies)
			}
			return
		}
		k := rapid.IntRange(0, n-1).Draw(rt, "leave")
		gone := nodes[k].ID
		next := checkPlan(rt, cur, slices.Delete(slices.Clone(nodes), k, k+1), &stats)
		leaves++
		dropped := false
		for v, rep := range cur.Vnodes {
			for _, id := range rep.Nodes {
				if id != gone && !next.Vnodes[v].Has(id) && len(next.Vnodes[v].Nodes) == len(rep.Nodes) {
					dropped = true
				}
			}
			if rep.Primary() == gone && len(rep.Nodes) > 1 && !slices.Contains(rep.Nodes[1:], next.Primary(v)) {
				rt.Fatalf("vnode %d: primary %s left, %s leads, not a survivor of %v", v, gone, next.Primary(v), rep.Nodes)
			}
		}
		if dropped {
			moved++
		}
	})
}

func oneHostEach(nodes []Node) bool {
	seen := map[string]bool{}
	for _, n := range nodes {
		if seen[n.Host] {
			return false
		}
		seen[n.Host] = true
	}
	return true
}
