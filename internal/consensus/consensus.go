package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// StoreFile is the name of the BoltStore file in Config.Dir.
const StoreFile = "raft.db"

// Server is one member of the raft configuration.
type Server struct {
	ID    string
	Addr  string // host:port its raft transport is reached at
	Voter bool   // false: a non-voter, which replicates but does not vote
}

// Node is one raft participant: raft itself, its BoltStore, its snapshot
// store and the transport it was given. All methods are safe for concurrent
// use. Methods that wait take a context; when it ends first they return its
// error and the operation's outcome is unknown (it may still commit).
type Node struct {
	cfg    Config
	log    *slog.Logger
	raft   *raft.Raft
	store  *BoltStore
	trans  raft.Transport
	leader *leadershipHub

	notifyCh  chan bool     // raft's Config.NotifyCh, drained by drain()
	stopDrain chan struct{} // closed after raft has shut down
	drained   chan struct{} // closed when drain() returns

	shutdownCh   chan struct{} // closed at the start of Shutdown
	shutdownOnce sync.Once
	shutdownErr  error
}

// Open starts a raft node on cfg.Dir with the given FSM and transport. It
// restores the latest snapshot and the log, so a restarted node resumes
// where it stopped; a new node must then be bootstrapped (Bootstrap) or
// added by the leader (AddVoter, AddNonvoter).
//
// Open takes ownership of transport: Shutdown closes it, and so does Open
// when it fails. fsm is called by raft as raft.FSM documents (Apply and
// Restore never concurrently with each other).
func Open(cfg Config, fsm raft.FSM, transport raft.Transport) (n *Node, err error) {
	defer func() {
		if err != nil {
			closeTransport(transport)
		}
	}()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkAddr(cfg.AdvertiseAddr(), string(transport.LocalAddr())); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("raft_id", cfg.ID)
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("consensus: create Config.Dir: %w", err)
	}
	so := DefaultStoreOptions()
	so.Timeout = cfg.LockTimeout
	store, err := OpenStore(filepath.Join(cfg.Dir, StoreFile), so)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = store.Close()
		}
	}()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, cfg.SnapshotRetain, NewHCLogger(logger, "raft-snap"))
	if err != nil {
		return nil, fmt.Errorf("consensus: snapshot store in %s: %w", cfg.Dir, err)
	}

	n = &Node{
		cfg:        cfg,
		log:        logger,
		store:      store,
		trans:      transport,
		leader:     newLeadershipHub(),
		notifyCh:   make(chan bool, 8),
		stopDrain:  make(chan struct{}),
		drained:    make(chan struct{}),
		shutdownCh: make(chan struct{}),
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	rc.NotifyCh = n.notifyCh
	// A removed node stays up as an outsider rather than shutting its raft
	// down behind the owner's back (raft then also skips closing the
	// transport).
	rc.ShutdownOnRemove = false
	rc.Logger = NewHCLogger(logger, "raft")

	go n.drain()
	r, err := raft.NewRaft(rc, fsm, store, store, snaps, transport)
	if err != nil {
		close(n.stopDrain)
		<-n.drained
		return nil, fmt.Errorf("consensus: start raft: %w", err)
	}
	n.raft = r
	logger.Info("raft node open", "dir", cfg.Dir, "addr", transport.LocalAddr(), "voter", cfg.Voter)
	return n, nil
}

// checkAddr makes sure the transport advertises what the config says, a 0
// port in the config matching any port.
func checkAddr(want, got string) error {
	wh, wp, err := net.SplitHostPort(want)
	if err != nil {
		return err
	}
	gh, gp, err := net.SplitHostPort(got)
	if err == nil && wh == gh && (wp == gp || wp == "0") {
		return nil
	}
	return fmt.Errorf("consensus: the transport advertises %q but the config says %q (Config.Advertise or Config.BindAddr)", got, want)
}

