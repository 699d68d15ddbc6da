package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// serfEventBuffer is the capacity of the channel serf sends events on. The
// pump drains it at once; the buffer only absorbs bursts while the pump is
// descheduled (with a snapshot, serf drops an event it cannot hand over).
const serfEventBuffer = 4096

// Membership is this node's view of the cluster's gossip pool: one serf
// instance on memberlist. Start it, Join a seed, read Events(), and
// Shutdown (after Leave for a graceful exit). Its methods are safe for
// concurrent use.
type Membership struct {
	cfg  Config // resolved
	log  *slog.Logger
	serf *serf.Serf

	serfCh  chan serf.Event
	out     chan Event
	dropped atomic.Uint64

	tagsMu sync.Mutex // serializes SetTags (serf stores the map unlocked)

	seedsMu sync.Mutex
	seeds   []string // every address ever given to Join, in order

	stop         chan struct{} // closed by Shutdown: stops the rejoin loop
	done         chan struct{} // closed once serf is shut down: stops the pump
	shutdownOnce sync.Once
	shutdownErr  error
	wg           sync.WaitGroup
}

// QueryOptions narrows and bounds a Query.
type QueryOptions struct {
	// Nodes, when set, limits the members that answer to these names.
	Nodes []string
	// Tags, when set, limits the members that answer to those whose tag
	// matches each regular expression. Like serf's, the match is
	// unanchored: "web" matches "webserver"; write "^web$" for equality. A
	// missing tag is matched as "".
	Tags map[string]string
	// Timeout is how long responses are collected. 0 means serf's default,
	// GossipInterval * 16 * ceil(log10(N+1)).
	Timeout time.Duration
}

// QueryResponse is one member's answer to a Query.
type QueryResponse struct {
	From    string
	Payload []byte
}

// Start validates cfg and starts gossip: it binds the address and, when
// the snapshot names members, starts re-joining them in the background.
// Otherwise the member is alone until Join. With Config.Streams set, Start
// owns that listener even when it fails (it is closed then).
func Start(cfg Config) (_ *Membership, err error) {
	if cfg.Streams != nil {
		defer func() {
			if err != nil {
				_ = cfg.Streams.Close()
			}
		}()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.Resolved()
	cfg.Tags = cloneTags(cfg.Tags)
	cfg.SecretKey = slices.Clone(cfg.SecretKey)
	logger := cfg.Logger
	if logger == nil {
		logger = discardLogger()
	}
	logger = logger.With("node", cfg.NodeName)
	if cfg.SnapshotPath != "" {
		// serf.Create leaks goroutines when it fails after starting them
		// (its snapshot, its memberlist): everything that can fail is
		// tried here first.
		if err := checkSnapshot(cfg.SnapshotPath); err != nil {
			return nil, err
		}
	}
	m := &Membership{
		cfg:    cfg,
		log:    logger,
		serfCh: make(chan serf.Event, serfEventBuffer),
		out:    make(chan Event),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	tr, port, err := m.listen()
	if err != nil {
		return nil, err
	}
	s, err := serf.Create(m.serfConfig(tr, port))
	if err != nil {
		_ = tr.Shutdown()
		return nil, fmt.Errorf("membership: start %s: %w", cfg.NodeName, err)
	}
	m.serf = s
	m.wg.Add(2)
	go m.pump()
	go m.rejoinLoop()
	m.log.Info("membership: started", "addr", m.Addr().String(), "cluster", cfg.ClusterName,
		"profile", cfg.Profile, "encrypted", len(cfg.SecretKey) > 0, "snapshot", cfg.SnapshotPath)
	return m, nil
}

// checkSnapshot creates the snapshot's directory and checks that the file
// can be opened the way serf opens it.
func checkSnapshot(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("membership: snapshot directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("membership: snapshot: %w", err)
	}
	return f.Close()
}

// listen binds the gossip port, TCP and UDP (retrying a picked port that
// turns out to be taken for UDP, as memberlist does), and checks the
// advertise address, so that serf.Create does not fail on them. With
// Config.Streams it binds only UDP and takes streams from that listener.
// It returns the transport and the bound port.
func (m *Membership) listen() (memberlist.Transport, int, error) {
	c := &m.cfg
	if c.Streams != nil {
		return m.listenMux()
	}
	tries := 1
	if c.BindPort == 0 {
		tries = 10
	}
	var nt *memberlist.NetTransport
	var err error
	for range tries {
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{c.BindAddr}, BindPort: c.BindPort, Logger: libLogger(m.log),
		})
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, 0, fmt.Errorf("membership: listen on %s: %w",
			net.JoinHostPort(c.BindAddr, strconv.Itoa(c.BindPort)), err)
	}
	port := c.AdvertisePort
	if port == 0 {
		port = nt.GetAutoBindPort()
	}
	if _, _, err := nt.FinalAdvertiseAddr(c.AdvertiseAddr, port); err != nil {
		_ = nt.Shutdown()
		return nil, 0, fmt.Errorf("membership: advertise address (set Config.AdvertiseAddr): %w", err)
	}
	return nt, nt.GetAutoBindPort(), nil
}

