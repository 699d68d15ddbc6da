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
)

// Errors of peer calls.
var (
	// ErrPeerDown means the connection to the peer failed; a request sent
	// on it may or may not have been applied.
	ErrPeerDown = errors.New("replication: peer connection lost")
	// ErrTimeout means the peer did not answer in time.
	ErrTimeout = errors.New("replication: peer did not answer in time")
)

// DialFunc opens a peer connection to addr (host:port), marker written.
type DialFunc func(ctx context.Context, addr string) (net.Conn, error)

// peerConn is one pipelined connection to a peer: a writer goroutine that
// batches queued frames into few syscalls, and a reader goroutine that
// hands each response to the waiter with its id.
type peerConn struct {
	nc  net.Conn
	log *slog.Logger

	mu      sync.Mutex
	nextID  uint64
	waiters map[uint64]chan frame
	err     error // set once the connection failed
	queue   []queued
	wake    chan struct{}
	done    chan struct{}
}

type queued struct {
	typ  byte
	id   uint64
	body []byte
}

func newPeerConn(nc net.Conn, log *slog.Logger) *peerConn {
	p := &peerConn{
		nc: nc, log: log, waiters: map[uint64]chan frame{},
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	go p.writeLoop()
	go p.readLoop()
	return p
}

// send queues a request and returns the channel its response arrives on
// (buffered; closed without a value if the connection fails first).
func (p *peerConn) send(typ byte, body []byte) (<-chan frame, error) {
	ch := make(chan frame, 1)
	p.mu.Lock()
	if p.err != nil {
		err := p.err
		p.mu.Unlock()
		return nil, err
	}
	p.nextID++
	id := p.nextID
	p.waiters[id] = ch
	p.queue = append(p.queue, queued{typ, id, body})
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return ch, nil
}

// call sends a request and waits for its response.
func (p *peerConn) call(ctx context.Context, typ byte, body []byte) (frame, error) {
	ch, err := p.send(typ, body)
	if err != nil {
		return frame{}, err
	}
	select {
	case f, ok := <-ch:
		if !ok {
			return frame{}, p.failure()
		}
		return f, nil
	case <-ctx.Done():
		return frame{}, fmt.Errorf("%w: %v", ErrTimeout, ctx.Err())
	}
}

func (p *peerConn) failure() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		return ErrPeerDown
	}
	return p.err
}

// broken reports whether the connection has failed.
func (p *peerConn) broken() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err != nil
}

func (p *peerConn) fail(err error) {
	p.mu.Lock()
	if p.err != nil {
		p.mu.Unlock()
		return
	}
	p.err = fmt.Errorf("%w: %v", ErrPeerDown, err)
	ws := p.waiters
	p.waiters = nil
	p.queue = nil
	p.mu.Unlock()
	close(p.done)
	p.nc.Close()
	for _, ch := range ws {
		close(ch)
	}
}

func (p *peerConn) close() { p.fail(errors.New("closed")) }

func (p *peerConn) writeLoop() {
	err := writeFrames(p.nc, p.wake, p.done, func(spare []queued) []queued {
		p.mu.Lock()
		defer p.mu.Unlock()
		batch := p.queue
		p.queue = spare
		return batch
	})
	if err != nil {
		p.fail(err)
	}
}

