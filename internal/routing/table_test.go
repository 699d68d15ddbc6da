package routing

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestNodeID(t *testing.T) {
	for _, c := range []struct {
		id   NodeID
		host string
	}{
		{"127.0.0.1_11211", "127.0.0.1"},
		{"::1_11211", "::1"},
		{"my_host_12000", "my_host"},
		{"noport", "noport"},
	} {
		if got := c.id.Host(); got != c.host {
			t.Errorf("%s.Host() = %q, want %q", c.id, got, c.host)
		}
		if n := NodeFromID(c.id); n.Host != c.host || n.ID != c.id {
			t.Errorf("NodeFromID(%s) = %+v", c.id, n)
		}
	}
	if id := MakeNodeID("10.0.0.1", 11211); id != "10.0.0.1_11211" {
		t.Errorf("MakeNodeID = %s", id)
	}
}

func TestNewTable(t *testing.T) {
	for _, c := range []struct {
		divBits    uint
		redundancy int
		ok         bool
	}{
		{DefaultDivBits, DefaultRedundancy, true},
		{1, 1, true},
		{MaxDivBits, 5, true},
		{0, 2, false},
		{MaxDivBits + 1, 2, false},
		{9, 0, false},
	} {
		tab, err := NewTable(c.divBits, c.redundancy, false)
		if (err == nil) != c.ok || err != nil && !errors.Is(err, ErrInvalidTable) {
			t.Errorf("NewTable(%d, %d) error %v", c.divBits, c.redundancy, err)
			continue
		}
		if err == nil {
			if len(tab.Vnodes) != 1<<c.divBits || tab.Validate() != nil || len(tab.LostVnodes()) != 1<<c.divBits {
				t.Errorf("NewTable(%d, %d) = %d vnodes, %v", c.divBits, c.redundancy, len(tab.Vnodes), tab.Validate())
			}
		}
	}
}

// smallTable is a planned 16-vnode table on a_1, b_1, c_1.
func smallTable(t testing.TB) *Table {
	t.Helper()
	tab, _ := NewTable(4, 2, false)
	tab, err := Plan(tab, []Node{NodeFromID("c_1"), NodeFromID("a_1"), NodeFromID("b_1")})
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestAccessors(t *testing.T) {
	tab := smallTable(t)
	if got := tab.NodeIDs(); !slices.Equal(got, []NodeID{"a_1", "b_1", "c_1"}) {
		t.Fatalf("NodeIDs = %v (Plan must sort the nodes)", got)
	}
	sum := 0
	for _, id := range tab.NodeIDs() {
		c := tab.Counts(id)
		if len(c) != 2 {
			t.Fatalf("Counts(%s) = %v", id, c)
		}
		sum += c[0]
	}
	if sum != 16 || tab.Counts("zz_1")[0] != 0 {
		t.Errorf("primary counts add up to %d", sum)
	}
	v, rep := tab.Lookup([]byte("foo"))
	if v != int(Vnode([]byte("foo"), 4)) || !slices.Equal(rep.Nodes, tab.Replicas(v).Nodes) || rep.Primary() != tab.Primary(v) {
		t.Errorf("Lookup(foo) = %d %v", v, rep)
	}
	if n, ok := tab.Node("b_1"); !ok || n.Host != "b" {
		t.Errorf("Node(b_1) = %v %v", n, ok)
	}
	if _, ok := tab.Node("b_2"); ok {
		t.Errorf("Node(b_2) found")
	}
	tab.Vnodes[3].Nodes = tab.Vnodes[3].Nodes[:1]
	tab.Vnodes[5].Nodes = nil
	if s, l := tab.ShortVnodes(), tab.LostVnodes(); !slices.Equal(s, []int{3}) || !slices.Equal(l, []int{5}) {
		t.Errorf("short %v lost %v", s, l)
	}
	c := tab.Clone()
	c.Vnodes[0].Nodes[0] = "x"
	c.Nodes[0].Host = "x"
	if tab.Vnodes[0].Nodes[0] == "x" || tab.Nodes[0].Host == "x" || tab.Equal(c) {
		t.Errorf("Clone shares memory with the original")
	}
	if !tab.Equal(tab.Clone()) {
		t.Errorf("a clone is not Equal")
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*Table)
		want error
	}{
		{"ok", func(*Table) {}, nil},
		{"vnode count", func(t *Table) { t.Vnodes = t.Vnodes[:3] }, ErrInvalidTable},
		{"redundancy", func(t *Table) { t.Redundancy = 0 }, ErrInvalidTable},
		{"div bits", func(t *Table) { t.DivBits = 40 }, ErrInvalidTable},
		{"empty host", func(t *Table) { t.Nodes[0].Host = "" }, ErrBadNode},
		{"duplicate", func(t *Table) { t.Nodes[1] = t.Nodes[0] }, ErrDuplicateNode},
		{"unsorted", func(t *Table) { t.Nodes[0], t.Nodes[2] = t.Nodes[2], t.Nodes[0] }, ErrInvalidTable},
		{"unknown", func(t *Table) { t.Vnodes[0].Nodes = []NodeID{"q_1"} }, ErrUnknownNode},
		{"twice", func(t *Table) { t.Vnodes[0].Nodes = []NodeID{"a_1", "a_1"} }, ErrInvalidTable},
		{"too many", func(t *Table) { t.Vnodes[0].Nodes = []NodeID{"a_1", "b_1", "c_1"} }, ErrInvalidTable},
		{"same host", func(t *Table) { t.Nodes[1].Host = "a"; t.Vnodes[0].Nodes = []NodeID{"a_1", "b_1"} }, ErrInvalidTable},
		{"same host allowed", func(t *Table) {
			t.ReplicationInHost = true
			t.Nodes[1].Host = "a"
			t.Vnodes[0].Nodes = []NodeID{"a_1", "b_1"}
		}, nil},
	} {
		tab := smallTable(t)
		c.edit(tab)
		err := tab.Validate()
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: Validate() = %v, want %v", c.name, err, c.want)
		}
	}
	// Many problems: the first few in detail, then a count.
	tab := smallTable(t)
	for v := range tab.Vnodes {
		tab.Vnodes[v].Nodes = []NodeID{"q_1"}
	}
	if err := tab.Validate(); err == nil || !strings.Contains(err.Error(), "and 6 more problems") {
		t.Errorf("Validate() = %v", err)
	}
}

