package netmux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Connection kinds. KindRaft, KindGossip and KindPeer are the marker bytes
// a connection starts with; KindClient is not sent by anyone: it names the
// listener of every connection that starts with another byte.
const (
	KindClient byte = 0x00
	KindRaft   byte = 0xF1
	KindGossip byte = 0xF2
	KindPeer   byte = 0xF3
)

// Defaults of Options.
const (
	DefaultFirstByteTimeout = time.Second
	DefaultQueueLength      = 128
	// maxQueueLength bounds QueueLength (each kind allocates its queue).
	maxQueueLength = 1 << 16
)

// Accept-loop back-off after an accept error, as net/http's Serve.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// Sentinel errors of the netmux package.
var (
	// ErrInvalidOptions is wrapped by every Options.Validate error; the
	// text names the field and its value.
	ErrInvalidOptions = errors.New("netmux: invalid options")
	// ErrUnknownKind means Dial was given a byte that is not a marker
	// (KindRaft, KindGossip, KindPeer).
	ErrUnknownKind = errors.New("netmux: unknown connection kind")
	// ErrMuxClosed is what Serve returns after Close. It wraps
	// net.ErrClosed.
	ErrMuxClosed = fmt.Errorf("netmux: mux closed: %w", net.ErrClosed)
)

// Options tunes a Mux. The zero value is valid: every zero field takes its
// default.
type Options struct {
	// FirstByteTimeout bounds how long a new connection may take to send
	// its first byte, and then how long it may wait for room in its kind's
	// queue; after either it is closed. 0 means DefaultFirstByteTimeout
	// (5s). Must not be negative.
	FirstByteTimeout time.Duration

	// QueueLength is how many identified connections of one kind may wait
	// for that kind's Accept. 0 means DefaultQueueLength (128). Must be 0 to
	// 65536.
	QueueLength int
}

// Default returns the default Options.
func Default() Options {
	return Options{FirstByteTimeout: DefaultFirstByteTimeout, QueueLength: DefaultQueueLength}
}

// Validate reports the first invalid field, naming it and its value.
func (o Options) Validate() error {
	if o.FirstByteTimeout < 0 {
		return fmt.Errorf("%w: Options.FirstByteTimeout (%s) must be > 0, or 0 for the default (%s)",
			ErrInvalidOptions, o.FirstByteTimeout, DefaultFirstByteTimeout)
	}
	if o.QueueLength < 0 || o.QueueLength > maxQueueLength {
		return fmt.Errorf("%w: Options.QueueLength (%d) must be 1 to %d, or 0 for the default (%d)",
			ErrInvalidOptions, o.QueueLength, maxQueueLength, DefaultQueueLength)
	}
	return nil
}

// withDefaults fills the zero fields.
func (o Options) withDefaults() Options {
	if o.FirstByteTimeout == 0 {
		o.FirstByteTimeout = DefaultFirstByteTimeout
	}
	if o.QueueLength == 0 {
		o.QueueLength = DefaultQueueLength
	}
	return o
}

// isMarker reports whether b is one of the marker bytes.
func isMarker(b byte) bool { return b == KindRaft || b == KindGossip || b == KindPeer }

// Mux splits one listener's connections by their first byte. Create it
// with New, run Serve, take each kind's listener with Listener, and Close
// it. Its methods are safe for concurrent use.
type Mux struct {
	ln   net.Listener
	opts Options
	log  *slog.Logger
	done chan struct{} // closed by Close

	mu      sync.Mutex
	closed  bool
	subs    map[byte]*subListener // the open listener of each kind
	pending map[net.Conn]struct{} // accepted, first byte not yet read
	wg      sync.WaitGroup        // Serve loops and per-connection goroutines; Add under mu

	closeOnce sync.Once
	closeErr  error
}

