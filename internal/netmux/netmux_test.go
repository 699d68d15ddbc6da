package netmux

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startMux serves a Mux on a fresh loopback port and closes it at the end
// of the test.
func startMux(t *testing.T, opts Options) *Mux {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveMux(t, ln, opts)
}

func serveMux(t *testing.T, ln net.Listener, opts Options) *Mux {
	t.Helper()
	m := New(ln, opts, testutil.Logger(t))
	served := make(chan error, 1)
	go func() { served <- m.Serve() }()
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrMuxClosed) || !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve returned %v, want ErrMuxClosed", err)
		}
	})
	return m
}

// accept waits up to within for ln.Accept. The goroutine it starts ends
// when ln closes (at the latest with the Mux, at the end of the test).
func accept(t *testing.T, ln net.Listener, within time.Duration) net.Conn {
	t.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Accept: %v", r.err)
		}
		t.Cleanup(func() { _ = r.c.Close() })
		return r.c
	case <-time.After(within):
		t.Fatalf("no connection accepted within %s", within)
		return nil
	}
}

// readN reads exactly n bytes from c within 5s.
func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read %d bytes: %v (got %q)", n, err, buf)
	}
	return buf
}

// waitEOF waits until the peer has closed c (read returns EOF or a reset).
func waitEOF(t *testing.T, c net.Conn, within time.Duration) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(within)); err != nil {
		t.Fatal(err)
	}
	_, err := c.Read(make([]byte, 1))
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection not closed by the mux within %s: %v", within, err)
	}
}

func dialRaw(t *testing.T, addr net.Addr) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func dialKind(t *testing.T, addr net.Addr, kind byte) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, addr.String(), kind)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestRoutesEachKind(t *testing.T) {
	t.Parallel()
	m := startMux(t, Options{})
	for _, kind := range []byte{KindRaft, KindGossip, KindPeer} {
		c := dialKind(t, m.Addr(), kind)
		msg := fmt.Sprintf("hello %#x", kind)
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		sc := accept(t, m.Listener(kind), 5*time.Second)
		if got := readN(t, sc, len(msg)); string(got) != msg { // the marker is consumed
			t.Errorf("kind %#x: server read %q, want %q", kind, got, msg)
		}
		if sc.RemoteAddr().String() != c.LocalAddr().String() || sc.LocalAddr().String() != m.Addr().String() {
			t.Errorf("kind %#x: addresses %s -> %s, want %s -> %s", kind, sc.RemoteAddr(), sc.LocalAddr(), c.LocalAddr(), m.Addr())
		}
		if _, err := sc.Write([]byte("ok")); err != nil {
			t.Fatal(err)
		}
		if got := readN(t, c, 2); string(got) != "ok" {
			t.Errorf("kind %#x: client read %q", kind, got)
		}
	}
	if a := m.Listener(KindPeer).Addr(); a.String() != m.Addr().String() {
		t.Errorf("sub-listener Addr %s, want %s", a, m.Addr())
	}
	if m.Listener(KindRaft) != m.Listener(KindRaft) {
		t.Error("Listener returned two listeners for one open kind")
	}
}

func TestClientGetsFirstByteBack(t *testing.T) {
	t.Parallel()
	m := startMux(t, Options{})
	cases := []struct {
		name  string
		input string
		split bool // one Write per byte
	}{
		{name: "one write", input: "get foo\r\n"},
		{name: "byte by byte", input: "set k 0 0 1\r\nx\r\n", split: true},
		{name: "single byte", input: "v"},
		{name: "binary protocol magic", input: "\x80\x00\x00"},
		{name: "zero byte", input: "\x00abc"},
		{name: "high byte not a marker", input: "\xF4\xF1"},
	}
	for _, tc := range cases {
		c := dialRaw(t, m.Addr())
		if tc.split {
			for i := range len(tc.input) {
				if _, err := c.Write([]byte{tc.input[i]}); err != nil {
					t.Fatal(err)
				}
			}
		} else if _, err := c.Write([]byte(tc.input)); err != nil {
			t.Fatal(err)
		}
		sc := accept(t, m.Listener(KindClient), 5*time.Second)
		// Read in small pieces, as a parser would.
		var got bytes.Buffer
		buf := make([]byte, 3)
		if err := sc.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		for got.Len() < len(tc.input) {
			n, err := sc.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				t.Fatalf("%s: read: %v after %q", tc.name, err, got.String())
			}
		}
		if got.String() != tc.input {
			t.Errorf("%s: server read %q, want %q", tc.name, got.String(), tc.input)
		}
		// The wrapped conn keeps the peer's address and the deadlines.
		ra, ok := sc.RemoteAddr().(*net.TCPAddr)
		if !ok || !ra.IP.IsLoopback() || ra.String() != c.LocalAddr().String() {
			t.Errorf("%s: RemoteAddr %#v, want the client's %s", tc.name, sc.RemoteAddr(), c.LocalAddr())
		}
		if err := sc.SetReadDeadline(time.Now().Add(time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if _, err := sc.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s: read past the deadline: %v", tc.name, err)
		}
		if err := sc.SetDeadline(time.Time{}); err != nil {
			t.Fatal(err)
		}
		// Half-close reaches the TCP connection through the wrapper.
		if err := sc.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
			t.Errorf("%s: CloseWrite: %v", tc.name, err)
		}
		waitEOF(t, c, 5*time.Second)
	}
}