// closeTransport closes t completely. raft's NetworkTransport.Close leaves
// its pooled outbound connections open (only CloseStreams closes them), and
// the peers' handlers for them blocked in a read.
func closeTransport(t raft.Transport) {
	if c, ok := t.(raft.WithClose); ok {
		_ = c.Close()
	}
	if c, ok := t.(interface{ CloseStreams() }); ok {
		c.CloseStreams()
	}
}

// drain empties raft's NotifyCh as soon as raft writes it (raft's main loop
// blocks on that channel otherwise) and hands each value to the hub, which
// never blocks.
func (n *Node) drain() {
	defer close(n.drained)
	for {
		select {
		case v := <-n.notifyCh:
			n.log.Info("leadership changed", "leader", v)
			n.leader.publish(v)
		case <-n.stopDrain:
			for {
				select {
				case v := <-n.notifyCh:
					n.leader.publish(v)
				default:
					return
				}
			}
		}
	}
}

// ID returns Config.ID.
func (n *Node) ID() string { return n.cfg.ID }

// Addr returns the address the transport advertises.
func (n *Node) Addr() string { return string(n.trans.LocalAddr()) }

// Bootstrap makes this node start a new cluster whose configuration is
// servers. It must run once, on one voter of a brand-new cluster; servers
// must list this node as a voter. With no servers, the cluster is this node
// alone (grow it with AddVoter). On a node that already has raft state
// (every restart) it returns ErrAlreadyBootstrapped, which is safe to
// ignore.
func (n *Node) Bootstrap(servers ...Server) error {
	if !n.cfg.Voter {
		return fmt.Errorf("%w: node %s has Config.Voter false and cannot bootstrap a cluster", ErrNotVoter, n.cfg.ID)
	}
	if n.isShutdown() {
		return ErrShutdown
	}
	if len(servers) == 0 {
		servers = []Server{{ID: n.cfg.ID, Addr: n.Addr(), Voter: true}}
	}
	conf := raft.Configuration{}
	self := false
	for _, s := range servers {
		suffrage := raft.Nonvoter
		if s.Voter {
			suffrage = raft.Voter
		}
		self = self || (s.ID == n.cfg.ID && s.Voter)
		conf.Servers = append(conf.Servers, raft.Server{
			ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.Addr), Suffrage: suffrage,
		})
	}
	if !self {
		return fmt.Errorf("consensus: Bootstrap: the servers must list this node (%s) as a voter", n.cfg.ID)
	}
	err := n.wait(context.Background(), n.raft.BootstrapCluster(conf))
	if err != nil && !errors.Is(err, ErrAlreadyBootstrapped) && !errors.Is(err, ErrShutdown) {
		return fmt.Errorf("consensus: bootstrap: %w", err)
	}
	return err
}

// Apply proposes cmd and waits until it is committed and applied to this
// node's FSM, returning what the FSM's Apply returned. Only the leader
// accepts commands (ErrNotLeader otherwise). If the FSM returned an error
// value, Apply returns it as its error: the entry is then committed and was
// rejected the same way by every node's FSM. ErrLeadershipLost and
// ErrShutdown leave the outcome unknown.
func (n *Node) Apply(ctx context.Context, cmd []byte) (any, error) {
	timeout, err := n.enqueueTimeout(ctx)
	if err != nil {
		return nil, err
	}
	f := n.raft.Apply(cmd, timeout)
	if err := n.wait(ctx, f); err != nil {
		return nil, err
	}
	// Response is valid only now that Error has returned.
	resp := f.Response()
	if err, ok := resp.(error); ok {
		return nil, err
	}
	return resp, nil
}

// AddVoter adds (or promotes) a voting member; leader only. It returns once
// the new configuration is committed; the server then catches up on its
// own.
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	timeout, err := n.enqueueTimeout(ctx)
	if err != nil {
		return err
	}
	return n.wait(ctx, n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout))
}

// AddNonvoter adds a member that receives the log but does not vote;
// leader only. Adding an existing voter this way does not demote it.
func (n *Node) AddNonvoter(ctx context.Context, id, addr string) error {
	timeout, err := n.enqueueTimeout(ctx)
	if err != nil {
		return err
	}
	return n.wait(ctx, n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout))
}

