package testcluster

import (
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// ClusterOptions configures the nodes of a Cluster or DockerCluster. The zero
// value is a cluster with sonaed's defaults and fast failure detection.
type ClusterOptions struct {
	// Name is the cluster name (--name). If blank, sonaed's default.
	Name string
	// Engine is the storage engine (--engine: pebble or memory). If blank,
	// sonaed's default (pebble). Restart keeps data only with pebble.
	Engine string
	// Redundancy is the replica count per vnode (--redundancy). If zero,
	// sonaed's default.
	Redundancy int
	// DivBits makes 2^DivBits vnodes (--div-bits). If zero, sonaed's
	// default.
	DivBits int
	// GossipProfile tunes failure detection (--gossip-profile: local, lan
	// or wan). If blank, "local": failures are noticed within a few hundred
	// milliseconds, which keeps tests short.
	GossipProfile string
	// ExtraArgs are appended to every node's command line.
	ExtraArgs []string
	// NodeArgs, if not nil, returns more flags for node i (after ExtraArgs).
	NodeArgs func(i int) []string
}

// nodeArgs lists the flags node i gets from the options. The cluster-only ones
// (--redundancy, --gossip-profile) are left out when this sonaed does not
// have them yet, so a single node still starts.
func (o ClusterOptions) nodeArgs(i int, clusterFlags bool) []string {
	var args []string
	if o.Name != "" {
		args = append(args, "--name", o.Name)
	}
	if o.Engine != "" {
		args = append(args, "--engine", o.Engine)
	}
	if o.DivBits != 0 {
		args = append(args, "--div-bits", strconv.Itoa(o.DivBits))
	}
	if clusterFlags {
		if o.Redundancy != 0 {
			args = append(args, "--redundancy", strconv.Itoa(o.Redundancy))
		}
		profile := o.GossipProfile
		if profile == "" {
			profile = "local"
		}
		args = append(args, "--gossip-profile", profile)
	}
	args = append(args, o.ExtraArgs...)
	if o.NodeArgs != nil {
		args = append(args, o.NodeArgs(i)...)
	}
	return args
}

// needsClusterFlags reports whether a cluster of n nodes with these options
// can only run on a sonaed that has the cluster flags.
func (o ClusterOptions) needsClusterFlags(n int) bool {
	return n > 1 || o.Redundancy != 0 || o.GossipProfile != ""
}

var (
	helpOnce sync.Once
	helpText string
)

// sonaedHelp returns what `sonaed --help` prints, once per test binary.
func sonaedHelp(t testing.TB) string {
	t.Helper()
	bin := Binary(t)
	helpOnce.Do(func() {
		out, _ := exec.Command(bin, "--help").CombinedOutput() // usage is the answer, whatever the exit code
		helpText = string(out)
	})
	return helpText
}

// HasClusterFlags reports whether this checkout's sonaed has the cluster
// flags (--join and friends), by looking at its --help output.
func HasClusterFlags(t testing.TB) bool {
	t.Helper()
	return strings.Contains(sonaedHelp(t), "--join")
}

// hasAdvertise reports whether sonaed has --advertise (needed to bind
// 0.0.0.0 in a container and still name the node by its address).
func hasAdvertise(t testing.TB) bool {
	t.Helper()
	return strings.Contains(sonaedHelp(t), "--advertise")
}

// RequireClusterFlags skips the test unless sonaed has the cluster flags.
func RequireClusterFlags(t testing.TB) {
	t.Helper()
	if !HasClusterFlags(t) {
		t.Skip("needs cluster flags")
	}
}

var (
	loopbackOnce sync.Once
	loopbackWide bool
)

// LoopbackHost returns the address node i listens on: 127.0.0.(10+i) when
// the whole of 127/8 can be bound (Linux), else 127.0.0.1 (macOS, where only
// 127.0.0.1 exists unless aliases are added), with ports keeping nodes apart.
// Distinct hosts make node ids, logs and gossip look like a real network's.
func LoopbackHost(i int) string {
	loopbackOnce.Do(func() {
		ln, err := net.Listen("tcp", "127.0.0.10:0")
		if err == nil {
			ln.Close()
			loopbackWide = true
		}
	})
	if !loopbackWide || i < 0 || 10+i > 254 {
		return "127.0.0.1"
	}
	return "127.0.0." + strconv.Itoa(10+i)
}

// FreeTCPUDPPort returns a port on host that was free a moment ago for both
// TCP and UDP: a node uses one number for its client, Raft and peer
// connections (TCP) and for gossip (UDP).
func FreeTCPUDPPort(t testing.TB, host string) int {
	t.Helper()
	var last error
	for range 50 {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
		last = err
	}
	t.Fatalf("no port free for both TCP and UDP on %s: %v", host, last)
	return 0
}
