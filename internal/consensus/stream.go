package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// NewStreamTransport returns raft's network transport over a listener the
// caller already has, and a dial function for the way out: in sonae, the
// node's netmux KindRaft listener on the client port and a dial that
// writes the Raft marker byte (netmux.Dial with KindRaft), so that Raft
// shares the node's one port number (docs/cluster.md).
//
// advertise is the ip:port peers dial; empty means ln's address, which
// must then be a specific IP (not 0.0.0.0). A port of 0 is replaced by
// ln's port. The transport pools 3 connections per peer and gives an RPC
// 10s of I/O, as NewTCPTransport does.
//
// On success the transport owns ln: closing the transport (Node.Shutdown)
// closes ln and the connections accepted from it. On error ln is left
// open.
func NewStreamTransport(ln net.Listener, advertise string, dial func(ctx context.Context, addr string) (net.Conn, error), logger *slog.Logger) (raft.Transport, error) {
	if ln == nil {
		return nil, errors.New("consensus: NewStreamTransport: nil listener")
	}
	if dial == nil {
		return nil, errors.New("consensus: NewStreamTransport: nil dial function")
	}
	adv, err := streamAdvertise(ln.Addr(), advertise)
	if err != nil {
		return nil, err
	}
	stream := &dialStream{tcpStream: &tcpStream{ln: ln, adv: adv}, dial: dial}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: tcpMaxPool,
		Timeout: tcpTimeout,
		Logger:  NewHCLogger(logger, "raft-net"),
	}), nil
}

// streamAdvertise resolves the address a stream transport advertises.
func streamAdvertise(bound net.Addr, advertise string) (*net.TCPAddr, error) {
	ba, _ := bound.(*net.TCPAddr)
	if advertise == "" {
		if ba == nil || ba.IP == nil || ba.IP.IsUnspecified() {
			return nil, fmt.Errorf("consensus: the raft listener's address %q is not one peers can dial: set the advertise address (Config.Advertise) to this node's reachable ip:port", bound)
		}
		return &net.TCPAddr{IP: ba.IP, Port: ba.Port}, nil
	}
	host, portStr, err := net.SplitHostPort(advertise)
	if err != nil {
		return nil, fmt.Errorf("consensus: advertise address %q: %w", advertise, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsUnspecified() {
		return nil, fmt.Errorf("consensus: advertise address %q must be a specific IP address and port", advertise)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("consensus: advertise address %q has a bad port", advertise)
	}
	if port == 0 {
		if ba == nil {
			return nil, fmt.Errorf("consensus: advertise address %q has port 0 and the listener's address %q has no port to take", advertise, bound)
		}
		port = ba.Port
	}
	return &net.TCPAddr{IP: ip, Port: port}, nil
}

// dialStream is tcpStream (accept, tracking of accepted connections,
// close) with the caller's dial.
type dialStream struct {
	*tcpStream
	dial func(ctx context.Context, addr string) (net.Conn, error)
}

var _ raft.StreamLayer = (*dialStream)(nil)

func (s *dialStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.dial(ctx, string(addr))
}
