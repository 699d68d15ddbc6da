package replication

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/testutil"
)

// responder is the far end of a peer connection: it reads request frames
// and lets the test answer them in any order.
type responder struct {
	nc   net.Conn
	w    *bufio.Writer
	reqs chan frame
	mu   sync.Mutex
}

func newResponder(nc net.Conn) *responder {
	r := &responder{nc: nc, w: bufio.NewWriter(nc), reqs: make(chan frame, 1024)}
	go func() {
		defer close(r.reqs)
		rd := bufio.NewReader(nc)
		for {
			f, err := readFrame(rd)
			if err != nil {
				return
			}
			r.reqs <- f
		}
	}()
	return r
}

func (r *responder) answer(t *testing.T, id uint64, body []byte) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := writeFrame(r.w, tResult, id, body); err != nil {
		t.Errorf("responder write: %v", err)
		return
	}
	if err := r.w.Flush(); err != nil {
		t.Errorf("responder flush: %v", err)
	}
}

// next returns the next request, failing the test after a while.
func (r *responder) next(t *testing.T) frame {
	t.Helper()
	select {
	case f, ok := <-r.reqs:
		if !ok {
			t.Fatalf("responder: connection closed")
		}
		return f
	case <-time.After(5 * time.Second):
		t.Fatalf("responder: no request")
	}
	return frame{}
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(acc)
			return
		}
		acc <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, ok := <-acc
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func pipePair(t *testing.T) (net.Conn, net.Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestPeerConnPipelined: many calls share one connection; the responder
// answers them in reverse order and each caller gets its own answer.
func TestPeerConnPipelined(t *testing.T) {
	for name, pair := range map[string]func(*testing.T) (net.Conn, net.Conn){"pipe": pipePair, "tcp": tcpPair} {
		t.Run(name, func(t *testing.T) {
			cc, sc := pair(t)
			pc := newPeerConn(cc, testutil.Logger(t))
			defer pc.close()
			resp := newResponder(sc)

			const n = 50
			type result struct {
				i   int
				f   frame
				err error
			}
			results := make(chan result, n)
			for i := range n {
				go func() {
					f, err := pc.call(context.Background(), tForward, fmt.Appendf(nil, "req-%d", i))
					results <- result{i, f, err}
				}()
			}
			var reqs []frame
			for range n {
				reqs = append(reqs, resp.next(t))
			}
			ids := map[uint64]bool{}
			for _, f := range reqs {
				if f.typ != tForward || ids[f.id] {
					t.Fatalf("request typ %d id %d (duplicate id or wrong type)", f.typ, f.id)
				}
				ids[f.id] = true
			}
			for i := len(reqs) - 1; i >= 0; i-- {
				resp.answer(t, reqs[i].id, append([]byte("answer to "), reqs[i].body...))
			}
			for range n {
				r := <-results
				if r.err != nil {
					t.Fatalf("call %d: %v", r.i, r.err)
				}
				if want := fmt.Sprintf("answer to req-%d", r.i); string(r.f.body) != want {
					t.Fatalf("call %d got %q, want %q", r.i, r.f.body, want)
				}
			}
		})
	}
}

// TestPeerConnUnknownID: an answer for an id nobody waits for is dropped;
// the connection keeps working.
func TestPeerConnUnknownID(t *testing.T) {
	cc, sc := tcpPair(t)
	pc := newPeerConn(cc, testutil.Logger(t))
	defer pc.close()
	resp := newResponder(sc)
	done := make(chan error, 1)
	go func() {
		f, err := pc.call(context.Background(), tStatus, []byte("x"))
		if err == nil && string(f.body) != "ok" {
			err = fmt.Errorf("body %q", f.body)
		}
		done <- err
	}()
	f := resp.next(t)
	resp.answer(t, f.id+1000, []byte("stray"))
	resp.answer(t, f.id, []byte("ok"))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if pc.broken() {
		t.Fatal("connection broken by a stray answer")
	}
}

// TestPeerConnBroken: when the connection breaks, every waiting call fails
// with ErrPeerDown, and later calls fail at once.
func TestPeerConnBroken(t *testing.T) {
	cc, sc := tcpPair(t)
	pc := newPeerConn(cc, testutil.Logger(t))
	resp := newResponder(sc)
	const n = 10
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := pc.call(context.Background(), tForward, []byte("x"))
			errs <- err
		}()
	}
	for range n {
		resp.next(t)
	}
	sc.Close()
	for range n {
		if err := <-errs; !errors.Is(err, ErrPeerDown) {
			t.Fatalf("waiting call: %v, want ErrPeerDown", err)
		}
	}
	testutil.Eventually(t, 5*time.Second, "the connection to be marked broken", func() error {
		if !pc.broken() {
			return errors.New("not broken")
		}
		return nil
	})
	if _, err := pc.call(context.Background(), tForward, nil); !errors.Is(err, ErrPeerDown) {
		t.Fatalf("call on a broken connection: %v, want ErrPeerDown", err)
	}
	if _, err := pc.send(tForward, nil); !errors.Is(err, ErrPeerDown) {
		t.Fatalf("send on a broken connection: %v, want ErrPeerDown", err)
	}
}

