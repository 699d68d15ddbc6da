package consensus

import (
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Config configures a Node. Start from Default; the zero value is not
// valid. Validate names the first bad field.
type Config struct {
	// ID is the node's raft server id, stable across restarts and unique in
	// the cluster: sonae uses the node id ("127.0.0.1_11211"). Required.
	ID string

	// BindAddr is the host:port the raft transport listens on (what
	// NewTCPTransport is given). Required.
	BindAddr string

	// Advertise is the host:port peers dial to reach this node. Empty means
	// BindAddr, which is then not allowed to be an unspecified address
	// (0.0.0.0, ::, or an empty host). A port of 0 means "whatever port was
	// bound". Open checks the transport's address against it.
	Advertise string

	// Dir is the node's raft directory: raft.db and snapshots/ (see the
	// package doc). Created if missing. Required.
	Dir string

	// Voter says whether this node is meant to vote (one of the up to 5
	// "meta" nodes) rather than only replicate the metadata. Only a voter
	// may Bootstrap a cluster. Default true.
	Voter bool

	// HeartbeatTimeout is how long a follower waits without contact from
	// the leader before it starts an election (randomised up to 2x). Must be
	// >= 5ms. Default 1s.
	HeartbeatTimeout time.Duration

	// ElectionTimeout is how long a candidate waits for votes before it
	// starts a new election (randomised up to 2x). Must be >= 5ms and >=
	// HeartbeatTimeout. Default 1s.
	ElectionTimeout time.Duration

	// LeaderLeaseTimeout is how long a leader stays leader without hearing
	// from a quorum before it steps down. It bounds how long a deposed
	// leader can believe it still leads. Must be >= 5ms and <=
	// HeartbeatTimeout. Default 500ms.
	LeaderLeaseTimeout time.Duration

	// CommitTimeout is the longest a leader waits before sending an
	// AppendEntries with nothing new, so followers learn the commit index.
	// Must be >= 1ms. Default 50ms.
	CommitTimeout time.Duration

	// SnapshotInterval is how often raft checks whether SnapshotThreshold
	// has been reached (randomised up to 2x). Must be >= 5ms. Default 2m.
	SnapshotInterval time.Duration

	// SnapshotThreshold is how many log entries past the last snapshot
	// trigger a new snapshot. Must be >= 1. Default 8192.
	SnapshotThreshold uint64

	// TrailingLogs is how many entries a snapshot leaves in the log, so a
	// slightly lagging follower catches up from the log rather than a full
	// snapshot. Default 10240.
	TrailingLogs uint64

	// SnapshotRetain is how many snapshots snapshots/ keeps. Must be >= 1.
	// Default 2.
	SnapshotRetain int

	// LockTimeout is how long Open waits for the lock on raft.db before it
	// gives up with ErrStoreLocked (another node on this directory). Must
	// be > 0. Default 1s.
	LockTimeout time.Duration

	// Logger receives raft's and the Node's log records. Nil discards them.
	Logger *slog.Logger
}

// Default returns the defaults: raft's own timeouts (1s heartbeat and
// election, 500ms lease, 50ms commit), snapshots every 8192 entries keeping
// 10240 trailing entries and 2 snapshots, a voter, and no logger. ID,
// BindAddr and Dir must still be set.
func Default() Config {
	return Config{
		Voter:              true,
		HeartbeatTimeout:   time.Second,
		ElectionTimeout:    time.Second,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      50 * time.Millisecond,
		SnapshotInterval:   2 * time.Minute,
		SnapshotThreshold:  8192,
		TrailingLogs:       10240,
		SnapshotRetain:     2,
		LockTimeout:        time.Second,
	}
}

// minTimeout is raft's floor for its timeouts.
const minTimeout = 5 * time.Millisecond

// Validate reports the first invalid field, naming it and its value.
func (c *Config) Validate() error {
	if c.ID == "" {
		return fmt.Errorf("consensus: Config.ID is empty")
	}
	if c.Dir == "" {
		return fmt.Errorf("consensus: Config.Dir is empty")
	}
	bhost, _, err := net.SplitHostPort(c.BindAddr)
	if err != nil {
		return fmt.Errorf("consensus: Config.BindAddr (%q) is not host:port: %w", c.BindAddr, err)
	}
	if c.Advertise == "" {
		if ip := net.ParseIP(bhost); bhost == "" || (ip != nil && ip.IsUnspecified()) {
			return fmt.Errorf("consensus: Config.Advertise is empty but Config.BindAddr (%q) listens on every interface, which peers cannot dial: set Config.Advertise", c.BindAddr)
		}
	} else {
		ahost, _, err := net.SplitHostPort(c.Advertise)
		if err != nil {
			return fmt.Errorf("consensus: Config.Advertise (%q) is not host:port: %w", c.Advertise, err)
		}
		if ip := net.ParseIP(ahost); ahost == "" || (ip != nil && ip.IsUnspecified()) {
			return fmt.Errorf("consensus: Config.Advertise (%q) must name a reachable host, not an unspecified address", c.Advertise)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"HeartbeatTimeout", c.HeartbeatTimeout}, {"ElectionTimeout", c.ElectionTimeout},
		{"LeaderLeaseTimeout", c.LeaderLeaseTimeout}, {"SnapshotInterval", c.SnapshotInterval},
	} {
		if d.v < minTimeout {
			return fmt.Errorf("consensus: Config.%s (%s) must be >= %s", d.name, d.v, minTimeout)
		}
	}
	if c.CommitTimeout < time.Millisecond {
		return fmt.Errorf("consensus: Config.CommitTimeout (%s) must be >= 1ms", c.CommitTimeout)
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		return fmt.Errorf("consensus: Config.LeaderLeaseTimeout (%s) must be <= Config.HeartbeatTimeout (%s)", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	if c.ElectionTimeout < c.HeartbeatTimeout {
		return fmt.Errorf("consensus: Config.ElectionTimeout (%s) must be >= Config.HeartbeatTimeout (%s)", c.ElectionTimeout, c.HeartbeatTimeout)
	}
	if c.SnapshotThreshold < 1 {
		return fmt.Errorf("consensus: Config.SnapshotThreshold (%d) must be >= 1", c.SnapshotThreshold)
	}
	if c.SnapshotRetain < 1 {
		return fmt.Errorf("consensus: Config.SnapshotRetain (%d) must be >= 1", c.SnapshotRetain)
	}
	if c.LockTimeout <= 0 {
		return fmt.Errorf("consensus: Config.LockTimeout (%s) must be > 0", c.LockTimeout)
	}
	return nil
}

// AdvertiseAddr returns the address peers dial: Advertise, or BindAddr when
// Advertise is empty.
func (c *Config) AdvertiseAddr() string {
	if c.Advertise != "" {
		return c.Advertise
	}
	return c.BindAddr
}
