package client

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// errPoolClosed is returned by a pool closed under a waiting caller: the node
// left the table or the Cluster closed. Nothing was sent.
var errPoolClosed = errors.New("client: node pool closed")

// nodePool holds up to size connections to one node. slots has one token per
// open (idle or in use) or dialling connection, so the pool never exceeds
// size; idle has the same capacity, so returning a connection never blocks.
type nodePool struct {
	id   string // node id, "host_port"
	addr string // dial address, "host:port"
	dial func(addr string) (*Conn, error)

	idle  chan *Conn
	slots chan struct{}
	done  chan struct{} // closed by close

	mu     sync.Mutex // guards closed, and orders put against close's drain
	closed bool
}

func newNodePool(id string, size int, dial func(addr string) (*Conn, error)) *nodePool {
	return &nodePool{
		id: id, addr: NormalizeAddr(id), dial: dial,
		idle: make(chan *Conn, size), slots: make(chan struct{}, size), done: make(chan struct{}),
	}
}

// get returns an idle connection or dials a new one, waiting up to timeout
// while all size connections are in use. With check, an idle connection
// the peer has closed is replaced first, so that a write which must not be
// repeated is not sent into a dead socket. Errors mean nothing was sent.
func (p *nodePool) get(timeout time.Duration, check bool) (*Conn, error) {
	select {
	case <-p.done:
		return nil, errPoolClosed
	default:
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case cn := <-p.idle:
			if check && cn.stale() {
				p.discard(cn)
				continue
			}
			return cn, nil
		default:
		}
		if timer == nil {
			timer = time.NewTimer(timeout)
		}
		select {
		case cn := <-p.idle:
			if check && cn.stale() {
				p.discard(cn)
				continue
			}
			return cn, nil
		case p.slots <- struct{}{}:
			cn, err := p.dial(p.addr)
			if err != nil {
				<-p.slots
				return nil, err
			}
			return cn, nil
		case <-p.done:
			return nil, errPoolClosed
		case <-timer.C:
			return nil, fmt.Errorf("%w: all %d connections to %s stayed busy for %s", ErrPoolTimeout, cap(p.slots), p.id, timeout)
		}
	}
}

// put returns a connection after a request; err is the request's outcome.
// A connection whose framing may be broken is closed instead.
func (p *nodePool) put(cn *Conn, err error) {
	if !reusable(err) {
		p.discard(cn)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		cn.Close()
		<-p.slots
		return
	}
	p.idle <- cn // never blocks: at most cap(slots) connections exist
}

// discard closes a connection taken from the pool and frees its slot.
func (p *nodePool) discard(cn *Conn) {
	cn.Close()
	<-p.slots
}

// close closes the idle connections and makes get fail; connections in use
// are closed when they come back.
func (p *nodePool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	close(p.done)
	for {
		select {
		case cn := <-p.idle:
			cn.Close()
			<-p.slots
		default:
			return
		}
	}
}
