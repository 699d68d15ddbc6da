package meta

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/sonae-kv/sonae/internal/datadriven"
	"github.com/sonae-kv/sonae/internal/routing"
	"github.com/sonae-kv/sonae/internal/testutil"
)

// TestDataDriven runs the scripts in testdata/ (internal/datadriven's
// format; -rewrite regenerates the expected blocks: review the diff). Each
// script drives one FSM through Apply with increasing Raft indexes; the
// commands are documented at metaHarness.run. Every command is also checked
// on the side: the state keeps validate's invariants and survives a
// snapshot round trip, the state published before is not modified, a
// refused command (or one that changes nothing)
// leaves the state as it was and does not fire Changed, and one that
// changes something fires it.
func TestDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, file string) {
		h := &metaHarness{fsm: NewFSM(testutil.Logger(t))}
		datadriven.RunTest(t, file, func(t testing.TB, d *datadriven.TestData) string {
			out, err := h.run(t, d)
			if err != nil {
				return "error: " + err.Error()
			}
			return out
		})
	})
}

type metaHarness struct {
	fsm   *FSM
	index uint64 // the Raft index of the last Apply
}

// run executes one command. Commands that apply print "ok" (the state
// changed), "ok, no change" or "refused: <error>":
//
//	init member=ID [addr=H:P] [voter] [name=] [div_bits=2] [redundancy=2] [replication_in_host]
//	add-member ID [addr=H:P] [voter]      addr defaults to the id with "_" -> ":"
//	remove-member ID
//	set-voter ID [off]
//	create-namespace NAME
//	delete-namespace NAME
//	add-replica v= node= [epoch=]         epoch defaults to the vnode's current one
//	set-in-sync v= node= [epoch=] [lagging]
//	plan-move v= nodes=A,B [epoch=]
//	fence v= [epoch=]
//	cut-over v= [epoch=]
//	cancel-move v= [epoch=]
//	node-failed ID [t=MS]
//	node-returned ID [t=MS]
//	assign-lost v= node= [epoch=]
//	assigned-lost v= node= [epoch=]
//	set-draining ID [off]
//	operation kind= [node=] [vnodes=1,2] [t=MS]
//	end-operation [note=WORD]
//	request kind=
//	set-option NAME VALUE
//	batch                                 one sub-command per input line, same syntax
//	history                               the routing history, one event a line
//	tuning                                the typed options
//	raw                                   the input line is the log entry's data, as is
//	show                                  the state, compactly
func (h *metaHarness) run(t testing.TB, d *datadriven.TestData) (string, error) {
	switch d.Cmd {
	case "show":
		return showState(h.fsm.State()), nil
	case "history":
		var lines []string
		for _, e := range h.fsm.State().History {
			lines = append(lines, e.String())
		}
		return strings.Join(lines, "\n"), nil
	case "tuning":
		return fmt.Sprintf("%+v", h.fsm.State().Tuning()), nil
	case "raw":
		return h.apply(t, []byte(d.Input)), nil
	case "batch":
		c := Command{Op: OpBatch}
		for _, line := range strings.Split(d.Input, "\n") {
			cmd, words, args := splitLine(line)
			sub, err := h.command(cmd, words, args)
			if err != nil {
				return "", err
			}
			c.Batch = append(c.Batch, sub)
		}
		return h.apply(t, c.Encode()), nil
	}
	args := map[string]string{}
	var words []string
	for _, a := range d.CmdArgs {
		if a.HasVal {
			args[a.Key] = a.Val
		} else {
			words = append(words, a.Key)
		}
	}
	c, err := h.command(d.Cmd, words, args)
	if err != nil {
		return "", err
	}
	return h.apply(t, c.Encode()), nil
}

// splitLine splits a batch line into its command, words and key=value
// arguments (the shape run builds from TestData).
func splitLine(line string) (string, []string, map[string]string) {
	f := strings.Fields(line)
	args := map[string]string{}
	var words []string
	for _, w := range f[1:] {
		if k, v, ok := strings.Cut(w, "="); ok {
			args[k] = v
		} else {
			words = append(words, w)
		}
	}
	return f[0], words, args
}

