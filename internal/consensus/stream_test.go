package consensus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/netmux"
)

// dialRaft is what sonae gives NewStreamTransport: a netmux dial with the
// Raft marker.
func dialRaft(ctx context.Context, addr string) (net.Conn, error) {
	return netmux.Dial(ctx, addr, netmux.KindRaft)
}

// muxNode is a raft node whose transport shares a netmux port.
type muxNode struct {
	id, addr string
	mux      *netmux.Mux
	node     *Node
	fsm      *testFSM
}

// startMuxRaft serves a netmux on a free loopback port and opens a raft
// node on its KindRaft listener.
func startMuxRaft(t *testing.T, id, dir string) *muxNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := netmux.New(ln, netmux.Options{}, testLogger(t))
	served := make(chan error, 1)
	go func() { served <- mux.Serve() }()
	// Cleanups run last-registered first: the node, then the mux.
	t.Cleanup(func() {
		_ = mux.Close()
		if err := <-served; !errors.Is(err, netmux.ErrMuxClosed) {
			t.Errorf("%s: mux Serve: %v", id, err)
		}
	})
	tr, err := NewStreamTransport(mux.Listener(netmux.KindRaft), "", dialRaft, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if got := string(tr.LocalAddr()); got != addr {
		t.Errorf("transport advertises %s, want the mux's %s", got, addr)
	}
	fsm := newTestFSM()
	n, err := Open(testConfig(t, id, addr, filepath.Join(dir, id)), fsm, tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Shutdown(); err != nil {
			t.Errorf("shutdown %s: %v", id, err)
		}
	})
	return &muxNode{id: id, addr: addr, mux: mux, node: n, fsm: fsm}
}

// TestStreamTransportCluster runs three voters over real TCP, each on a
// netmux port: they elect a leader, commit an entry on all three, and the
// ports still serve client connections.
func TestStreamTransportCluster(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var nodes []*muxNode
	var servers []Server
	for i := range 3 {
		n := startMuxRaft(t, fmt.Sprintf("s%d", i), dir)
		nodes = append(nodes, n)
		servers = append(servers, Server{ID: n.id, Addr: n.addr, Voter: true})
	}
	if err := nodes[0].node.Bootstrap(servers...); err != nil {
		t.Fatal(err)
	}

	var leader *muxNode
	eventually(t, 10*time.Second, "one leader all three agree on", func() error {
		leader = nil
		for _, n := range nodes {
			if n.node.IsLeader() {
				if leader != nil {
					return fmt.Errorf("two leaders: %s and %s", leader.id, n.id)
				}
				leader = n
			}
		}
		if leader == nil {
			return errors.New("no leader yet")
		}
		for _, n := range nodes {
			if id, addr := n.node.Leader(); id != leader.id || addr != leader.addr {
				return fmt.Errorf("%s thinks the leader is %q at %q", n.id, id, addr)
			}
		}
		return nil
	})

	eventually(t, 10*time.Second, "an entry applied", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, n := range nodes {
			if n.node.IsLeader() {
				_, err := n.node.Apply(ctx, []byte("k=v"))
				return err
			}
		}
		return errors.New("no leader")
	})
	eventually(t, 10*time.Second, "k=v on every FSM", func() error {
		for _, n := range nodes {
			if kv, _, _ := n.fsm.state(); kv["k"] != "v" {
				return fmt.Errorf("%s has %v", n.id, kv)
			}
		}
		return nil
	})

	// The port still serves clients beside Raft.
	c, err := net.Dial("tcp", leader.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("stats\r\n")); err != nil {
		t.Fatal(err)
	}
	sc, err := leader.mux.Listener(netmux.KindClient).Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	buf := make([]byte, len("stats\r\n"))
	if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "stats\r\n" {
		t.Errorf("client listener read %q, %v", buf, err)
	}
}

func TestNewStreamTransportAdvertise(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct{ advertise, want string }{
		{"", "Config.Advertise"},
		{"localhost:0", "IP address"},
		{"0.0.0.0:1", "IP address"},
		{"127.0.0.1:x", "bad port"},
		{"127.0.0.1", "advertise address"},
	} {
		if _, err := NewStreamTransport(ln, tc.advertise, dialRaft, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("advertise %q: %v, want an error containing %q", tc.advertise, err, tc.want)
		}
	}
	if _, err := NewStreamTransport(ln, "127.0.0.1:0", nil, nil); err == nil {
		t.Error("nil dial accepted")
	}
	tr, err := NewStreamTransport(ln, "127.0.0.1:0", dialRaft, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(tr.LocalAddr()), fmt.Sprintf("127.0.0.1:%d", port); got != want {
		t.Errorf("advertised %s, want %s", got, want)
	}
	closeTransport(tr)
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after the transport's Close: %v, want net.ErrClosed", err)
	}
}
