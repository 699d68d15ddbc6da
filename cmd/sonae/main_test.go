package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sonae-kv/sonae/client"
	"github.com/sonae-kv/sonae/internal/server"
	"github.com/sonae-kv/sonae/internal/testcluster"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startNode runs an in-process node with the memory engine on a loopback
// port and returns its host:port. (Only tests import server: the CLI itself
// talks to nodes over the wire.)
func startNode(t *testing.T) string {
	t.Helper()
	return testcluster.StartInProcess(t, nil, nil, nil).Addr
}

// result is what one CLI invocation printed and returned.
type result struct {
	stdout, stderr string
	err            error
}

// sonae runs the CLI's root command with args, as main does, with stdin
// (for set without a value) reading from stdin.
func sonae(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errw bytes.Buffer
	root := newRoot(&out, &errw)
	root.SetArgs(args)
	if set, _, err := root.Find([]string{"set"}); err == nil {
		set.SetIn(strings.NewReader(stdin))
	}
	err := root.ExecuteContext(context.Background())
	return result{out.String(), errw.String(), err}
}

// ok runs the CLI and fails the test if it returns an error.
func ok(t *testing.T, args ...string) string {
	t.Helper()
	r := sonae(t, "", args...)
	if r.err != nil {
		t.Fatalf("sonae %q: %v\nstderr: %s", args, r.err, r.stderr)
	}
	return r.stdout
}

// fails runs the CLI, wants an error containing want, and nothing on stdout.
func fails(t *testing.T, want string, args ...string) {
	t.Helper()
	r := sonae(t, "", args...)
	if r.err == nil {
		t.Fatalf("sonae %q succeeded (stdout %q), want an error containing %q", args, r.stdout, want)
	}
	if !strings.Contains(r.err.Error(), want) {
		t.Errorf("sonae %q: error %q does not contain %q", args, r.err, want)
	}
	if r.stdout != "" {
		t.Errorf("sonae %q failed but printed %q", args, r.stdout)
	}
}

func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, s)
	}
}

func TestSetGetDelete(t *testing.T) {
	addr := startNode(t)
	s := []string{"-s", addr}

	if got := ok(t, append(s, "set", "greeting", "hello", "--flags", "7")...); got != "STORED\n" {
		t.Errorf("set: %q", got)
	}
	if got := ok(t, append(s, "get", "greeting")...); got != "hello\n" {
		t.Errorf("get: %q", got)
	}

	// JSON: an array of items with flags and a CAS.
	var items []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
		Flags uint32 `json:"flags"`
		CAS   uint64 `json:"cas"`
	}
	decodeJSON(t, ok(t, append(s, "get", "greeting", "-o", "json")...), &items)
	if len(items) != 1 || items[0].Key != "greeting" || items[0].Value != "hello" || items[0].Flags != 7 || items[0].CAS == 0 {
		t.Errorf("get -o json: %+v", items)
	}

	// set -o json, with the value from stdin.
	r := sonae(t, "from stdin", append(s, "set", "piped", "-o", "json")...)
	if r.err != nil {
		t.Fatal(r.err)
	}
	var stored map[string]any
	decodeJSON(t, r.stdout, &stored)
	if stored["key"] != "piped" || stored["stored"] != true || stored["bytes"] != float64(len("from stdin")) {
		t.Errorf("set -o json: %v", stored)
	}

	// Several keys: text prefixes each value with its key.
	if got := ok(t, append(s, "get", "greeting", "piped")...); got != "greeting: hello\npiped: from stdin\n" {
		t.Errorf("get two keys: %q", got)
	}

	// A missing key is an error naming it; the keys found are still printed.
	fails(t, "not found: [nope]", append(s, "get", "nope")...)
	r = sonae(t, "", append(s, "get", "greeting", "nope")...)
	if r.err == nil || !strings.Contains(r.err.Error(), "not found: [nope]") || r.stdout != "greeting: hello\n" {
		t.Errorf("get found+missing: stdout %q err %v", r.stdout, r.err)
	}

	// delete, text and JSON; deleting again is a not-found error.
	if got := ok(t, append(s, "delete", "greeting")...); got != "DELETED\n" {
		t.Errorf("delete: %q", got)
	}
	fails(t, "not found: greeting", append(s, "delete", "greeting")...)
	fails(t, "not found: [greeting]", append(s, "get", "greeting")...)
	var deleted map[string]any
	decodeJSON(t, ok(t, append(s, "delete", "piped", "-o", "json")...), &deleted)
	if deleted["key"] != "piped" || deleted["deleted"] != true {
		t.Errorf("delete -o json: %v", deleted)
	}
}

