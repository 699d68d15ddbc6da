package membership

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/netip"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
)

// Size limits imposed by memberlist and serf (see the package doc).
const (
	// MaxTagsSize is memberlist's node-metadata limit (MetaMaxSize): all of
	// a member's tags, as serf encodes them (TagsSize), must fit in it.
	MaxTagsSize = memberlist.MetaMaxSize
	// MaxUserEventSize bounds len(name)+len(payload) of a user event
	// (serf's default UserEventSizeLimit). The encoded event must fit too.
	MaxUserEventSize = 512
	// MaxQuerySize bounds an encoded query, and MaxQueryResponseSize an
	// encoded response (serf's QuerySizeLimit and QueryResponseSizeLimit).
	MaxQuerySize         = 1024
	MaxQueryResponseSize = 1024
	// maxLabel is memberlist's LabelMaxSize; the label is "sonae/"+ClusterName.
	maxLabel = memberlist.LabelMaxSize
	// labelPrefix turns a cluster name into the gossip label.
	labelPrefix = "sonae/"
)

// Profile names.
const (
	// ProfileLAN is the default: one LAN, failure reported in about 2 s.
	ProfileLAN = "lan"
	// ProfileLocal is for tests on one machine (loopback): about 1 s.
	ProfileLocal = "local"
	// ProfileWAN is memberlist's WAN preset: tens of seconds.
	ProfileWAN = "wan"
)

