package events

import (
	"fmt"
	"strings"
)

// Handler is one event handler: the events it wants and the shell command
// to run for them. Build it with ParseHandler; the zero Handler is invalid.
type Handler struct {
	// filters are the events wanted; nil means every event.
	filters []filter
	command string
}

// filter selects one kind of event, and for user events and queries
// optionally one name.
type filter struct {
	kind string
	name string // "" = any name; only for User and Query
}

func (f filter) String() string {
	if f.name != "" {
		return f.kind + ":" + f.name
	}
	return f.kind
}

// ParseHandler parses one --event-handler value with serf's grammar:
//
//	CMD                               every event
//	member-join=CMD                   one kind
//	member-join,member-failed=CMD     several kinds
//	user=CMD, user:deploy=CMD         user events, all or one name
//	query=CMD, query:load=CMD         queries, all or one name
//	*=CMD, =CMD                       every event (serf accepts both)
//
// As in serf the filters end at the first '=', so in
// "member-join=FOO=1 ./x.sh" the command is "FOO=1 ./x.sh". Unlike serf,
// whose parser refuses it, a value whose text before the first '=' is
// plainly part of a command counts as a command for every event: an
// upper-case environment assignment ("FOO=1 ./x.sh"), or text with a
// character no filter has, such as a space, '/' or '.'
// ("./x.sh --level=debug"). Anything else before the first '=' must parse
// entirely as a filter list: a typo such as "member-joined=x.sh" is
// refused, not run as a command named "member-joined=x.sh". So is a
// lower-case assignment ("foo=1 ./x.sh"); write "*=foo=1 ./x.sh".
//
// Errors wrap ErrBadHandler and quote the offending part.
func ParseHandler(spec string) (Handler, error) {
	if strings.IndexByte(spec, 0) >= 0 {
		return Handler{}, fmt.Errorf("%w %q: contains a NUL byte", ErrBadHandler, spec)
	}
	prefix, command, found := strings.Cut(spec, "=")
	if !found || !looksLikeFilters(prefix) {
		prefix, command = "", spec
	}
	filters, err := parseFilters(prefix)
	if err != nil {
		return Handler{}, fmt.Errorf("%w %q: %w", ErrBadHandler, spec, err)
	}
	if strings.TrimSpace(command) == "" {
		return Handler{}, fmt.Errorf("%w %q: empty command", ErrBadHandler, spec)
	}
	return Handler{filters: filters, command: command}, nil
}

// looksLikeFilters reports whether the text before a value's first '=' is
// meant as a filter list (which must then parse) rather than as the start
// of a command.
func looksLikeFilters(prefix string) bool {
	first, _, _ := strings.Cut(prefix, ",")
	kind, _, _ := strings.Cut(first, ":")
	switch {
	case kind == "*" || validKind(kind):
		return true
	case isShellName(prefix) && strings.ToLower(prefix) != prefix:
		return false // FOO=1 ./x.sh: an environment assignment
	}
	for _, r := range kind {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '*') {
			return false // ./x.sh --level=debug, echo a=b
		}
	}
	return true
}

// isShellName reports whether s is a POSIX shell variable name.
func isShellName(s string) bool {
	for i, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// parseFilters parses a comma-separated filter list; "" and any "*" mean
// every event (nil).
func parseFilters(list string) ([]filter, error) {
	if list == "" {
		return nil, nil
	}
	var filters []filter
	all := false
	for part := range strings.SplitSeq(list, ",") {
		kind, name, named := strings.Cut(part, ":")
		switch {
		case part == "":
			return nil, fmt.Errorf("empty event type in %q", list)
		case kind == "*" && named:
			return nil, fmt.Errorf("%q: '*' takes no name", part)
		case kind == "*":
			all = true
			continue
		case !validKind(kind):
			return nil, fmt.Errorf("unknown event type %q (want one of %s, user:NAME, query:NAME or *)",
				kind, strings.Join(kinds, ", "))
		case named && kind != User && kind != Query:
			return nil, fmt.Errorf("%q: only user and query events take a name", part)
		case named && name == "":
			return nil, fmt.Errorf("%q: empty name after ':'", part)
		}
		filters = append(filters, filter{kind: kind, name: name})
	}
	if all {
		return nil, nil
	}
	return filters, nil
}

// Matches reports whether h wants ev.
func (h Handler) Matches(ev Event) bool {
	if h.filters == nil {
		return true
	}
	for _, f := range h.filters {
		if f.kind == ev.Kind && (f.name == "" || f.name == ev.Name) {
			return true
		}
	}
	return false
}

// Command returns the shell command h runs.
func (h Handler) Command() string { return h.command }

// String returns h in ParseHandler's grammar; it parses back to h.
func (h Handler) String() string {
	if h.filters == nil {
		if strings.Contains(h.command, "=") {
			return "*=" + h.command
		}
		return h.command
	}
	parts := make([]string, len(h.filters))
	for i, f := range h.filters {
		parts[i] = f.String()
	}
	return strings.Join(parts, ",") + "=" + h.command
}
