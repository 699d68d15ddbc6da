package replication

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sonae-kv/sonae/internal/clock"
	"github.com/sonae-kv/sonae/internal/kv"
	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/routing"
	"github.com/sonae-kv/sonae/internal/storage"
	"github.com/sonae-kv/sonae/internal/testutil"
)

// The in-process cluster of these tests runs the data path without Raft:
// every node has a Replicator over its own kv.Store (memory engine) and
// serves peers on a loopback TCP listener; the metadata is a meta.FSM that
// the test drives, shared by the nodes unless a test gives one node its
// own. Propose applies the command to the node's FSM at once, with the
// next index, and LeaderContact is 0: every node behaves as if it were
// the Raft leader.

// metaLog is an FSM and the index of its last entry.
type metaLog struct {
	mu  sync.Mutex
	fsm *meta.FSM
	idx uint64
}

func newMetaLog(t testing.TB) *metaLog {
	return &metaLog{fsm: meta.NewFSM(slog.New(slog.DiscardHandler))}
}

func (m *metaLog) apply(c meta.Command) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.idx++
	if res := m.fsm.Apply(&raft.Log{Index: m.idx, Type: raft.LogCommand, Data: c.Encode()}); res != nil {
		return res.(error)
	}
	return nil
}

// restore replaces the FSM's state by st (through a snapshot).
func (m *metaLog) restore(t testing.TB, st *meta.State) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.fsm.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatalf("restoring the test layout: %v", err)
	}
	m.idx = st.Index
}

// gate holds writes while closed: a paused node receives frames but its
// acks and answers stay queued.
type gate struct {
	mu sync.Mutex
	ch chan struct{} // closed while open
}

func newGate() *gate {
	g := &gate{ch: make(chan struct{})}
	close(g.ch)
	return g
}

func (g *gate) pause() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.ch:
		g.ch = make(chan struct{})
	default:
	}
}

func (g *gate) resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.ch:
	default:
		close(g.ch)
	}
}

func (g *gate) wait(closed <-chan struct{}) bool {
	g.mu.Lock()
	ch := g.ch
	g.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-closed:
		return false
	}
}

type gatedListener struct {
	net.Listener
	g *gate
}

func (l gatedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &gatedConn{Conn: c, g: l.g, closed: make(chan struct{})}, nil
}

type gatedConn struct {
	net.Conn
	g      *gate
	once   sync.Once
	closed chan struct{}
}

func (c *gatedConn) Write(b []byte) (int, error) {
	if !c.g.wait(c.closed) {
		return 0, net.ErrClosed
	}
	return c.Conn.Write(b)
}

