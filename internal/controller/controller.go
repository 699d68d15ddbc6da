package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sonae-kv/sonae/internal/clock"
	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/routing"
)

// Peer is a node as gossip sees it.
type Peer struct {
	ID   routing.NodeID
	Addr string // host:port
	// Status is alive, leaving, left or failed.
	Status string
}

// RaftServer is one member of the Raft configuration.
type RaftServer struct {
	ID    string
	Voter bool
}

// Raft is what the controller needs of the consensus node.
type Raft interface {
	IsLeader() bool
	AddVoter(ctx context.Context, id, addr string) error
	AddNonvoter(ctx context.Context, id, addr string) error
	RemoveServer(ctx context.Context, id string) error
	DemoteVoter(ctx context.Context, id string) error
	Servers() ([]RaftServer, error)
}

// Config configures a controller.
type Config struct {
	// Self is this node; Settings the cluster it creates if the metadata
	// is empty when it first leads.
	Self     meta.Member
	Settings meta.Settings
	// MaxVoters is how many members vote in Raft (1..5).
	MaxVoters int
	// Interval is how often the leader reconciles without being nudged.
	Interval time.Duration
	// MaxMoves bounds the vnodes being moved at once.
	MaxMoves int
	// ReadLease is the primaries' read lease: an old primary that cannot
	// confirm a fence is waited out for twice this long.
	ReadLease time.Duration
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Self.ID == "" || c.Self.Addr == "":
		return errors.New("controller: Config.Self needs ID and Addr")
	case c.MaxVoters < 1 || c.MaxVoters > 5:
		return fmt.Errorf("controller: Config.MaxVoters %d is outside 1..5", c.MaxVoters)
	case c.Interval <= 0:
		return fmt.Errorf("controller: Config.Interval %s must be positive", c.Interval)
	case c.MaxMoves < 1:
		return fmt.Errorf("controller: Config.MaxMoves %d must be at least 1", c.MaxMoves)
	case c.ReadLease <= 0:
		return fmt.Errorf("controller: Config.ReadLease %s must be positive", c.ReadLease)
	}
	return nil
}

// Deps are the controller's side effects.
type Deps struct {
	State func() *meta.State
	// Apply commits a command; only called while this node leads.
	Apply func(ctx context.Context, c meta.Command) error
	Raft  Raft
	// Peers lists the members gossip knows, this cluster's only.
	Peers func() []Peer
	// Nudge fires when something worth reconciling for happened (a
	// member event, a leadership change).
	Nudge <-chan struct{}
	// Changed fires when the metadata changes (a replica caught up, so a
	// move can take its next step).
	Changed func() <-chan struct{}
	// WaitApplied waits until node's metadata has applied index.
	WaitApplied func(ctx context.Context, node routing.NodeID, index uint64) error
	// Probe asks the node at addr directly whether it is up (the
	// confirmation of a failure gossip reports).
	Probe func(ctx context.Context, addr string) error
	// LeaseBound is when node's last read lease from this leader surely
	// ends; WithholdLease stops (or resumes) granting it leases.
	LeaseBound    func(node routing.NodeID) time.Time
	WithholdLease func(node routing.NodeID, withhold bool)
	Clock         clock.Clock
	Log           *slog.Logger
}

// Controller is the leader's decision loop.
type Controller struct {
	cfg Config
	d   Deps
	// failedSince is when gossip first reported each member failed.
	failedSince map[routing.NodeID]time.Time
	// joined holds the nodes that joined (or came back) since the table
	// was last balanced: their rebalancing is a join operation.
	joined map[routing.NodeID]bool
	wake   chan struct{}

	mu       sync.Mutex
	wakeAt   time.Time
	wakeTime *time.Timer
}

// New returns a controller.
func New(cfg Config, d Deps) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Clock == nil {
		d.Clock = clock.Real{}
	}
	return &Controller{cfg: cfg, d: d, failedSince: map[routing.NodeID]time.Time{},
		joined: map[routing.NodeID]bool{}, wake: make(chan struct{}, 1)}, nil
}

func (c *Controller) now() time.Time { return c.d.Clock.Now() }

