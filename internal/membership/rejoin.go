package membership

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/serf/serf"
)

// rejoinLoop re-joins, every RejoinInterval, the seeds given to Join that
// are not alive members. serf alone does not heal every split: after a
// failed member is reaped (ReconnectTimeout) nobody retries it, and after
// mass restarts peers can keep each other "dead" (memberlist#311). It stops
// on Shutdown, and does nothing after Leave.
func (m *Membership) rejoinLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.rejoinMissing()
		}
	}
}

// rejoinMissing joins the seeds that are not alive members.
func (m *Membership) rejoinMissing() {
	if m.state() != nil {
		return
	}
	m.seedsMu.Lock()
	seeds := append([]string(nil), m.seeds...)
	m.seedsMu.Unlock()
	if len(seeds) == 0 {
		return
	}
	missing := m.missingSeeds(seeds)
	if len(missing) == 0 {
		return
	}
	m.log.Info("membership: seeds are not alive members, re-joining", "seeds", missing)
	if n, err := m.join(missing); err != nil {
		if !errors.Is(err, ErrShutdown) && !errors.Is(err, ErrLeft) {
			m.log.Warn("membership: re-join failed; retrying later", "seeds", missing, "retry_in", m.cfg.RejoinInterval, "err", err)
		}
	} else {
		m.log.Info("membership: re-joined", "seeds", missing, "reached", n)
	}
}

// missingSeeds returns the seeds whose address is not that of an alive
// member (nor this member's own). A seed given by host name is resolved;
// one that does not resolve counts as missing.
func (m *Membership) missingSeeds(seeds []string) []string {
	self := m.Addr()
	alive := aliveAddrs(m.serf.Members())
	alive[self] = true
	var missing []string
	for _, s := range seeds {
		host, port, err := splitSeed(s, int(self.Port()))
		if err != nil {
			missing = append(missing, s)
			continue
		}
		var addrs []netip.Addr
		if a, err := netip.ParseAddr(host); err == nil {
			addrs = []netip.Addr{a}
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), m.cfg.TCPTimeout)
			addrs, _ = net.DefaultResolver.LookupNetIP(ctx, "ip", host)
			cancel()
		}
		found := false
		for _, a := range addrs {
			if alive[netip.AddrPortFrom(a.Unmap(), port)] {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, s)
		}
	}
	return missing
}

// aliveAddrs returns the "ip:port" of every alive member.
func aliveAddrs(ms []serf.Member) map[netip.AddrPort]bool {
	out := make(map[netip.AddrPort]bool, len(ms))
	for _, sm := range ms {
		if sm.Status != serf.StatusAlive {
			continue
		}
		if a, ok := netip.AddrFromSlice(sm.Addr); ok {
			out[netip.AddrPortFrom(a.Unmap(), sm.Port)] = true
		}
	}
	return out
}

// splitSeed parses a Join address the way memberlist does: an optional
// "name/" prefix, then host[:port], the port defaulting to defPort.
func splitSeed(seed string, defPort int) (host string, port uint16, err error) {
	if i := strings.LastIndexByte(seed, '/'); i >= 0 {
		seed = seed[i+1:]
	}
	if seed == "" {
		return "", 0, errors.New("empty address")
	}
	if a, err := netip.ParseAddr(strings.Trim(seed, "[]")); err == nil {
		return a.String(), uint16(defPort), nil // a bare IP: memberlist adds its port
	}
	h, p, err := net.SplitHostPort(seed)
	if err != nil {
		var ae *net.AddrError
		if !errors.As(err, &ae) || !strings.Contains(ae.Err, "missing port") {
			return "", 0, err
		}
		return seed, uint16(defPort), nil
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || h == "" {
		return "", 0, fmt.Errorf("bad host or port in %q", seed)
	}
	return h, uint16(n), nil
}