func (c *gatedConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// tnode is one node of the test cluster. Its engine survives stop/start.
type tnode struct {
	c    *tcluster
	id   routing.NodeID
	addr string
	eng  storage.Engine
	meta *metaLog
	gate *gate

	store *kv.Store
	rep   *Replicator
	ln    net.Listener

	cancel  context.CancelFunc
	runDone chan struct{} // closed when Run returned
	running sync.WaitGroup
	up      bool

	proposals atomic.Int64
	// failPropose makes Propose fail; contact is LeaderContact's answer.
	failPropose atomic.Bool
	contact     atomic.Int64
}

type tcluster struct {
	t       testing.TB
	log     *slog.Logger
	divBits uint
	meta    *metaLog
	cfg     Config
	nodes   []*tnode
}

type clusterOpt func(*tcluster)

// quiet discards the logs (a fuzz target must not log through its F).
func quiet(c *tcluster) { c.log = slog.New(slog.DiscardHandler) }

// withTimeout sets the replication timeout (default 2s).
func withTimeout(d time.Duration) clusterOpt {
	return func(c *tcluster) { c.cfg.ReplicationTimeout = d }
}

// newCluster listens for nodes ids (each "x_1": host x) and starts them
// once the test has laid out the metadata with c.layout.
func newCluster(t testing.TB, ids []routing.NodeID, opts ...clusterOpt) *tcluster {
	t.Helper()
	c := &tcluster{t: t, log: testutil.Logger(t), divBits: 2, meta: newMetaLog(t)}
	c.cfg = Config{ReplicationTimeout: 2 * time.Second, ReadLease: time.Hour, PoolSize: 2}
	for _, o := range opts {
		o(c)
	}
	for _, id := range ids {
		n := &tnode{c: c, id: id, eng: storage.NewMemory(storage.Options{}), meta: c.meta, gate: newGate()}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		n.ln, n.addr = ln, ln.Addr().String()
		c.nodes = append(c.nodes, n)
	}
	t.Cleanup(c.shutdown)
	return c
}

func (c *tcluster) node(id routing.NodeID) *tnode {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	c.t.Fatalf("no node %s", id)
	return nil
}

// layout builds the metadata: every node a member, vnodes[v] the replica
// list of vnode v (epoch 1; the redundancy is the longest list, at least
// 2), lagging the lagging replicas; then it starts
// every node that is not running.
func (c *tcluster) layout(vnodes [][]routing.NodeID, lagging map[int][]routing.NodeID) *meta.State {
	c.t.Helper()
	st := c.state(vnodes, lagging)
	c.meta.restore(c.t, st)
	for _, n := range c.nodes {
		if !n.up {
			n.start()
		}
	}
	return st
}

func (c *tcluster) state(vnodes [][]routing.NodeID, lagging map[int][]routing.NodeID) *meta.State {
	c.t.Helper()
	redundancy := 2
	for _, ids := range vnodes {
		redundancy = max(redundancy, len(ids))
	}
	tab, err := routing.NewTable(c.divBits, redundancy, false)
	if err != nil {
		c.t.Fatal(err)
	}
	if len(vnodes) != tab.VnodeCount() {
		c.t.Fatalf("layout of %d vnodes, want %d", len(vnodes), tab.VnodeCount())
	}
	st := &meta.State{
		Index:      1,
		Settings:   meta.Settings{Name: "test", DivBits: c.divBits, Redundancy: redundancy},
		Namespaces: []string{meta.DefaultNamespace},
		Table:      tab,
		Lagging:    lagging,
	}
	for _, n := range c.nodes {
		st.Members = append(st.Members, meta.Member{ID: n.id, Addr: n.addr, Voter: true})
		tab.Nodes = append(tab.Nodes, routing.NodeFromID(n.id))
	}
	slices.SortFunc(st.Members, func(a, b meta.Member) int { return strings.Compare(string(a.ID), string(b.ID)) })
	slices.SortFunc(tab.Nodes, func(a, b routing.Node) int { return strings.Compare(string(a.ID), string(b.ID)) })
	for v, ids := range vnodes {
		tab.Vnodes[v] = routing.Replicas{Nodes: ids, Epoch: 1}
	}
	tab.Version = 1
	return st
}

// start opens the node's store over its engine with a new Replicator and
// serves peers on its address.
func (n *tnode) start() {
	t := n.c.t
	t.Helper()
	if n.ln == nil {
		ln, err := net.Listen("tcp", n.addr)
		if err != nil {
			t.Fatalf("listening again on %s: %v", n.addr, err)
		}
		n.ln = ln
	}
	log := n.c.log.With("node", n.id)
	cfg := n.c.cfg
	cfg.Self = n.id
	var store *kv.Store
	rep, err := New(cfg, Deps{
		State:   n.meta.fsm.State,
		Changed: n.meta.fsm.Changed,
		Propose: func(ctx context.Context, c meta.Command) error {
			n.proposals.Add(1)
			if n.failPropose.Load() {
				return fmt.Errorf("metadata %w: no Raft leader reachable (test)", ErrUnavailable)
			}
			return n.meta.apply(c)
		},
		LeaderContact: func() time.Duration { return time.Duration(n.contact.Load()) },
		Flush:         func(ns string, delay int64) error { return store.FlushAll(ns, delay) },
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		},
		Clock: clock.Real{},
		Log:   log,
	})
	if err != nil {
		t.Fatal(err)
	}
	opts := kv.DefaultOptions()
	opts.DivBits = n.c.divBits
	opts.Replicate = rep.Hook
	store, err = kv.Open(n.eng, clock.Real{}, opts, log)
	if err != nil {
		t.Fatal(err)
	}
	rep.Attach(store)
	n.store, n.rep = store, rep
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	ln := n.ln
	n.running.Add(1)
	go func() {
		defer n.running.Done()
		rep.Serve(gatedListener{ln, n.gate})
	}()
	n.runDone = make(chan struct{})
	go func() {
		defer close(n.runDone)
		rep.Run(ctx)
	}()
	n.up = true
}

// stop takes the node down: its listener and connections close, its peers
// see connection errors. Run has returned before Close is called: see
// TestCloseWhileRunStartsSyncs and TestCloseWithRunning for why.
func (n *tnode) stop() {
	if !n.up {
		return
	}
	n.gate.resume()
	n.cancel()
	<-n.runDone
	n.ln.Close()
	n.ln = nil
	n.rep.Close()
	n.running.Wait()
	n.up = false
}