func TestNamespacesAndHashlist(t *testing.T) {
	addr := startNode(t)
	// The ROMA host_port form of -s works too.
	host, port, _ := net.SplitHostPort(addr)
	s := []string{"-s", host + "_" + port}

	if got := ok(t, append(s, "hashlist")...); got != "default\n" {
		t.Errorf("hashlist: %q", got)
	}
	fails(t, `namespace "app" does not exist`, append(s, "set", "-n", "app", "k", "v")...)

	c, err := client.Dial(addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Command("createhash app"); err != nil {
		t.Fatal(err)
	}

	var names []string
	decodeJSON(t, ok(t, append(s, "hashlist", "-o", "json")...), &names)
	if !slices.Equal(names, []string{"app", "default"}) {
		t.Errorf("hashlist -o json: %q", names)
	}
	ok(t, append(s, "set", "-n", "app", "k", "in-app")...)
	if got := ok(t, append(s, "get", "--namespace", "app", "k")...); got != "in-app\n" {
		t.Errorf("get -n app: %q", got)
	}
	fails(t, "not found: [k]", append(s, "get", "k")...) // not in default
	ok(t, append(s, "delete", "-n", "app", "k")...)
	fails(t, "not found: [k]", append(s, "get", "-n", "app", "k")...)
}

func TestStat(t *testing.T) {
	addr := startNode(t)
	s := []string{"-s", addr}
	ok(t, append(s, "set", "a", "12345")...)

	text := ok(t, append(s, "stat")...)
	for _, want := range []string{"version ", "stats.curr_items ", "routing.nodes.length ", "connection.count "} {
		if !strings.Contains(text, want) {
			t.Errorf("stat text lacks %q:\n%s", want, text)
		}
	}

	var m map[string]string
	decodeJSON(t, ok(t, append(s, "stat", "-o", "json")...), &m)
	if m["version"] != server.Version || m["stats.curr_items"] != "1" || m["stats.bytes"] != "6" ||
		m["storages[default].storage.st_class"] != "memory" {
		t.Errorf("stat -o json: version=%q curr_items=%q bytes=%q st_class=%q",
			m["version"], m["stats.curr_items"], m["stats.bytes"], m["storages[default].storage.st_class"])
	}

	// The regexp filters by name.
	m = nil
	decodeJSON(t, ok(t, append(s, "stat", `^routing\.`, "-o", "json")...), &m)
	if len(m) == 0 {
		t.Fatal("stat ^routing\\. matched nothing")
	}
	for name := range m {
		if !strings.HasPrefix(name, "routing.") {
			t.Errorf("stat ^routing\\. returned %q", name)
		}
	}
	fails(t, "bad regexp", append(s, "stat", "(")...)
}

func TestRefusedArguments(t *testing.T) {
	addr := startNode(t)
	s := []string{"-s", addr}
	fails(t, `--output "yaml": must be text or json`, append(s, "get", "k", "--output", "yaml")...)
	fails(t, "--flags -1: must be in 0..4294967295", append(s, "set", "k", "v", "--flags", "-1")...)
	fails(t, "--flags 4294967296: must be in 0..4294967295", append(s, "set", "k", "v", "--flags", "4294967296")...)
	fails(t, "--timeout 0s: must be positive", append(s, "get", "k", "--timeout", "0")...)
	fails(t, "requires at least 1 arg", append(s, "get")...)
	fails(t, "accepts 1 arg", append(s, "delete", "a", "b")...)
	fails(t, `unknown command "frobnicate"`, append(s, "frobnicate")...)
	// Nothing was stored by the refused set.
	fails(t, "not found: [k]", append(s, "get", "k")...)

	// An unreachable node is named.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := free.Addr().String()
	free.Close()
	fails(t, "cannot reach "+gone, "-s", gone, "--timeout", "2s", "get", "k")
}

func TestBench(t *testing.T) {
	addr := startNode(t)
	var out struct {
		Options struct {
			Conns int `json:"conns"`
			Keys  int `json:"keys"`
		} `json:"options"`
		Result struct {
			Ops       int64   `json:"ops"`
			Gets      int64   `json:"gets"`
			Sets      int64   `json:"sets"`
			Errors    int64   `json:"errors"`
			OpsPerSec float64 `json:"ops_per_sec"`
			P50       int64   `json:"p50_ns"`
		} `json:"result"`
	}
	r := sonae(t, "", "-s", addr, "bench", "--duration", "500ms", "--conns", "2", "--keys", "100", "-o", "json")
	if r.err != nil {
		t.Fatalf("bench: %v\nstderr: %s", r.err, r.stderr)
	}
	decodeJSON(t, r.stdout, &out)
	res := out.Result
	if out.Options.Conns != 2 || out.Options.Keys != 100 {
		t.Errorf("bench options: %+v", out.Options)
	}
	if res.Ops <= 0 || res.Gets+res.Sets != res.Ops || res.Errors != 0 || res.OpsPerSec <= 0 || res.P50 <= 0 {
		t.Errorf("bench result: %+v", res)
	}
	if r.stderr != "" {
		t.Errorf("bench -o json wrote progress to stderr: %q", r.stderr)
	}

	// --compare needs two targets at least, named NAME=ADDR.
	fails(t, "--compare needs at least two targets, got 1", "bench", "--compare", "a="+addr, "--duration", "100ms")
	fails(t, `--compare "nameless": want NAME=ADDR`, "bench", "--compare", "nameless,b="+addr)
}
