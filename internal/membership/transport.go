package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/sonae-kv/sonae/internal/netmux"
)

// UDP socket tuning, as memberlist's NetTransport: a read buffer large
// enough for any datagram, and a large kernel receive buffer for bursts.
const (
	udpPacketBufSize = 65536
	udpRecvBufSize   = 2 * 1024 * 1024
)

// Accept-loop back-off after an accept error on Config.Streams.
const (
	streamMinBackoff = 5 * time.Millisecond
	streamMaxBackoff = time.Second
)

// muxTransport is the memberlist.Transport used when Config.Streams is set:
// gossip packets on a UDP socket bound to the node's client port number,
// streams (push/pull, TCP fallback probes) over the node's netmux: incoming
// ones from the Mux's KindGossip listener, outgoing ones with netmux.Dial.
// memberlist adds the label and the encryption above the transport, so
// both work unchanged.
//
// It owns the UDP socket and the streams listener: Shutdown closes both and
// waits for its two goroutines.
type muxTransport struct {
	bindIP  net.IP
	udp     *net.UDPConn
	streams net.Listener
	log     *slog.Logger

	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{} // closed by Shutdown: unblocks the hand-offs

	shutdownOnce sync.Once
	wg           sync.WaitGroup
}

var _ memberlist.NodeAwareTransport = (*muxTransport)(nil)

// newMuxTransport binds UDP on bindAddr:port and starts reading it and
// accepting from streams. On error streams is left open.
func newMuxTransport(bindAddr string, port int, streams net.Listener, log *slog.Logger) (*muxTransport, error) {
	ip := net.ParseIP(bindAddr)
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
	if err != nil {
		return nil, fmt.Errorf("membership: gossip UDP on %s: %w", net.JoinHostPort(bindAddr, strconv.Itoa(port)), err)
	}
	if err := setUDPRecvBuf(udp); err != nil {
		_ = udp.Close()
		return nil, fmt.Errorf("membership: gossip UDP receive buffer: %w", err)
	}
	t := &muxTransport{
		bindIP:   ip,
		udp:      udp,
		streams:  streams,
		log:      log,
		packetCh: make(chan *memberlist.Packet),
		streamCh: make(chan net.Conn),
		done:     make(chan struct{}),
	}
	t.wg.Add(2)
	go t.readPackets()
	go t.acceptStreams()
	return t, nil
}

// setUDPRecvBuf asks for udpRecvBufSize, halving until the kernel agrees.
func setUDPRecvBuf(c *net.UDPConn) error {
	var err error
	for size := udpRecvBufSize; size > 0; size /= 2 {
		if err = c.SetReadBuffer(size); err == nil {
			return nil
		}
	}
	return err
}

// port is the bound UDP port (the client port).
func (t *muxTransport) port() int { return t.udp.LocalAddr().(*net.UDPAddr).Port }

// FinalAdvertiseAddr returns ip and port when ip is set, else the bound
// address and port. An unspecified bind address needs an explicit ip
// (Config.Validate requires Config.AdvertiseAddr then).
func (t *muxTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if port == 0 {
		port = t.port()
	}
	if ip == "" {
		if t.bindIP == nil || t.bindIP.IsUnspecified() {
			return nil, 0, errors.New("bound to every interface: set Config.AdvertiseAddr")
		}
		return normalizeIP(t.bindIP), port, nil
	}
	a := net.ParseIP(ip)
	if a == nil {
		return nil, 0, fmt.Errorf("failed to parse advertise address %q", ip)
	}
	return normalizeIP(a), port, nil
}

// normalizeIP gives an IPv4 address its 4-byte form, as memberlist does.
func normalizeIP(ip net.IP) net.IP {
	if ip4 := ip.To4(); ip4 != nil {
		return ip4
	}
	return ip
}

// WriteTo sends one gossip packet to addr ("ip:port") over UDP.
func (t *muxTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = t.udp.WriteTo(b, ua)
	return time.Now(), err
}

// WriteToAddress is WriteTo; the node name is not needed.
func (t *muxTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

// PacketCh delivers the packets read from the UDP socket.
func (t *muxTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// DialTimeout opens a gossip stream to addr through its netmux.
func (t *muxTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return netmux.Dial(ctx, addr, netmux.KindGossip)
}

// DialAddressTimeout is DialTimeout; the node name is not needed.
func (t *muxTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// StreamCh delivers the gossip streams accepted from Config.Streams.
func (t *muxTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown closes the UDP socket and the streams listener and waits for
// the reader and the acceptor. memberlist calls it before it stops reading
// PacketCh and StreamCh; hand-offs in progress are dropped.
func (t *muxTransport) Shutdown() error {
	t.shutdownOnce.Do(func() {
		close(t.done)
		_ = t.udp.Close()
		_ = t.streams.Close()
		t.wg.Wait()
	})
	return nil
}

func (t *muxTransport) isShutdown() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// readPackets hands every UDP datagram to memberlist, stamped as soon as
// it is read (memberlist measures probe RTTs with it).
func (t *muxTransport) readPackets() {
	defer t.wg.Done()
	buf := make([]byte, udpPacketBufSize)
	for {
		n, from, err := t.udp.ReadFrom(buf)
		ts := time.Now()
		if err != nil {
			if t.isShutdown() {
				return
			}
			if errors.Is(err, net.ErrClosed) {
				t.log.Error("membership: gossip UDP socket closed under the transport", "err", err)
				return
			}
			t.log.Warn("membership: reading a gossip packet", "err", err)
			continue
		}
		if n < 1 {
			continue
		}
		p := &memberlist.Packet{Buf: append([]byte(nil), buf[:n]...), From: from, Timestamp: ts}
		select {
		case t.packetCh <- p:
		case <-t.done:
			return
		}
	}
}

// acceptStreams hands every connection of Config.Streams to memberlist,
// backing off after accept errors.
func (t *muxTransport) acceptStreams() {
	defer t.wg.Done()
	var delay time.Duration
	for {
		c, err := t.streams.Accept()
		if err != nil {
			if t.isShutdown() {
				return
			}
			if errors.Is(err, net.ErrClosed) {
				t.log.Error("membership: gossip streams listener closed under the transport", "err", err)
				return
			}
			delay = min(max(2*delay, streamMinBackoff), streamMaxBackoff)
			t.log.Warn("membership: accepting a gossip stream", "err", err, "delay", delay)
			timer := time.NewTimer(delay)
			select {
			case <-timer.C:
			case <-t.done:
				timer.Stop()
				return
			}
			continue
		}
		delay = 0
		select {
		case t.streamCh <- c:
		case <-t.done:
			_ = c.Close()
			return
		}
	}
}