// New returns a Mux over ln, which it owns from now on (Close closes it).
// Zero Options fields take their defaults; New panics if opts does not
// Validate (call Validate first on options from outside the program). A nil
// log discards.
func New(ln net.Listener, opts Options, log *slog.Logger) *Mux {
	if err := opts.Validate(); err != nil {
		panic(err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Mux{
		ln:      ln,
		opts:    opts.withDefaults(),
		log:     log,
		done:    make(chan struct{}),
		subs:    map[byte]*subListener{},
		pending: map[net.Conn]struct{}{},
	}
}

// Addr returns the underlying listener's address.
func (m *Mux) Addr() net.Addr { return m.ln.Addr() }

// Listener returns the listener of kind (KindClient, KindRaft, KindGossip or
// KindPeer); it panics on any other byte. While that listener is open every
// call returns it; once it has been closed, the next call returns a new
// one. After Close of the Mux it returns a closed listener.
func (m *Mux) Listener(kind byte) net.Listener {
	if kind != KindClient && !isMarker(kind) {
		panic(fmt.Sprintf("netmux: Listener(%#x): not a kind (KindClient, KindRaft, KindGossip or KindPeer)", kind))
	}
	return m.sub(kind)
}

// sub returns the open listener of kind, creating it if needed.
func (m *Mux) sub(kind byte) *subListener {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.subs[kind]; s != nil {
		return s
	}
	s := &subListener{m: m, kind: kind, ch: make(chan net.Conn, m.opts.QueueLength), done: make(chan struct{})}
	if m.closed {
		s.closed.Store(true)
		close(s.done)
		return s
	}
	m.subs[kind] = s
	return s
}

// Serve accepts connections until Close, and then returns ErrMuxClosed.
// After an accept error it backs off (5ms, doubling up to 1s) and retries;
// when the listener was closed by someone else than Close it returns that
// error. Serve may run in several goroutines at once.
func (m *Mux) Serve() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrMuxClosed
	}
	m.wg.Add(1)
	m.mu.Unlock()
	defer m.wg.Done()

	var delay time.Duration
	for {
		c, err := m.ln.Accept()
		if err != nil {
			if m.isClosed() {
				return ErrMuxClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("netmux: listener closed outside the mux: %w", err)
			}
			delay = min(max(2*delay, minBackoff), maxBackoff)
			m.log.Warn("netmux: accept failed, retrying", "err", err, "delay", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-m.done:
				t.Stop()
				return ErrMuxClosed
			}
			continue
		}
		delay = 0
		if !m.track(c) {
			_ = c.Close()
			return ErrMuxClosed
		}
		go m.route(c)
	}
}

// Close closes the listener, every sub-listener (their Accept returns
// net.ErrClosed) and every connection not yet delivered, then waits for
// Serve and the per-connection goroutines to return. Connections already
// delivered stay open: they belong to whoever accepted them. Close is
// idempotent; it returns the listener's Close error.
func (m *Mux) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		close(m.done)
		pending := m.pending
		m.pending = map[net.Conn]struct{}{}
		subs := make([]*subListener, 0, len(m.subs))
		for _, s := range m.subs {
			subs = append(subs, s)
		}
		m.mu.Unlock()

		if err := m.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			m.closeErr = fmt.Errorf("netmux: close: %w", err)
		}
		for c := range pending {
			_ = c.Close()
		}
		for _, s := range subs {
			_ = s.Close()
		}
		m.wg.Wait()
	})
	return m.closeErr
}

func (m *Mux) isClosed() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// track registers a connection whose first byte is to be read, and counts
// its goroutine; false after Close.
func (m *Mux) track(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.pending[c] = struct{}{}
	m.wg.Add(1)
	return true
}

func (m *Mux) untrack(c net.Conn) {
	m.mu.Lock()
	delete(m.pending, c)
	m.mu.Unlock()
}

// pendingCount returns how many connections have not sent their first byte.
func (m *Mux) pendingCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pending)
}

