package client

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sonae-kv/sonae/internal/routing"
)

// fakeCluster is a few TCP servers speaking just enough of sonae's text
// protocol for the Cluster client: routingdump sonae, conn_option, stat,
// members, get_key_info, get/gets, the storage commands, delete, incr,
// decr, touch, and NOT_PRIMARY answers in direct mode. The nodes share one
// data map (as if replication were instant) and, unless a node is given a
// stale view, one table.
type fakeCluster struct {
	t *testing.T

	mu    sync.Mutex // guards table, data, cas
	table *RoutingTable
	data  map[string]fakeItem
	cas   uint64

	nodes []*fakeNode
}

type fakeItem struct {
	value   []byte
	flags   uint32
	exptime int64
	cas     uint64
}

// fakeNode is one server of a fakeCluster.
type fakeNode struct {
	fc *fakeCluster
	id string
	ln net.Listener

	mu     sync.Mutex // guards everything below
	dead   bool
	conns  map[net.Conn]bool
	counts map[string]int // command name (and "NOT_PRIMARY") -> count
	served map[string]int // key -> keyed requests served here
	// view, if not nil, is the table this node believes in (a node that
	// has not applied the latest table yet).
	view *RoutingTable
	// dumpView, if not nil, is the table routingdump answers with (a node
	// whose dump lags behind what it enforces).
	dumpView *RoutingTable
	// dropAfter, if it returns true, makes the node apply the command and
	// close the connection without answering (a reply lost on the wire).
	dropAfter func(cmd, key string) bool
	// unavailable, if it returns true, makes the node refuse the command
	// with "SERVER_ERROR vnode <n> unavailable".
	unavailable func(cmd, key string) bool

	wg sync.WaitGroup
}

// newFakeCluster starts n nodes and a table of 2^divBits vnodes with
// redundancy replicas each, vnode v's primary being node v%n, at version 1.
func newFakeCluster(t *testing.T, n int, divBits uint, redundancy int) *fakeCluster {
	t.Helper()
	fc := &fakeCluster{t: t, data: map[string]fakeItem{}}
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		fn := &fakeNode{fc: fc, id: fmt.Sprintf("127.0.0.1_%d", port), ln: ln,
			conns: map[net.Conn]bool{}, counts: map[string]int{}, served: map[string]int{}}
		fc.nodes = append(fc.nodes, fn)
		fn.wg.Go(fn.accept)
		t.Cleanup(fn.kill)
	}
	tab := &RoutingTable{Version: 1, DivBits: divBits, Redundancy: redundancy}
	for _, fn := range fc.nodes {
		tab.Nodes = append(tab.Nodes, RoutingNode{ID: fn.id, Host: fn.id})
	}
	tab.Vnodes = make([]VnodeReplicas, 1<<divBits)
	for v := range tab.Vnodes {
		for r := range min(redundancy, n) {
			tab.Vnodes[v].Nodes = append(tab.Vnodes[v].Nodes, fc.nodes[(v+r)%n].id)
		}
	}
	fc.table = tab
	return fc
}

// seeds returns every node's id.
func (fc *fakeCluster) seeds() []string {
	var s []string
	for _, fn := range fc.nodes {
		s = append(s, fn.id)
	}
	return s
}

func (fc *fakeCluster) node(id string) *fakeNode {
	for _, fn := range fc.nodes {
		if fn.id == id {
			return fn
		}
	}
	fc.t.Fatalf("no fake node %s", id)
	return nil
}

// currentTable returns a deep copy of the committed table.
func (fc *fakeCluster) currentTable() *RoutingTable {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return cloneTable(fc.table)
}

func cloneTable(t *RoutingTable) *RoutingTable {
	b, _ := json.Marshal(t)
	var c RoutingTable
	json.Unmarshal(b, &c)
	return &c
}

// commit applies edit to a copy of the table and raises its version.
func (fc *fakeCluster) commit(edit func(t *RoutingTable)) uint64 {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	t := cloneTable(fc.table)
	edit(t)
	t.Version = fc.table.Version + 1
	fc.table = t
	return t.Version
}

// movePrimary makes id the primary of vnode v (the old primary becomes
// secondary1) and commits.
func (fc *fakeCluster) movePrimary(v int, id string) uint64 {
	return fc.commit(func(t *RoutingTable) {
		ns := slices.DeleteFunc(slices.Clone(t.Vnodes[v].Nodes), func(s string) bool { return s == id })
		t.Vnodes[v].Nodes = append([]string{id}, ns...)[:min(len(ns)+1, t.Redundancy)]
		t.Vnodes[v].Epoch++
	})
}

// keyOn returns a key (prefix + n) whose primary is node id.
func (fc *fakeCluster) keyOn(id, prefix string) string {
	t := fc.currentTable()
	for i := 0; ; i++ {
		k := prefix + strconv.Itoa(i)
		if t.Primary(int(routing.Vnode([]byte(k), t.DivBits))) == id {
			return k
		}
	}
}

func (fc *fakeCluster) value(key string) (string, bool) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	it, ok := fc.data[key]
	return string(it.value), ok
}