func TestEncodeDecode(t *testing.T) {
	tab := smallTable(t)
	b, err := tab.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeTable(b)
	if err != nil || !back.Equal(tab) || back.Version != tab.Version {
		t.Fatalf("DecodeTable(Encode()) = %v, %v", back, err)
	}
	empty, _ := NewTable(2, 2, true)
	b, _ = empty.Encode()
	if back, err := DecodeTable(b); err != nil || !back.Equal(empty) {
		t.Errorf("empty table: %v %v (%s)", back, err, b)
	}
	for _, bad := range []string{`{`, `{"div_bits":2,"redundancy":2,"vnodes":[]}`, `{"div_bits":1,"redundancy":2,"nodes":[{"id":"a_1","host":"a"}],"vnodes":[{"nodes":["b_1"]},{}]}`} {
		if _, err := DecodeTable([]byte(bad)); err == nil {
			t.Errorf("DecodeTable(%s) accepted", bad)
		}
	}
}

// A dump written by ROMA itself: dgst_bits 32, so vnode ids are multiples
// of 2^30 with div_bits 2, no sonae fields.
func TestRoutingDumpFromROMA(t *testing.T) {
	roma := `[{"dgst_bits":32,"div_bits":2,"rn":2},["h1_10001","h2_10002"],` +
		`{"0":["h1_10001","h2_10002"],"1073741824":["h2_10002","h1_10001"],"2147483648":["h1_10001"],"3221225472":[]}]`
	tab, err := UnmarshalRoutingDump([]byte(roma))
	if err != nil {
		t.Fatal(err)
	}
	if tab.Redundancy != 2 || tab.DivBits != 2 || tab.Primary(1) != "h2_10002" || len(tab.Vnodes[2].Nodes) != 1 ||
		len(tab.LostVnodes()) != 1 || tab.Nodes[1].Host != "h2" {
		t.Errorf("parsed %+v", tab)
	}
	for _, bad := range []string{
		`[1,2]`,
		`[{"dgst_bits":32,"div_bits":2,"rn":2},["a_1"],{"5":["a_1"]}]`,             // not a vnode's first digest
		`[{"dgst_bits":32,"div_bits":2,"rn":2},["a_1"],{"4294967296":["a_1"]}]`,    // past the last vnode
		`[{"dgst_bits":32,"div_bits":2,"rn":2},["a_1"],{"0":["b_1"]}]`,             // unknown node
		`[{"dgst_bits":1,"div_bits":2,"rn":2},["a_1"],{}]`,                         // dgst_bits < div_bits
		`[{"dgst_bits":64,"div_bits":2,"rn":0},[],{}]`,                             // no redundancy
		`[{"dgst_bits":64,"div_bits":2,"rn":2},[],{},{}]`,                          // four elements
		`[{"dgst_bits":64,"div_bits":2,"rn":2,"v_clk":{"x":1}},[],{}]`,             // bad v_clk key
		`[{"dgst_bits":64,"div_bits":2,"rn":2},["a_1","a_1"],{}]`,                  // duplicate node
		`[{"dgst_bits":64,"div_bits":2,"rn":2},["a_1"],{"0":["a_1","a_1","a_1"]}]`, // too many
	} {
		if _, err := UnmarshalRoutingDump([]byte(bad)); err == nil {
			t.Errorf("UnmarshalRoutingDump(%s) accepted", bad)
		}
	}
}