// RemoveServer removes a member (voter or not); leader only. A leader may
// remove itself: it then steps down once the change is committed.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	timeout, err := n.enqueueTimeout(ctx)
	if err != nil {
		return err
	}
	return n.wait(ctx, n.raft.RemoveServer(raft.ServerID(id), 0, timeout))
}

// Leader returns the current leader's id and address as this node knows
// them, or empty strings when there is none.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// SinceLeaderContact returns how long ago this node last heard from the
// leader: 0 on the leader itself, and a very long time when it never has.
// A follower cut off from the leader sees it grow; the read lease of
// vnode primaries is built on it.
func (n *Node) SinceLeaderContact() time.Duration {
	if n.raft.State() == raft.Leader {
		return 0
	}
	t := n.raft.LastContact()
	if t.IsZero() {
		return time.Duration(math.MaxInt64)
	}
	return time.Since(t)
}

// CommitIndex returns the latest index this node knows to be committed (on
// a follower: as of its last contact with the leader).
func (n *Node) CommitIndex() uint64 { return n.raft.CommitIndex() }

// AppliedIndex returns the index of the last entry applied to the FSM.
func (n *Node) AppliedIndex() uint64 { return n.raft.AppliedIndex() }

// IsLeader reports whether this node is the leader right now. A true
// answer may already be stale; VerifyLeader checks with a quorum.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// VerifyLeader confirms with a quorum that this node is still the leader,
// so that a read of the FSM after it is not stale (ErrNotLeader or
// ErrLeadershipLost otherwise).
func (n *Node) VerifyLeader(ctx context.Context) error {
	if _, err := n.enqueueTimeout(ctx); err != nil {
		return err
	}
	return n.wait(ctx, n.raft.VerifyLeader())
}

// Barrier waits until every entry committed before it has been applied to
// this node's FSM; leader only. A new leader calls it before trusting its
// FSM.
func (n *Node) Barrier(ctx context.Context) error {
	timeout, err := n.enqueueTimeout(ctx)
	if err != nil {
		return err
	}
	return n.wait(ctx, n.raft.Barrier(timeout))
}

// Snapshot takes a snapshot now and compacts the log, down to
// Config.TrailingLogs entries. ErrNothingToSnapshot means nothing was
// applied since the last one.
func (n *Node) Snapshot(ctx context.Context) error {
	if _, err := n.enqueueTimeout(ctx); err != nil {
		return err
	}
	return n.wait(ctx, n.raft.Snapshot())
}

// WatchLeadership returns a channel that holds this node's current
// leadership state and then the latest one after every change. It never
// holds up raft: a reader that falls behind sees only the newest value (see
// Leadership.Seq). cancel stops the watch and closes the channel; Shutdown
// closes it too, after a final IsLeader=false value.
func (n *Node) WatchLeadership() (ch <-chan Leadership, cancel func()) {
	return n.leader.watch()
}

// Leadership returns the latest leadership observation (what
// WatchLeadership delivers last).
func (n *Node) Leadership() Leadership { return n.leader.current() }

// DemoteVoter makes a voter a non-voter; leader only.
func (n *Node) DemoteVoter(ctx context.Context, id string) error {
	timeout, err := n.enqueueTimeout(ctx)
	if err != nil {
		return err
	}
	return n.wait(ctx, n.raft.DemoteVoter(raft.ServerID(id), 0, timeout))
}

// TransferLeadership asks raft to hand leadership to another voter (used
// before a graceful leave of the leader).
func (n *Node) TransferLeadership(ctx context.Context) error {
	return n.wait(ctx, n.raft.LeadershipTransfer())
}

