package meta

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sonae-kv/sonae/internal/routing"
)

// Event kinds of the routing history.
const (
	EvJoin     = "join"     // a node became a member
	EvLeave    = "leave"    // a node left gracefully (or was removed)
	EvFailed   = "failed"   // the leader confirmed a node failed
	EvReturned = "returned" // a failed node came back
	EvPromote  = "promote"  // a vnode got a new primary because its old one failed or left
	EvMove     = "move"     // a vnode's replica list changed by a move
	EvLost     = "lost"     // a vnode lost every replica
	EvRestored = "restored" // a lost vnode came back with a returning replica
	EvAssigned = "assigned" // a lost vnode was given, empty, to a live node (auto_assign)
	EvRelease  = "release"  // release of a node was asked
	EvOpStart  = "start"    // an operation (join, release, recover, balance) started
	EvOpEnd    = "end"      // it finished
	EvOption   = "option"   // an option was set
)

// Event is one line of the routing history. Time is the proposer's clock,
// in Unix milliseconds, carried by the command so every node records the
// same value.
type Event struct {
	Time  int64            `json:"time"`
	Kind  string           `json:"kind"`
	Node  routing.NodeID   `json:"node,omitempty"`
	Vnode int              `json:"vnode,omitempty"`
	From  []routing.NodeID `json:"from,omitempty"`
	To    []routing.NodeID `json:"to,omitempty"`
	Note  string           `json:"note,omitempty"`
}

// String is ROMA's routing.event form, "<time> <kind> <node>", with the
// vnode and lists when the event has them.
func (e Event) String() string {
	var b strings.Builder
	b.WriteString(time.UnixMilli(e.Time).UTC().Format("2006-01-02T15:04:05.000Z"))
	b.WriteByte(' ')
	b.WriteString(e.Kind)
	if e.Node != "" {
		b.WriteByte(' ')
		b.WriteString(string(e.Node))
	}
	switch e.Kind {
	case EvMove, EvPromote, EvLost, EvRestored, EvAssigned:
		fmt.Fprintf(&b, " vnode %d", e.Vnode)
	}
	if e.From != nil || e.To != nil {
		fmt.Fprintf(&b, " %s -> %s", idList(e.From), idList(e.To))
	}
	if e.Note != "" {
		b.WriteByte(' ')
		b.WriteString(e.Note)
	}
	return b.String()
}

func idList(ids []routing.NodeID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = string(id)
	}
	return "[" + strings.Join(s, ",") + "]"
}

// record appends an event, keeping at most the event limit. The history
// grows in place: states form one line (each is derived from the last
// published one), and a state only ever reads its own prefix of the shared
// array, so appending never changes what an older state sees.
func (s *State) record(e Event) {
	limit := s.Tuning().EventLimit
	s.History = append(s.History, e)
	if len(s.History) > limit {
		// Copy, so that the dropped head is freed and older states keep
		// their view.
		s.History = slices.Clone(s.History[len(s.History)-limit:])
	}
}

// Operation kinds.
const (
	OpKindJoin    = "join"
	OpKindRelease = "release"
	OpKindRecover = "recover"
	OpKindBalance = "balance"
)

// Operation is one data-movement operation the controller runs: the vnodes
// it still has to move or refill, and how many it has done. Progress tools
// read it from any node.
type Operation struct {
	// ID is the Raft index of the command that started it.
	ID   uint64         `json:"id"`
	Kind string         `json:"kind"`
	Node routing.NodeID `json:"node,omitempty"`
	// Started and Ended are Unix milliseconds; Ended is 0 while it runs.
	Started int64 `json:"started"`
	Ended   int64 `json:"ended,omitempty"`
	// Pending are the vnodes not done yet; Done counts those done.
	Pending []int `json:"pending,omitempty"`
	Done    int   `json:"done"`
}

// Total is the number of vnodes the operation covers so far.
func (o *Operation) Total() int { return o.Done + len(o.Pending) }

func (o *Operation) clone() *Operation {
	c := *o
	c.Pending = slices.Clone(o.Pending)
	return &c
}

// opDone marks vnode v done in the running operation, and ends it when
// nothing is pending.
func (s *State) opDone(v int, now int64) {
	o := s.Operation
	if o == nil || o.Ended != 0 {
		return
	}
	i, ok := slices.BinarySearch(o.Pending, v)
	if !ok {
		return
	}
	o = o.clone()
	o.Pending = slices.Delete(o.Pending, i, i+1)
	o.Done++
	s.Operation = o
	if len(o.Pending) == 0 {
		s.endOperation(now, "")
	}
}

func (s *State) endOperation(now int64, note string) {
	o := s.Operation.clone()
	o.Ended = max(now, o.Started)
	o.Pending = nil
	s.Operation = o
	s.record(Event{Time: now, Kind: EvOpEnd, Node: o.Node, Note: fmt.Sprintf("%s: %d vnodes in %s%s", o.Kind, o.Done,
		time.Duration(o.Ended-o.Started)*time.Millisecond, note)})
}

// Running reports whether an operation is under way.
func (s *State) Running() bool { return s.Operation != nil && s.Operation.Ended == 0 }