func TestRoutingDumpRoundTrip(t *testing.T) {
	tab := smallTable(t)
	tab.Nodes[2].Host = "rack1"
	tab.Version = 41
	b, err := tab.MarshalRoutingDump()
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalRoutingDump(b)
	if err != nil || !back.Equal(tab) || back.Version != 41 {
		t.Fatalf("round trip: %v\n%s", err, b)
	}
	if !strings.HasPrefix(string(b), `[{"dgst_bits":64,"div_bits":4,"rn":2,`) {
		t.Errorf("dump starts %.60s", b)
	}
}

// TestCutOver executes a plan the way a mover does: Promote first, then one
// vnode at a time, and ends on the target's lists. Epochs rise once per
// primary change, the version once per commit.
func TestCutOver(t *testing.T) {
	cur := smallTable(t)
	nodes := []Node{NodeFromID("a_1"), NodeFromID("c_1"), NodeFromID("d_1"), NodeFromID("e_1")} // b_1 leaves, two join
	target, err := Plan(cur, nodes)
	if err != nil {
		t.Fatal(err)
	}
	step, err := Promote(cur, nodes)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range Moves(step, target) {
		if m.Copy && step.Vnodes[m.Vnode].Has(m.To) || !m.Copy && m.To != "" && !step.Vnodes[m.Vnode].Has(m.To) {
			t.Errorf("move %v: wrong Copy", m)
		}
		if m.From == "b_1" {
			t.Errorf("move %v from the departed node after Promote", m)
		}
	}
	commits := 0
	for v := range step.Vnodes {
		next, err := CutOver(step, target, v)
		if err != nil {
			t.Fatal(err)
		}
		if next != step {
			commits++
			wantEpoch := step.Vnodes[v].Epoch
			if next.Primary(v) != step.Primary(v) {
				wantEpoch++
			}
			if next.Vnodes[v].Epoch != wantEpoch || next.Version != step.Version+1 {
				t.Errorf("vnode %d: epoch %d version %d", v, next.Vnodes[v].Epoch, next.Version)
			}
		}
		step = next
	}
	if len(Moves(step, target)) != 0 || commits == 0 {
		t.Errorf("after every cut-over %d moves remain (%d commits)", len(Moves(step, target)), commits)
	}
	if _, err := CutOver(step, target, 16); !errors.Is(err, ErrBadVnode) {
		t.Errorf("CutOver(16) = %v", err)
	}
	// A target naming a node the table does not hold yet.
	other := target.Clone()
	other.Vnodes[0].Nodes = []NodeID{"z_1"}
	if _, err := CutOver(step, other, 0); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("CutOver to an unknown node = %v", err)
	}
}

func TestMoveString(t *testing.T) {
	for _, c := range []struct {
		m    Move
		want string
	}{
		{Move{Vnode: 3, Pos: 0, From: "a_1", To: "b_1", Copy: true}, "v3 primary: a_1 -> b_1 (copy)"},
		{Move{Vnode: 4, Pos: 2, To: "b_1", Copy: true}, "v4 secondary2: - -> b_1 (copy)"},
		{Move{Vnode: 5, Pos: 1, From: "a_1"}, "v5 secondary1: a_1 -> -"},
	} {
		if got := c.m.String(); got != c.want {
			t.Errorf("%#v.String() = %q, want %q", c.m, got, c.want)
		}
	}
}

