package client

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sonae-kv/sonae/internal/routing"
)

// The client must map keys to vnodes exactly as the server does; these
// values are pinned in internal/routing too and must never change.
func TestVnodePinned(t *testing.T) {
	cases := []struct {
		key     string
		divBits uint
		want    int
	}{
		{"", 9, 0x1de},
		{"foo", 9, 0x67},
		{"user:42", 9, 0x1b8},
		{"foo", 16, 0x33bf},
		{"foo\x1bapp", 9, 0x67}, // the namespace is not hashed
		{"foo", 1, 0},
	}
	for _, c := range cases {
		if got := Vnode(c.key, c.divBits); got != c.want {
			t.Errorf("Vnode(%q, %d) = %#x, want %#x", c.key, c.divBits, got, c.want)
		}
	}
}

func TestVnodeMatchesRouting(t *testing.T) {
	for divBits := uint(1); divBits <= MaxDivBits; divBits++ {
		for i := range 2000 {
			k := fmt.Sprintf("key:%d:%x", i, i*7919)
			want := int(routing.Vnode([]byte(k), divBits))
			if got := Vnode(k, divBits); got != want {
				t.Fatalf("Vnode(%q, %d) = %d, internal/routing says %d", k, divBits, got, want)
			}
			if got := Vnode(k+"\x1bns", divBits); got != want {
				t.Fatalf("Vnode(%q with namespace, %d) = %d, want %d", k, divBits, got, want)
			}
		}
	}
	// A table answers the same.
	tab := &RoutingTable{DivBits: 9}
	if got := tab.Vnode("foo"); got != 0x67 {
		t.Errorf("table.Vnode(foo) = %#x", got)
	}
}

