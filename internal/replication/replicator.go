package replication

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/sonae-kv/sonae/internal/clock"
	"github.com/sonae-kv/sonae/internal/kv"
	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/routing"
)

// Errors of the data path. The server turns them into SERVER_ERROR lines.
var (
	// ErrUnavailable: the vnode cannot serve the command now (no primary
	// reachable, replication could not be confirmed, no Raft contact).
	ErrUnavailable = errors.New("unavailable")
	// ErrLost: no replica holds the vnode.
	ErrLost = errors.New("lost")
	// ErrStaleEpoch: a replication frame came from an older epoch than the
	// receiver's routing table holds.
	ErrStaleEpoch = errors.New("replication: stale epoch")
	// ErrDiverged: a replica holds a change at a seq where the primary has
	// another one; it needs a full copy.
	ErrDiverged = errors.New("replication: replica diverged from the primary")
)

// NotPrimaryError is the answer of a node that is not the primary of a
// key's vnode, in direct mode. Error gives docs/cluster.md's wire form.
type NotPrimaryError struct {
	Vnode   int
	Primary routing.NodeID
	Version uint64
}

func (e *NotPrimaryError) Error() string {
	return fmt.Sprintf("NOT_PRIMARY %d %s %d", e.Vnode, e.Primary, e.Version)
}

// Config tunes the data path.
type Config struct {
	// Self is this node's id.
	Self routing.NodeID
	// ReplicationTimeout is how long a primary waits for a secondary's
	// ack before removing it from the in-sync set.
	ReplicationTimeout time.Duration
	// ReadLease is how long a primary serves reads after its last contact
	// with the Raft leader.
	ReadLease time.Duration
	// PoolSize is the number of request connections per peer.
	PoolSize int
}

// DefaultConfig returns the defaults (Self must still be set).
func DefaultConfig() Config {
	return Config{ReplicationTimeout: 2 * time.Second, ReadLease: time.Second, PoolSize: 4}
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Self == "":
		return errors.New("replication: Config.Self is empty")
	case c.ReplicationTimeout <= 0:
		return fmt.Errorf("replication: Config.ReplicationTimeout %s must be positive", c.ReplicationTimeout)
	case c.ReadLease <= 0:
		return fmt.Errorf("replication: Config.ReadLease %s must be positive", c.ReadLease)
	case c.PoolSize < 1:
		return fmt.Errorf("replication: Config.PoolSize %d must be at least 1", c.PoolSize)
	}
	return nil
}

// Deps are the replicator's side effects.
type Deps struct {
	Store *kv.Store
	// State returns the current metadata; Changed fires when it changes.
	State   func() *meta.State
	Changed func() <-chan struct{}
	// Propose commits a metadata command through Raft (forwarding it to
	// the leader when needed) and returns once this node's FSM applied it.
	Propose func(ctx context.Context, c meta.Command) error
	// LeaderContact is how long ago this node last heard from the Raft
	// leader (0 when it is the leader; a large value when there is none).
	LeaderContact func() time.Duration
	// Flush runs flush_all on this node's own data.
	Flush func(ns string, delay int64) error
	// GrantLease answers a peer's lease request on the Raft leader: it
	// records the grant and returns the commit index, or refuses (not the
	// leader, or the node is being failed over).
	GrantLease func(node routing.NodeID) (uint64, error)
	Dial       DialFunc
	Clock      clock.Clock
	Log        *slog.Logger
}