func TestSilentConnectionBecomesClientAlone(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	m := startMux(t, Options{FirstByteTimeout: timeout})
	var silent []net.Conn
	for range 5 {
		silent = append(silent, dialRaw(t, m.Addr()))
	}
	testutil.Eventually(t, 5*time.Second, "5 silent connections pending", func() error {
		if n := m.pendingCount(); n != 5 {
			return fmt.Errorf("%d pending", n)
		}
		return nil
	})
	start := time.Now()
	// Others are routed while the silent ones wait for their deadline.
	rc := dialKind(t, m.Addr(), KindRaft)
	if _, err := rc.Write([]byte("r")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, accept(t, m.Listener(KindRaft), 5*time.Second), 1); string(got) != "r" {
		t.Errorf("raft read %q", got)
	}
	cc := dialRaw(t, m.Addr())
	if _, err := cc.Write([]byte("c")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, accept(t, m.Listener(KindClient), 5*time.Second), 1); string(got) != "c" {
		t.Errorf("client read %q", got)
	}
	if n := m.pendingCount(); n != 5 {
		t.Errorf("the others were routed only after the silent ones ended (%d pending, %s)", n, time.Since(start))
	}
	// After FirstByteTimeout the silent ones are clients that connected
	// ahead of time (as memcached client pools do): they are handed to the
	// client listener and work when they speak.
	for range silent {
		sc := accept(t, m.Listener(KindClient), 10*time.Second)
		if _, err := sc.Write([]byte("k")); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range silent {
		if _, err := c.Write([]byte("g")); err != nil {
			t.Fatal(err)
		}
		if got := readN(t, c, 1); string(got) != "k" {
			t.Errorf("silent client read %q", got)
		}
	}
	testutil.Eventually(t, 5*time.Second, "no pending connection", func() error {
		if n := m.pendingCount(); n != 0 {
			return fmt.Errorf("%d pending", n)
		}
		return nil
	})
}

// closedByPeer reports whether the other end has closed c, waiting at most
// a millisecond.
func closedByPeer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

func TestFullQueueClosesConnsAndSparesOtherKinds(t *testing.T) {
	t.Parallel()
	m := startMux(t, Options{FirstByteTimeout: 300 * time.Millisecond, QueueLength: 1})
	// Nobody accepts KindPeer: one connection is queued, the others are
	// closed after the timeout.
	var peers []net.Conn
	for range 3 {
		peers = append(peers, dialKind(t, m.Addr(), KindPeer))
	}
	// Meanwhile another kind flows.
	for range 3 {
		c := dialKind(t, m.Addr(), KindGossip)
		if _, err := c.Write([]byte("g")); err != nil {
			t.Fatal(err)
		}
		if got := readN(t, accept(t, m.Listener(KindGossip), 5*time.Second), 1); string(got) != "g" {
			t.Errorf("gossip read %q", got)
		}
	}
	// Two are closed; the queued one stays open until accepted.
	var open []net.Conn
	testutil.Eventually(t, 5*time.Second, "two peer connections closed", func() error {
		open = open[:0]
		for _, c := range peers {
			if !closedByPeer(c) {
				open = append(open, c)
			}
		}
		if len(open) != 1 {
			return fmt.Errorf("%d of 3 open", len(open))
		}
		return nil
	})
	queued := accept(t, m.Listener(KindPeer), 5*time.Second)
	if queued.RemoteAddr().String() != open[0].LocalAddr().String() {
		t.Errorf("accepted %s, but the open connection is %s", queued.RemoteAddr(), open[0].LocalAddr())
	}
}

func TestCloseUnblocksAccept(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := New(ln, Options{}, testutil.Logger(t))
	served := make(chan error, 1)
	go func() { served <- m.Serve() }()

	// One connection still silent, one delivered and never accepted.
	silent := dialRaw(t, m.Addr())
	queued := dialKind(t, m.Addr(), KindPeer)
	testutil.Eventually(t, 5*time.Second, "the peer connection queued", func() error {
		if n := len(m.sub(KindPeer).ch); n != 1 {
			return fmt.Errorf("%d queued", n)
		}
		return nil
	})

	kinds := []byte{KindClient, KindRaft, KindGossip}
	errs := make(chan error, len(kinds))
	var wg sync.WaitGroup
	for _, k := range kinds {
		ln := m.Listener(k)
		wg.Go(func() {
			_, err := ln.Accept()
			errs <- err
		})
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	}
	if err := <-served; !errors.Is(err, ErrMuxClosed) {
		t.Errorf("Serve: %v", err)
	}
	waitEOF(t, silent, 5*time.Second)
	waitEOF(t, queued, 5*time.Second)
	if _, err := m.Listener(KindRaft).Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on a listener taken after Close: %v", err)
	}
	if err := m.Serve(); !errors.Is(err, ErrMuxClosed) {
		t.Errorf("Serve after Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("the port still accepts after Close")
	}
}

func TestSubListenerCloseAndReopen(t *testing.T) {
	t.Parallel()
	m := startMux(t, Options{FirstByteTimeout: 300 * time.Millisecond})
	raft := m.Listener(KindRaft)
	blocked := make(chan error, 1)
	go func() {
		_, err := raft.Accept()
		blocked <- err
	}()
	if err := raft.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-blocked; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after the sub-listener's Close: %v", err)
	}
	// Other kinds go on.
	c := dialKind(t, m.Addr(), KindGossip)
	if _, err := c.Write([]byte("g")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, accept(t, m.Listener(KindGossip), 5*time.Second), 1); string(got) != "g" {
		t.Errorf("gossip read %q", got)
	}
	// A new listener for the kind takes the kind's connections again.
	again := m.Listener(KindRaft)
	if again == raft {
		t.Fatal("Listener returned the closed listener")
	}
	rc := dialKind(t, m.Addr(), KindRaft)
	if _, err := rc.Write([]byte("r")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, accept(t, again, 5*time.Second), 1); string(got) != "r" {
		t.Errorf("raft read %q", got)
	}
	if _, err := raft.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("the old listener accepts again: %v", err)
	}
}

