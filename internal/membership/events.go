package membership

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/serf/serf"
)

// EventKind is what an Event reports. String gives serf's names, the values
// of SERF_EVENT for event handlers.
type EventKind int

// The event kinds.
const (
	// MemberJoin: members joined (or came back after a failure).
	MemberJoin EventKind = iota + 1
	// MemberLeave: members left gracefully (Leave).
	MemberLeave
	// MemberFailed: members stopped answering probes (crash, pause,
	// partition). They may come back with MemberJoin.
	MemberFailed
	// MemberUpdate: members changed their tags (SetTags).
	MemberUpdate
	// MemberReap: failed or left members were forgotten after
	// ReconnectTimeout or TombstoneTimeout.
	MemberReap
	// UserEvent: a user event (Membership.UserEvent on any member).
	UserEvent
	// QueryEvent: a query to answer with Event.Respond.
	QueryEvent
)

var kindNames = map[EventKind]string{
	MemberJoin: "member-join", MemberLeave: "member-leave", MemberFailed: "member-failed",
	MemberUpdate: "member-update", MemberReap: "member-reap", UserEvent: "user", QueryEvent: "query",
}

func (k EventKind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// IsMember reports whether k is one of the member events.
func (k EventKind) IsMember() bool { return k >= MemberJoin && k <= MemberReap }

// Event is one serf event, in sonae's types.
type Event struct {
	Kind EventKind
	// Members are the members the event is about (member events only).
	Members []Member
	// Name is the user event's or the query's name.
	Name string
	// Payload is the user event's or the query's payload.
	Payload []byte
	// LTime is the Lamport time of the user event or query.
	LTime uint64
	// Coalesce is the user event's coalesce flag.
	Coalesce bool
	// From is the name of the member that sent the query.
	From string
	// Deadline is when the query's sender stops collecting responses.
	Deadline time.Time

	query *serf.Query
}

// Respond answers a query event; only the first call counts. The payload
// must fit MaxQueryResponseSize once encoded. It fails with ErrNotQuery on
// other events, and with serf's error once the deadline has passed.
func (e Event) Respond(payload []byte) error {
	if e.query == nil {
		return ErrNotQuery
	}
	if err := e.query.Respond(payload); err != nil {
		if strings.Contains(err.Error(), "exceeds limit") {
			return fmt.Errorf("%w: query response of %d bytes: %w", ErrTooLarge, len(payload), err)
		}
		return fmt.Errorf("membership: respond to query %q: %w", e.Name, err)
	}
	return nil
}

func (e Event) String() string {
	switch {
	case e.Kind.IsMember():
		names := make([]string, len(e.Members))
		for i, m := range e.Members {
			names[i] = m.Name
		}
		return e.Kind.String() + " " + strings.Join(names, ",")
	case e.Kind == UserEvent, e.Kind == QueryEvent:
		return fmt.Sprintf("%s %s ltime=%d payload=%dB", e.Kind, e.Name, e.LTime, len(e.Payload))
	}
	return e.Kind.String()
}

// MemberStatus is a member's state as this member sees it.
type MemberStatus int

// The member states.
const (
	StatusNone MemberStatus = iota
	StatusAlive
	StatusLeaving
	StatusLeft
	StatusFailed
)

func (s MemberStatus) String() string {
	switch s {
	case StatusAlive:
		return "alive"
	case StatusLeaving:
		return "leaving"
	case StatusLeft:
		return "left"
	case StatusFailed:
		return "failed"
	}
	return "none"
}

// Member is one member of the cluster.
type Member struct {
	Name string
	// Addr and Port are the member's advertised gossip address.
	Addr   netip.Addr
	Port   uint16
	Status MemberStatus
	// Tags is the member's own copy; changing it changes nothing.
	Tags map[string]string
}

// HostPort returns "addr:port", the form Join takes.
func (m Member) HostPort() string {
	return netip.AddrPortFrom(m.Addr, m.Port).String()
}

func fromSerfMember(sm serf.Member) Member {
	addr, _ := netip.AddrFromSlice(sm.Addr)
	var status MemberStatus
	switch sm.Status {
	case serf.StatusAlive:
		status = StatusAlive
	case serf.StatusLeaving:
		status = StatusLeaving
	case serf.StatusLeft:
		status = StatusLeft
	case serf.StatusFailed:
		status = StatusFailed
	}
	return Member{Name: sm.Name, Addr: addr.Unmap(), Port: sm.Port, Status: status, Tags: cloneTags(sm.Tags)}
}

// fromSerfEvent converts a serf event; ok is false for unknown ones.
func fromSerfEvent(e serf.Event) (Event, bool) {
	switch e := e.(type) {
	case serf.MemberEvent:
		kind := map[serf.EventType]EventKind{
			serf.EventMemberJoin: MemberJoin, serf.EventMemberLeave: MemberLeave,
			serf.EventMemberFailed: MemberFailed, serf.EventMemberUpdate: MemberUpdate,
			serf.EventMemberReap: MemberReap,
		}[e.Type]
		if kind == 0 {
			return Event{}, false
		}
		ms := make([]Member, len(e.Members))
		for i, m := range e.Members {
			ms[i] = fromSerfMember(m)
		}
		return Event{Kind: kind, Members: ms}, true
	case serf.UserEvent:
		return Event{Kind: UserEvent, Name: e.Name, Payload: e.Payload, LTime: uint64(e.LTime), Coalesce: e.Coalesce}, true
	case *serf.Query:
		return Event{
			Kind: QueryEvent, Name: e.Name, Payload: e.Payload, LTime: uint64(e.LTime),
			From: e.SourceNode(), Deadline: e.Deadline(), query: e,
		}, true
	}
	return Event{}, false
}

// eventQueue is a FIFO ring that grows up to max entries; pushing onto a
// full queue drops the oldest entry.
type eventQueue struct {
	buf  []Event
	head int // index of the oldest entry
	n    int // entries queued
	max  int
}

// push appends e and reports whether the oldest entry was dropped for it.
func (q *eventQueue) push(e Event) (dropped bool) {
	if q.n == q.max {
		q.pop()
		dropped = true
	}
	if q.n == len(q.buf) {
		grown := make([]Event, min(max(2*len(q.buf), 16), q.max))
		for i := range q.n {
			grown[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = grown, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = e
	q.n++
	return dropped
}

// front returns the oldest entry; the queue must not be empty.
func (q *eventQueue) front() Event { return q.buf[q.head] }

// pop removes the oldest entry; the queue must not be empty.
func (q *eventQueue) pop() {
	q.buf[q.head] = Event{} // let the GC have it
	q.head = (q.head + 1) % len(q.buf)
	q.n--
}

// pump moves events from serf's channel to Events(). It always stands
// ready to receive from serf, so serf never waits on a slow consumer: what
// the consumer has not taken yet waits in the bounded queue. It closes
// Events() when serf shuts down (by Shutdown, or by itself after losing a
// name conflict) and keeps draining serf's channel until Shutdown has
// finished, so no serf goroutine is left blocked on it.
func (m *Membership) pump() {
	defer m.wg.Done()
	q := eventQueue{max: m.cfg.EventQueueSize}
	out := m.out
	serfDown := m.serf.ShutdownCh()
	for {
		var sendCh chan<- Event
		var next Event
		if out != nil && q.n > 0 {
			sendCh, next = out, q.front()
		}
		select {
		case se := <-m.serfCh:
			e, ok := fromSerfEvent(se)
			if !ok || out == nil {
				continue
			}
			if q.push(e) {
				if n := m.dropped.Add(1); n == 1 || n%1024 == 0 {
					m.log.Warn("membership: event consumer too slow, dropped the oldest queued events",
						"dropped_total", n, "queue_size", q.max)
				}
			}
		case sendCh <- next:
			q.pop()
		case <-serfDown:
			serfDown = nil
			if out != nil {
				close(out)
				out = nil
			}
			q = eventQueue{max: q.max}
		case <-m.done:
			if out != nil {
				close(out)
			}
			return
		}
	}
}