// Config configures a Membership. Start from Default; the zero value is not
// valid. Validate names the first bad field.
//
// The timing knobs (ProbeInterval through RejoinInterval) are optional: 0
// means "the Profile's value" (see the package doc for each profile's
// table). Resolved returns the Config with every zero knob filled in.
type Config struct {
	// NodeName is this member's name, unique in the cluster and stable
	// across restarts: sonae uses the node id ("127.0.0.1_11211"), never the
	// hostname. No spaces or control characters (event handlers get members
	// as tab-separated lines). Required.
	NodeName string

	// BindAddr is the IP address gossip listens on, TCP and UDP. Default
	// "0.0.0.0" (every interface).
	BindAddr string

	// BindPort is the TCP and UDP port gossip listens on; 0 picks a free
	// port (tests), which Membership.Addr reports. Default 0: sonae passes
	// its node's port.
	BindPort int

	// AdvertiseAddr is the IP address other members use to reach this one.
	// Empty means the bind address, or with BindAddr 0.0.0.0 the first
	// private IP memberlist finds. Set it behind NAT or in containers.
	AdvertiseAddr string

	// AdvertisePort is the port other members use; 0 means the bound port.
	// It needs a fixed BindPort.
	AdvertisePort int

	// Streams, when set, makes gossip share the node's client port
	// (docs/cluster.md, "One port number per node"): memberlist's streams
	// (push/pull, TCP fallback probes) arrive on this listener, the
	// internal/netmux Mux's KindGossip listener on the client port, and go
	// out with netmux.Dial(KindGossip); its packets use a UDP socket Start
	// binds on BindAddr:BindPort. BindPort must then be the client port
	// (not 0), and with BindAddr 0.0.0.0 AdvertiseAddr is required. Start
	// takes ownership of the listener: Shutdown closes it, and so does a
	// Start that fails. Nil (the default) means memberlist's own TCP and
	// UDP listeners on BindPort.
	Streams net.Listener

	// ClusterName names the cluster. It becomes the gossip label
	// "sonae/"+ClusterName: packets and streams with another label are
	// dropped, so two clusters never merge, even with the same key.
	// Default "sonae".
	ClusterName string

	// SecretKey encrypts gossip with AES-GCM when set: 16, 24 or 32 bytes
	// (AES-128/192/256). Empty means plaintext gossip, which anyone on the
	// network can read and forge. Every member needs the same key.
	SecretKey []byte

	// Tags are this member's key/value metadata, gossiped to every member.
	// Encoded (TagsSize) they must fit in MaxTagsSize (512) bytes.
	Tags map[string]string

	// SnapshotPath is serf's snapshot file: the members last known alive
	// and the Lamport clocks. On start, a member with a snapshot re-joins
	// those members by itself, without Join, and does not replay old user
	// events. Empty means no snapshot. Its directory is created if missing.
	SnapshotPath string

	// RejoinAfterLeave makes a member that left gracefully (Leave) still
	// re-join from its snapshot when restarted. Default true.
	RejoinAfterLeave bool

	// Profile selects the timing preset: ProfileLAN (default),
	// ProfileLocal or ProfileWAN.
	Profile string

	// ProbeInterval is how often each member probes one other member
	// (round-robin). Detection time scales with it. 0 = profile.
	ProbeInterval time.Duration

	// ProbeTimeout is how long a direct probe waits for its ack before
	// indirect probes are tried; it must be below ProbeInterval and above
	// the network's RTT (plus GC pauses). 0 = profile.
	ProbeTimeout time.Duration

	// SuspicionMult sets the suspicion timeout before a suspect is
	// declared failed: SuspicionMult * max(1, log10(N)) * ProbeInterval for
	// N members. It also sets how many independent confirmations
	// (SuspicionMult-2) shrink the timeout to that minimum. 0 = profile.
	SuspicionMult int

	// SuspicionMaxTimeoutMult bounds the suspicion timeout when peers do not
	// confirm the suspicion (Lifeguard): the timeout starts at this multiple
	// of the minimum. 0 = profile.
	SuspicionMaxTimeoutMult int

	// GossipInterval is how often gossip (suspicions, deaths, tags, user
	// events) is sent to a few random members. 0 = profile.
	GossipInterval time.Duration

	// PushPullInterval is how often a member does a full state exchange
	// over TCP with a random member (anti-entropy). 0 = profile.
	PushPullInterval time.Duration

	// TCPTimeout bounds TCP connects and exchanges (join, push/pull, TCP
	// probes). 0 = profile.
	TCPTimeout time.Duration

	// ReconnectInterval is how often serf tries to reconnect to a failed
	// member (it heals partitions). 0 = profile.
	ReconnectInterval time.Duration

	// ReconnectTimeout is how long a failed member is kept and retried
	// before it is reaped (MemberReap) and forgotten. 0 = profile (72 h).
	ReconnectTimeout time.Duration

	// TombstoneTimeout is how long a member that left gracefully is kept
	// before it is reaped. 0 = profile (24 h).
	TombstoneTimeout time.Duration

	// DeadNodeReclaimTime is how long a member must have been failed before
	// its name may come back from a different address (a restart on a new
	// port or IP); before that memberlist refuses it as a "conflicting
	// address". 0 = profile.
	DeadNodeReclaimTime time.Duration

	// LeavePropagateDelay is how long Leave waits after announcing the leave,
	// so peers learn it before they would probe this member and call it
	// failed. 0 = profile.
	LeavePropagateDelay time.Duration

	// RejoinInterval is how often the seeds given to Join are checked:
	// while any of them is not an alive member, Join is retried on the
	// missing ones. This heals splits that serf alone does not (after a
	// reap, after mass restarts). 0 = profile.
	RejoinInterval time.Duration

	// EventQueueSize bounds the queue between serf and Events(): when the
	// consumer falls this far behind, the oldest queued event is dropped
	// and counted (DroppedEvents). Must be >= 1. Default 16384.
	EventQueueSize int

	// Logger receives serf's and memberlist's log lines at their levels
	// ([DEBUG], [INFO], [WARN], [ERR]) and the package's own. Nil discards.
	Logger *slog.Logger
}

// Default returns the defaults: profile lan, bind 0.0.0.0 on a free port,
// cluster "sonae", plaintext, rejoin after leave, a 16384-event queue. Set
// NodeName (and in production BindPort, SecretKey) before Start.
func Default() Config {
	return Config{
		BindAddr:         "0.0.0.0",
		ClusterName:      "sonae",
		RejoinAfterLeave: true,
		Profile:          ProfileLAN,
		EventQueueSize:   16384,
	}
}

// timings are the profile-controlled knobs.
type timings struct {
	probeInterval, probeTimeout         time.Duration
	suspicionMult, suspicionMaxMult     int
	gossipInterval, pushPull, tcp       time.Duration
	reconnectInterval, reconnectTimeout time.Duration
	tombstoneTimeout, reclaim           time.Duration
	leavePropagate, rejoin              time.Duration
	// base is memberlist's preset the profile starts from (for the fields
	// Config does not expose: IndirectChecks, GossipNodes, RetransmitMult,
	// AwarenessMaxMultiplier, ...).
	base func() *memberlist.Config
	// reap is serf's ReapInterval; gossipToTheDead memberlist's
	// GossipToTheDeadTime.
	reap, gossipToTheDead time.Duration
	// retransmitMult is memberlist's RetransmitMult: each broadcast is sent
	// retransmitMult*ceil(log10(N+1)) times.
	retransmitMult int
}

