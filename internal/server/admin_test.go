package server_test

import (
	"context"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/testcluster"
)

func TestNamespaces(t *testing.T) {
	n := startNode(t, nil, nil, nil)
	c := dialRaw(t, n.addr)
	c.roundTrip("hashlist\r\n", "default\r\n")
	c.roundTrip("set k 0 0 1\r\nd\r\n", "STORED\r\n")
	c.roundTrip("get k\x1bapp\r\n", "SERVER_ERROR namespace \"app\" does not exist (createhash creates it)\r\n")
	c.roundTrip("createhash app\r\n", "CREATED\r\n")
	c.roundTrip("createhash app\r\n", "SERVER_ERROR meta: namespace exists: app\r\n")
	c.roundTrip("createhash bad/name\r\n", "CLIENT_ERROR storage: bad namespace name: \"bad/name\"\r\n")
	c.roundTrip("hashlist\r\n", "app default\r\n")
	c.roundTrip("set k\x1bapp 0 0 1\r\na\r\n", "STORED\r\n")
	// The suffix is stripped from echoed keys, as ROMA does.
	c.roundTrip("get k\x1bapp k\r\n", "VALUE k 0 1\r\na\r\nVALUE k 0 1\r\nd\r\nEND\r\n")
	c.roundTrip("defhash\r\n", "default\r\n")
	c.roundTrip("defhash nope\r\n", "SERVER_ERROR namespace \"nope\" does not exist (createhash creates it)\r\n")
	c.roundTrip("defhash app\r\n", "STORED\r\n")
	c.roundTrip("get k\r\n", "VALUE k 0 1\r\na\r\nEND\r\n")
	// defhash is per connection.
	other := dialRaw(t, n.addr)
	other.roundTrip("get k\r\n", "VALUE k 0 1\r\nd\r\nEND\r\n")
	// flush_all flushes the connection's namespace only.
	c.roundTrip("flush_all\r\n", "OK\r\n")
	c.roundTrip("get k k\x1bdefault\r\n", "VALUE k 0 1\r\nd\r\nEND\r\n")
	c.roundTrip("deletehash default\r\n", "SERVER_ERROR meta: the default namespace cannot be deleted\r\n")
	c.roundTrip("set z 0 0 1\r\nz\r\n", "STORED\r\n")
	c.roundTrip("deletehash app\r\n", "DELETED\r\n")
	c.roundTrip("defhash\r\n", "default\r\n")
	c.roundTrip("hashlist\r\n", "default\r\n")
	c.roundTrip("get z\x1bapp\r\n", "SERVER_ERROR namespace \"app\" does not exist (createhash creates it)\r\n")
	c.roundTrip("createhash app\r\n", "CREATED\r\n")
	c.roundTrip("get z\x1bapp\r\n", "END\r\n") // dropped with the namespace
	c.roundTrip("createhash\r\n", "CLIENT_ERROR usage: createhash <name>\r\n")
}

func TestWhoamiNodelistStat(t *testing.T) {
	n := startNode(t, nil, nil, func(c *configT) { c.Name = "tokyo" })
	id := strings.Replace(n.addr, ":", "_", 1) // the node id is HOST_PORT of its listener
	c := dialRaw(t, n.addr)
	c.roundTrip("whoami\r\n", "tokyo\r\n")
	c.roundTrip("nodelist\r\n", id+"\r\n")
	c.send("stat routing.nodes\r\n")
	if got := c.line() + "|" + c.line() + "|" + c.line(); got != "routing.nodes.length 1|routing.nodes [\""+id+"\"]|END" {
		t.Fatalf("stat routing.nodes = %q", got)
	}
	c.send("stat\r\n")
	seen := map[string]string{}
	for {
		l := c.line()
		if l == "END" {
			break
		}
		k, v, _ := strings.Cut(l, " ")
		seen[k] = v
	}
	for _, k := range []string{"version", "stats.name", "stats.run_join", "stats.write_count", "storages[default].storage.st_class", "routing.vnodes.length", "routing.short_vnodes", "connection.count"} {
		if _, ok := seen[k]; !ok {
			t.Errorf("stat has no %s", k)
		}
	}
	if seen["stats.name"] != "tokyo" || seen["routing.vnodes.length"] != "512" || seen["stats.run_join"] != "false" {
		t.Errorf("stat values: %v", seen)
	}
	c.roundTrip("stat a(b\r\n", "CLIENT_ERROR bad regexp: error parsing regexp: missing closing ): `a(b`\r\n")
	c.send("stats\r\n")
	stats := map[string]bool{}
	for {
		l := c.line()
		if l == "END" {
			break
		}
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "STAT" {
			t.Fatalf("bad stats line %q", l)
		}
		stats[f[1]] = true
	}
	for _, k := range []string{"pid", "uptime", "time", "version", "curr_connections", "total_connections", "cmd_get", "cmd_set", "get_hits", "get_misses", "curr_items", "bytes"} {
		if !stats[k] {
			t.Errorf("stats has no %s", k)
		}
	}
	c.roundTrip("stats reset\r\n", "RESET\r\n")
	c.roundTrip("stats nonsense\r\n", "ERROR\r\n")
}

