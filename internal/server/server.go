package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sonae-kv/sonae/internal/clock"
	"github.com/sonae-kv/sonae/internal/config"
	"github.com/sonae-kv/sonae/internal/kv"
)

// Version is sonae's release. The version command answers
// "VERSION <ProtocolLevel>-sonae-<Version>", so clients that parse the leading
// major.minor.patch see the memcached protocol level sonae implements.
const (
	Version       = "0.1.0"
	ProtocolLevel = "1.6.18"
)

// Sentinel errors of the server package.
var (
	// ErrServerClosed is returned by Serve after Shutdown.
	ErrServerClosed = errors.New("server: closed")
)

// Server serves one node's client port.
type Server struct {
	cfg     config.Config
	store   *kv.Store
	cl      *cluster // nil only in unit tests that build a Server alone
	clk     clock.Clock
	log     *slog.Logger
	budget  *byteBudget
	started time.Time
	pid     int

	connSeq      atomic.Uint64
	currConns    atomic.Int64
	totalConns   atomic.Int64
	rejectedConn atomic.Int64

	mu       sync.Mutex
	conns    map[*conn]struct{}
	closed   counters // totals of connections that have ended
	lns      []net.Listener
	shutdown bool
	wg       sync.WaitGroup

	sweepOnce sync.Once
	stopSweep chan struct{}

	// stopReq carries an admin command's request to stop this node
	// (shutdown_self, leave, lost_action shutdown) to whoever runs it.
	stopReq chan StopRequest
}

// StopRequest asks the process to stop this node. Leave: leave the
// cluster gracefully first (the node holds nothing).
type StopRequest struct {
	Reason string
	Leave  bool
}

// requestStop asks for the node to be stopped; the first request wins.
func (s *Server) requestStop(reason string, leave bool) {
	s.log.Warn("stop requested", "reason", reason, "leave", leave)
	select {
	case s.stopReq <- StopRequest{Reason: reason, Leave: leave}:
	default:
	}
}

// StopRequests delivers the requests to stop this node.
func (s *Server) StopRequests() <-chan StopRequest { return s.stopReq }

// New returns a server for store. It does not listen until Serve.
func New(cfg config.Config, store *kv.Store, clk clock.Clock, log *slog.Logger) *Server {
	wait := time.Duration(cfg.IdleTimeout)
	if wait <= 0 || wait > 30*time.Second {
		wait = 30 * time.Second
	}
	return &Server{
		cfg: cfg, store: store, clk: clk, log: log,
		budget:    newByteBudget(int(cfg.MaxPendingValueBytes), wait),
		started:   clk.Now(),
		pid:       os.Getpid(),
		conns:     map[*conn]struct{}{},
		stopSweep: make(chan struct{}),
		stopReq:   make(chan StopRequest, 1),
	}
}

// sweepIdle closes connections that have sent nothing for IdleTimeout,
// including ones stalled in the middle of a command. It checks four times per
// timeout (at most once a second) whether each connection's read count moved,
// so an idle connection is closed between 1x and 1.25x the timeout after its
// last input.
func (s *Server) sweepIdle() {
	idle := time.Duration(s.cfg.IdleTimeout)
	if idle <= 0 {
		return
	}
	t := time.NewTicker(min(idle/4, time.Second))
	defer t.Stop()
	for {
		select {
		case <-s.stopSweep:
			return
		case <-t.C:
		}
		now := s.clk.Now()
		s.mu.Lock()
		for c := range s.conns {
			if r := c.reads.Load(); r != c.sweepSeen {
				c.sweepSeen, c.idleSince = r, now
				continue
			}
			if now.Sub(c.idleSince) >= idle {
				s.log.Debug("closing idle connection", "conn", c.id, "remote", c.nc.RemoteAddr().String())
				c.nc.Close()
			}
		}
		s.mu.Unlock()
	}
}

// Serve accepts connections on ln until Shutdown. Temporary accept errors
// back off from 5 ms up to 1 s, as net/http does.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.lns = append(s.lns, ln)
	s.sweepOnce.Do(func() {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.sweepIdle()
		}()
	})
	s.mu.Unlock()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			down := s.shutdown
			s.mu.Unlock()
			if down {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscallEMFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; backing off", "error", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("server: accept: %w", err)
		}
		backoff = 0
		s.accept(nc)
	}
}

func (s *Server) accept(nc net.Conn) {
	if s.currConns.Load() >= int64(s.cfg.MaxConnections) {
		s.rejectedConn.Add(1)
		// memcached's words when it is over maxconns (memcached.c,
		// conn_listening). A fresh socket's send buffer is empty, so
		// this write does not block the accept loop.
		nc.SetWriteDeadline(s.clk.Now().Add(time.Second))
		nc.Write([]byte("ERROR Too many open connections\r\n"))
		nc.Close()
		return
	}
	c := newConn(s, nc)
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.currConns.Add(1)
	s.totalConns.Add(1)
	go func() {
		defer s.wg.Done()
		c.serve()
		s.mu.Lock()
		delete(s.conns, c)
		c.stats.addTo(&s.closed)
		s.mu.Unlock()
		s.currConns.Add(-1)
	}()
}

// Shutdown stops accepting, lets every connection finish the requests it has
// already read, then closes them. It waits until they are gone or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.shutdown {
		close(s.stopSweep)
	}
	s.shutdown = true
	for _, ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.closeRead()
	}
	s.mu.Unlock()
	s.budget.close()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// sumCounters adds up the counters of every connection, live or ended.
func (s *Server) sumCounters() *counters {
	var total counters
	s.mu.Lock()
	s.closed.addTo(&total)
	for c := range s.conns {
		c.stats.addTo(&total)
	}
	s.mu.Unlock()
	return &total
}

// resetCounters implements `stats reset`.
func (s *Server) resetCounters() {
	s.mu.Lock()
	s.closed.reset()
	for c := range s.conns {
		c.stats.reset()
	}
	s.mu.Unlock()
	s.totalConns.Store(0)
	s.rejectedConn.Store(0)
}

// CurrentConnections is the number of open client connections.
func (s *Server) CurrentConnections() int64 { return s.currConns.Load() }

// PendingValueBytes is the memory held by value blocks being received.
func (s *Server) PendingValueBytes() int { return s.budget.Used() }

// PendingValueWaiters is how many connections wait for value memory.
func (s *Server) PendingValueWaiters() int { return s.budget.Waiters() }