// command builds the Command of one script line.
func (h *metaHarness) command(cmd string, words []string, args map[string]string) (Command, error) {
	word := func() string {
		if len(words) == 0 {
			return ""
		}
		return words[0]
	}
	has := func(w string) bool { return slices.Contains(words, w) }
	num := func(k string, def uint64) (uint64, error) {
		v, ok := args[k]
		if !ok {
			return def, nil
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bad %s=%q", k, v)
		}
		return n, nil
	}
	member := func(id string) *Member {
		addr, ok := args["addr"]
		if !ok {
			addr = strings.Replace(id, "_", ":", 1)
		}
		return &Member{ID: routing.NodeID(id), Addr: addr, Voter: has("voter")}
	}
	// epoch returns the epoch argument, or the vnode's current epoch.
	epoch := func(v int) (uint64, error) {
		var cur uint64
		if st := h.fsm.State(); st.Initialized() && v >= 0 && v < st.Table.VnodeCount() {
			cur = st.Table.Vnodes[v].Epoch
		}
		return num("epoch", cur)
	}
	switch cmd {
	case "init":
		div, err := num("div_bits", 2)
		if err != nil {
			return Command{}, err
		}
		red, err := num("redundancy", 2)
		if err != nil {
			return Command{}, err
		}
		c := Command{Op: OpInit, Settings: &Settings{
			Name: args["name"], DivBits: uint(div), Redundancy: int(red), ReplicationInHost: has("replication_in_host"),
		}}
		if id, ok := args["member"]; ok {
			c.Member = member(id)
		}
		return c, nil
	case "add-member":
		return Command{Op: OpAddMember, Member: member(word())}, nil
	case "remove-member":
		return Command{Op: OpRemoveMember, Node: routing.NodeID(word())}, nil
	case "set-voter":
		return Command{Op: OpSetVoter, Node: routing.NodeID(word()), Voter: !has("off")}, nil
	case "create-namespace":
		return Command{Op: OpCreateNamespace, Namespace: word()}, nil
	case "delete-namespace":
		return Command{Op: OpDeleteNamespace, Namespace: word()}, nil
	case "add-replica", "set-in-sync":
		v, err := num("v", 0)
		if err != nil {
			return Command{}, err
		}
		e, err := epoch(int(v))
		if err != nil {
			return Command{}, err
		}
		c := Command{Op: OpAddReplica, Vnode: int(v), Node: routing.NodeID(args["node"]), Epoch: e}
		if cmd == "set-in-sync" {
			c.Op, c.InSync = OpSetInSync, !has("lagging")
		}
		return c, nil
	case "plan-move", "fence", "cut-over", "cancel-move":
		v, err := num("v", 0)
		if err != nil {
			return Command{}, err
		}
		e, err := epoch(int(v))
		if err != nil {
			return Command{}, err
		}
		ops := map[string]Op{"plan-move": OpPlanMove, "fence": OpFence, "cut-over": OpCutOver, "cancel-move": OpCancelMove}
		c := Command{Op: ops[cmd], Vnode: int(v), Epoch: e}
		if ns := args["nodes"]; ns != "" {
			for _, n := range strings.Split(ns, ",") {
				c.Nodes = append(c.Nodes, routing.NodeID(n))
			}
		}
		return c, nil
	case "node-failed", "node-returned":
		t, err := num("t", 0)
		if err != nil {
			return Command{}, err
		}
		op := map[string]Op{"node-failed": OpNodeFailed, "node-returned": OpNodeReturned}[cmd]
		return Command{Op: op, Node: routing.NodeID(word()), Time: int64(t)}, nil
	case "assign-lost", "assigned-lost":
		v, err := num("v", 0)
		if err != nil {
			return Command{}, err
		}
		e, err := epoch(int(v))
		if err != nil {
			return Command{}, err
		}
		op := map[string]Op{"assign-lost": OpAssignLost, "assigned-lost": OpAssignedLost}[cmd]
		return Command{Op: op, Vnode: int(v), Node: routing.NodeID(args["node"]), Epoch: e}, nil
	case "set-draining":
		return Command{Op: OpSetDraining, Node: routing.NodeID(word()), Draining: !has("off")}, nil
	case "operation":
		t, err := num("t", 0)
		if err != nil {
			return Command{}, err
		}
		c := Command{Op: OpOperation, Kind: args["kind"], Node: routing.NodeID(args["node"]), Time: int64(t)}
		if vs := args["vnodes"]; vs != "" {
			for _, x := range strings.Split(vs, ",") {
				n, err := strconv.Atoi(x)
				if err != nil {
					return Command{}, fmt.Errorf("bad vnode %q", x)
				}
				c.Vnodes = append(c.Vnodes, n)
			}
		}
		return c, nil
	case "end-operation":
		return Command{Op: OpEndOperation, Note: args["note"]}, nil
	case "request":
		return Command{Op: OpRequest, Kind: args["kind"]}, nil
	case "set-option":
		if len(words) != 2 {
			return Command{}, fmt.Errorf("set-option NAME VALUE")
		}
		return Command{Op: OpSetOption, Name: words[0], Value: words[1]}, nil
	case "init-in-batch":
		return Command{Op: OpInit}, nil
	case "batch-in-batch":
		return Command{Op: OpBatch}, nil
	}
	return Command{}, fmt.Errorf("unknown command: %s", cmd)
}