// flakyListener fails Accept a few times before handing out conns.
type flakyListener struct {
	fails int
	mu    sync.Mutex
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

var errFlaky = errors.New("accept: too many open files")

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.fails > 0 {
		l.fails--
		l.mu.Unlock()
		return nil, errFlaky
	}
	l.mu.Unlock()
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *flakyListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *flakyListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

func TestServeBacksOffOnAcceptErrors(t *testing.T) {
	t.Parallel()
	fl := &flakyListener{fails: 4, conns: make(chan net.Conn, 1), done: make(chan struct{})}
	m := serveMux(t, fl, Options{})
	client, server := net.Pipe()
	t.Cleanup(func() { _ = client.Close() })
	fl.conns <- server
	go func() { _, _ = client.Write([]byte{KindPeer, 'p'}) }()
	sc := accept(t, m.Listener(KindPeer), 5*time.Second)
	if got := readN(t, sc, 1); string(got) != "p" {
		t.Errorf("read %q", got)
	}
}

func TestServeStopsWhenListenerClosedElsewhere(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := New(ln, Options{}, testutil.Logger(t))
	_ = ln.Close()
	if err := m.Serve(); err == nil || errors.Is(err, ErrMuxClosed) || !errors.Is(err, net.ErrClosed) {
		t.Errorf("Serve on a listener closed elsewhere: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestDial(t *testing.T) {
	t.Parallel()
	for _, kind := range []byte{KindClient, 0x7F, 0xF0, 0xF4} {
		if _, err := Dial(context.Background(), "127.0.0.1:1", kind); !errors.Is(err, ErrUnknownKind) {
			t.Errorf("Dial kind %#x: %v, want ErrUnknownKind", kind, err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	if _, err := Dial(context.Background(), addr, KindRaft); err == nil || !strings.Contains(err.Error(), addr) {
		t.Errorf("Dial to a closed port: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Dial(ctx, addr, KindRaft); !errors.Is(err, context.Canceled) {
		t.Errorf("Dial with a canceled context: %v", err)
	}
}

func TestListenerPanicsOnUnknownKind(t *testing.T) {
	t.Parallel()
	m := startMux(t, Options{})
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "0xf4") {
			t.Errorf("Listener(0xF4) did not panic naming the kind: %v", r)
		}
	}()
	m.Listener(0xF4)
}

func TestOptions(t *testing.T) {
	t.Parallel()
	d := Default()
	if d.FirstByteTimeout != time.Second || d.QueueLength != 128 {
		t.Errorf("Default() = %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Errorf("Default().Validate: %v", err)
	}
	if err := (Options{}).Validate(); err != nil {
		t.Errorf("zero Options: %v", err)
	}
	if got := (Options{}).withDefaults(); got != d {
		t.Errorf("zero Options resolve to %+v, want %+v", got, d)
	}
	for _, tc := range []struct {
		field string
		o     Options
	}{
		{"Options.FirstByteTimeout", Options{FirstByteTimeout: -time.Second}},
		{"Options.QueueLength", Options{QueueLength: -1}},
		{"Options.QueueLength", Options{QueueLength: maxQueueLength + 1}},
	} {
		err := tc.o.Validate()
		if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: Validate = %v, want ErrInvalidOptions naming %s", tc.o, err, tc.field)
		}
	}
	defer func() {
		if r := recover(); r == nil {
			t.Error("New with invalid options did not panic")
		}
	}()
	New(&flakyListener{}, Options{QueueLength: -1}, nil)
}