// listenMux makes the transport of Config.Streams: UDP bound on the client
// port number, streams from the listener.
func (m *Membership) listenMux() (memberlist.Transport, int, error) {
	c := &m.cfg
	mt, err := newMuxTransport(c.BindAddr, c.BindPort, c.Streams, m.log)
	if err != nil {
		return nil, 0, err
	}
	if _, _, err := mt.FinalAdvertiseAddr(c.AdvertiseAddr, c.AdvertisePort); err != nil {
		_ = mt.Shutdown()
		return nil, 0, fmt.Errorf("membership: advertise address (set Config.AdvertiseAddr): %w", err)
	}
	return mt, mt.port(), nil
}

// serfConfig builds serf's and memberlist's configuration from m.cfg, on
// the transport listen made, bound on port.
func (m *Membership) serfConfig(tr memberlist.Transport, port int) *serf.Config {
	c, p := &m.cfg, profiles[m.cfg.Profile]
	lg := libLogger(m.log)

	ml := p.base()
	ml.Name = c.NodeName
	ml.Transport = tr
	ml.BindAddr, ml.BindPort = c.BindAddr, port
	ml.AdvertiseAddr, ml.AdvertisePort = c.AdvertiseAddr, c.AdvertisePort
	if ml.AdvertisePort == 0 {
		ml.AdvertisePort = ml.BindPort
	}
	ml.Label = c.label()
	if len(c.SecretKey) > 0 {
		ml.SecretKey = c.SecretKey
	}
	ml.ProbeInterval, ml.ProbeTimeout = c.ProbeInterval, c.ProbeTimeout
	ml.SuspicionMult, ml.SuspicionMaxTimeoutMult = c.SuspicionMult, c.SuspicionMaxTimeoutMult
	ml.GossipInterval, ml.PushPullInterval = c.GossipInterval, c.PushPullInterval
	ml.TCPTimeout = c.TCPTimeout
	ml.GossipToTheDeadTime = p.gossipToTheDead
	ml.RetransmitMult = p.retransmitMult
	ml.DeadNodeReclaimTime = c.DeadNodeReclaimTime
	ml.DNSConfigPath = "" // seeds by DNS name: the standard resolver only, not memberlist's extra DNS-over-TCP lookup
	ml.Logger, ml.LogOutput = lg, nil

	sc := serf.DefaultConfig()
	sc.NodeName = c.NodeName
	sc.Tags = cloneTags(c.Tags)
	sc.EventCh = m.serfCh
	sc.SnapshotPath = c.SnapshotPath
	sc.RejoinAfterLeave = c.RejoinAfterLeave
	sc.ReapInterval = p.reap
	sc.ReconnectInterval, sc.ReconnectTimeout = c.ReconnectInterval, c.ReconnectTimeout
	sc.TombstoneTimeout = c.TombstoneTimeout
	sc.LeavePropagateDelay = c.LeavePropagateDelay
	sc.EnableNameConflictResolution = true
	sc.MemberlistConfig = ml
	sc.Logger, sc.LogOutput = lg, nil
	return sc
}

// Name returns this member's name.
func (m *Membership) Name() string { return m.cfg.NodeName }

// Addr returns the address other members reach this one at (the bound
// port when BindPort was 0): the form Join and the rejoin loop use.
func (m *Membership) Addr() netip.AddrPort {
	ln := m.serf.Memberlist().LocalNode()
	a, _ := netip.AddrFromSlice(ln.Addr)
	return netip.AddrPortFrom(a.Unmap(), ln.Port)
}

// state maps serf's state to ErrLeft/ErrShutdown, or nil while alive.
func (m *Membership) state() error {
	switch m.serf.State() {
	case serf.SerfLeaving, serf.SerfLeft:
		return ErrLeft
	case serf.SerfShutdown:
		return ErrShutdown
	}
	return nil
}

