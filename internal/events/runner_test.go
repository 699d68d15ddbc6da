package events

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/testutil"
)

// serfVars returns the SERF_ and SONAE_EVENTS_ variables of an `env` dump.
func serfVars(dump string) map[string]string {
	vars := map[string]string{}
	for line := range strings.SplitSeq(dump, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && (strings.HasPrefix(k, "SERF_") || strings.HasPrefix(k, "SONAE_EVENTS_")) {
			vars[k] = v
		}
	}
	return vars
}

func TestEnvironmentAndStdin(t *testing.T) {
	t.Setenv("SONAE_EVENTS_PARENT", "from-parent")
	t.Setenv("SERF_RPC_ADDR", "127.0.0.1:7373") // not about an event: kept
	t.Setenv("SERF_USER_EVENT", "stale")        // about an event: removed
	t.Setenv("SERF_TAG_GONE", "stale")          // likewise
	dir := t.TempDir()
	dump := script(t, dir, "dump.sh", `env > "`+dir+`/env.$SERF_EVENT"; cat > "`+dir+`/stdin.$SERF_EVENT"; echo ok > "`+dir+`/done.$SERF_EVENT"`)
	self := Self{Name: "self-1", Tags: map[string]string{"role": "db", "dc": "east-1", "weird.tag-name": "v", "ünï": "x"}}
	r, _ := start(t, fastConfig(), self, dump)

	r.Dispatch(Event{Kind: MemberJoin, Members: []Member{
		{Name: "n1", Addr: "10.0.0.1", Status: "alive", Tags: map[string]string{"role": "web", "dc": "east"}},
		{Name: "we\tird", Addr: "::1", Status: "alive", Tags: map[string]string{"note": "a\nb"}},
		{Name: "n3", Addr: "10.0.0.3"},
	}}, nil)
	r.Dispatch(Event{Kind: User, Name: "deploy", Payload: []byte("v1.2"), LTime: 7}, nil)
	r.Dispatch(Event{Kind: Query, Name: "load", Payload: []byte("ask\n"), LTime: 9}, nil)
	waitRan(t, r, 3)

	selfVars := map[string]string{
		"SONAE_EVENTS_PARENT": "from-parent", "SERF_RPC_ADDR": "127.0.0.1:7373",
		"SERF_SELF_NAME": "self-1", "SERF_SELF_ROLE": "db",
		"SERF_TAG_ROLE": "db", "SERF_TAG_DC": "east-1", "SERF_TAG_WEIRD_TAG_NAME": "v", "SERF_TAG__N_": "x",
	}
	with := func(extra ...string) map[string]string {
		m := map[string]string{}
		for k, v := range selfVars {
			m[k] = v
		}
		for i := 0; i < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		kind  string
		env   map[string]string
		stdin string
	}{
		{MemberJoin, with("SERF_EVENT", MemberJoin),
			"n1\t10.0.0.1\tweb\tdc=east,role=web\nwe\\tird\t::1\t\tnote=a\\nb\nn3\t10.0.0.3\t\t\n"},
		{User, with("SERF_EVENT", User, "SERF_USER_EVENT", "deploy", "SERF_USER_LTIME", "7"), "v1.2\n"},
		{Query, with("SERF_EVENT", Query, "SERF_QUERY_NAME", "load", "SERF_QUERY_LTIME", "9"), "ask\n"},
	} {
		readFile(t, filepath.Join(dir, "done."+tc.kind))
		env, _ := os.ReadFile(filepath.Join(dir, "env."+tc.kind))
		if got := serfVars(string(env)); !reflect.DeepEqual(got, tc.env) {
			t.Errorf("%s environment:\n got %v\nwant %v", tc.kind, got, tc.env)
		}
		in, _ := os.ReadFile(filepath.Join(dir, "stdin."+tc.kind))
		if string(in) != tc.stdin {
			t.Errorf("%s stdin = %q, want %q", tc.kind, in, tc.stdin)
		}
	}
}

func TestSelfWithoutRole(t *testing.T) {
	dir := t.TempDir()
	dump := script(t, dir, "dump.sh", `env > "`+dir+`/env"`)
	r, _ := start(t, fastConfig(), Self{Name: "n"}, dump)
	r.Dispatch(Event{Kind: MemberLeave}, nil)
	waitRan(t, r, 1)
	got := serfVars(readFile(t, filepath.Join(dir, "env")))
	if role, ok := got["SERF_SELF_ROLE"]; !ok || role != "" {
		t.Fatalf("SERF_SELF_ROLE = %q (set %v), want set and empty", role, ok)
	}
}

// responses records query answers by query name.
type responses struct {
	mu  sync.Mutex
	got map[string][]string
}

func (rs *responses) for_(name string, err error) func([]byte) error {
	return func(b []byte) error {
		rs.mu.Lock()
		defer rs.mu.Unlock()
		rs.got[name] = append(rs.got[name], string(b))
		return err
	}
}