func (fn *fakeNode) count(name string) int {
	fn.mu.Lock()
	defer fn.mu.Unlock()
	return fn.counts[name]
}

func (fn *fakeNode) servedKey(key string) int {
	fn.mu.Lock()
	defer fn.mu.Unlock()
	return fn.served[key]
}

// kill closes the listener and every connection: the node is dead.
func (fn *fakeNode) kill() {
	fn.ln.Close()
	fn.mu.Lock()
	fn.dead = true
	for c := range fn.conns {
		c.Close()
	}
	fn.mu.Unlock()
	fn.wg.Wait()
}

func (fn *fakeNode) set(f func(fn *fakeNode)) {
	fn.mu.Lock()
	defer fn.mu.Unlock()
	f(fn)
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
			defer func() {
				c.Close()
				fn.mu.Lock()
				delete(fn.conns, c)
				fn.mu.Unlock()
			}()
			fn.serve(c)
		})
	}
}

// fakeConn is one connection's modes.
type fakeConn struct {
	direct, readSecondary bool
}

var errDrop = fmt.Errorf("drop the connection")

func (fn *fakeNode) serve(c net.Conn) {
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	st := &fakeConn{}
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
		reply, err := fn.handle(st, f, r)
		if err != nil {
			return
		}
		w.WriteString(reply)
		if w.Flush() != nil {
			return
		}
	}
}

// handle answers one command; an error closes the connection unanswered.
func (fn *fakeNode) handle(st *fakeConn, f []string, r *bufio.Reader) (string, error) {
	fc := fn.fc
	switch f[0] {
	case "routingdump":
		if len(f) != 2 || f[1] != "sonae" {
			return "ERROR\r\n", nil
		}
		t := fn.table()
		fn.mu.Lock()
		if fn.dumpView != nil {
			t = fn.dumpView
		}
		fn.mu.Unlock()
		b, _ := json.Marshal(t)
		return string(b) + "\r\nEND\r\n", nil
	case "conn_option":
		if len(f) != 3 || (f[2] != "on" && f[2] != "off") {
			return "CLIENT_ERROR bad conn_option\r\n", nil
		}
		switch f[1] {
		case "direct":
			st.direct = f[2] == "on"
		case "read_secondary":
			st.readSecondary = f[2] == "on"
		default:
			return "CLIENT_ERROR unknown option\r\n", nil
		}
		return "OK\r\n", nil
	case "stat":
		t := fn.table()
		stats := [][2]string{{"version", "fake"}, {"routing.version", strconv.FormatUint(t.Version, 10)},
			{"routing.version_of_nothing", "99999"}, {"routing.div_bits", strconv.Itoa(int(t.DivBits))}}
		var b strings.Builder
		for _, s := range stats {
			if len(f) < 2 || regexp.MustCompile(f[1]).MatchString(s[0]) {
				fmt.Fprintf(&b, "%s %s\r\n", s[0], s[1])
			}
		}
		return b.String() + "END\r\n", nil
	case "members":
		var b strings.Builder
		for _, n := range fc.nodes {
			fmt.Fprintf(&b, "MEMBER %s %s alive role=node,dc=test\r\n", n.id, NormalizeAddr(n.id))
		}
		return b.String() + "END\r\n", nil
	case "get_key_info":
		t := fn.table()
		v := fakeVnode(f[1], t.DivBits)
		r := t.Vnodes[v]
		var b strings.Builder
		fmt.Fprintf(&b, "vnode %d\r\nepoch %d\r\nprimary %s\r\n", v, r.Epoch, t.Primary(v))
		for i, id := range r.Nodes[1:] {
			fmt.Fprintf(&b, "secondary%d %s\r\n", i+1, id)
		}
		fmt.Fprintf(&b, "in_sync %s,\r\nEND\r\n", strings.Join(r.Nodes, ","))
		return b.String(), nil
	case "get", "gets":
		for _, k := range f[1:] {
			if refuse := fn.refuse(st, f[0], k, true); refuse != "" {
				return refuse, nil
			}
		}
		var b strings.Builder
		fc.mu.Lock()
		for _, k := range f[1:] {
			fn.serveKey(k)
			if it, ok := fc.data[k]; ok {
				fmt.Fprintf(&b, "VALUE %s %d %d", k, it.flags, len(it.value))
				if f[0] == "gets" {
					fmt.Fprintf(&b, " %d", it.cas)
				}
				fmt.Fprintf(&b, "\r\n%s\r\n", it.value)
			}
		}
		fc.mu.Unlock()
		return b.String() + "END\r\n", nil
	case "set", "add", "replace", "append", "prepend", "cas":
		if len(f) < 5 {
			return "ERROR\r\n", nil
		}
		n, _ := strconv.Atoi(f[4])
		data := make([]byte, n+2)
		if _, err := io.ReadFull(r, data); err != nil {
			return "", err
		}
		if refuse := fn.refuse(st, f[0], f[1], false); refuse != "" {
			return refuse, nil
		}
		return fn.apply(f, func() string { return fn.store(f, data[:n]) })
	case "delete", "incr", "decr", "touch":
		if len(f) < 2 {
			return "ERROR\r\n", nil
		}
		if refuse := fn.refuse(st, f[0], f[1], false); refuse != "" {
			return refuse, nil
		}
		return fn.apply(f, func() string { return fn.keyed(f) })
	}
	return "ERROR\r\n", nil
}