// apply runs data through FSM.Apply at the next index, checks the side
// properties and returns the outcome line.
func (h *metaHarness) apply(t testing.TB, data []byte) string {
	t.Helper()
	before := h.fsm.State()
	beforeForm := normalize(before)
	changed := h.fsm.Changed()
	h.index++
	res := h.fsm.Apply(&raft.Log{Index: h.index, Type: raft.LogCommand, Data: data})
	after := h.fsm.State()
	fired := isClosed(changed)

	if after.Index != h.index {
		t.Errorf("state index %d after applying index %d", after.Index, h.index)
	}
	if err := after.validate(); err != nil {
		t.Errorf("state breaks an invariant after %s: %v", data, err)
	}
	checkSnapshotRoundTrip(t, h.fsm)
	if !reflect.DeepEqual(beforeForm, normalize(before)) {
		t.Errorf("command %s modified the previously published state", data)
	}
	same := sameContent(before, after)
	var out string
	switch err, _ := res.(error); {
	case res != nil && err == nil:
		t.Errorf("Apply returned %T %v, want nil or an error", res, res)
	case err != nil:
		out = "refused: " + err.Error()
		if !same {
			t.Errorf("refused command %s changed the state:\nbefore:\n%s\nafter:\n%s", data, showState(before), showState(after))
		}
		if fired {
			t.Errorf("refused command %s fired Changed", data)
		}
	case same:
		out = "ok, no change"
		if fired {
			t.Errorf("command %s changed nothing but fired Changed", data)
		}
	default:
		out = "ok"
		if !fired {
			t.Errorf("command %s changed the state but did not fire Changed", data)
		}
	}
	return out
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// sameContent compares two states but their Index, treating nil and empty
// slices and maps alike.
func sameContent(a, b *State) bool {
	x, y := *a, *b
	x.Index, y.Index = 0, 0
	return reflect.DeepEqual(normalize(&x), normalize(&y))
}

// normalize returns the state's JSON form decoded back, so that nil and
// empty compare equal.
func normalize(s *State) any {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		panic(err)
	}
	return v
}

// checkSnapshotRoundTrip restores f's snapshot into a new FSM and checks
// that it holds the same state.
func checkSnapshotRoundTrip(t testing.TB, f *FSM) {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	snap.Release()
	g := NewFSM(testutil.Logger(t))
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Errorf("Restore of the FSM's own snapshot: %v\n%s", err, sink.Bytes())
		return
	}
	if a, b := normalize(f.State()), normalize(g.State()); !reflect.DeepEqual(a, b) {
		t.Errorf("restored state differs:\nhave:\n%s\nrestored:\n%s", showState(f.State()), showState(g.State()))
	}
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	closed, canceled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.canceled = true; return nil }

