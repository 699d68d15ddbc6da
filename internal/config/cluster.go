package config

import (
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sonae-kv/sonae/internal/events"
)

// Gossip profile names (see internal/membership for their timings).
const (
	GossipLocal = "local"
	GossipLAN   = "lan"
	GossipWAN   = "wan"
)

// MaxVotersLimit is the most Raft voters a cluster may have.
const MaxVotersLimit = 5

// validateCluster checks the cluster keys; bad records a problem.
func (c *Config) validateCluster(bad func(key, format string, args ...any)) {
	if c.Advertise != "" && net.ParseIP(c.Advertise) == nil && !validHostname(c.Advertise) {
		bad("advertise", "%q is neither an IP address nor a host name", c.Advertise)
	}
	if ip := net.ParseIP(c.AdvertiseHost()); ip != nil && ip.IsUnspecified() {
		bad("advertise", "must be set when addr is %s: other nodes cannot reach an unspecified address", c.Addr)
	}
	if c.Join != "" {
		if _, err := ParseHostPort(c.Join); err != nil {
			bad("join", "%v", err)
		}
	}
	if c.Redundancy < 1 || c.Redundancy > 8 {
		bad("redundancy", "%d is outside 1..8", c.Redundancy)
	}
	if c.MaxVoters < 1 || c.MaxVoters > MaxVotersLimit {
		bad("max_voters", "%d is outside 1..%d", c.MaxVoters, MaxVotersLimit)
	}
	if c.GossipKey != "" {
		if k, err := base64.StdEncoding.DecodeString(c.GossipKey); err != nil {
			bad("gossip_key", "is not base64: %v", err)
		} else if n := len(k); n != 16 && n != 24 && n != 32 {
			bad("gossip_key", "decodes to %d bytes; want 16, 24 or 32", n)
		}
	}
	switch c.GossipProfile {
	case GossipLocal, GossipLAN, GossipWAN:
	default:
		bad("gossip_profile", "%q is not one of local, lan, wan", c.GossipProfile)
	}
	if c.ReplicationTimeout < Duration(10*time.Millisecond) || c.ReplicationTimeout > Duration(time.Minute) {
		bad("replication_timeout", "%s is outside 10ms..1m", time.Duration(c.ReplicationTimeout))
	}
	for i, spec := range c.EventHandlers {
		if _, err := events.ParseHandler(spec); err != nil {
			bad(fmt.Sprintf("event_handler[%d]", i), "%v", err)
		}
	}
	if c.EventHandlerTimeout < Duration(10*time.Millisecond) || c.EventHandlerTimeout > Duration(time.Hour) {
		bad("event_handler_timeout", "%s is outside 10ms..1h", time.Duration(c.EventHandlerTimeout))
	}
	if c.LiveNodesFile != "" {
		if st, err := os.Stat(filepath.Dir(c.LiveNodesFile)); err != nil || !st.IsDir() {
			bad("live_nodes_file", "the directory of %q does not exist", c.LiveNodesFile)
		} else if st, err := os.Stat(c.LiveNodesFile); err == nil && st.IsDir() {
			bad("live_nodes_file", "%q is a directory", c.LiveNodesFile)
		}
	}
	if c.Role != "" && (len(c.Role) > 64 || strings.ContainsAny(c.Role, " \t\r\n=,")) {
		bad("role", "%q must be at most 64 bytes, without blanks, '=' or ','", c.Role)
	}
	if c.ReadLease < Duration(10*time.Millisecond) || c.ReadLease > Duration(time.Minute) {
		bad("read_lease", "%s is outside 10ms..1m", time.Duration(c.ReadLease))
	}
}

// GossipKeyBytes returns the decoded gossip key (nil when none is set).
// Validate has checked it.
func (c *Config) GossipKeyBytes() []byte {
	if c.GossipKey == "" {
		return nil
	}
	k, _ := base64.StdEncoding.DecodeString(c.GossipKey)
	return k
}

// ParseHostPort accepts ROMA's HOST_PORT or host:port and returns host:port.
func ParseHostPort(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		i := strings.LastIndexByte(s, '_')
		if i <= 0 {
			return "", errInvalidf("%q is not HOST_PORT or host:port", s)
		}
		host, port = s[:i], s[i+1:]
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || host == "" {
		return "", errInvalidf("%q is not HOST_PORT or host:port", s)
	}
	return net.JoinHostPort(host, port), nil
}

func errInvalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}