// apply runs a write, then drops the connection if dropAfter says so.
func (fn *fakeNode) apply(f []string, do func() string) (string, error) {
	fn.fc.mu.Lock()
	fn.serveKey(f[1])
	reply := do()
	fn.fc.mu.Unlock()
	fn.mu.Lock()
	drop := fn.dropAfter != nil && fn.dropAfter(f[0], f[1])
	fn.mu.Unlock()
	if drop {
		return "", errDrop
	}
	return reply, nil
}

func (fn *fakeNode) serveKey(k string) {
	fn.mu.Lock()
	fn.served[k]++
	fn.mu.Unlock()
}

func (fn *fakeNode) table() *RoutingTable {
	fn.mu.Lock()
	view := fn.view
	fn.mu.Unlock()
	if view != nil {
		return view
	}
	fn.fc.mu.Lock()
	defer fn.fc.mu.Unlock()
	return fn.fc.table
}

// fakeVnode maps a key as the server does (internal/routing, after the
// namespace split), independently of the client's own Vnode.
func fakeVnode(key string, divBits uint) int {
	if i := strings.IndexByte(key, 0x1b); i >= 0 {
		key = key[:i]
	}
	return int(routing.Vnode([]byte(key), divBits))
}

// refuse returns the NOT_PRIMARY or unavailable line for a request this
// node must not serve, or "".
func (fn *fakeNode) refuse(st *fakeConn, cmd, key string, read bool) string {
	t := fn.table()
	v := fakeVnode(key, t.DivBits)
	fn.mu.Lock()
	unavailable := fn.unavailable != nil && fn.unavailable(cmd, key)
	fn.mu.Unlock()
	if unavailable {
		return fmt.Sprintf("SERVER_ERROR vnode %d unavailable: fake\r\n", v)
	}
	if !st.direct {
		return "" // forwarding
	}
	r := t.Vnodes[v]
	if t.Primary(v) == fn.id {
		return ""
	}
	if read && st.readSecondary && slices.Contains(r.Nodes, fn.id) && !slices.Contains(r.Lagging, fn.id) {
		return ""
	}
	fn.mu.Lock()
	fn.counts["NOT_PRIMARY"]++
	fn.mu.Unlock()
	return fmt.Sprintf("SERVER_ERROR NOT_PRIMARY %d %s %d\r\n", v, t.Primary(v), t.Version)
}

// store runs a storage command; fc.mu is held.
func (fn *fakeNode) store(f []string, value []byte) string {
	fc := fn.fc
	flags, _ := strconv.ParseUint(f[2], 10, 32)
	exptime, _ := strconv.ParseInt(f[3], 10, 64)
	key := f[1]
	old, exists := fc.data[key]
	switch f[0] {
	case "add":
		if exists {
			return "NOT_STORED\r\n"
		}
	case "replace":
		if !exists {
			return "NOT_STORED\r\n"
		}
	case "append", "prepend":
		if !exists {
			return "NOT_STORED\r\n"
		}
		if f[0] == "append" {
			value = append(slices.Clone(old.value), value...)
		} else {
			value = append(slices.Clone(value), old.value...)
		}
		flags, exptime = uint64(old.flags), old.exptime
	case "cas":
		if !exists {
			return "NOT_FOUND\r\n"
		}
		want, _ := strconv.ParseUint(f[5], 10, 64)
		if old.cas != want {
			return "EXISTS\r\n"
		}
	}
	fc.cas++
	fc.data[key] = fakeItem{value: slices.Clone(value), flags: uint32(flags), exptime: exptime, cas: fc.cas}
	return "STORED\r\n"
}

// keyed runs delete, incr, decr or touch; fc.mu is held.
func (fn *fakeNode) keyed(f []string) string {
	fc := fn.fc
	key := f[1]
	it, ok := fc.data[key]
	if !ok {
		return "NOT_FOUND\r\n"
	}
	switch f[0] {
	case "delete":
		delete(fc.data, key)
		return "DELETED\r\n"
	case "touch":
		it.exptime, _ = strconv.ParseInt(f[2], 10, 64)
		fc.data[key] = it
		return "TOUCHED\r\n"
	}
	n, err := strconv.ParseUint(string(it.value), 10, 64)
	if err != nil {
		return "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
	}
	d, _ := strconv.ParseUint(f[2], 10, 64)
	if f[0] == "incr" {
		n += d
	} else {
		n -= min(n, d)
	}
	fc.cas++
	it.value, it.cas = []byte(strconv.FormatUint(n, 10)), fc.cas
	fc.data[key] = it
	return strconv.FormatUint(n, 10) + "\r\n"
}