var _ raft.SnapshotSink = (*memSink)(nil)

// showState prints a state compactly and deterministically.
func showState(s *State) string {
	if !s.Initialized() {
		return fmt.Sprintf("index %d: not initialized", s.Index)
	}
	var b strings.Builder
	st := s.Settings
	fmt.Fprintf(&b, "index %d version %d: name=%q div_bits=%d redundancy=%d", s.Index, s.Table.Version, st.Name, st.DivBits, st.Redundancy)
	if st.ReplicationInHost {
		b.WriteString(" replication_in_host")
	}
	b.WriteString("\nmembers:")
	for _, m := range s.Members {
		fmt.Fprintf(&b, " %s(%s", m.ID, m.Addr)
		if m.Voter {
			b.WriteString(",voter")
		}
		if m.Failed {
			b.WriteString(",failed")
		}
		if m.Draining {
			b.WriteString(",draining")
		}
		b.WriteString(")")
	}
	if len(s.Members) == 0 {
		b.WriteString(" none")
	}
	b.WriteString("\nnodes:")
	for _, n := range s.Table.Nodes {
		fmt.Fprintf(&b, " %s@%s", n.ID, n.Host)
	}
	if len(s.Table.Nodes) == 0 {
		b.WriteString(" none")
	}
	fmt.Fprintf(&b, "\nnamespaces: %s", strings.Join(s.Namespaces, " "))
	for v, r := range s.Table.Vnodes {
		fmt.Fprintf(&b, "\nv%d e%d %s", v, r.Epoch, ids(r.Nodes))
		if lag := s.Lagging[v]; len(lag) > 0 {
			fmt.Fprintf(&b, " lagging %s", ids(lag))
		}
		if target, ok := s.Moves[v]; ok {
			fmt.Fprintf(&b, " moving to %s", ids(target))
		}
		if s.Fenced[v] {
			b.WriteString(" fenced")
		}
		switch n := len(r.Nodes); {
		case n == 0:
			b.WriteString(" lost")
		case n < s.Table.Redundancy:
			b.WriteString(" short")
		}
	}
	for _, v := range slices.Sorted(maps.Keys(s.Lost)) {
		fmt.Fprintf(&b, "\nlost v%d last held by %s", v, ids(s.Lost[v]))
	}
	for _, v := range slices.Sorted(maps.Keys(s.Assigning)) {
		fmt.Fprintf(&b, "\nassigning v%d to %s", v, s.Assigning[v])
	}
	for _, n := range slices.Sorted(maps.Keys(s.Former)) {
		fmt.Fprintf(&b, "\nformer %s: %v", n, s.Former[n])
	}
	if o := s.Operation; o != nil {
		fmt.Fprintf(&b, "\noperation %d %s", o.ID, o.Kind)
		if o.Node != "" {
			fmt.Fprintf(&b, " %s", o.Node)
		}
		fmt.Fprintf(&b, ": done %d pending %v", o.Done, o.Pending)
		if o.Ended != 0 {
			b.WriteString(" ended")
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.Requests)) {
		fmt.Fprintf(&b, "\nrequest %s", k)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Options)) {
		fmt.Fprintf(&b, "\noption %s=%s", k, s.Options[k])
	}
	if s.ShortSince != 0 {
		fmt.Fprintf(&b, "\nshort since %d", s.ShortSince)
	}
	// Entries of vnodes out of range would not show above.
	for v := range s.Lagging {
		if v < 0 || v >= s.Table.VnodeCount() {
			fmt.Fprintf(&b, "\nlagging of a vnode out of range: v%d", v)
		}
	}
	for v := range s.Moves {
		if v < 0 || v >= s.Table.VnodeCount() {
			fmt.Fprintf(&b, "\nmove of a vnode out of range: v%d", v)
		}
	}
	return b.String()
}

func ids(ns []routing.NodeID) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = string(n)
	}
	return "[" + strings.Join(s, " ") + "]"
}
