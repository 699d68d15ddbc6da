package consensus

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// TCP transport tuning: connections pooled per peer, and the I/O deadline
// of one RPC (raft's documented defaults).
const (
	tcpMaxPool = 3
	tcpTimeout = 10 * time.Second
)

// NewTCPTransport listens on bind (host:port) and returns raft's TCP
// transport, which tells peers to dial advertise.
//
// advertise may be empty when bind names a specific host; it is required
// when bind's host is unspecified ("", 0.0.0.0 or ::), because peers cannot
// dial that (raft fails with "local bind address is not advertisable";
// this function says which setting is missing instead). An advertise port
// of 0 is replaced by the port actually bound, so "127.0.0.1:0" works in
// tests. advertise must be an IP literal: raft advertises the address
// as given, and a name would resolve differently on every peer.
//
// Pass the transport to Open, which takes ownership: Node.Shutdown closes
// it.
func NewTCPTransport(bind, advertise string, logger *slog.Logger) (raft.Transport, error) {
	bhost, _, err := net.SplitHostPort(bind)
	if err != nil {
		return nil, fmt.Errorf("consensus: bind address %q: %w", bind, err)
	}
	if advertise == "" {
		if ip := net.ParseIP(bhost); bhost == "" || (ip != nil && ip.IsUnspecified()) {
			return nil, fmt.Errorf("consensus: bind address %q listens on every interface, which peers cannot dial: set the advertise address (Config.Advertise) to this node's reachable ip:port", bind)
		}
		advertise = bind
	}
	ahost, aport, err := net.SplitHostPort(advertise)
	if err != nil {
		return nil, fmt.Errorf("consensus: advertise address %q: %w", advertise, err)
	}
	ip := net.ParseIP(ahost)
	if ip == nil || ip.IsUnspecified() {
		return nil, fmt.Errorf("consensus: advertise address %q must be a specific IP address and port", advertise)
	}
	port, err := strconv.Atoi(aport)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("consensus: advertise address %q has a bad port", advertise)
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("consensus: raft transport: %w", err)
	}
	if port == 0 {
		port = ln.Addr().(*net.TCPAddr).Port
	}
	adv := &net.TCPAddr{IP: ip, Port: port}
	stream := &tcpStream{ln: ln, adv: adv}
	return raft.NewNetworkTransportWithLogger(stream, tcpMaxPool, tcpTimeout, NewHCLogger(logger, "raft-net")), nil
}

// tcpStream is a raft.StreamLayer over a listener we opened ourselves, so
// the bound port is known before the advertise address is fixed. Close also
// closes the connections it accepted: raft's NetworkTransport.Close only
// closes the listener, which leaves each inbound connection's handler
// blocked in a read until the peer closes its end.
type tcpStream struct {
	ln  net.Listener
	adv net.Addr

	mu     sync.Mutex
	conns  map[*inboundConn]struct{}
	closed bool
}

var _ raft.StreamLayer = (*tcpStream)(nil)

func (s *tcpStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(addr), timeout)
}

func (s *tcpStream) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	ic := &inboundConn{Conn: c, s: s}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	if s.conns == nil {
		s.conns = map[*inboundConn]struct{}{}
	}
	s.conns[ic] = struct{}{}
	return ic, nil
}

func (s *tcpStream) Close() error {
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	err := s.ln.Close()
	for c := range conns {
		_ = c.Conn.Close()
	}
	return err
}

func (s *tcpStream) Addr() net.Addr { return s.adv }

// inboundConn forgets itself when closed.
type inboundConn struct {
	net.Conn
	s *tcpStream
}

func (c *inboundConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	return c.Conn.Close()
}
