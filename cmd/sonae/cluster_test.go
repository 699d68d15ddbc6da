package main

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/client"
	"github.com/sonae-kv/sonae/internal/routing"
	"github.com/sonae-kv/sonae/internal/testutil"
)

func TestMembers(t *testing.T) {
	fc := newFakeCluster(t, 3, 3)
	s := []string{"-s", fc.nodes[0].id}

	lines := strings.Split(strings.TrimSuffix(ok(t, append(s, "members")...), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("members printed %d lines:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for i, l := range lines {
		if strings.TrimRight(l, " ") != l {
			t.Errorf("line %d has trailing blanks: %q", i, l)
		}
		f := strings.Fields(l)
		want := []string{fc.nodes[i].id, fc.nodes[i].addr, "alive", "dc=test,role=node"}
		if i == 2 {
			want = []string{fc.nodes[i].id, fc.nodes[i].addr, "failed"}
		}
		if strings.Join(f, " ") != strings.Join(want, " ") {
			t.Errorf("line %d: %q, want fields %q", i, l, want)
		}
	}
	// Columns line up (tabwriter): every status starts at the same offset.
	if strings.Index(lines[0], "alive") != strings.Index(lines[2], "failed") {
		t.Errorf("columns do not line up:\n%s", strings.Join(lines, "\n"))
	}

	var ms []client.Member
	decodeJSON(t, ok(t, append(s, "members", "-o", "json")...), &ms)
	if len(ms) != 3 || ms[0].Name != fc.nodes[0].id || ms[0].Addr != fc.nodes[0].addr ||
		ms[0].Tags["role"] != "node" || ms[2].Status != "failed" || len(ms[2].Tags) != 0 {
		t.Errorf("members -o json: %+v", ms)
	}
	fails(t, `unknown command "x" for "sonae members"`, append(s, "members", "x")...)
}

func TestRouting(t *testing.T) {
	fc := newFakeCluster(t, 3, 3)
	s := []string{"-s", fc.nodes[1].id}

	text := ok(t, append(s, "routing")...)
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("routing printed %d lines:\n%s", len(lines), text)
	}
	if lines[0] != "table version 4: 8 vnodes (div_bits 3), redundancy 2, 3 nodes" {
		t.Errorf("header %q", lines[0])
	}
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != "node primary secondary1 lagging" {
		t.Errorf("column header %q", lines[1])
	}
	// vnode v: primary v%3, secondary1 (v+1)%3; node 2 lags as secondary.
	want := [][]int{{3, 2, 0}, {3, 3, 0}, {2, 3, 3}}
	for i, w := range want {
		f := strings.Fields(lines[2+i])
		got := fmt.Sprintf("%s %d %d %d", fc.nodes[i].id, w[0], w[1], w[2])
		if strings.Join(f, " ") != got {
			t.Errorf("row %d: %q, want %q", i, lines[2+i], got)
		}
	}
	if lines[5] != "short vnodes 0, lost vnodes 0, lagging replicas 3" {
		t.Errorf("footer %q", lines[5])
	}

	// -o json is the table exactly as sent.
	raw := ok(t, append(s, "routing", "-o", "json")...)
	sent, _ := json.Marshal(fc.table)
	if raw != string(sent)+"\n" {
		t.Errorf("routing -o json:\n%s\nwant the raw dump:\n%s", raw, sent)
	}
}

func TestKeyinfo(t *testing.T) {
	fc := newFakeCluster(t, 3, 4)
	s := []string{"-s", fc.nodes[0].id}
	v := int(routing.Vnode([]byte("user:42"), 4))
	r := fc.table.Vnodes[v]

	want := fmt.Sprintf("key         user:42\nvnode       %d\nepoch       %d\nprimary     %s\nsecondary1  %s\nin_sync     %s\n",
		v, r.Epoch, r.Nodes[0], r.Nodes[1], r.Nodes[0])
	if got := ok(t, append(s, "keyinfo", "user:42")...); got != want {
		t.Errorf("keyinfo:\n%s\nwant:\n%s", got, want)
	}
	var ki client.KeyInfo
	decodeJSON(t, ok(t, append(s, "keyinfo", "user:42", "-o", "json")...), &ki)
	if ki.Key != "user:42" || ki.Vnode != v || ki.Primary != r.Nodes[0] || len(ki.Secondaries) != 1 ||
		ki.Secondaries[0] != r.Nodes[1] || len(ki.InSync) != 1 {
		t.Errorf("keyinfo -o json: %+v", ki)
	}
	fails(t, "accepts 1 arg", append(s, "keyinfo")...)
	fails(t, "bad key", append(s, "keyinfo", "two words")...)
}

// TestClusterCommandsOnARealNode runs members, routing, keyinfo and bench
// --cluster against a real node (in process, a one-node cluster).
func TestClusterCommandsOnARealNode(t *testing.T) {
	addr := startNode(t)
	s := []string{"-s", addr}
	host, port, _ := net.SplitHostPort(addr)
	id := host + "_" + port
	var tab client.RoutingTable
	testutil.Eventually(t, 20*time.Second, "the node's routing table", func() error {
		r := sonae(t, "", append(s, "routing", "-o", "json")...)
		if r.err != nil {
			return r.err
		}
		return json.Unmarshal([]byte(r.stdout), &tab)
	})
	n := len(tab.Vnodes)
	lines := strings.Split(ok(t, append(s, "routing")...), "\n")
	if len(lines) < 4 || !strings.HasPrefix(lines[0], fmt.Sprintf("table version %d: %d vnodes", tab.Version, n)) ||
		!strings.HasPrefix(strings.Join(strings.Fields(lines[2]), " "), fmt.Sprintf("%s %d 0", id, n)) {
		t.Errorf("routing:\n%s", strings.Join(lines, "\n"))
	}
	var ms []client.Member
	decodeJSON(t, ok(t, append(s, "members", "-o", "json")...), &ms)
	if len(ms) != 1 || ms[0].Addr != addr || ms[0].Status != "alive" {
		t.Errorf("members: %+v", ms)
	}
	var ki client.KeyInfo
	decodeJSON(t, ok(t, append(s, "keyinfo", "user:42", "-o", "json")...), &ki)
	if ki.Primary != id || ki.Vnode != client.Vnode("user:42", tab.DivBits) {
		t.Errorf("keyinfo: %+v", ki)
	}
	var out benchJSON
	decodeJSON(t, ok(t, "bench", "--cluster", id, "--duration", "200ms", "--conns", "2", "--keys", "20", "-o", "json"), &out)
	if out.Result.Ops <= 0 || out.Result.Errors != 0 || out.Cluster.Nodes != 1 {
		t.Errorf("bench --cluster: %+v %+v", out.Cluster, out.Result)
	}
}

// benchJSON is the part of bench -o json the tests read.
type benchJSON struct {
	Options struct {
		Addr  string   `json:"addr"`
		Addrs []string `json:"addrs"`
		Conns int      `json:"conns"`
	} `json:"options"`
	Cluster struct {
		Seeds        []string `json:"seeds"`
		TableVersion uint64   `json:"table_version"`
		Nodes        int      `json:"nodes"`
	} `json:"cluster"`
	Result struct {
		Ops       int64   `json:"ops"`
		Gets      int64   `json:"gets"`
		Hits      int64   `json:"hits"`
		Sets      int64   `json:"sets"`
		Errors    int64   `json:"errors"`
		OpsPerSec float64 `json:"ops_per_sec"`
		P50       int64   `json:"p50_ns"`
		P999      int64   `json:"p999_ns"`
	} `json:"result"`
}

func TestBenchCluster(t *testing.T) {
	fc := newFakeCluster(t, 3, 4)
	seeds := fc.nodes[2].id + "," + fc.nodes[0].addr
	var out benchJSON
	r := sonae(t, "", "bench", "--cluster", seeds, "--duration", "300ms", "--conns", "4", "--keys", "60", "-o", "json")
	if r.err != nil {
		t.Fatalf("bench --cluster: %v\nstderr: %s", r.err, r.stderr)
	}
	decodeJSON(t, r.stdout, &out)
	res := out.Result
	if res.Ops <= 0 || res.Errors != 0 || res.Gets+res.Sets != res.Ops || res.Hits != res.Gets || res.P50 <= 0 {
		t.Errorf("bench --cluster result: %+v", res)
	}
	if out.Cluster.TableVersion != 4 || out.Cluster.Nodes != 3 || len(out.Cluster.Seeds) != 2 || out.Options.Conns != 4 {
		t.Errorf("bench --cluster report: %+v %+v", out.Cluster, out.Options)
	}
	for _, fn := range fc.nodes {
		if fn.count("set") == 0 || fn.count("get") == 0 {
			t.Errorf("%s served %d sets, %d gets: the load did not reach every primary", fn.id, fn.count("set"), fn.count("get"))
		}
		if n := fn.count("NOT_PRIMARY"); n != 0 {
			t.Errorf("%s answered NOT_PRIMARY %d times: requests did not go to the primary", fn.id, n)
		}
		if n := fn.count("routingdump"); fn == fc.nodes[2] && n != 1 {
			t.Errorf("the first seed was asked for the table %d times", n)
		}
	}

	// Text output: the same three lines as a plain bench.
	r = sonae(t, "", "bench", "--cluster", fc.nodes[1].id, "--duration", "200ms", "--conns", "2", "--keys", "20")
	if r.err != nil {
		t.Fatal(r.err)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "target cluster "+fc.nodes[1].id+" (table version 4, 3 nodes): 2 conns") ||
		!strings.HasPrefix(lines[1], "ops/s ") || !strings.Contains(lines[1], "errors 0") ||
		!strings.HasPrefix(lines[2], "latency p50 ") || !strings.Contains(lines[2], " p99 ") || !strings.Contains(lines[2], " p999 ") {
		t.Errorf("bench --cluster text:\n%s", r.stdout)
	}

	// With --read-secondaries the gets spread (the fake serves any read).
	if r := sonae(t, "", "bench", "--cluster", fc.nodes[1].id, "--read-secondaries", "--duration", "100ms", "--conns", "2", "--keys", "20"); r.err != nil {
		t.Errorf("--read-secondaries: %v", r.err)
	}
}

func TestBenchTargetFlags(t *testing.T) {
	fc := newFakeCluster(t, 1, 1)
	seed := fc.nodes[0].id
	fails(t, "--cluster and --compare cannot be combined", "bench", "--cluster", seed, "--compare", "a=x:1,b=y:1")
	fails(t, "use one of them", "bench", "--cluster", seed, "--spread", "a:1,b:1")
	fails(t, "use one of them", "bench", "--compare", "a=x:1,b=y:1", "--spread", "a:1,b:1")
	fails(t, "-s names the target too", "-s", seed, "bench", "--cluster", seed)
	fails(t, "--spread needs at least two addresses", "bench", "--spread", seed)
	fails(t, "--read-secondaries needs --cluster", "bench", "--read-secondaries")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	ln.Close()
	fails(t, "cannot reach the cluster at "+gone, "bench", "--cluster", gone, "--timeout", "2s")
}

func TestBenchSpread(t *testing.T) {
	a, b := startNode(t), startNode(t)
	host, port, _ := net.SplitHostPort(b)
	var out benchJSON
	r := sonae(t, "", "bench", "--spread", a+","+host+"_"+port, "--duration", "300ms", "--conns", "4", "--keys", "50", "-o", "json")
	if r.err != nil {
		t.Fatalf("bench --spread: %v\nstderr: %s", r.err, r.stderr)
	}
	decodeJSON(t, r.stdout, &out)
	if len(out.Options.Addrs) != 2 || out.Options.Addrs[1] != b || out.Result.Ops <= 0 || out.Result.Errors != 0 {
		t.Errorf("bench --spread: %+v %+v", out.Options, out.Result)
	}
	// Both nodes carried load (each is a separate single node here, so the
	// preload spread the keys too).
	for _, addr := range []string{a, b} {
		c, err := client.Dial(addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		stats, err := c.Stats("")
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range stats {
			if st.Name == "cmd_set" {
				if n, _ := strconv.Atoi(st.Value); n == 0 {
					t.Errorf("%s served no sets", addr)
				}
			}
		}
	}
	r = sonae(t, "", "bench", "--spread", a+","+b, "--duration", "100ms", "--conns", "2", "--keys", "10")
	if r.err != nil || !strings.HasPrefix(r.stdout, "target "+a+","+b+" (round robin): 2 conns") {
		t.Errorf("bench --spread text: %v\n%s", r.err, r.stdout)
	}
}