// remoteListener makes every accepted connection look remote, to test the
// refusal of state-changing commands without leaving loopback.
type remoteListener struct{ net.Listener }

type remoteConn struct{ net.Conn }

func (remoteConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4242} }

func (l remoteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return remoteConn{c}, nil
}

func TestStateChangingCommandsNeedLoopbackOrAuth(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, nil, remoteListener{ln}, func(c *configT) { c.AuthToken = "s3cret" })
	c := dialRaw(t, n.addr)
	refused := "CLIENT_ERROR %s is refused: state-changing commands need a loopback client or `auth <token>` first\r\n"
	c.roundTrip("flush_all\r\n", strings.Replace(refused, "%s", "flush_all", 1))
	c.roundTrip("flush_all noreply\r\nversion\r\n", "VERSION "+versionString()+"\r\n")
	c.roundTrip("createhash x\r\n", strings.Replace(refused, "%s", "createhash", 1))
	c.roundTrip("deletehash x\r\n", strings.Replace(refused, "%s", "deletehash", 1))
	c.roundTrip("set k 0 0 1\r\nv\r\n", "STORED\r\n") // data commands are fine
	c.roundTrip("auth wrong\r\n", "CLIENT_ERROR authentication failed\r\n")
	c.roundTrip("flush_all\r\n", strings.Replace(refused, "%s", "flush_all", 1))
	c.roundTrip("auth s3cret\r\n", "OK\r\n")
	c.roundTrip("flush_all\r\n", "OK\r\n")
	c.roundTrip("createhash x\r\n", "CREATED\r\n")
}

// TestStalledClientsStayBounded opens many connections that each declare a
// large value and send only part of it. The budget must hold the bytes in
// flight to its limit, and memory must not grow with the declared sizes.
func TestStalledClientsStayBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1500 connections")
	}
	const limit = 8 << 20
	n := startNode(t, nil, nil, func(c *configT) {
		c.MaxPendingValueBytes = limit
		c.IdleTimeout = durationT(time.Minute)
	})
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	clients := 1500
	if os.Getenv("SONAE_SOAK") != "" {
		clients = 4000
	}
	conns := make([]*rawConn, clients)
	for i := range conns {
		conns[i] = dialRaw(t, n.addr)
		conns[i].send("set big 0 0 1048576\r\n" + strings.Repeat("x", 1000))
	}
	eventually(t, 10*time.Second, "every connection accepted", func() bool {
		return n.Server.CurrentConnections() == int64(clients)
	})
	if used := n.Server.PendingValueBytes(); used > limit {
		t.Fatalf("pending value bytes %d over the limit %d", used, limit)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	// 1500 (or 4000) × 1 MiB declared = 1.5 (or 4) GiB. Allow the budget
	// plus 24 KiB per connection for its buffers, parser and bookkeeping.
	allowed := int64(limit) + int64(clients)*24<<10
	if grown := int64(after.HeapInuse) - int64(before.HeapInuse); grown > allowed {
		t.Fatalf("heap grew by %d MiB with %d stalled clients (allowed %d MiB)", grown>>20, clients, allowed>>20)
	}
	t.Logf("heap grew by %d MiB with %d stalled clients", (int64(after.HeapInuse)-int64(before.HeapInuse))>>20, clients)
	// The server still answers others.
	c := dialRaw(t, n.addr)
	c.roundTrip("version\r\n", "VERSION "+versionString()+"\r\n")
	for _, s := range conns {
		s.nc.Close()
	}
	eventually(t, 10*time.Second, "stalled connections gone and budget released", func() bool {
		return n.Server.CurrentConnections() == 1 && n.Server.PendingValueBytes() == 0
	})
}

// TestShutdownDoesNotWaitForMemory: a connection waiting for value memory
// must not hold up a graceful shutdown. (Closing the read sides makes the
// holder release its block, which wakes the waiter; the budget is also
// closed on shutdown so a waiter never outlives a slow holder.)
func TestShutdownDoesNotWaitForMemory(t *testing.T) {
	n := testcluster.StartInProcess(t, nil, nil, func(c *configT) {
		c.MaxPendingValueBytes = 3 << 19       // 1.5 MiB: one 1 MB block fits, two do not
		c.IdleTimeout = durationT(time.Minute) // the budget wait is capped at 30 s
	})
	holder := dialRaw(t, n.Addr)
	holder.send("set a 0 0 1000000\r\n" + strings.Repeat("x", 100)) // takes most of the budget
	eventually(t, 5*time.Second, "the first block to hold the budget", func() bool { return n.Server.PendingValueBytes() > 0 })
	waiter := dialRaw(t, n.Addr)
	waiter.send("set b 0 0 1000000\r\n") // does not fit: waits
	eventually(t, 5*time.Second, "the second connection to wait for memory", func() bool { return n.Server.PendingValueWaiters() == 1 })
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("shutdown took %s with a connection waiting for memory", el)
	}
}
