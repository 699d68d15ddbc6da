package routing

import (
	"fmt"
	"testing"
)

// benchNodes returns n nodes, perHost to a host.
func benchNodes(n, perHost int) []Node {
	ns := make([]Node, n)
	for i := range ns {
		ns[i] = Node{ID: NodeID(fmt.Sprintf("10.0.%d.%d_11211", i/perHost, i%perHost)), Host: fmt.Sprintf("10.0.%d.%d", i/perHost, 0)}
	}
	return ns
}

func mustPlan(b testing.TB, t *Table, nodes []Node) *Table {
	b.Helper()
	next, err := Plan(t, nodes)
	if err != nil {
		b.Fatal(err)
	}
	return next
}

// BenchmarkPlan measures Plan on the default 512 vnodes, redundancy 2, for
// a bootstrap, a join, a leave, a re-plan that changes nothing, doubling
// and halving the cluster, and a start with every vnode on two nodes, at 8
// and 64 nodes (one node per host), and at 64 nodes four to a host.
func BenchmarkPlan(b *testing.B) {
	for _, c := range []struct {
		name       string
		n, perHost int
		redundancy int
	}{
		{"n8", 8, 1, 2},
		{"n64", 64, 1, 2},
		{"n64r3", 64, 1, 3},
		{"n64x4", 64, 4, 2},
	} {
		empty, _ := NewTable(DefaultDivBits, c.redundancy, false)
		all := benchNodes(c.n, c.perHost)
		full := mustPlan(b, empty, all)
		less := mustPlan(b, empty, all[:c.n-1])
		half := mustPlan(b, empty, all[:c.n/2])
		// Every vnode on the same two nodes: the worst start.
		skewed := empty.Clone()
		skewed.Nodes = all
		for v := range skewed.Vnodes {
			skewed.Vnodes[v].Nodes = []NodeID{all[0].ID, all[len(all)-1].ID}
		}
		for _, s := range []struct {
			name  string
			from  *Table
			nodes []Node
		}{
			{"bootstrap", empty, all},
			{"join", less, all},
			{"leave", full, all[1:]},
			{"noop", full, all},
			{"double", half, all},
			{"halve", full, all[:c.n/2]},
			{"skewed", skewed, all},
		} {
			b.Run(c.name+"/"+s.name, func(b *testing.B) {
				for b.Loop() {
					mustPlan(b, s.from, s.nodes)
				}
			})
		}
	}
}
