package events

import (
	"errors"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
)

// The event kinds: exactly serf's SERF_EVENT values.
const (
	MemberJoin   = "member-join"
	MemberLeave  = "member-leave"
	MemberFailed = "member-failed"
	MemberUpdate = "member-update"
	MemberReap   = "member-reap"
	User         = "user"
	Query        = "query"
)

// kinds lists every kind, in serf's order (used in error messages).
var kinds = []string{MemberJoin, MemberLeave, MemberFailed, MemberUpdate, MemberReap, User, Query}

// isMemberKind reports whether kind is one of the member events.
func isMemberKind(kind string) bool {
	return kind != User && kind != Query && slices.Contains(kinds, kind)
}

// validKind reports whether kind is one of the kinds above.
func validKind(kind string) bool { return slices.Contains(kinds, kind) }

// Errors returned (wrapped) by this package.
var (
	// ErrBadHandler: an --event-handler value that does not parse.
	ErrBadHandler = errors.New("events: bad event handler")
	// ErrBadConfig: a Config that fails Validate.
	ErrBadConfig = errors.New("events: bad config")
	// ErrClosed: the Runner was closed; a handler running then is killed.
	ErrClosed = errors.New("events: runner closed")
	// ErrTimeout: a handler ran past Config.Timeout and was killed.
	ErrTimeout = errors.New("events: handler timed out")
)

// Member is one member of the cluster as handlers and the live-node list
// see it.
type Member struct {
	Name string `json:"name"`
	// Addr is the member's IP address only, as serf prints it.
	Addr string            `json:"addr"`
	Tags map[string]string `json:"tags"`
	// Status is alive, failed, left or leaving.
	Status string `json:"status"`
}

// Event is one gossip event to hand to the handlers. Dispatch keeps it:
// the caller must not modify Members, their Tags or Payload afterwards.
type Event struct {
	// Kind is one of the kind constants (MemberJoin ... Query).
	Kind string
	// Members are the members a member event is about.
	Members []Member
	// Name is the user event's or the query's name.
	Name string
	// Payload is the user event's or the query's payload.
	Payload []byte
	// LTime is the user event's or the query's Lamport time.
	LTime uint64
}

func (e Event) String() string {
	if isMemberKind(e.Kind) {
		names := make([]string, len(e.Members))
		for i, m := range e.Members {
			names[i] = m.Name
		}
		return e.Kind + " " + strings.Join(names, ",")
	}
	return e.Kind + " " + e.Name + " ltime=" + strconv.FormatUint(e.LTime, 10) +
		" payload=" + strconv.Itoa(len(e.Payload)) + "B"
}

// Self is the local node as handlers see it: SERF_SELF_NAME, SERF_SELF_ROLE
// (Tags["role"], empty if none) and SERF_TAG_* for each tag.
type Self struct {
	Name string
	Tags map[string]string
}

// inheritedSerfVars are the prefixes of the parent's variables removed
// before the event's own are added: they describe an event, and a stale
// one (sonae started from a serf handler, say) would mislead a script.
// Others, such as SERF_RPC_ADDR, are kept.
var inheritedSerfVars = []string{"SERF_EVENT=", "SERF_SELF_", "SERF_TAG_", "SERF_USER_", "SERF_QUERY_"}

// environ returns the handler's environment for ev.
func environ(ev Event, self Self) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return slices.ContainsFunc(inheritedSerfVars, func(p string) bool { return strings.HasPrefix(kv, p) })
	})
	env = append(env,
		"SERF_EVENT="+ev.Kind,
		"SERF_SELF_NAME="+self.Name,
		"SERF_SELF_ROLE="+self.Tags["role"],
	)
	for _, k := range slices.Sorted(maps.Keys(self.Tags)) {
		env = append(env, "SERF_TAG_"+tagEnvName(k)+"="+self.Tags[k])
	}
	switch ev.Kind {
	case User:
		env = append(env, "SERF_USER_EVENT="+ev.Name, "SERF_USER_LTIME="+strconv.FormatUint(ev.LTime, 10))
	case Query:
		env = append(env, "SERF_QUERY_NAME="+ev.Name, "SERF_QUERY_LTIME="+strconv.FormatUint(ev.LTime, 10))
	}
	return env
}

// tagEnvName upper-cases a tag name and replaces every rune outside
// [A-Z0-9_] with '_', as serf does.
func tagEnvName(tag string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, strings.ToUpper(tag))
}

// stdin returns what the handler reads for ev.
func stdin(ev Event) []byte {
	if !isMemberKind(ev.Kind) {
		if len(ev.Payload) == 0 || ev.Payload[len(ev.Payload)-1] == '\n' {
			return ev.Payload
		}
		return append(slices.Clip(ev.Payload), '\n')
	}
	var b []byte
	for _, m := range ev.Members {
		pairs := make([]string, 0, len(m.Tags))
		for _, k := range slices.Sorted(maps.Keys(m.Tags)) {
			pairs = append(pairs, k+"="+m.Tags[k])
		}
		b = append(b, clean(m.Name)+"\t"+m.Addr+"\t"+clean(m.Tags["role"])+"\t"+clean(strings.Join(pairs, ","))+"\n"...)
	}
	return b
}

// clean escapes tabs and newlines so a value stays in its field and line.
func clean(s string) string {
	return strings.NewReplacer("\t", `\t`, "\n", `\n`).Replace(s)
}