// Servers returns the latest cluster configuration (possibly not yet
// committed), in raft's order.
func (n *Node) Servers() ([]Server, error) {
	f := n.raft.GetConfiguration() // answered without the main loop
	if err := f.Error(); err != nil {
		return nil, n.translate(err)
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// Stats is a snapshot of a Node's raft state, for status output and tests.
type Stats struct {
	ID, Addr             string
	State                string // Follower, Candidate, Leader or Shutdown
	Term                 uint64
	LeaderID, LeaderAddr string
	// FirstIndex and LastIndex bound the log held in the BoltStore;
	// FirstIndex moves up when a snapshot compacts the log.
	FirstIndex, LastIndex uint64
	CommitIndex           uint64
	AppliedIndex          uint64 // last entry applied to the FSM
	LastSnapshotIndex     uint64 // 0 before the first snapshot
	// LastContact is when a follower last heard from the leader (zero if
	// never); it is the zero time on the leader itself.
	LastContact time.Time
	// Voters and Nonvoters count the latest configuration's members.
	Voters, Nonvoters int
}

// Stats returns the node's current raft state.
func (n *Node) Stats() Stats {
	s := Stats{
		ID: n.cfg.ID, Addr: n.Addr(), State: n.raft.State().String(),
		Term: n.raft.CurrentTerm(), LastIndex: n.raft.LastIndex(),
		CommitIndex: n.raft.CommitIndex(), AppliedIndex: n.raft.AppliedIndex(),
	}
	s.LeaderID, s.LeaderAddr = n.Leader()
	if first, err := n.store.FirstIndex(); err == nil {
		s.FirstIndex = first
	}
	if s.State != raft.Leader.String() {
		s.LastContact = n.raft.LastContact()
	}
	rs := n.raft.Stats()
	s.LastSnapshotIndex, _ = strconv.ParseUint(rs["last_snapshot_index"], 10, 64)
	if servers, err := n.Servers(); err == nil {
		for _, sv := range servers {
			if sv.Voter {
				s.Voters++
			} else {
				s.Nonvoters++
			}
		}
	}
	return s
}

// Shutdown stops raft, closes the transport, the watchers' channels and the
// store. Waits in progress return ErrShutdown. It is idempotent; later
// calls return the first call's result.
func (n *Node) Shutdown() error {
	n.shutdownOnce.Do(func() {
		close(n.shutdownCh)
		err := n.raft.Shutdown().Error()
		// raft closes the transport only on its first Shutdown future; be
		// sure (both raft transports' Close are idempotent).
		closeTransport(n.trans)
		close(n.stopDrain)
		<-n.drained
		if n.leader.current().IsLeader {
			n.leader.publish(false)
		}
		n.leader.close()
		n.shutdownErr = errors.Join(err, n.store.Close())
		n.log.Info("raft node shut down")
	})
	return n.shutdownErr
}

// isShutdown reports whether Shutdown has started. Methods check it before
// calling raft: a shut-down raft accepts some requests into buffered
// channels (VerifyLeader's) and never answers them.
func (n *Node) isShutdown() bool {
	select {
	case <-n.shutdownCh:
		return true
	default:
		return false
	}
}

// enqueueTimeout turns ctx's deadline into raft's enqueue timeout (0 =
// none), or returns ErrShutdown, or ctx's error when it is already over.
func (n *Node) enqueueTimeout(ctx context.Context) (time.Duration, error) {
	if n.isShutdown() {
		return 0, ErrShutdown
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	dl, ok := ctx.Deadline()
	if !ok {
		return 0, nil
	}
	d := time.Until(dl)
	if d <= 0 {
		return 0, context.DeadlineExceeded
	}
	return d, nil
}

// wait waits for a raft future, the context or Shutdown, whichever comes
// first. raft never resolves a future that was already queued for the FSM
// when it shut down, so waiting on Shutdown is what keeps callers from
// hanging; the helper goroutine then stays parked on that future.
func (n *Node) wait(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return n.translate(err)
	case <-ctx.Done():
		return fmt.Errorf("consensus: stopped waiting, outcome unknown: %w", ctx.Err())
	case <-n.shutdownCh:
		return ErrShutdown
	}
}
