package membership

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/netmux"
)

// muxNode is a member whose gossip shares one port number with a netmux
// (the node's client port): TCP through the mux, UDP beside it.
type muxNode struct {
	*node
	mux *netmux.Mux
}

// startMuxNode listens on a free loopback TCP port, serves a netmux on it
// and starts a member with cfg on that port number. The port is retried
// when its UDP twin turns out to be taken.
func startMuxNode(t *testing.T, cfg Config) *muxNode {
	t.Helper()
	var lastErr error
	for range 10 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		mux := netmux.New(ln, netmux.Options{}, cfg.Logger)
		served := make(chan error, 1)
		go func() { served <- mux.Serve() }()
		cfg.BindPort = ln.Addr().(*net.TCPAddr).Port
		cfg.Streams = mux.Listener(netmux.KindGossip)
		m, err := Start(cfg)
		if err != nil {
			lastErr = err
			_ = mux.Close()
			<-served
			continue
		}
		// Cleanups run last-registered first: the member, then the mux.
		t.Cleanup(func() {
			_ = mux.Close()
			if err := <-served; !errors.Is(err, netmux.ErrMuxClosed) {
				t.Errorf("%s: mux Serve: %v", cfg.NodeName, err)
			}
		})
		n := &muxNode{node: &node{Membership: m, rec: newRecorder(m, true)}, mux: mux}
		t.Cleanup(func() { n.stop() })
		return n
	}
	t.Fatalf("start %s on a shared port: %v", cfg.NodeName, lastErr)
	return nil
}

// TestMuxTransport: members whose gossip shares the client port through
// netmux join, see each other alive with the client port as their address,
// and see a killed member fail. Client connections on the same port still
// reach the client listener.
func TestMuxTransport(t *testing.T) {
	t.Parallel()
	var nodes []*muxNode
	var names []string
	for i := range 3 {
		n := startMuxNode(t, testConfig(t, fmt.Sprintf("m%d", i)))
		nodes = append(nodes, n)
		names = append(names, n.Name())
		if got, want := n.Addr().String(), n.mux.Addr().String(); got != want {
			t.Errorf("%s advertises %s, want the client port %s", n.Name(), got, want)
		}
		if i > 0 {
			if _, err := n.Join([]string{nodes[0].Addr().String()}); err != nil {
				t.Fatalf("%s join: %v", n.Name(), err)
			}
		}
	}
	all := []*node{nodes[0].node, nodes[1].node, nodes[2].node}
	waitAlive(t, 10*time.Second, names, all...)
	for _, o := range all {
		for _, mm := range o.Members() {
			if want := fmt.Sprintf("127.0.0.1:%d", nodes[mm.Name[1]-'0'].mux.Addr().(*net.TCPAddr).Port); mm.HostPort() != want {
				t.Errorf("%s sees %s at %s, want %s", o.Name(), mm.Name, mm.HostPort(), want)
			}
		}
	}

	// The client port still serves clients.
	c, err := net.Dial("tcp", nodes[1].mux.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("version\r\n")); err != nil {
		t.Fatal(err)
	}
	sc, err := nodes[1].mux.Listener(netmux.KindClient).Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	buf := make([]byte, len("version\r\n"))
	if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "version\r\n" {
		t.Errorf("client listener read %q, %v", buf, err)
	}

	// A crash (no Leave): the others report it failed.
	since := time.Now()
	nodes[2].stop()
	_ = nodes[2].mux.Close()
	waitStatus(t, 10*time.Second, "m2", StatusFailed, all[:2]...)
	for _, o := range all[:2] {
		o.rec.waitEvent(t, 5*time.Second, MemberFailed, "m2", since)
	}
	waitAlive(t, 5*time.Second, names[:2], all[:2]...)
}

// TestMuxTransportKeyAndLabel: over the shared port, a member with another
// key or another cluster name cannot join, and one with neither key joins
// a plaintext cluster.
func TestMuxTransportKeyAndLabel(t *testing.T) {
	t.Parallel()
	seed := startMuxNode(t, testConfig(t, "k0"))
	good := startMuxNode(t, testConfig(t, "k1"))
	if _, err := good.Join([]string{seed.Addr().String()}); err != nil {
		t.Fatalf("same key and cluster: %v", err)
	}
	waitAlive(t, 10*time.Second, []string{"k0", "k1"}, seed.node, good.node)

	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"wrongkey", func(c *Config) { c.SecretKey = []byte("fedcba9876543210fedcba9876543210") }},
		{"plaintext", func(c *Config) { c.SecretKey = nil }},
		{"otherlabel", func(c *Config) { c.ClusterName = "other" }},
	} {
		cfg := testConfig(t, tc.name)
		tc.edit(&cfg)
		stranger := startMuxNode(t, cfg)
		_, err := stranger.Join([]string{seed.Addr().String()})
		if !errors.Is(err, ErrJoinFailed) {
			t.Errorf("%s: Join = %v, want ErrJoinFailed", tc.name, err)
		}
		for _, o := range []*node{seed.node, good.node} {
			if st := statusOf(o.Membership, tc.name); st != StatusNone {
				t.Errorf("%s: %s sees it as %s", tc.name, o.Name(), st)
			}
		}
		if got := aliveNames(stranger.Membership); len(got) != 1 {
			t.Errorf("%s: sees alive %v", tc.name, got)
		}
	}

	// Plaintext members of one cluster gossip over the mux too.
	p0 := testConfig(t, "p0")
	p0.SecretKey, p0.ClusterName = nil, "plain"
	p1 := testConfig(t, "p1")
	p1.SecretKey, p1.ClusterName = nil, "plain"
	n0, n1 := startMuxNode(t, p0), startMuxNode(t, p1)
	if _, err := n1.Join([]string{n0.Addr().String()}); err != nil {
		t.Fatalf("plaintext join: %v", err)
	}
	waitAlive(t, 10*time.Second, []string{"p0", "p1"}, n0.node, n1.node)
}

func TestMuxTransportConfig(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	valid := func() Config {
		c := Default()
		c.NodeName = "n"
		c.BindAddr, c.BindPort = "127.0.0.1", port
		c.Streams = ln
		return c
	}
	c := valid()
	if err := c.Validate(); err != nil {
		t.Fatalf("valid: %v", err)
	}
	for _, tc := range []struct {
		field string
		edit  func(*Config)
	}{
		{"Config.BindPort", func(c *Config) { c.BindPort = 0 }},
		{"Config.Streams", func(c *Config) { c.BindPort = port + 1 }},
		{"Config.AdvertiseAddr", func(c *Config) { c.BindAddr = "0.0.0.0" }},
	} {
		c := valid()
		tc.edit(&c)
		err := c.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: Validate = %v", tc.field, err)
		}
	}
	c = valid()
	c.BindAddr, c.AdvertiseAddr = "0.0.0.0", "127.0.0.1"
	if err := c.Validate(); err != nil {
		t.Errorf("0.0.0.0 with an advertise address: %v", err)
	}

	// A Start that fails closes the listener it was given.
	c = valid()
	c.BindPort = 0
	if _, err := Start(c); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Start: %v", err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after a failed Start: %v, want net.ErrClosed", err)
	}
}