func TestParseRoutingTable(t *testing.T) {
	good := `{"version":7,"div_bits":1,"redundancy":2,"replication_in_host":false,` +
		`"nodes":[{"id":"10.0.0.1_11211","host":"10.0.0.1"},{"id":"10.0.0.2_11211","host":"10.0.0.2"}],` +
		`"vnodes":[{"nodes":["10.0.0.1_11211","10.0.0.2_11211"],"epoch":3,"lagging":["10.0.0.2_11211"]},` +
		`{"nodes":["10.0.0.2_11211"],"epoch":1}]}`
	tab, err := ParseRoutingTable([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if tab.Version != 7 || tab.DivBits != 1 || tab.Redundancy != 2 || len(tab.Nodes) != 2 ||
		tab.Vnodes[0].Epoch != 3 || tab.Vnodes[0].Lagging[0] != "10.0.0.2_11211" {
		t.Errorf("parsed %+v", tab)
	}
	if tab.Primary(1) != "10.0.0.2_11211" {
		t.Errorf("Primary(1) = %q", tab.Primary(1))
	}
	if c := tab.Counts("10.0.0.2_11211"); len(c) != 2 || c[0] != 1 || c[1] != 1 {
		t.Errorf("Counts = %v, want [1 1]", c)
	}
	// Unknown fields are ignored, a missing replication_in_host is false.
	if _, err := ParseRoutingTable([]byte(strings.Replace(good, `"replication_in_host":false,`, `"future":1,`, 1))); err != nil {
		t.Errorf("extra field: %v", err)
	}

	bad := map[string]string{
		"not json":     `{"version":`,
		"div_bits 0":   `{"version":1,"div_bits":0,"nodes":[],"vnodes":[{"nodes":[]}]}`,
		"div_bits 17":  `{"version":1,"div_bits":17,"nodes":[],"vnodes":[]}`,
		"vnode count":  `{"version":1,"div_bits":2,"nodes":[],"vnodes":[{},{},{}]}`,
		"unknown node": `{"version":1,"div_bits":1,"nodes":[{"id":"a_1"}],"vnodes":[{"nodes":["a_1"]},{"nodes":["b_1"]}]}`,
		"repeated id":  `{"version":1,"div_bits":1,"nodes":[{"id":"a_1"},{"id":"a_1"}],"vnodes":[{},{}]}`,
		"empty id":     `{"version":1,"div_bits":1,"nodes":[{"id":""}],"vnodes":[{},{}]}`,
	}
	for name, b := range bad {
		if _, err := ParseRoutingTable([]byte(b)); !errors.Is(err, ErrBadTable) {
			t.Errorf("%s: err = %v, want ErrBadTable", name, err)
		}
	}
}

func TestNormalizeAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1_11211": "127.0.0.1:11211",
		"127.0.0.1:11211": "127.0.0.1:11211",
		"::1_11211":       "[::1]:11211",
		"[::1]:11211":     "[::1]:11211",
		"my_host:11211":   "my_host:11211",
		"my_host_11211":   "my_host:11211",
		"localhost":       "localhost",
		"host_":           "host_",
		"_11211":          "_11211",
	} {
		if got := NormalizeAddr(in); got != want {
			t.Errorf("NormalizeAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestServerErrorClasses(t *testing.T) {
	cases := []struct {
		line string
		want error
	}{
		{"SERVER_ERROR NOT_PRIMARY 12 10.0.0.1_11211 7", ErrNotPrimary},
		{"SERVER_ERROR vnode 12 unavailable: replication not confirmed", ErrUnavailable},
		{"SERVER_ERROR vnode 12 is lost (no replica holds it)", ErrVnodeLost},
		{"SERVER_ERROR cluster unavailable: not initialized yet", ErrUnavailable},
		{"SERVER_ERROR node 10.0.0.1_11211 unavailable: not a member", ErrUnavailable},
	}
	for _, c := range cases {
		err := fmt.Errorf("wrapped: %w", &ServerError{Line: c.line})
		for _, class := range []error{ErrNotPrimary, ErrUnavailable, ErrVnodeLost} {
			if got := errors.Is(err, class); got != (class == c.want) {
				t.Errorf("errors.Is(%q, %v) = %v", c.line, class, got)
			}
		}
	}
	if errors.Is(&ServerError{Line: "SERVER_ERROR out of memory"}, ErrNotPrimary) {
		t.Error("a plain server error matched ErrNotPrimary")
	}
	v, p, ver, ok := notPrimary("SERVER_ERROR NOT_PRIMARY 12 10.0.0.1_11211 7")
	if !ok || v != 12 || p != "10.0.0.1_11211" || ver != 7 {
		t.Errorf("notPrimary = %d %q %d %v", v, p, ver, ok)
	}
	if _, _, _, ok := notPrimary("SERVER_ERROR NOT_PRIMARY garbage"); !ok {
		t.Error("a garbled NOT_PRIMARY line must still mean NOT_PRIMARY")
	}
}

func TestParseMember(t *testing.T) {
	m, err := parseMember("MEMBER n1 10.0.0.1:11211 alive role=node,dc=a=b")
	if err != nil || m.Name != "n1" || m.Addr != "10.0.0.1:11211" || m.Status != "alive" ||
		m.Tags["role"] != "node" || m.Tags["dc"] != "a=b" {
		t.Errorf("parseMember = %+v, %v", m, err)
	}
	m, err = parseMember("MEMBER n2 10.0.0.2:11211 failed")
	if err != nil || m.Status != "failed" || len(m.Tags) != 0 {
		t.Errorf("without tags: %+v, %v", m, err)
	}
	for _, bad := range []string{"MEMBER n1", "NODE n1 a alive x", "MEMBER a b c d e"} {
		if _, err := parseMember(bad); !errors.Is(err, ErrProtocol) {
			t.Errorf("parseMember(%q) err = %v", bad, err)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	d := DefaultClusterOptions()
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	cases := map[string]func(o *ClusterOptions){
		"ClusterOptions.Timeout (0s)":             func(o *ClusterOptions) { o.Timeout = 0 },
		"ClusterOptions.PoolSize (0)":             func(o *ClusterOptions) { o.PoolSize = 0 },
		"ClusterOptions.MaxRetries (-1)":          func(o *ClusterOptions) { o.MaxRetries = -1 },
		"ClusterOptions.RetryBackoff (0s)":        func(o *ClusterOptions) { o.RetryBackoff = 0 },
		"ClusterOptions.RefreshInterval (-1s)":    func(o *ClusterOptions) { o.RefreshInterval = -1e9 },
		"ClusterOptions.RefreshInterval (1µs)":    func(o *ClusterOptions) { o.RefreshInterval = 1000 },
		"ClusterOptions.PoolSize (10001)":         func(o *ClusterOptions) { o.PoolSize = 10001 },
		"ClusterOptions.MaxRetries (101) must be": func(o *ClusterOptions) { o.MaxRetries = 101 },
	}
	for want, edit := range cases {
		o := DefaultClusterOptions()
		edit(&o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want an error containing %q, got %v", want, err)
		}
		if _, err := NewCluster([]string{"127.0.0.1_1"}, o); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewCluster: want an error containing %q, got %v", want, err)
		}
	}
	o := DefaultClusterOptions()
	o.MaxRetries, o.RefreshInterval = 0, 0 // both valid: no retries, no polling
	if err := o.Validate(); err != nil {
		t.Errorf("MaxRetries 0, RefreshInterval 0: %v", err)
	}
}
