package clustertest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/client"
	"github.com/sonae-kv/sonae/internal/testcluster"
)

// recordScript is a handler that saves what serf's contract gives it, the
// variables and stdin, to one file per run (written aside, then renamed, so
// a reader never sees half of one).
const recordScript = `#!/bin/sh
f=$(mktemp "$EVDIR/run.XXXXXX")
{
  echo "SERF_EVENT=$SERF_EVENT"
  echo "SERF_SELF_NAME=$SERF_SELF_NAME"
  echo "SERF_SELF_ROLE=$SERF_SELF_ROLE"
  echo "SERF_TAG_ID=$SERF_TAG_ID"
  echo "SERF_TAG_CLUSTER=$SERF_TAG_CLUSTER"
  echo "SERF_USER_EVENT=$SERF_USER_EVENT"
  echo "SERF_USER_LTIME=$SERF_USER_LTIME"
  echo "--stdin--"
  cat
} > "$f.tmp"
mv "$f.tmp" "$f.rec"
rm -f "$f"
`

// handlerRun is one recorded run.
type handlerRun struct {
	env   map[string]string
	stdin []string
}

// handlerRuns reads the recorded runs in dir.
func handlerRuns(t *testing.T, dir string) []handlerRun {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "run.*.rec"))
	if err != nil {
		t.Fatal(err)
	}
	var runs []handlerRun
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		head, stdin, _ := strings.Cut(string(b), "--stdin--\n")
		r := handlerRun{env: map[string]string{}}
		for l := range strings.Lines(head) {
			k, v, _ := strings.Cut(strings.TrimSuffix(l, "\n"), "=")
			r.env[k] = v
		}
		for l := range strings.Lines(stdin) {
			r.stdin = append(r.stdin, strings.TrimSuffix(l, "\n"))
		}
		runs = append(runs, r)
	}
	return runs
}

// findRun waits for a run of event kind whose stdin has a line starting
// with prefix.
func findRun(t *testing.T, dir, kind, prefix string) handlerRun {
	t.Helper()
	var found handlerRun
	eventually(t, 30*time.Second, fmt.Sprintf("a %s handler run with %q on stdin", kind, prefix), func() error {
		for _, r := range handlerRuns(t, dir) {
			if r.env["SERF_EVENT"] != kind {
				continue
			}
			for _, l := range r.stdin {
				if strings.HasPrefix(l, prefix) {
					found = r
					return nil
				}
			}
		}
		return fmt.Errorf("not yet")
	})
	return found
}

type liveNodesFile struct {
	Cluster string   `json:"cluster"`
	Live    []string `json:"live"`
	Members []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
	} `json:"members"`
}

// waitLive waits until the live-node file lists exactly want as live.
func waitLive(t *testing.T, path string, want ...string) {
	t.Helper()
	slices.Sort(want)
	eventually(t, 30*time.Second, fmt.Sprintf("live nodes %v in %s", want, path), func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var ln liveNodesFile
		if err := json.Unmarshal(b, &ln); err != nil {
			return fmt.Errorf("%s does not parse: %v", path, err)
		}
		if ln.Cluster != "evtest" || !slices.Equal(ln.Live, want) {
			return fmt.Errorf("cluster %q live %v", ln.Cluster, ln.Live)
		}
		return nil
	})
}