// route reads c's first byte and delivers c to its kind's listener.
func (m *Mux) route(c net.Conn) {
	defer m.wg.Done()
	first, err := m.readFirst(c)
	m.untrack(c)
	if errors.Is(err, os.ErrDeadlineExceeded) && c.SetReadDeadline(time.Time{}) == nil {
		// Peers send their marker as soon as they connect, so a silent
		// connection is a memcached client that opened its connection
		// ahead of time (client pools do): it is a client.
		m.deliver(KindClient, c)
		return
	}
	if err != nil {
		_ = c.Close()
		m.log.Debug("netmux: no first byte, connection closed", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	if isMarker(first) {
		m.deliver(first, c)
		return
	}
	m.deliver(KindClient, &clientConn{Conn: c, first: first, unread: true})
}

// readFirst reads one byte within FirstByteTimeout and clears the deadline.
func (m *Mux) readFirst(c net.Conn) (byte, error) {
	if err := c.SetReadDeadline(time.Now().Add(m.opts.FirstByteTimeout)); err != nil {
		return 0, err
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return 0, err
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return 0, err
	}
	return b[0], nil
}

// deliver queues c on kind's listener, waiting up to FirstByteTimeout for
// room; c is closed when that fails.
func (m *Mux) deliver(kind byte, c net.Conn) {
	s := m.sub(kind)
	t := time.NewTimer(m.opts.FirstByteTimeout)
	defer t.Stop()
	select {
	case s.ch <- c:
		if s.closed.Load() {
			s.drain() // closed while we queued: nobody else may drain c
		}
		return
	case <-s.done:
	case <-m.done:
	case <-t.C:
		m.log.Warn("netmux: queue full, nobody accepts this kind: connection closed",
			"kind", fmt.Sprintf("%#x", kind), "remote", c.RemoteAddr().String(), "queue", cap(s.ch))
	}
	_ = c.Close()
}

// subListener is the net.Listener of one kind.
type subListener struct {
	m    *Mux
	kind byte
	ch   chan net.Conn // delivered connections waiting for Accept
	done chan struct{} // closed by Close

	closed    atomic.Bool // set before done is closed
	closeOnce sync.Once
}

var _ net.Listener = (*subListener)(nil)

// Accept waits for a connection of this kind, or returns net.ErrClosed
// once this listener or the Mux is closed.
func (s *subListener) Accept() (net.Conn, error) {
	select {
	case c := <-s.ch:
		if s.closed.Load() {
			_ = c.Close()
			s.drain()
			return nil, net.ErrClosed
		}
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

// Close stops this kind's listener alone: queued connections are closed,
// later ones of this kind too until Listener is called again. The Mux and
// the other kinds go on.
func (s *subListener) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.done)
		s.drain()
		s.m.mu.Lock()
		if s.m.subs[s.kind] == s {
			delete(s.m.subs, s.kind)
		}
		s.m.mu.Unlock()
	})
	return nil
}

// Addr returns the Mux's listener address.
func (s *subListener) Addr() net.Addr { return s.m.ln.Addr() }

// drain closes every queued connection.
func (s *subListener) drain() {
	for {
		select {
		case c := <-s.ch:
			_ = c.Close()
		default:
			return
		}
	}
}

// clientConn gives back the first byte, which the Mux read to classify the
// connection, on the first Read. Everything else is the accepted
// connection's (addresses, deadlines, Close).
type clientConn struct {
	net.Conn
	mu     sync.Mutex
	first  byte
	unread bool // first has not been returned yet
}

func (c *clientConn) Read(p []byte) (int, error) {
	if len(p) > 0 {
		c.mu.Lock()
		if c.unread {
			c.unread = false
			p[0] = c.first
			c.mu.Unlock()
			return 1, nil
		}
		c.mu.Unlock()
	}
	return c.Conn.Read(p)
}

// CloseRead shuts down the reading side when the connection supports it
// (a TCP connection does), as (*net.TCPConn).CloseRead.
func (c *clientConn) CloseRead() error {
	if cr, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return errors.ErrUnsupported
}

// CloseWrite shuts down the writing side when the connection supports it,
// as (*net.TCPConn).CloseWrite.
func (c *clientConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// Dial connects to addr over TCP and writes the marker kind (KindRaft,
// KindGossip or KindPeer), so that the Mux there hands the connection to
// Listener(kind). ctx bounds the connect and the marker's write, not the
// connection's life.
func Dial(ctx context.Context, addr string, kind byte) (net.Conn, error) {
	if !isMarker(kind) {
		return nil, fmt.Errorf("%w: Dial(%q, %#x): want KindRaft, KindGossip or KindPeer", ErrUnknownKind, addr, kind)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("netmux: dial %s: %w", addr, err)
	}
	dl, _ := ctx.Deadline() // zero: none
	if err := c.SetWriteDeadline(dl); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("netmux: dial %s: %w", addr, err)
	}
	// A cancel without a deadline interrupts the write too.
	stop := context.AfterFunc(ctx, func() { _ = c.SetWriteDeadline(time.Unix(1, 0)) })
	_, err = c.Write([]byte{kind})
	if !stop() && err == nil {
		err = ctx.Err() // the deadline may already be set: do not hand c out
	}
	if err == nil {
		err = c.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("netmux: dial %s: write marker: %w", addr, err)
	}
	return c, nil
}