// Join contacts the given members ("host:port", or "name/host:port") and
// merges their cluster into this one's view. It returns how many it
// reached; when at least one answered, failures of the others are only
// logged. Old user events are not replayed. The seeds are remembered:
// while any of them is not an alive member, Join is retried every
// RejoinInterval (even if this call failed), until Leave or Shutdown.
func (m *Membership) Join(seeds []string) (int, error) {
	if len(seeds) == 0 {
		return 0, fmt.Errorf("%w: no seeds given", ErrJoinFailed)
	}
	for _, s := range seeds {
		if _, _, err := splitSeed(s, m.cfg.BindPort); err != nil {
			return 0, fmt.Errorf("%w: seed %q: %w", ErrJoinFailed, s, err)
		}
	}
	m.seedsMu.Lock()
	for _, s := range seeds {
		if !slices.Contains(m.seeds, s) {
			m.seeds = append(m.seeds, s)
		}
	}
	m.seedsMu.Unlock()
	return m.join(seeds)
}

func (m *Membership) join(seeds []string) (int, error) {
	if err := m.state(); err != nil {
		return 0, err
	}
	n, err := m.serf.Join(seeds, true)
	if n == 0 {
		if serr := m.state(); serr != nil {
			return 0, serr
		}
		return 0, fmt.Errorf("%w: none of %v answered (down, wrong address, or another ClusterName or SecretKey): %w",
			ErrJoinFailed, seeds, flatten(err))
	}
	if err != nil {
		m.log.Warn("membership: joined, but some seeds failed", "joined", n, "seeds", seeds, "err", flatten(err))
	}
	return n, nil
}

// Leave announces a graceful departure: the others report MemberLeave, not
// MemberFailed. It blocks until the leave has spread (about
// LeavePropagateDelay). Call Shutdown right after: until then memberlist
// keeps answering probes and push/pulls, so a peer that missed the leave
// keeps the member "leaving", and serf's reconnect can even re-admit it.
// The rejoin loop stops re-joining at Leave.
func (m *Membership) Leave() error {
	if err := m.serf.Leave(); err != nil {
		if serr := m.state(); errors.Is(serr, ErrShutdown) {
			return serr
		}
		return fmt.Errorf("membership: leave: %w", err)
	}
	return nil
}

// RemoveFailed is serf's force-leave: it marks a failed member as left, so
// that every member reports MemberLeave for it and stops reconnecting to
// it. A member that is alive refutes it.
func (m *Membership) RemoveFailed(name string) error {
	if err := m.serf.RemoveFailedNode(name); err != nil {
		if serr := m.state(); errors.Is(serr, ErrShutdown) {
			return serr
		}
		return fmt.Errorf("membership: removing failed member %s: %w", name, err)
	}
	return nil
}

// Shutdown stops gossip, the rejoin loop and the event pump, and closes
// Events(). Without a prior Leave the others see a failure, as after a
// crash. It is safe to call more than once. It may wait for a re-join
// attempt in flight (TCPTimeout per unreachable seed).
func (m *Membership) Shutdown() error {
	m.shutdownOnce.Do(func() {
		close(m.stop)
		if err := m.serf.Shutdown(); err != nil {
			m.shutdownErr = fmt.Errorf("membership: shutdown: %w", err)
		}
		close(m.done)
		m.wg.Wait()
		m.log.Info("membership: shut down")
	})
	return m.shutdownErr
}

// Events returns the event stream: member joins, leaves, failures, tag
// updates and reaps, user events and queries, in serf's order. It is closed
// after Shutdown. A consumer that falls EventQueueSize events behind loses
// the oldest ones (DroppedEvents counts them): after a drop, reconcile with
// Members.
func (m *Membership) Events() <-chan Event { return m.out }

// DroppedEvents returns how many events were dropped because the consumer
// of Events() fell behind.
func (m *Membership) DroppedEvents() uint64 { return m.dropped.Load() }

