package events

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func f(kind, name string) filter { return filter{kind: kind, name: name} }

func TestParseHandlerAccepts(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		filters []filter // nil: every event
		command string
	}{
		{"./x.sh", nil, "./x.sh"},
		{"member-join=./x.sh", []filter{f(MemberJoin, "")}, "./x.sh"},
		{"member-join,member-failed=./x.sh", []filter{f(MemberJoin, ""), f(MemberFailed, "")}, "./x.sh"},
		{"member-leave,member-update,member-reap=x", []filter{f(MemberLeave, ""), f(MemberUpdate, ""), f(MemberReap, "")}, "x"},
		{"user=./x.sh", []filter{f(User, "")}, "./x.sh"},
		{"user:deploy=./x.sh", []filter{f(User, "deploy")}, "./x.sh"},
		{"query=uptime", []filter{f(Query, "")}, "uptime"},
		{"query:load=uptime", []filter{f(Query, "load")}, "uptime"},
		{"user:deploy,query:load,member-join=x", []filter{f(User, "deploy"), f(Query, "load"), f(MemberJoin, "")}, "x"},
		// Filters end at the first '='; the command keeps the rest.
		{"member-join=FOO=1 ./x.sh", []filter{f(MemberJoin, "")}, "FOO=1 ./x.sh"},
		{"user:a:b=x=y", []filter{f(User, "a:b")}, "x=y"},
		{"user:my event=x", []filter{f(User, "my event")}, "x"},
		// Text before the first '=' that is plainly a command.
		{"FOO=1 ./x.sh", nil, "FOO=1 ./x.sh"},
		{"PATH=/opt/bin:$PATH handler", nil, "PATH=/opt/bin:$PATH handler"},
		{"./x.sh --level=debug", nil, "./x.sh --level=debug"},
		{"echo member-join=1", nil, "echo member-join=1"},
		// Every event, spelled out (serf accepts both).
		{"*=./x.sh", nil, "./x.sh"},
		{"=./x.sh", nil, "./x.sh"},
		{"*,user=x", nil, "x"},
		{"*=foo=1 ./x.sh", nil, "foo=1 ./x.sh"},
		{" ./x.sh ", nil, " ./x.sh "},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			h, err := ParseHandler(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			want := Handler{filters: tc.filters, command: tc.command}
			if !reflect.DeepEqual(h, want) {
				t.Fatalf("got %#v, want %#v", h, want)
			}
			back, err := ParseHandler(h.String())
			if err != nil || !reflect.DeepEqual(back, h) {
				t.Fatalf("String() %q parsed back to %#v, %v", h.String(), back, err)
			}
		})
	}
}

func TestParseHandlerRefuses(t *testing.T) {
	for _, tc := range []struct {
		spec  string
		quote string // the offending part, quoted in the error
	}{
		{"", "empty command"},
		{"   ", "empty command"},
		{"member-join=", "empty command"},
		{"user:deploy=  ", "empty command"},
		{"member-joined=x.sh", `"member-joined"`},
		{"usr:deploy=x", `"usr"`},
		{"user-deploy=x", `"user-deploy"`},
		{"MEMBER-JOIN=x", `"MEMBER-JOIN"`},
		{"foo=1 ./x.sh", `"foo"`},
		{"member_join=x", `"member_join"`},
		{"member-join:web=x", `"member-join:web"`},
		{"member-failed:=x", `"member-failed:"`},
		{"user:=x", `"user:"`},
		{"query:=x", `"query:"`},
		{"*:x=y", `"*:x"`},
		{"member-join,,user=x", "empty event type"},
		{"member-join,=x", "empty event type"},
		{",member-join=x", "empty event type"},
		{"member-join, user=x", `" user"`},
		{"a\x00b", "NUL"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			h, err := ParseHandler(tc.spec)
			if err == nil {
				t.Fatalf("accepted as %#v", h)
			}
			if !errors.Is(err, ErrBadHandler) {
				t.Fatalf("error %v does not wrap ErrBadHandler", err)
			}
			if !strings.Contains(err.Error(), tc.quote) {
				t.Fatalf("error %q does not name %s", err, tc.quote)
			}
		})
	}
}

func TestHandlerString(t *testing.T) {
	for spec, want := range map[string]string{
		"./x.sh":                  "./x.sh",
		"=./x.sh":                 "./x.sh",
		"FOO=1 ./x.sh":            "*=FOO=1 ./x.sh",
		"member-join,user:d=x.sh": "member-join,user:d=x.sh",
		"*,query=x":               "x",
	} {
		if got := mustHandler(t, spec).String(); got != want {
			t.Errorf("ParseHandler(%q).String() = %q, want %q", spec, got, want)
		}
	}
}

func TestHandlerMatches(t *testing.T) {
	join := Event{Kind: MemberJoin, Members: []Member{{Name: "n1"}}}
	failed := Event{Kind: MemberFailed}
	deploy := Event{Kind: User, Name: "deploy"}
	other := Event{Kind: User, Name: "other"}
	load := Event{Kind: Query, Name: "load"}
	// A member event's Name is not looked at, even if set.
	joinNamed := Event{Kind: MemberJoin, Name: "deploy"}
	all := []Event{join, failed, deploy, other, load, joinNamed}
	for _, tc := range []struct {
		spec string
		want []bool // for each of all
	}{
		{"x", []bool{true, true, true, true, true, true}},
		{"member-join=x", []bool{true, false, false, false, false, true}},
		{"member-join,member-failed=x", []bool{true, true, false, false, false, true}},
		{"user=x", []bool{false, false, true, true, false, false}},
		{"user:deploy=x", []bool{false, false, true, false, false, false}},
		{"query=x", []bool{false, false, false, false, true, false}},
		{"query:load=x", []bool{false, false, false, false, true, false}},
		{"query:deploy=x", []bool{false, false, false, false, false, false}},
		{"member-reap=x", []bool{false, false, false, false, false, false}},
	} {
		h := mustHandler(t, tc.spec)
		for i, ev := range all {
			if got := h.Matches(ev); got != tc.want[i] {
				t.Errorf("%q.Matches(%s %q) = %v, want %v", tc.spec, ev.Kind, ev.Name, got, tc.want[i])
			}
		}
	}
}

func FuzzParseHandler(f *testing.F) {
	for _, s := range []string{
		"./x.sh", "member-join=./x.sh", "member-join,member-failed=x", "user:deploy=x",
		"query:load=uptime", "member-join=FOO=1 ./x.sh", "FOO=1 ./x.sh", "*=x", "=x",
		"user:=x", "member-join:a=x", ",=", "*,*=a=b", "foo=1 x", "user:a b=c=d", "x\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		h, err := ParseHandler(spec)
		if err != nil {
			if !errors.Is(err, ErrBadHandler) {
				t.Fatalf("error %v does not wrap ErrBadHandler", err)
			}
			return
		}
		if strings.TrimSpace(h.Command()) == "" {
			t.Fatalf("accepted an empty command: %#v", h)
		}
		back, err := ParseHandler(h.String())
		if err != nil {
			t.Fatalf("String() %q of %q does not parse: %v", h.String(), spec, err)
		}
		if !reflect.DeepEqual(back, h) {
			t.Fatalf("String() %q of %q parsed to %#v, want %#v", h.String(), spec, back, h)
		}
	})
}