// retryIn makes the loop reconcile again after d (a grace period or a
// delay runs out), without waiting for the next tick.
func (c *Controller) retryIn(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	at := time.Now().Add(d)
	if c.wakeTime != nil && !c.wakeAt.After(at) && time.Until(c.wakeAt) > 0 {
		return // an earlier wake-up is set already
	}
	if c.wakeTime != nil {
		c.wakeTime.Stop()
	}
	c.wakeAt = at
	c.wakeTime = time.AfterFunc(d, func() {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	})
}

func msDuration(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

// Run reconciles while this node leads, until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		var changed <-chan struct{}
		if c.d.Raft.IsLeader() {
			if c.d.Changed != nil {
				changed = c.d.Changed() // before reconciling, to miss nothing
			}
			if err := c.Reconcile(ctx); err != nil && ctx.Err() == nil {
				c.d.Log.Info("reconcile did not finish; will retry", "error", err)
			}
		}
		select {
		case <-ctx.Done():
			c.mu.Lock()
			if c.wakeTime != nil {
				c.wakeTime.Stop()
			}
			c.mu.Unlock()
			return
		case <-t.C:
		case <-c.d.Nudge:
		case <-changed:
		case <-c.wake:
		}
	}
}

// Reconcile brings the metadata in line with what gossip sees. Each step is
// idempotent.
func (c *Controller) Reconcile(ctx context.Context) error {
	st := c.d.State()
	if !st.Initialized() {
		self := c.cfg.Self
		self.Voter = true
		if err := c.d.Apply(ctx, meta.Command{Op: meta.OpInit, Settings: &c.cfg.Settings, Member: &self}); err != nil && !errors.Is(err, meta.ErrAlreadyInitialized) {
			return fmt.Errorf("creating the cluster: %w", err)
		}
		c.d.Log.Info("cluster created", "name", c.cfg.Settings.Name, "vnodes", routing.VnodeCount(c.cfg.Settings.DivBits),
			"redundancy", c.cfg.Settings.Redundancy)
	}
	peers := c.d.Peers()
	newly, err := c.admit(ctx, peers)
	if err != nil {
		return err
	}
	if err := c.removeLeft(ctx, peers); err != nil {
		return err
	}
	if err := c.failOver(ctx, peers); err != nil {
		return err
	}
	if err := c.welcomeBack(ctx, peers); err != nil {
		return err
	}
	if err := c.keepVoters(ctx, peers); err != nil {
		return err
	}
	if err := c.handleLost(ctx); err != nil {
		return err
	}
	if len(newly) > 0 {
		if err := c.fillJoined(ctx, newly); err != nil {
			return err
		}
	}
	if err := c.recoverShort(ctx, peers); err != nil {
		return err
	}
	return c.rebalance(ctx, peers)
}

// admit adds alive peers that are not members yet: to Raft first (so the
// node receives the log), then to the member list. It returns the new
// members.
func (c *Controller) admit(ctx context.Context, peers []Peer) (newly []routing.NodeID, _ error) {
	for _, p := range peers {
		if p.Status != "alive" {
			continue
		}
		st := c.d.State()
		if m, ok := st.Member(p.ID); ok && m.Addr == p.Addr {
			continue
		}
		voter := st.Voters() < c.cfg.MaxVoters
		var err error
		if voter {
			err = c.d.Raft.AddVoter(ctx, string(p.ID), p.Addr)
		} else {
			err = c.d.Raft.AddNonvoter(ctx, string(p.ID), p.Addr)
		}
		if err != nil {
			return newly, fmt.Errorf("adding %s to raft: %w", p.ID, err)
		}
		_, known := st.Member(p.ID)
		m := meta.Member{ID: p.ID, Addr: p.Addr, Voter: voter}
		if err := c.d.Apply(ctx, meta.Command{Op: meta.OpAddMember, Member: &m, Time: c.now().UnixMilli()}); err != nil {
			return newly, fmt.Errorf("adding member %s: %w", p.ID, err)
		}
		if !known {
			newly = append(newly, p.ID)
			c.joined[p.ID] = true
		}
		c.d.Log.Info("node joined the cluster", "node", p.ID, "addr", p.Addr, "voter", voter)
	}
	return newly, nil
}