// TestEventHandlersGetSerfsContract runs serf-style handler scripts on real
// nodes: member-join, member-failed and user events reach the script with
// serf's variables and stdin, queries are answered from a handler's stdout
// and narrowed by node and tag, and the live-node file follows a kill -9
// and the restart.
func TestEventHandlersGetSerfsContract(t *testing.T) {
	dir := t.TempDir()
	record := filepath.Join(dir, "record.sh")
	if err := os.WriteFile(record, []byte(recordScript), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("EVDIR", dir) // inherited by sonaed, then by its handlers
	live := filepath.Join(dir, "live.json")
	c := testcluster.NewCluster(t, 3, testcluster.ClusterOptions{
		Name: "evtest", Redundancy: 2, DivBits: 6,
		ExtraArgs: []string{"--event-handler", `query:load=echo "load of $SERF_SELF_NAME: $(cat)"`},
		NodeArgs: func(i int) []string {
			if i != 0 {
				return nil
			}
			return []string{
				"--role", "web", "--live-nodes-file", live,
				"--event-handler", "member-join,member-failed=" + record,
				"--event-handler", "user:deploy=" + record,
			}
		},
	})
	waitSettled(t, c, 3, 60*time.Second)
	self, other := c.Node(0).NodeID(), c.Node(2)

	join := findRun(t, dir, "member-join", other.NodeID()+"\t")
	for k, want := range map[string]string{
		"SERF_SELF_NAME": self, "SERF_SELF_ROLE": "web", "SERF_TAG_ID": self, "SERF_TAG_CLUSTER": "evtest",
		"SERF_USER_EVENT": "",
	} {
		if join.env[k] != want {
			t.Errorf("member-join: %s=%q, want %q", k, join.env[k], want)
		}
	}
	for _, l := range join.stdin {
		if f := strings.Split(l, "\t"); len(f) != 4 || !strings.HasPrefix(other.Addr(), f[1]+":") || !strings.Contains(f[3], "cluster=evtest") {
			t.Errorf("member-join stdin line %q: want name, address, role, tags separated by tabs", l)
		}
	}
	waitLive(t, live, self, c.Node(1).NodeID(), other.NodeID())

	// A user event sent through another node.
	ev := mustClient(t, c.Node(1).Addr())
	if err := ev.Event("deploy", []byte("v1.4.2"), false); err != nil {
		t.Fatal(err)
	}
	if err := ev.Event("ignored", nil, false); err != nil { // matches no filter of node 0
		t.Fatal(err)
	}
	user := findRun(t, dir, "user", "v1.4.2")
	if user.env["SERF_USER_EVENT"] != "deploy" || user.env["SERF_USER_LTIME"] == "" || !slices.Equal(user.stdin, []string{"v1.4.2"}) {
		t.Errorf("user event run: env %v stdin %q", user.env, user.stdin)
	}

	// Queries: every node answers from its handler's stdout; --node and
	// --tag narrow who answers.
	resps, err := ev.Query("load", []byte("now"), client.QueryOptions{Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var from []string
	for _, r := range resps {
		if r.Payload != "load of "+r.From+": now\n" {
			t.Errorf("response from %s: %q", r.From, r.Payload)
		}
		from = append(from, r.From)
	}
	slices.Sort(from)
	if want := []string{self, c.Node(1).NodeID(), other.NodeID()}; !slices.Equal(from, sorted(want)) {
		t.Errorf("query answered by %v, want %v", from, sorted(want))
	}
	for _, opts := range []client.QueryOptions{{Nodes: []string{other.NodeID()}}, {Tags: map[string]string{"role": "^web$"}}} {
		opts.Timeout = 3 * time.Second
		resps, err := ev.Query("load", nil, opts)
		want := other.NodeID()
		if opts.Tags != nil {
			want = self
		}
		if err != nil || len(resps) != 1 || resps[0].From != want {
			t.Errorf("query %+v: %+v %v, want only %s", opts, resps, err, want)
		}
	}
	if _, err := ev.Query("load", nil, client.QueryOptions{Tags: map[string]string{"role": "("}}); err == nil {
		t.Errorf("a bad tag regexp was accepted")
	}

	// kill -9: member-failed with the member on stdin, and the live list
	// drops it; back on restart.
	c.Kill9(2)
	failed := findRun(t, dir, "member-failed", other.NodeID()+"\t")
	if failed.env["SERF_SELF_NAME"] != self {
		t.Errorf("member-failed env %v", failed.env)
	}
	waitLive(t, live, self, c.Node(1).NodeID())
	c.Restart(2)
	waitLive(t, live, self, c.Node(1).NodeID(), other.NodeID())
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func mustClient(t *testing.T, addr string) *client.Conn {
	t.Helper()
	c, err := client.Dial(addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