// profiles holds the presets; the package doc explains each choice.
var profiles = map[string]timings{
	ProfileLAN: {
		probeInterval: 400 * time.Millisecond, probeTimeout: 200 * time.Millisecond,
		suspicionMult: 3, suspicionMaxMult: 3,
		gossipInterval: 100 * time.Millisecond, pushPull: 15 * time.Second, tcp: 5 * time.Second,
		reconnectInterval: 10 * time.Second, reconnectTimeout: 72 * time.Hour,
		tombstoneTimeout: 24 * time.Hour, reclaim: 10 * time.Second,
		leavePropagate: 500 * time.Millisecond, rejoin: 30 * time.Second,
		base: memberlist.DefaultLANConfig, reap: 15 * time.Second, gossipToTheDead: 15 * time.Second,
		retransmitMult: 4,
	},
	ProfileLocal: {
		probeInterval: 200 * time.Millisecond, probeTimeout: 100 * time.Millisecond,
		suspicionMult: 3, suspicionMaxMult: 3,
		gossipInterval: 50 * time.Millisecond, pushPull: 5 * time.Second, tcp: time.Second,
		reconnectInterval: time.Second, reconnectTimeout: 72 * time.Hour,
		tombstoneTimeout: 24 * time.Hour, reclaim: time.Second,
		leavePropagate: 100 * time.Millisecond, rejoin: time.Second,
		base: memberlist.DefaultLocalConfig, reap: 5 * time.Second, gossipToTheDead: 5 * time.Second,
		// Not the local preset's 2: with 2, a serf leave intent sent while
		// another member has just died can reach nobody, and the leave is
		// then reported as a failure.
		retransmitMult: 4,
	},
	ProfileWAN: {
		probeInterval: 5 * time.Second, probeTimeout: 3 * time.Second,
		suspicionMult: 6, suspicionMaxMult: 6,
		gossipInterval: 500 * time.Millisecond, pushPull: 60 * time.Second, tcp: 30 * time.Second,
		reconnectInterval: 30 * time.Second, reconnectTimeout: 72 * time.Hour,
		tombstoneTimeout: 24 * time.Hour, reclaim: 60 * time.Second,
		leavePropagate: 3 * time.Second, rejoin: 60 * time.Second,
		base: memberlist.DefaultWANConfig, reap: 15 * time.Second, gossipToTheDead: 60 * time.Second,
		retransmitMult: 4,
	},
}

// Resolved returns a copy of c with every zero timing knob set from its
// Profile. An unknown profile leaves the knobs as they are (Validate
// reports it).
func (c Config) Resolved() Config {
	p, ok := profiles[c.Profile]
	if !ok {
		return c
	}
	setD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	setI := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	setD(&c.ProbeInterval, p.probeInterval)
	setD(&c.ProbeTimeout, p.probeTimeout)
	setI(&c.SuspicionMult, p.suspicionMult)
	setI(&c.SuspicionMaxTimeoutMult, p.suspicionMaxMult)
	setD(&c.GossipInterval, p.gossipInterval)
	setD(&c.PushPullInterval, p.pushPull)
	setD(&c.TCPTimeout, p.tcp)
	setD(&c.ReconnectInterval, p.reconnectInterval)
	setD(&c.ReconnectTimeout, p.reconnectTimeout)
	setD(&c.TombstoneTimeout, p.tombstoneTimeout)
	setD(&c.DeadNodeReclaimTime, p.reclaim)
	setD(&c.LeavePropagateDelay, p.leavePropagate)
	setD(&c.RejoinInterval, p.rejoin)
	return c
}