func TestPlanErrors(t *testing.T) {
	tab, _ := NewTable(3, 2, false)
	for _, c := range []struct {
		nodes []Node
		want  error
	}{
		{[]Node{{ID: "a_1"}, {ID: "a_1", Host: "x"}}, ErrDuplicateNode},
		{[]Node{{Host: "a"}}, ErrBadNode},
	} {
		if _, err := Plan(tab, c.nodes); !errors.Is(err, c.want) {
			t.Errorf("Plan(%v) = %v, want %v", c.nodes, err, c.want)
		}
		if _, err := Promote(tab, c.nodes); !errors.Is(err, c.want) {
			t.Errorf("Promote(%v) = %v, want %v", c.nodes, err, c.want)
		}
	}
	bad := tab.Clone()
	bad.Vnodes = bad.Vnodes[:5]
	if _, err := Plan(bad, nil); !errors.Is(err, ErrInvalidTable) {
		t.Errorf("Plan on 5 vnodes = %v", err)
	}
	bad = tab.Clone()
	bad.DivBits = 0
	if _, err := Plan(bad, nil); !errors.Is(err, ErrInvalidTable) {
		t.Errorf("Plan with div_bits 0 = %v", err)
	}
	// An empty host means the id's address part.
	got, err := Plan(tab, []Node{{ID: "10.1.1.1_5"}})
	if err != nil || got.Nodes[0].Host != "10.1.1.1" {
		t.Errorf("Plan with an empty host = %v, %v", got.Nodes, err)
	}
}

// TestRapidFairShares checks the water-filling shares on random host
// groupings: they add up to r*V, no host exceeds V (one replica per
// vnode), the nodes of the uncapped hosts share one value s, and every
// capped host holds exactly V with its nodes below s. That is the most even
// allocation possible: lifting a node of a capped host needs more than V
// on its host, and any other change lowers a node that has s or less.
func TestRapidFairShares(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		V := 1 << rapid.IntRange(1, 10).Draw(rt, "div_bits")
		R := rapid.IntRange(1, 4).Draw(rt, "redundancy")
		sizes := rapid.SliceOfN(rapid.IntRange(1, 6), 1, 8).Draw(rt, "host sizes")
		var nodes []Node
		for h, k := range sizes {
			for i := range k {
				nodes = append(nodes, Node{ID: NodeID(fmt.Sprintf("h%d_%d", h, i)), Host: fmt.Sprintf("h%d", h)})
			}
		}
		sortNodes(nodes)
		l := newLayout(nodes, V, R, false)
		r := min(R, len(sizes))
		if l.r != r {
			rt.Fatalf("r = %d, want %d", l.r, r)
		}
		var sum float64
		host := map[int]float64{}
		var s float64 = -1
		for i, x := range l.x {
			f := float64(x.num) / float64(x.den)
			sum += f
			host[l.group[i]] += f
		}
		if d := sum - float64(r*V); d > 1e-6 || d < -1e-6 {
			rt.Fatalf("shares add up to %v, want %d", sum, r*V)
		}
		for g, tot := range host {
			if tot > float64(V)+1e-6 {
				rt.Fatalf("host %d holds %v > %d", g, tot, V)
			}
			if tot < float64(V)-1e-6 { // uncapped: the common share
				f := tot / float64(len(l.groups[g]))
				if s >= 0 && (f-s > 1e-6 || s-f > 1e-6) {
					rt.Fatalf("uncapped shares differ: %v and %v", s, f)
				}
				s = f
			}
		}
		for g, tot := range host {
			if f := tot / float64(len(l.groups[g])); tot >= float64(V)-1e-6 && s >= 0 && f > s+1e-6 {
				rt.Fatalf("capped host %d has %v per node, above the common %v", g, f, s)
			}
		}
		// The rounded targets keep every node within floor..ceil, sum to
		// r*V and keep every host within V.
		held := make([]int, len(nodes))
		for i := range held {
			held[i] = rapid.IntRange(0, V).Draw(rt, "held")
		}
		m := l.targets(held)
		tot, hostTot := 0, map[int]int{}
		for i, c := range m {
			if !l.x[i].rng().Contains(c) {
				rt.Fatalf("node %d target %d outside %v", i, c, l.x[i].rng())
			}
			tot += c
			hostTot[l.group[i]] += c
		}
		if tot != r*V {
			rt.Fatalf("targets add up to %d", tot)
		}
		for g, c := range hostTot {
			if c > V {
				rt.Fatalf("host %d target %d > %d", g, c, V)
			}
		}
	})
}