// TestPeerConnGarbage: a response that is not a frame breaks the
// connection and fails the waiters.
func TestPeerConnGarbage(t *testing.T) {
	cc, sc := tcpPair(t)
	pc := newPeerConn(cc, testutil.Logger(t))
	defer pc.close()
	resp := newResponder(sc)
	done := make(chan error, 1)
	go func() {
		_, err := pc.call(context.Background(), tForward, nil)
		done <- err
	}()
	resp.next(t)
	sc.Write([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}) // length 1 < header
	if err := <-done; !errors.Is(err, ErrPeerDown) {
		t.Fatalf("call: %v, want ErrPeerDown", err)
	}
}

// TestPeerConnTimeout: a call whose context ends first fails with
// ErrTimeout; the connection stays usable and a late answer is dropped.
func TestPeerConnTimeout(t *testing.T) {
	cc, sc := tcpPair(t)
	pc := newPeerConn(cc, testutil.Logger(t))
	defer pc.close()
	resp := newResponder(sc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := pc.call(ctx, tForward, nil)
		done <- err
	}()
	late := resp.next(t)
	cancel()
	if err := <-done; !errors.Is(err, ErrTimeout) {
		t.Fatalf("call: %v, want ErrTimeout", err)
	}
	resp.answer(t, late.id, []byte("late"))
	go func() {
		f, err := pc.call(context.Background(), tForward, nil)
		if err == nil && string(f.body) != "fresh" {
			err = fmt.Errorf("got %q", f.body)
		}
		done <- err
	}()
	f := resp.next(t)
	resp.answer(t, f.id, []byte("fresh"))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// dialer dials a listener and counts the attempts; while down it fails.
type dialer struct {
	addr  string
	down  atomic.Bool
	dials atomic.Int64
}

func (d *dialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	d.dials.Add(1)
	if d.down.Load() {
		return nil, errors.New("connection refused (test)")
	}
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", d.addr)
}

// acceptAll accepts connections on ln and keeps them open until the test
// ends; it returns the count of accepted connections.
func acceptAll(t *testing.T, ln net.Listener) *atomic.Int64 {
	var n atomic.Int64
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return &n
}

// TestPeerPool: request connections are dialed lazily, used round robin,
// and reused; the replication connection is one more, also reused; a
// broken connection is redialed; drop and close end them.
func TestPeerPool(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acceptAll(t, ln)
	d := &dialer{addr: ln.Addr().String()}
	pp := newPeerPool(d.dial, 3, time.Second, testutil.Logger(t))
	defer pp.close()
	ctx := context.Background()

	seen := map[*peerConn]int{}
	for range 9 {
		c, err := pp.get(ctx, "peer")
		if err != nil {
			t.Fatal(err)
		}
		seen[c]++
	}
	if len(seen) != 3 || d.dials.Load() != 3 {
		t.Fatalf("%d distinct connections, %d dials; want 3, 3", len(seen), d.dials.Load())
	}
	for c, n := range seen {
		if n != 3 {
			t.Fatalf("connection %p used %d times, want 3 (round robin)", c, n)
		}
	}
	r1, err := pp.replication(ctx, "peer")
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := pp.replication(ctx, "peer")
	if r1 != r2 || seen[r1] != 0 || d.dials.Load() != 4 {
		t.Fatalf("replication connection not a separate, reused one (dials %d)", d.dials.Load())
	}

	// A broken request connection is replaced on its turn.
	var victim *peerConn
	for c := range seen {
		victim = c
		break
	}
	victim.close()
	for range 3 {
		c, err := pp.get(ctx, "peer")
		if err != nil {
			t.Fatal(err)
		}
		if c == victim || c.broken() {
			t.Fatalf("got the broken connection back")
		}
	}
	if d.dials.Load() != 5 {
		t.Fatalf("%d dials, want 5 (one redial)", d.dials.Load())
	}

	// drop closes everything to the peer; the next use dials afresh.
	pp.drop("peer")
	if !r1.broken() {
		t.Fatalf("drop left the replication connection open")
	}
	if _, err := pp.get(ctx, "peer"); err != nil || d.dials.Load() != 6 {
		t.Fatalf("after drop: %v, dials %d", err, d.dials.Load())
	}

	// close ends the pool.
	pp.close()
	if _, err := pp.get(ctx, "peer"); !errors.Is(err, errPoolClosed) {
		t.Fatalf("get after close: %v", err)
	}
	if _, err := pp.replication(ctx, "peer"); !errors.Is(err, errPoolClosed) {
		t.Fatalf("replication after close: %v", err)
	}
}

// TestPeerPoolBackoff: a failed dial is not retried before the backoff
// has passed (callers fail fast with ErrPeerDown); the backoff doubles
// up to a second, and a successful dial resets it.
func TestPeerPoolBackoff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acceptAll(t, ln)
	d := &dialer{addr: ln.Addr().String()}
	d.down.Store(true)
	pp := newPeerPool(d.dial, 1, time.Second, testutil.Logger(t))
	defer pp.close()
	ctx := context.Background()

	if _, err := pp.get(ctx, "peer"); !errors.Is(err, ErrPeerDown) {
		t.Fatalf("get of a dead peer: %v, want ErrPeerDown", err)
	}
	slot, _ := pp.slot("peer")
	backoffOf := func() time.Duration {
		slot.mu.Lock()
		defer slot.mu.Unlock()
		return slot.backoff
	}
	if b := backoffOf(); b != 50*time.Millisecond {
		t.Fatalf("first backoff %s, want 50ms", b)
	}
	// Within the backoff, no dial happens. (The window is 50ms; only
	// calls made right away are checked.)
	start := time.Now()
	for range 100 {
		if _, err := pp.get(ctx, "peer"); !errors.Is(err, ErrPeerDown) {
			t.Fatalf("get during backoff: %v", err)
		}
		if _, err := pp.replication(ctx, "peer"); !errors.Is(err, ErrPeerDown) {
			t.Fatalf("replication during backoff: %v", err)
		}
	}
	if time.Since(start) < 40*time.Millisecond && d.dials.Load() != 1 {
		t.Fatalf("%d dials during the backoff, want 1", d.dials.Load())
	}
	// After it, one more dial, and the backoff doubles.
	testutil.Eventually(t, 5*time.Second, "a second dial", func() error {
		pp.get(ctx, "peer")
		if d.dials.Load() < 2 {
			return errors.New("no redial yet")
		}
		return nil
	})
	if b := backoffOf(); b != 100*time.Millisecond {
		t.Fatalf("second backoff %s, want 100ms", b)
	}
	// It is capped at a second.
	slot.mu.Lock()
	slot.backoff, slot.retryAt = 800*time.Millisecond, time.Time{}
	slot.mu.Unlock()
	pp.get(ctx, "peer")
	if b := backoffOf(); b != time.Second {
		t.Fatalf("backoff %s, want the 1s cap", b)
	}
	// The peer comes back: the next dial (the test skips the rest of the
	// wait) succeeds and resets the backoff.
	d.down.Store(false)
	slot.mu.Lock()
	slot.retryAt = time.Time{}
	slot.mu.Unlock()
	testutil.Eventually(t, 5*time.Second, "a successful redial", func() error {
		_, err := pp.get(ctx, "peer")
		return err
	})
	if b := backoffOf(); b != 0 {
		t.Fatalf("backoff %s after a successful dial, want 0", b)
	}
}
