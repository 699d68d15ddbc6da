package server

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/sonae-kv/sonae/internal/kv"
	"github.com/sonae-kv/sonae/internal/protocol"
)

// Per-connection buffers start small so that thousands of idle or stalled
// clients cost little; the read buffer doubles while reads fill it (large
// values, deep pipelines) and halves again when they stop.
const (
	minReadBuffer = 4 << 10
	maxReadBuffer = 64 << 10
	writeBuffer   = 8 << 10 // larger replies bypass it (bufio writes them through)
)

// conn is one client connection. Its goroutine owns every field except
// stats (read by `stats` from other connections) and nc (closed by Shutdown).
type conn struct {
	srv    *Server
	nc     net.Conn
	id     uint64
	parser *protocol.Parser
	w      *bufio.Writer
	stats  counters

	// data serves the data commands: the cluster's data path as this
	// connection's options (conn_option) see it.
	data dataPath
	// direct and readSecondary are the conn_option settings.
	direct, readSecondary bool

	// namespace is the connection's default namespace (ROMA defhash).
	namespace string
	// trusted is true for loopback clients and after a good `auth`.
	trusted bool
	// quit is set by the quit command: flush, then close.
	quit bool
	// confirm, when set, receives the next line instead of dispatch (the
	// yes/no of shutdown_self).
	confirm func(answer string)
	// scratch is reused to format numbers and reply lines.
	scratch []byte
	// reads counts reads that returned input. The idle sweeper closes a
	// connection whose count has not moved for the idle timeout: cheaper
	// than re-arming a read deadline, or reading the clock, on every read.
	reads atomic.Uint64
	// sweepSeen and idleSince belong to the sweeper goroutine.
	sweepSeen uint64
	idleSince time.Time
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		srv:       s,
		nc:        nc,
		id:        s.connSeq.Add(1),
		parser:    protocol.NewParser(s.cfg.MaxLineLength, s.cfg.MaxItemSize, s.budget),
		w:         bufio.NewWriterSize(nc, writeBuffer),
		namespace: kv.DefaultNamespace,
		scratch:   make([]byte, 0, 64),
	}
	c.setData()
	c.trusted = isLoopback(nc.RemoteAddr())
	c.idleSince = s.clk.Now()
	return c
}

func isLoopback(a net.Addr) bool {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return false
}

// closeRead makes the read loop stop after the input it already has.
func (c *conn) closeRead() {
	if tc, ok := c.nc.(interface{ CloseRead() error }); ok {
		tc.CloseRead()
		return
	}
	c.nc.SetReadDeadline(time.Unix(1, 0))
}

// serve is the connection loop: read, parse every complete request in the
// input, reply, flush when the input is used up (so pipelined requests get
// one write), repeat.
func (c *conn) serve() {
	defer c.parser.Close()
	defer c.nc.Close()
	buf := make([]byte, minReadBuffer)
	for {
		n, err := c.nc.Read(buf)
		next := len(buf)
		if n > 0 {
			c.reads.Add(1)
			c.stats.bytesRead.Add(int64(n))
			if !c.process(buf[:n]) {
				c.flush()
				return
			}
			if !c.flush() {
				return
			}
			switch {
			case n == len(buf) && len(buf) < maxReadBuffer:
				next = 2 * len(buf)
			case n < len(buf)/8 && len(buf) > minReadBuffer:
				next = len(buf) / 2
			}
		}
		if next != len(buf) {
			// The parser copies what it keeps, so the old buffer is free.
			buf = make([]byte, next)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrDeadlineExceeded) {
				c.srv.log.Debug("connection read failed", "conn", c.id, "error", err)
			}
			return
		}
	}
}

// process handles every request completed by in. It returns false when the
// connection must close.
func (c *conn) process(in []byte) bool {
	for len(in) > 0 {
		n, req := c.parser.Next(in)
		in = in[n:]
		if req == nil {
			return true
		}
		switch req.Kind {
		case protocol.KindFatal:
			c.stats.protocolErrors.Add(1)
			if req.Reply != "" {
				c.line(req.Reply)
			}
			return false
		case protocol.KindError:
			c.stats.protocolErrors.Add(1)
			c.storageRefused(req)
			if !req.Noreply {
				c.line(req.Reply)
			}
		default:
			c.dispatch(req)
			if c.quit {
				return false
			}
		}
	}
	return true
}

// flush writes buffered replies; false means the peer is gone.
func (c *conn) flush() bool {
	if c.w.Buffered() == 0 {
		return true
	}
	c.stats.bytesWritten.Add(int64(c.w.Buffered()))
	if err := c.w.Flush(); err != nil {
		return false
	}
	return true
}

// line writes s followed by CRLF.
func (c *conn) line(s string) {
	c.w.WriteString(s)
	c.w.WriteString("\r\n")
}

// reply writes s unless the request asked for noreply.
func (c *conn) reply(req *protocol.Request, s string) {
	if !req.Noreply {
		c.line(s)
	}
}