func TestQueryResponse(t *testing.T) {
	dir := t.TempDir()
	cfg := fastConfig()
	cfg.MaxOutput = 100
	r, logs := start(t, cfg, Self{Name: "n"},
		"query:echo="+script(t, dir, "echo.sh", `cat; echo err >&2`),
		"query:fail="+script(t, dir, "fail.sh", `echo nope; exit 1`),
		"query:big="+script(t, dir, "big.sh", `i=0; while [ $i -lt 50 ]; do printf '%s' 0123456789; i=$((i+1)); done`),
		"query:silent="+script(t, dir, "silent.sh", `exit 0`),
		"query:two="+script(t, dir, "first.sh", `echo first`),
		"query:two="+script(t, dir, "second.sh", `echo second`),
		"query:refused="+script(t, dir, "refused.sh", `echo hi`),
		"user="+script(t, dir, "user.sh", `echo not a query`),
	)
	rs := &responses{got: map[string][]string{}}
	for _, name := range []string{"echo", "fail", "big", "silent", "two"} {
		r.Dispatch(Event{Kind: Query, Name: name, Payload: []byte("hello")}, rs.for_(name, nil))
	}
	r.Dispatch(Event{Kind: Query, Name: "refused"}, rs.for_("refused", errors.New("past the deadline")))
	r.Dispatch(Event{Kind: Query, Name: "echo", Payload: []byte("no responder")}, nil)
	r.Dispatch(Event{Kind: User, Name: "echo"}, rs.for_("user", nil))
	waitRan(t, r, 9)
	logs.waitFor(t, "level=WARN", "query response failed", "past the deadline")

	rs.mu.Lock()
	defer rs.mu.Unlock()
	want := map[string][]string{
		"echo":    {"hello\nerr\n"},
		"big":     {strings.Repeat("0123456789", 10)},
		"two":     {"first\n"},
		"refused": {"hi\n"},
	}
	if !reflect.DeepEqual(rs.got, want) {
		t.Fatalf("responses:\n got %q\nwant %q", rs.got, want)
	}
	logs.waitFor(t, "handler ran", "query big", "output_bytes=500", "output_kept=100")
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	cfg := fastConfig()
	cfg.Timeout = 300 * time.Millisecond
	hang := script(t, dir, "hang.sh", `sleep 60 & echo $! > "`+dir+`/pid"; wait`)
	r, logs := start(t, cfg, Self{Name: "n"}, "member-failed="+hang)
	startedAt := time.Now()
	r.Dispatch(Event{Kind: MemberFailed, Members: []Member{{Name: "n2"}}}, nil)
	child := readPid(t, filepath.Join(dir, "pid"))
	waitRan(t, r, 1)
	if took := time.Since(startedAt); took > 5*time.Second {
		t.Fatalf("the run took %s with a 300ms timeout", took)
	}
	if s := r.Stats(); s.TimedOut != 1 || s.Failed != 1 {
		t.Fatalf("stats %+v, want 1 timed out and failed", s)
	}
	testutil.Eventually(t, 5*time.Second, "the script's sleep child to die", func() error { return gone(child) })
	logs.waitFor(t, "level=WARN", "handler failed", "member-failed n2", `status="signal: killed"`, "timed out", "timeout=300ms")
}

func TestFailureAndOutputAreLogged(t *testing.T) {
	dir := t.TempDir()
	r, logs := start(t, fastConfig(), Self{Name: "n"},
		"member-update="+script(t, dir, "boom.sh", `echo boom; echo second; exit 3`),
		"member-reap="+script(t, dir, "hi.sh", `echo hi-there`),
	)
	r.Dispatch(Event{Kind: MemberUpdate, Members: []Member{{Name: "n1"}}}, nil)
	r.Dispatch(Event{Kind: MemberReap, Members: []Member{{Name: "n2"}}}, nil)
	waitRan(t, r, 2)
	logs.waitFor(t, "level=WARN", "handler failed", "boom.sh", `event="member-update n1"`,
		`status="exit status 3"`, `output="boom\nsecond\n"`)
	logs.waitFor(t, "level=DEBUG", "handler ran", "hi.sh", `event="member-reap n2"`, `output="hi-there\n"`)
	if s := r.Stats(); s.Ran != 2 || s.Failed != 1 || s.TimedOut != 0 {
		t.Fatalf("stats %+v, want 2 ran, 1 failed", s)
	}
}

func TestEventsRunSeriallyInOrder(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "order")
	lock := filepath.Join(dir, "lock")
	r, _ := start(t, fastConfig(), Self{Name: "n"},
		"user="+script(t, dir, "one.sh", `mkdir "`+lock+`" || echo overlap >> "`+out+`"; echo "$SERF_USER_EVENT.1" >> "`+out+`"`),
		"member-join="+script(t, dir, "never.sh", `echo member >> "`+out+`"`),
		"user="+script(t, dir, "two.sh", `echo "$SERF_USER_EVENT.2" >> "`+out+`"; rmdir "`+lock+`"`),
	)
	var want []string
	for i := range 20 {
		name := fmt.Sprintf("e%d", i)
		r.Dispatch(Event{Kind: User, Name: name}, nil)
		want = append(want, name+".1", name+".2")
	}
	waitRan(t, r, 40)
	got, _ := os.ReadFile(out)
	if strings.Join(want, "\n")+"\n" != string(got) {
		t.Fatalf("runs in order %q, want %q", got, want)
	}
}
