package routing

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sonae-kv/sonae/internal/datadriven"
)

// TestDataDriven runs the scripts in testdata/ (internal/datadriven's
// format; -rewrite regenerates the expected blocks: review the diff). Each
// script drives one table and a live node set; the commands are documented
// at ddHarness.run. Every plan and promote is also checked on the side:
// the result validates, Plan is deterministic (also for the nodes in
// reverse order) and idempotent, and Plan's result is Balanced.
func TestDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, file string) {
		h := &ddHarness{}
		datadriven.RunTest(t, file, func(t testing.TB, d *datadriven.TestData) string {
			out, err := h.run(t, d)
			if err != nil {
				return "error: " + err.Error()
			}
			return out
		})
	})
}

type ddHarness struct {
	t     *Table
	live  []Node // the live set, sorted
	moves []Move // of the last plan or promote
}

// run executes one command. Commands:
//
//	table div_bits= redundancy= [replication_in_host]   a new empty table, no nodes
//	join ID... [host=H]     add nodes to the live set (host defaults to the id's address)
//	leave ID...             remove nodes from the live set
//	plan                    current := Plan(current, live); prints a summary
//	promote                 current := Promote(current, live); prints a summary
//	counts                  per node: position counts, total and fair share
//	dump                    per vnode: epoch and replica list
//	moves                   the moves of the last plan or promote
//	balanced                Balanced's report
//	validate                ok or the Validate error
//	set v= nodes=A,B [epoch=]   overwrite one vnode's replica list (builds odd inputs)
//	setall nodes=A,B        overwrite every vnode's replica list
//	lookup key=K            the key's vnode and replicas
//	json                    the ROMA-shaped routing dump (checked to round-trip)
func (h *ddHarness) run(t testing.TB, d *datadriven.TestData) (string, error) {
	if h.t == nil && d.Cmd != "table" {
		return "", fmt.Errorf("no table: start with table")
	}
	var out string
	var err error
	switch d.Cmd {
	case "table":
		h.t, err = NewTable(uint(d.Int("div_bits", DefaultDivBits)), int(d.Int("redundancy", DefaultRedundancy)), d.HasWord("replication_in_host"))
		h.live, h.moves = nil, nil
		out = "ok"
	case "join":
		for _, w := range d.Words() {
			n := NodeFromID(NodeID(w))
			n.Host = d.Str("host", n.Host)
			h.live = slices.DeleteFunc(h.live, func(o Node) bool { return o.ID == n.ID })
			h.live = append(h.live, n)
		}
		sortNodes(h.live)
		out = h.liveString()
	case "leave":
		for _, w := range d.Words() {
			h.live = slices.DeleteFunc(h.live, func(o Node) bool { return o.ID == NodeID(w) })
		}
		out = h.liveString()
	case "plan", "promote":
		out, err = h.step(t, d.Cmd == "plan")
	case "counts":
		out = h.counts()
	case "dump":
		var b []string
		for v, r := range h.t.Vnodes {
			b = append(b, fmt.Sprintf("v%d e%d %s", v, r.Epoch, idsString(r.Nodes)))
		}
		out = strings.Join(b, "\n")
	case "moves":
		var b []string
		for _, m := range h.moves {
			b = append(b, m.String())
		}
		out = strings.Join(b, "\n")
		if out == "" {
			out = "none"
		}
	case "balanced":
		_, out = Balanced(h.t)
	case "validate":
		out = "ok"
		if err := h.t.Validate(); err != nil {
			out = err.Error()
		}
	case "set", "setall":
		var ids []NodeID
		for _, s := range strings.Split(d.Str("nodes", ""), ",") {
			if s != "" {
				ids = append(ids, NodeID(s))
			}
		}
		vs := []int{int(d.Int("v", 0))}
		if d.Cmd == "setall" {
			vs = vs[:0]
			for v := range h.t.Vnodes {
				vs = append(vs, v)
			}
		}
		for _, v := range vs {
			if v < 0 || v >= len(h.t.Vnodes) {
				return "", fmt.Errorf("%w: %d", ErrBadVnode, v)
			}
			h.t.Vnodes[v] = Replicas{Nodes: slices.Clone(ids), Epoch: d.Uint("epoch", h.t.Vnodes[v].Epoch, 64)}
		}
		// The table's node set becomes the live set, as if planned.
		h.t.Nodes = slices.Clone(h.live)
		out = "ok"
	case "lookup":
		v, r := h.t.Lookup([]byte(d.Str("key", "")))
		out = fmt.Sprintf("v%d %s", v, idsString(r.Nodes))
	case "json":
		b, err := h.t.MarshalRoutingDump()
		if err != nil {
			return "", err
		}
		back, err := UnmarshalRoutingDump(b)
		if err != nil {
			return "", err
		}
		if !back.Equal(h.t) || back.Version != h.t.Version {
			t.Errorf("%s: routing dump does not round-trip", d.Pos)
		}
		out = string(b)
	default:
		return "", fmt.Errorf("unknown command: %s", d.Cmd)
	}
	if err == nil && d.Err != nil {
		err = d.Err
	}
	return out, err
}