// Replicator is one node's data path.
type Replicator struct {
	cfg  Config
	d    Deps
	log  *slog.Logger
	pool *peerPool

	vnodes []vnodeState

	throttle  throttle
	moves     moveCounters
	assigning sync.Map // lost vnodes being emptied for auto_assign

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

// New returns a replicator. Call Hook from kv.Options.Replicate, Serve with
// the peer listener, and Run.
func New(cfg Config, d Deps) (*Replicator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Replicator{
		cfg: cfg, d: d, log: d.Log,
		pool:   newPeerPool(d.Dial, cfg.PoolSize, cfg.ReplicationTimeout, d.Log),
		conns:  map[net.Conn]struct{}{},
		ctx:    ctx,
		cancel: cancel,
	}
	return r, nil
}

// Attach binds the store (which is opened with Hook already in its options)
// and initialises the per-vnode state from it.
func (r *Replicator) Attach(store *kv.Store) {
	r.d.Store = store
	r.vnodes = make([]vnodeState, store.VnodeCount())
	eng := store.Engine()
	for v := range r.vnodes {
		s := eng.LastSeq(uint16(v))
		r.vnodes[v].applied, r.vnodes[v].durable = s, s
		r.vnodes[v].settled = make(chan struct{})
	}
}

// Serve handles incoming peer connections until ln is closed.
func (r *Replicator) Serve(ln net.Listener) error {
	for {
		nc, err := ln.Accept()
		if err != nil {
			return err
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			nc.Close()
			continue
		}
		r.conns[nc] = struct{}{}
		r.wg.Add(1)
		r.mu.Unlock()
		go func() {
			defer r.wg.Done()
			r.serveConn(nc)
			r.mu.Lock()
			delete(r.conns, nc)
			r.mu.Unlock()
		}()
	}
}

// Close stops the replicator: peer connections, syncs.
func (r *Replicator) Close() {
	r.mu.Lock()
	r.closed = true
	for nc := range r.conns {
		nc.Close()
	}
	r.mu.Unlock()
	r.cancel()
	r.pool.close()
	r.wg.Wait()
}

// serveConn answers one peer's frames. Replication frames are applied in
// arrival order on this goroutine; other requests run concurrently, as
// they may wait (a forwarded write waits for its own replication).
func (r *Replicator) serveConn(nc net.Conn) {
	defer nc.Close()
	rd := bufio.NewReaderSize(nc, 64<<10)
	out := newPeerConnWriter(nc)
	defer out.close()
	for {
		f, err := readFrame(rd)
		if err != nil {
			return
		}
		switch f.typ {
		case tReplicate, tLoad, tReset, tSetSeq:
			out.reply(f.id, tAck, r.handleReplica(f))
		default:
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				out.reply(f.id, tResult, r.handleRequest(f))
			}()
		}
	}
}

func (r *Replicator) handleRequest(f frame) []byte {
	switch f.typ {
	case tForward:
		return r.handleForward(f.body)
	case tForwardBatch:
		return r.handleForwardBatch(f.body)
	case tApplied:
		var e enc
		e.u8(kindOK)
		e.u64(r.state().Index)
		return e.b
	case tStatus:
		return r.handleStatus(f.body)
	case tPropose:
		return r.handlePropose(f.body)
	case tLease:
		d := newDec(f.body)
		node := routing.NodeID(d.str())
		if err := d.done(); err != nil {
			return errorBody(err)
		}
		if r.d.GrantLease == nil {
			return errorBody(ErrNotLeader)
		}
		idx, err := r.d.GrantLease(node)
		if err != nil {
			return errorBody(err)
		}
		var e enc
		e.u8(kindOK)
		e.u64(idx)
		return e.b
	case tFlush:
		d := newDec(f.body)
		ns, delay := d.str(), d.i64()
		if err := d.done(); err != nil {
			return errorBody(err)
		}
		return errorBody(r.d.Flush(ns, delay))
	}
	return errorBody(fmt.Errorf("replication: unknown frame type %d", f.typ))
}

// state returns the current metadata.
func (r *Replicator) state() *meta.State { return r.d.State() }

// addrOf returns the peer address of a node.
func addrOf(s *meta.State, id routing.NodeID) (string, bool) {
	m, ok := s.Member(id)
	if !ok {
		return "", false
	}
	return m.Addr, true
}

// peerConnWriter serialises replies onto a server-side connection with the
// same batching as peerConn's writer.
type peerConnWriter struct {
	nc   net.Conn
	mu   sync.Mutex
	q    []queued
	wake chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
}

func newPeerConnWriter(nc net.Conn) *peerConnWriter {
	w := &peerConnWriter{nc: nc, wake: make(chan struct{}, 1), done: make(chan struct{})}
	w.wg.Add(1)
	go w.loop()
	return w
}

func (w *peerConnWriter) reply(id uint64, typ byte, body []byte) {
	w.mu.Lock()
	w.q = append(w.q, queued{typ, id, body})
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *peerConnWriter) loop() {
	defer w.wg.Done()
	err := writeFrames(w.nc, w.wake, w.done, func(spare []queued) []queued {
		w.mu.Lock()
		defer w.mu.Unlock()
		batch := w.q
		w.q = spare
		return batch
	})
	if err != nil {
		w.nc.Close()
	}
}

func (w *peerConnWriter) close() {
	close(w.done)
	w.wg.Wait()
}