// Members returns every member this one knows, sorted by name, including
// failed and left ones until they are reaped.
func (m *Membership) Members() []Member {
	sms := m.serf.Members()
	out := make([]Member, len(sms))
	for i, sm := range sms {
		out[i] = fromSerfMember(sm)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// LocalMember returns this member as the cluster sees it.
func (m *Membership) LocalMember() Member {
	return fromSerfMember(m.serf.LocalMember())
}

// SetTags replaces this member's tags (all of them) and gossips them: the
// others report MemberUpdate. It fails with ErrTagsTooLarge if they do not
// fit MaxTagsSize, changing nothing.
func (m *Membership) SetTags(tags map[string]string) error {
	tags = cloneTags(tags)
	if err := checkTags("tags", tags, false); err != nil {
		return err
	}
	if err := m.state(); err != nil {
		return err
	}
	m.tagsMu.Lock()
	defer m.tagsMu.Unlock()
	if err := m.serf.SetTags(tags); err != nil {
		return fmt.Errorf("membership: set tags: %w", err)
	}
	return nil
}

// checkName refuses an empty name or serf's reserved prefix.
func checkName(what, name string) error {
	if name == "" {
		return fmt.Errorf("membership: %s name is empty", what)
	}
	if strings.HasPrefix(name, serf.InternalQueryPrefix) {
		return fmt.Errorf("%w: %s %q", ErrReservedName, what, name)
	}
	return nil
}

// UserEvent broadcasts a user event to every member, this one included.
// len(name)+len(payload) must not exceed MaxUserEventSize. Delivery is best
// effort (gossip), deduplicated, in no guaranteed order. coalesce is
// passed on in Event.Coalesce, meaning "only the latest of a burst of
// events of this name matters"; this package delivers every event and
// leaves coalescing to the consumer.
func (m *Membership) UserEvent(name string, payload []byte, coalesce bool) error {
	if err := checkName("user event", name); err != nil {
		return err
	}
	if n := len(name) + len(payload); n > MaxUserEventSize {
		return fmt.Errorf("%w: user event %q is %d bytes (name+payload), over %d", ErrTooLarge, name, n, MaxUserEventSize)
	}
	if err := m.state(); err != nil {
		return err
	}
	if err := m.serf.UserEvent(name, payload, coalesce); err != nil {
		if strings.Contains(err.Error(), "exceeds") {
			return fmt.Errorf("%w: user event %q: %w", ErrTooLarge, name, err)
		}
		return fmt.Errorf("membership: user event %q: %w", name, err)
	}
	return nil
}

// Query asks the members selected by opts (all by default, this one
// included) and collects their responses until the timeout, or until ctx
// ends (then it returns what it has with ctx's error). Members answer from
// their Events() consumer with Event.Respond; one that does not answer in
// time is simply missing from the result.
func (m *Membership) Query(ctx context.Context, name string, payload []byte, opts QueryOptions) ([]QueryResponse, error) {
	if err := checkName("query", name); err != nil {
		return nil, err
	}
	for tag, expr := range opts.Tags {
		if _, err := regexp.Compile(expr); err != nil {
			return nil, fmt.Errorf("%w: tag %q: %w", ErrBadFilter, tag, err)
		}
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("membership: query timeout (%s) must be >= 0", opts.Timeout)
	}
	if err := m.state(); err != nil {
		return nil, err
	}
	resp, err := m.serf.Query(name, payload, &serf.QueryParam{
		FilterNodes: slices.Clone(opts.Nodes), FilterTags: cloneTags(opts.Tags), Timeout: opts.Timeout,
	})
	if err != nil {
		if strings.Contains(err.Error(), "exceeds limit") {
			return nil, fmt.Errorf("%w: query %q: %w", ErrTooLarge, name, err)
		}
		return nil, fmt.Errorf("membership: query %q: %w", name, err)
	}
	var out []QueryResponse
	for {
		select {
		case r, ok := <-resp.ResponseCh():
			if !ok {
				return out, nil
			}
			out = append(out, QueryResponse{From: r.From, Payload: r.Payload})
		case <-ctx.Done():
			resp.Close()
			return out, fmt.Errorf("membership: query %q: %w", name, ctx.Err())
		case <-m.done:
			resp.Close()
			return out, ErrShutdown
		}
	}
}

// flatErr gives a multi-error (memberlist's go-multierror: "1 error
// occurred:\n\t* ...") a one-line text, keeping it for errors.Is/As.
type flatErr struct {
	text string
	err  error
}

func (e *flatErr) Error() string { return e.text }
func (e *flatErr) Unwrap() error { return e.err }

// flatten returns err with its wrapped errors' texts joined by "; " when
// it is a multi-error, else err itself.
func flatten(err error) error {
	me, ok := err.(interface{ WrappedErrors() []error })
	if !ok {
		return err
	}
	var parts []string
	for _, e := range me.WrappedErrors() {
		parts = append(parts, e.Error())
	}
	return &flatErr{text: strings.Join(parts, "; "), err: err}
}