// DetectionEstimate returns, for a cluster of n members, the expected time
// from a member's crash until the others report it failed (typical), and a
// pessimistic estimate (bound) for when peers do not confirm the suspicion
// quickly. It is arithmetic on the resolved knobs, not a guarantee: a
// member that is itself degraded (Lifeguard) probes up to 8x more slowly.
//
//	suspicion = SuspicionMult * max(1, log10(n)) * ProbeInterval
//	typical   = ProbeInterval/2 (until someone probes it)
//	          + ProbeInterval   (direct probe, then indirect and TCP probes)
//	          + suspicion       (shrunk to this by peers' confirmations)
//	          + GossipInterval  (the death reaches the others)
//	bound     = 2*ProbeInterval + ProbeInterval
//	          + suspicion * SuspicionMaxTimeoutMult (no confirmation)
//	          + 2*GossipInterval
//
// Profile lan, n <= 10: typical 1.9 s, bound 5.0 s. Profile local: 0.95 s
// and 2.5 s.
func (c Config) DetectionEstimate(n int) (typical, bound time.Duration) {
	r := c.Resolved()
	scale := math.Max(1, math.Log10(math.Max(1, float64(n))))
	susp := time.Duration(float64(r.SuspicionMult) * scale * float64(r.ProbeInterval))
	typical = r.ProbeInterval/2 + r.ProbeInterval + susp + r.GossipInterval
	maxSusp := susp
	if k := r.SuspicionMult - 2; k >= 1 && n-2 >= k {
		maxSusp = susp * time.Duration(r.SuspicionMaxTimeoutMult)
	}
	bound = 3*r.ProbeInterval + maxSusp + 2*r.GossipInterval
	return typical, bound
}

// label is the memberlist label of the cluster.
func (c *Config) label() string { return labelPrefix + c.ClusterName }

// TagsSize returns the size of tags as serf encodes them into memberlist's
// node metadata (a magic byte and a msgpack map). It must not exceed
// MaxTagsSize.
func TagsSize(tags map[string]string) int {
	var buf bytes.Buffer
	buf.WriteByte(0xff) // serf's tagMagicByte
	if tags == nil {
		tags = map[string]string{}
	}
	if err := codec.NewEncoder(&buf, &codec.MsgpackHandle{}).Encode(tags); err != nil {
		return math.MaxInt // cannot happen for a map of strings
	}
	return buf.Len()
}

// checkTags reports tags over MaxTagsSize with an error wrapping
// ErrTagsTooLarge (and ErrInvalidConfig when what is a Config field).
func checkTags(what string, tags map[string]string, config bool) error {
	n := TagsSize(tags)
	if n <= MaxTagsSize {
		return nil
	}
	prefix := "membership: "
	if config {
		prefix = "membership: invalid config: "
	}
	return &tagsError{config: config, msg: fmt.Sprintf(
		"%s%s encode to %d bytes, over memberlist's %d-byte node metadata limit (%d tags: keep them short, gossip versions and addresses, not data)",
		prefix, what, n, MaxTagsSize, len(tags))}
}

// tagsError is ErrTagsTooLarge with its detail in one readable message.
type tagsError struct {
	config bool
	msg    string
}

func (e *tagsError) Error() string { return e.msg }

func (e *tagsError) Is(target error) bool {
	return target == ErrTagsTooLarge || (e.config && target == ErrInvalidConfig)
}

// validNodeName reports whether name is non-empty, at most 128 bytes and
// made of printable non-space characters.
func validNodeName(name string) bool {
	if name == "" || len(name) > 128 {
		return false
	}
	return !strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) })
}