// removeLeft removes members that left gracefully: from the member list
// (their vnodes' in-sync secondaries take over) and from Raft. A Raft
// server that is no longer a member and that gossip reports left, or does
// not know at all, is removed from Raft too: that finishes a removal cut
// short between its two steps. (A joining node is in Raft before it is a
// member, but gossip knows it alive.)
func (c *Controller) removeLeft(ctx context.Context, peers []Peer) error {
	if err := c.removeStaleRaftServers(ctx, peers); err != nil {
		return err
	}
	st := c.d.State()
	for _, p := range peers {
		if p.Status != "left" || p.ID == c.cfg.Self.ID {
			continue
		}
		if _, ok := st.Member(p.ID); !ok {
			continue
		}
		if err := c.d.Apply(ctx, meta.Command{Op: meta.OpRemoveMember, Node: p.ID, Time: c.now().UnixMilli()}); err != nil {
			return fmt.Errorf("removing member %s: %w", p.ID, err)
		}
		if err := c.d.Raft.RemoveServer(ctx, string(p.ID)); err != nil {
			return fmt.Errorf("removing %s from raft: %w", p.ID, err)
		}
		c.d.Log.Info("node left the cluster", "node", p.ID)
	}
	return nil
}

func (c *Controller) removeStaleRaftServers(ctx context.Context, peers []Peer) error {
	servers, err := c.d.Raft.Servers()
	if err != nil {
		return fmt.Errorf("reading the raft configuration: %w", err)
	}
	status := map[routing.NodeID]string{}
	for _, p := range peers {
		status[p.ID] = p.Status
	}
	st := c.d.State()
	for _, sv := range servers {
		id := routing.NodeID(sv.ID)
		if id == c.cfg.Self.ID {
			continue
		}
		if _, member := st.Member(id); member {
			continue
		}
		if s, known := status[id]; known && s != "left" {
			continue
		}
		if err := c.d.Raft.RemoveServer(ctx, sv.ID); err != nil {
			return fmt.Errorf("removing %s from raft: %w", id, err)
		}
		c.d.Log.Info("stale raft server removed", "node", id)
	}
	return nil
}

// keepVoters promotes alive non-voting members while there are fewer
// voters than wanted, so that a voter that left is replaced.
func (c *Controller) keepVoters(ctx context.Context, peers []Peer) error {
	alive := aliveSet(peers)
	if err := c.demoteFailedVoters(ctx, alive); err != nil {
		return err
	}
	st := c.d.State()
	for _, m := range st.Members {
		if c.d.State().Voters() >= c.cfg.MaxVoters {
			return nil
		}
		if m.Voter || m.Failed || !alive[m.ID] {
			continue
		}
		if err := c.d.Raft.AddVoter(ctx, string(m.ID), m.Addr); err != nil {
			return fmt.Errorf("promoting %s to voter: %w", m.ID, err)
		}
		if err := c.d.Apply(ctx, meta.Command{Op: meta.OpSetVoter, Node: m.ID, Voter: true}); err != nil {
			return err
		}
		c.d.Log.Info("member promoted to voter", "node", m.ID)
	}
	return nil
}

func aliveSet(peers []Peer) map[routing.NodeID]bool {
	alive := map[routing.NodeID]bool{}
	for _, p := range peers {
		if p.Status == "alive" {
			alive[p.ID] = true
		}
	}
	return alive
}

// demoteFailedVoters turns failed voters into non-voters when an alive
// non-voter can take their place, so that the quorum counts only nodes
// that can answer: three voters with one failed tolerate no further
// failure, three alive ones tolerate one.
func (c *Controller) demoteFailedVoters(ctx context.Context, alive map[routing.NodeID]bool) error {
	st := c.d.State()
	spare := 0
	for _, m := range st.Members {
		if !m.Voter && !m.Failed && alive[m.ID] {
			spare++
		}
	}
	for _, m := range st.Members {
		if spare == 0 {
			return nil
		}
		if !m.Voter || !m.Failed || m.ID == c.cfg.Self.ID {
			continue
		}
		if err := c.d.Raft.DemoteVoter(ctx, string(m.ID)); err != nil {
			return fmt.Errorf("demoting failed voter %s: %w", m.ID, err)
		}
		if err := c.d.Apply(ctx, meta.Command{Op: meta.OpSetVoter, Node: m.ID, Voter: false}); err != nil {
			return err
		}
		spare--
		c.d.Log.Info("failed voter demoted; an alive member takes its vote", "node", m.ID)
	}
	return nil
}