// writeFrames is the writer goroutine of a peer connection, either side:
// each time wake fires it takes every queued frame (take swaps the queue
// for the spare slice it is given), writes them all and flushes once, so
// frames queued together cost one syscall. It returns at done, or with the
// first write error.
func writeFrames(nc net.Conn, wake, done <-chan struct{}, take func(spare []queued) []queued) error {
	w := bufio.NewWriterSize(nc, 64<<10)
	var spare []queued
	for {
		select {
		case <-wake:
		case <-done:
			return nil
		}
		for {
			batch := take(spare[:0])
			if len(batch) == 0 {
				spare = batch
				break
			}
			for _, q := range batch {
				if err := writeFrame(w, q.typ, q.id, q.body); err != nil {
					return err
				}
			}
			clear(batch)
			spare = batch
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
}

func (p *peerConn) readLoop() {
	r := bufio.NewReaderSize(p.nc, 64<<10)
	for {
		f, err := readFrame(r)
		if err != nil {
			p.fail(err)
			return
		}
		p.mu.Lock()
		ch := p.waiters[f.id]
		delete(p.waiters, f.id)
		p.mu.Unlock()
		if ch != nil {
			ch <- f
		}
	}
}

// peerPool keeps connections to every peer: size for requests, and one
// ordered connection for replication frames.
type peerPool struct {
	dial    DialFunc
	size    int
	log     *slog.Logger
	timeout time.Duration

	mu     sync.Mutex
	peers  map[string]*peerSlot
	closed bool
}

type peerSlot struct {
	mu    sync.Mutex
	conns []*peerConn
	next  int
	repl  *peerConn
	// bulk carries the copies and catch-up of syncs to this peer, so that
	// live replication (repl) never queues behind megabytes of moved data,
	// on the wire or in the peer's per-connection apply loop.
	bulk *peerConn
	// retryAt delays redialing a peer that just failed, so that a dead
	// peer costs one failed dial per backoff, not one per request.
	retryAt time.Time
	backoff time.Duration
}

func newPeerPool(dial DialFunc, size int, timeout time.Duration, log *slog.Logger) *peerPool {
	return &peerPool{dial: dial, size: size, timeout: timeout, log: log, peers: map[string]*peerSlot{}}
}

var errPoolClosed = errors.New("replication: shutting down")

func (pp *peerPool) slot(addr string) (*peerSlot, error) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.closed {
		return nil, errPoolClosed
	}
	s := pp.peers[addr]
	if s == nil {
		s = &peerSlot{conns: make([]*peerConn, pp.size)}
		pp.peers[addr] = s
	}
	return s, nil
}

// get returns a request connection to addr, round robin over the pool.
func (pp *peerPool) get(ctx context.Context, addr string) (*peerConn, error) {
	s, err := pp.slot(addr)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	i := s.next % len(s.conns)
	s.next++
	c := s.conns[i]
	s.mu.Unlock()
	if c != nil && !c.broken() {
		return c, nil
	}
	return pp.redial(ctx, addr, s, func(s *peerSlot) **peerConn { return &s.conns[i] })
}

// replication returns the ordered replication connection to addr.
func (pp *peerPool) replication(ctx context.Context, addr string) (*peerConn, error) {
	return pp.dedicated(ctx, addr, func(s *peerSlot) **peerConn { return &s.repl })
}

// bulkStream returns the peer's connection for sync copies (see
// peerSlot.bulk), dialing it if needed.
func (pp *peerPool) bulkStream(ctx context.Context, addr string) (*peerConn, error) {
	return pp.dedicated(ctx, addr, func(s *peerSlot) **peerConn { return &s.bulk })
}

// dedicated returns the connection of addr's slot that at names, dialing
// it if there is none or it broke.
func (pp *peerPool) dedicated(ctx context.Context, addr string, at func(*peerSlot) **peerConn) (*peerConn, error) {
	s, err := pp.slot(addr)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	c := *at(s)
	s.mu.Unlock()
	if c != nil && !c.broken() {
		return c, nil
	}
	return pp.redial(ctx, addr, s, at)
}

func (pp *peerPool) redial(ctx context.Context, addr string, s *peerSlot, at func(*peerSlot) **peerConn) (*peerConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := *at(s); c != nil && !c.broken() {
		return c, nil // someone else redialed
	}
	if time.Now().Before(s.retryAt) {
		return nil, fmt.Errorf("%w: %s (retrying after backoff)", ErrPeerDown, addr)
	}
	dctx, cancel := context.WithTimeout(ctx, pp.timeout)
	defer cancel()
	nc, err := pp.dial(dctx, addr)
	if err != nil {
		s.backoff = min(max(2*s.backoff, 50*time.Millisecond), time.Second)
		s.retryAt = time.Now().Add(s.backoff)
		return nil, fmt.Errorf("%w: dialing %s: %v", ErrPeerDown, addr, err)
	}
	s.backoff, s.retryAt = 0, time.Time{}
	c := newPeerConn(nc, pp.log)
	*at(s) = c
	pp.mu.Lock()
	closed := pp.closed
	pp.mu.Unlock()
	if closed {
		c.close()
		return nil, errPoolClosed
	}
	return c, nil
}

// drop closes every connection to addr (a node that left).
func (pp *peerPool) drop(addr string) {
	pp.mu.Lock()
	s := pp.peers[addr]
	delete(pp.peers, addr)
	pp.mu.Unlock()
	if s != nil {
		s.closeAll()
	}
}

func (s *peerSlot) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		if c != nil {
			c.close()
		}
	}
	if s.repl != nil {
		s.repl.close()
	}
	if s.bulk != nil {
		s.bulk.close()
	}
}

func (pp *peerPool) close() {
	pp.mu.Lock()
	pp.closed = true
	peers := pp.peers
	pp.peers = map[string]*peerSlot{}
	pp.mu.Unlock()
	for _, s := range peers {
		s.closeAll()
	}
}