func (h *ddHarness) liveString() string {
	var b []string
	for _, n := range h.live {
		b = append(b, fmt.Sprintf("%s@%s", n.ID, n.Host))
	}
	if len(b) == 0 {
		return "live: none"
	}
	return "live: " + strings.Join(b, " ")
}

func idsString(ids []NodeID) string {
	if len(ids) == 0 {
		return "[]"
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = string(id)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// step runs Plan or Promote, checks its side properties and summarises it.
func (h *ddHarness) step(t testing.TB, plan bool) (string, error) {
	f := Promote
	if plan {
		f = Plan
	}
	next, err := f(h.t, h.live)
	if err != nil {
		return "", err
	}
	if err := next.Validate(); err != nil {
		t.Errorf("result does not validate: %v", err)
	}
	rev := slices.Clone(h.live)
	slices.Reverse(rev)
	if again, _ := f(h.t, rev); !again.Equal(next) || again.Version != next.Version {
		t.Errorf("not deterministic")
	}
	if plan {
		if again, _ := Plan(next, h.live); !again.Equal(next) || again.Version != next.Version {
			t.Errorf("Plan is not idempotent: %d moves on a second run", len(Moves(next, again)))
		}
	}
	h.moves = Moves(h.t, next)
	copies, primaries := 0, 0
	for _, m := range h.moves {
		if m.Copy {
			copies++
		}
	}
	for v := range next.Vnodes {
		if next.Primary(v) != h.t.Primary(v) {
			primaries++
		}
	}
	h.t = next
	ok, report := Balanced(next)
	bal := "balanced"
	if !ok {
		bal = "NOT balanced:\n" + report
	}
	return fmt.Sprintf("version %d: %d slots changed, %d copies, %d primaries changed; short %d, lost %d; %s",
		next.Version, len(h.moves), copies, primaries, len(next.ShortVnodes()), len(next.LostVnodes()), bal), nil
}

// counts prints each node's counts per position, total, and fair share.
func (h *ddHarness) counts() string {
	var b []string
	for _, s := range h.t.FairShares() {
		c := h.t.Counts(s.Node)
		total := 0
		parts := make([]string, len(c))
		for p, n := range c {
			parts[p] = fmt.Sprintf("%s=%d", PositionName(p), n)
			total += n
		}
		n, _ := h.t.Node(s.Node)
		b = append(b, fmt.Sprintf("%s@%s: %s total=%d share=%s (%s, %s per position)",
			s.Node, n.Host, strings.Join(parts, " "), total, s.Exact, s.Total, s.PerPosition))
	}
	if len(b) == 0 {
		return "no nodes"
	}
	return strings.Join(b, "\n")
}