// Validate reports the first invalid field, naming it and its value. Zero
// timing knobs are valid (they take the profile's value); the resolved
// values are checked.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if !validNodeName(c.NodeName) {
		return bad("Config.NodeName (%q) must be 1-128 printable characters without spaces", c.NodeName)
	}
	if a, err := netip.ParseAddr(c.BindAddr); err != nil || a.Zone() != "" {
		return bad("Config.BindAddr (%q) must be an IP address (0.0.0.0 for every interface)", c.BindAddr)
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		return bad("Config.BindPort (%d) must be 0 (pick a free port) to 65535", c.BindPort)
	}
	if c.AdvertiseAddr != "" {
		a, err := netip.ParseAddr(c.AdvertiseAddr)
		if err != nil || a.IsUnspecified() {
			return bad("Config.AdvertiseAddr (%q) must be empty or an IP address other members can reach", c.AdvertiseAddr)
		}
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		return bad("Config.AdvertisePort (%d) must be 0 (the bound port) to 65535", c.AdvertisePort)
	}
	if c.AdvertisePort != 0 && c.BindPort == 0 {
		return bad("Config.AdvertisePort (%d) needs a fixed Config.BindPort (memberlist advertises the picked port when BindPort is 0)", c.AdvertisePort)
	}
	if err := c.validateStreams(); err != nil {
		return err
	}
	if c.ClusterName == "" || len(c.label()) > maxLabel {
		return bad("Config.ClusterName (%q) must be 1-%d bytes", c.ClusterName, maxLabel-len(labelPrefix))
	}
	switch len(c.SecretKey) {
	case 0, 16, 24, 32:
	default:
		return bad("Config.SecretKey is %d bytes; it must be 16, 24 or 32 (AES-128/192/256), or empty for plaintext gossip", len(c.SecretKey))
	}
	if err := checkTags("Config.Tags", c.Tags, true); err != nil {
		return err
	}
	if _, ok := profiles[c.Profile]; !ok {
		return bad("Config.Profile (%q) must be %q, %q or %q", c.Profile, ProfileLAN, ProfileLocal, ProfileWAN)
	}
	if c.EventQueueSize < 1 {
		return bad("Config.EventQueueSize (%d) must be >= 1", c.EventQueueSize)
	}
	return c.validateTimings()
}

// validateStreams checks the fields Config.Streams depends on.
func (c *Config) validateStreams() error {
	if c.Streams == nil {
		return nil
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if c.BindPort == 0 {
		return bad("Config.BindPort must be the client port, not 0, when Config.Streams is set: gossip's UDP socket binds the same port number")
	}
	if a, ok := c.Streams.Addr().(*net.TCPAddr); ok && a.Port != c.BindPort {
		return bad("Config.Streams listens on port %d but Config.BindPort is %d: gossip shares the client port", a.Port, c.BindPort)
	}
	if a, err := netip.ParseAddr(c.BindAddr); err == nil && a.IsUnspecified() && c.AdvertiseAddr == "" {
		return bad("Config.AdvertiseAddr is required with Config.Streams when Config.BindAddr (%q) listens on every interface", c.BindAddr)
	}
	return nil
}

// validateTimings checks the knobs: none negative, and the resolved values
// consistent.
func (c *Config) validateTimings() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ProbeInterval", c.ProbeInterval}, {"ProbeTimeout", c.ProbeTimeout},
		{"GossipInterval", c.GossipInterval}, {"PushPullInterval", c.PushPullInterval},
		{"TCPTimeout", c.TCPTimeout}, {"ReconnectInterval", c.ReconnectInterval},
		{"ReconnectTimeout", c.ReconnectTimeout}, {"TombstoneTimeout", c.TombstoneTimeout},
		{"DeadNodeReclaimTime", c.DeadNodeReclaimTime}, {"LeavePropagateDelay", c.LeavePropagateDelay},
		{"RejoinInterval", c.RejoinInterval},
	} {
		if d.v < 0 {
			return bad("Config.%s (%s) must be >= 0 (0 takes the profile's value)", d.name, d.v)
		}
	}
	if c.SuspicionMult < 0 {
		return bad("Config.SuspicionMult (%d) must be >= 0 (0 takes the profile's value)", c.SuspicionMult)
	}
	if c.SuspicionMaxTimeoutMult < 0 {
		return bad("Config.SuspicionMaxTimeoutMult (%d) must be >= 0 (0 takes the profile's value)", c.SuspicionMaxTimeoutMult)
	}
	r := c.Resolved()
	if r.ProbeTimeout >= r.ProbeInterval {
		return bad("Config.ProbeTimeout (%s) must be below Config.ProbeInterval (%s)", r.ProbeTimeout, r.ProbeInterval)
	}
	if r.GossipInterval >= r.ProbeInterval*4 {
		return bad("Config.GossipInterval (%s) must be below 4x Config.ProbeInterval (%s): suspicions must spread faster than they time out", r.GossipInterval, r.ProbeInterval)
	}
	return nil
}

// cloneTags copies tags (never nil).
func cloneTags(tags map[string]string) map[string]string {
	out := make(map[string]string, len(tags))
	maps.Copy(out, tags)
	return out
}