func (c *tcluster) shutdown() {
	for _, n := range c.nodes {
		n.stop()
		if n.ln != nil {
			n.ln.Close()
		}
		n.eng.Close()
	}
}

// view returns a plain (forwarding) view of node id.
func (c *tcluster) view(id routing.NodeID) *View { return c.node(id).rep.View(false, false) }

func (c *tcluster) st() *meta.State { return c.meta.fsm.State() }

// keysIn returns n distinct keys of vnode v.
func (c *tcluster) keysIn(v, n int) [][]byte {
	var ks [][]byte
	for i := 0; len(ks) < n; i++ {
		k := fmt.Appendf(nil, "key-%d", i)
		if int(routing.Vnode(k, c.divBits)) == v {
			ks = append(ks, k)
		}
	}
	return ks
}

func set(v *View, key []byte, value string) error {
	res, err := v.Store(kv.StoreRequest{Op: kv.OpSet, Namespace: meta.DefaultNamespace, Key: key, Value: []byte(value)})
	if err == nil && res != kv.Stored {
		err = fmt.Errorf("set %s: result %d", key, res)
	}
	return err
}

func mustSet(t *testing.T, v *View, key []byte, value string) {
	t.Helper()
	if err := set(v, key, value); err != nil {
		t.Fatalf("set %s: %v", key, err)
	}
}

func mustGet(t *testing.T, v *View, key []byte) (string, bool) {
	t.Helper()
	it, ok, err := v.Get(meta.DefaultNamespace, key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return string(it.Value), ok
}

// dump lists the records of vnode v of an engine, one line each.
func dump(t testing.TB, eng storage.Engine, v int) []string {
	t.Helper()
	var out []string
	err := eng.ScanVnode(uint16(v), func(ns string, key []byte, r *storage.Record) error {
		out = append(out, fmt.Sprintf("%s/%s=%q flags=%d exp=%d cas=%d ver=%d.%d", ns, key, r.Value, r.Flags, r.Exptime, r.CAS, r.Version.Time, r.Version.Origin))
		return nil
	})
	if err != nil {
		t.Fatalf("scan vnode %d: %v", v, err)
	}
	return out
}

// sameVnode checks that two nodes hold the same records and LastSeq for
// vnode v.
func sameVnode(t *testing.T, a, b *tnode, v int) {
	t.Helper()
	da, db := dump(t, a.eng, v), dump(t, b.eng, v)
	if !slices.Equal(da, db) {
		t.Fatalf("vnode %d differs:\n%s:\n  %s\n%s:\n  %s", v, a.id, strings.Join(da, "\n  "), b.id, strings.Join(db, "\n  "))
	}
	if la, lb := a.eng.LastSeq(uint16(v)), b.eng.LastSeq(uint16(v)); la != lb {
		t.Fatalf("vnode %d: LastSeq %s %d, %s %d", v, a.id, la, b.id, lb)
	}
}

// checkUsage checks the store's item counter against the engine's records.
func checkUsage(t *testing.T, n *tnode) {
	t.Helper()
	var items int64
	for v := range n.store.VnodeCount() {
		items += int64(len(dump(t, n.eng, v)))
	}
	if got, _ := n.store.Usage(); got != items {
		t.Errorf("%s: store counts %d items, engine holds %d", n.id, got, items)
	}
}

// waitInSync waits until node is an in-sync replica of vnode v.
func (c *tcluster) waitInSync(v int, node routing.NodeID) {
	c.t.Helper()
	testutil.Eventually(c.t, 20*time.Second, fmt.Sprintf("%s in sync in vnode %d", node, v), func() error {
		st := c.st()
		if !st.InSync(v, node) {
			return fmt.Errorf("lagging %v", st.Lagging[v])
		}
		return nil
	})
}

func isLagging(st *meta.State, v int, node routing.NodeID) bool {
	return st.Table.Vnodes[v].Has(node) && !st.InSync(v, node)
}

var errNotYet = errors.New("not yet")

// rawPeer is a test-side peer connection to a node, for crafted frames.
func rawPeer(t *testing.T, addr string) *peerConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	pc := newPeerConn(nc, testutil.Logger(t))
	t.Cleanup(pc.close)
	return pc
}

func callRaw(t *testing.T, pc *peerConn, typ byte, body []byte) *dec {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := pc.call(ctx, typ, body)
	if err != nil {
		t.Fatalf("call type %d: %v", typ, err)
	}
	return newDec(f.body)
}
