package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sonae-kv/sonae/internal/routing"
)

// fakeCluster is a few TCP servers speaking the part of sonae's cluster
// protocol the CLI uses: members, routingdump sonae, get_key_info,
// conn_option, stat, and get/set with NOT_PRIMARY answers in direct mode.
// The nodes share one table and one data map. (The client package's tests
// have a fuller fake; test files cannot share code across packages.)
type fakeCluster struct {
	table fakeTable
	nodes []*fakeNode

	mu   sync.Mutex // guards data
	data map[string][]byte
}

// fakeTable is the `routingdump sonae` shape, written independently of
// the client's types.
type fakeTable struct {
	Version           uint64      `json:"version"`
	DivBits           uint        `json:"div_bits"`
	Redundancy        int         `json:"redundancy"`
	ReplicationInHost bool        `json:"replication_in_host"`
	Nodes             []fakeNodeT `json:"nodes"`
	Vnodes            []fakeVnode `json:"vnodes"`
}

type fakeNodeT struct {
	ID   string `json:"id"`
	Host string `json:"host"`
}

type fakeVnode struct {
	Nodes   []string `json:"nodes"`
	Epoch   uint64   `json:"epoch"`
	Lagging []string `json:"lagging,omitempty"`
}

type fakeNode struct {
	fc   *fakeCluster
	id   string
	addr string
	ln   net.Listener

	mu     sync.Mutex // guards the fields below
	dead   bool
	conns  map[net.Conn]bool
	counts map[string]int // command (and NOT_PRIMARY) -> count
	wg     sync.WaitGroup
}

// newFakeCluster starts n nodes; vnode v has replicas v%n, (v+1)%n; the
// last node is lagging on every vnode it is secondary of.
func newFakeCluster(t *testing.T, n int, divBits uint) *fakeCluster {
	t.Helper()
	fc := &fakeCluster{data: map[string][]byte{}}
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		fn := &fakeNode{fc: fc, id: fmt.Sprintf("127.0.0.1_%d", port), addr: ln.Addr().String(), ln: ln,
			conns: map[net.Conn]bool{}, counts: map[string]int{}}
		fc.nodes = append(fc.nodes, fn)
		fn.wg.Go(fn.accept)
		t.Cleanup(fn.stop)
	}
	fc.table = fakeTable{Version: 4, DivBits: divBits, Redundancy: 2}
	for _, fn := range fc.nodes {
		fc.table.Nodes = append(fc.table.Nodes, fakeNodeT{ID: fn.id, Host: "127.0.0.1"})
	}
	last := fc.nodes[n-1].id
	for v := range 1 << divBits {
		r := fakeVnode{Nodes: []string{fc.nodes[v%n].id, fc.nodes[(v+1)%n].id}, Epoch: uint64(v % 3)}
		if r.Nodes[1] == last {
			r.Lagging = []string{last}
		}
		fc.table.Vnodes = append(fc.table.Vnodes, r)
	}
	return fc
}

func (fn *fakeNode) count(name string) int {
	fn.mu.Lock()
	defer fn.mu.Unlock()
	return fn.counts[name]
}

func (fn *fakeNode) stop() {
	fn.ln.Close()
	fn.mu.Lock()
	fn.dead = true
	for c := range fn.conns {
		c.Close()
	}
	fn.mu.Unlock()
	fn.wg.Wait()
}

func (fn *fakeNode) accept() {
	for {
		c, err := fn.ln.Accept()
		if err != nil {
			return
		}
		fn.mu.Lock()
		if fn.dead {
			fn.mu.Unlock()
			c.Close()
			return
		}
		fn.conns[c] = true
		fn.mu.Unlock()
		fn.wg.Go(func() {
			defer c.Close()
			fn.serve(c)
		})
	}
}

func (fn *fakeNode) serve(c net.Conn) {
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	direct := false
	t := &fn.fc.table
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		fn.mu.Lock()
		fn.counts[f[0]]++
		fn.mu.Unlock()
		switch {
		case f[0] == "members":
			for i, n := range fn.fc.nodes {
				status, tags := "alive", "dc=test,role=node"
				if i == len(fn.fc.nodes)-1 {
					status, tags = "failed", ""
				}
				fmt.Fprintf(w, "MEMBER %s %s %s %s\r\n", n.id, n.addr, status, tags)
			}
			w.WriteString("END\r\n")
		case f[0] == "routingdump" && len(f) == 2 && f[1] == "sonae":
			b, _ := json.Marshal(t)
			fmt.Fprintf(w, "%s\r\nEND\r\n", b)
		case f[0] == "get_key_info" && len(f) == 2:
			v := int(routing.Vnode([]byte(f[1]), t.DivBits))
			r := t.Vnodes[v]
			fmt.Fprintf(w, "vnode %d\r\nepoch %d\r\nprimary %s\r\nsecondary1 %s\r\nin_sync %s\r\nEND\r\n",
				v, r.Epoch, r.Nodes[0], r.Nodes[1], r.Nodes[0])
		case f[0] == "conn_option" && len(f) == 3:
			direct = f[1] == "direct" && f[2] == "on" || direct && f[1] != "direct"
			w.WriteString("OK\r\n")
		case f[0] == "stat":
			fmt.Fprintf(w, "routing.version %d\r\nEND\r\n", t.Version)
		case f[0] == "get" && len(f) >= 2:
			if fn.refuse(w, direct, f[1:]) {
				break
			}
			fn.fc.mu.Lock()
			for _, k := range f[1:] {
				if v, ok := fn.fc.data[k]; ok {
					fmt.Fprintf(w, "VALUE %s 0 %d\r\n%s\r\n", k, len(v), v)
				}
			}
			fn.fc.mu.Unlock()
			w.WriteString("END\r\n")
		case f[0] == "set" && len(f) == 5:
			n, _ := strconv.Atoi(f[4])
			data := make([]byte, n+2)
			if _, err := io.ReadFull(r, data); err != nil {
				return
			}
			if fn.refuse(w, direct, f[1:2]) {
				break
			}
			fn.fc.mu.Lock()
			fn.fc.data[f[1]] = data[:n]
			fn.fc.mu.Unlock()
			w.WriteString("STORED\r\n")
		default:
			w.WriteString("ERROR\r\n")
		}
		if w.Flush() != nil {
			return
		}
	}
}

// refuse answers NOT_PRIMARY in direct mode when a key is not this node's.
func (fn *fakeNode) refuse(w *bufio.Writer, direct bool, keys []string) bool {
	t := &fn.fc.table
	for _, k := range keys {
		v := int(routing.Vnode([]byte(k), t.DivBits))
		if p := t.Vnodes[v].Nodes[0]; direct && p != fn.id {
			fn.mu.Lock()
			fn.counts["NOT_PRIMARY"]++
			fn.mu.Unlock()
			fmt.Fprintf(w, "SERVER_ERROR NOT_PRIMARY %d %s %d\r\n", v, p, t.Version)
			return true
		}
	}
	return false
}
