package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sonae-kv/sonae/internal/config"
	"github.com/sonae-kv/sonae/internal/consensus"
	"github.com/sonae-kv/sonae/internal/controller"
	"github.com/sonae-kv/sonae/internal/membership"
	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/netmux"
	"github.com/sonae-kv/sonae/internal/replication"
	"github.com/sonae-kv/sonae/internal/routing"
)

// Gossip tags every node sets: the cluster name (so foreign members are
// ignored), the node id and its address.
const (
	tagCluster = "cluster"
	tagID      = "id"
	tagAddr    = "addr"
	// tagRole is serf agent's role tag (SERF_SELF_ROLE for handlers).
	tagRole = "role"
)

// Errors of joining.
var (
	// ErrWrongCluster: the seed given with --join belongs to a cluster
	// with another name.
	ErrWrongCluster = errors.New("the seed is in another cluster")
	// ErrIdentity: the data directory belongs to another node id.
	ErrIdentity = errors.New("the data directory belongs to another node")
)

// cluster is a node's cluster machinery: Raft with the metadata FSM,
// gossip, the data path and the controller.
type cluster struct {
	self   routing.NodeID
	addr   string // advertised host:port
	cfg    config.Config
	log    *slog.Logger
	mux    *netmux.Mux
	fsm    *meta.FSM
	raft   *consensus.Node
	gossip *membership.Membership
	hooks  *gossipHooks
	rep    *replication.Replicator
	nudge  chan struct{}
	ready  chan struct{}
	lease  leases
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// identity is what the data directory remembers of its node.
type identity struct {
	ID      string `json:"id"`
	Cluster string `json:"cluster"`
}

const identityFile = "node.json"

// checkIdentity refuses a data directory of another node and records this
// node's identity in a new one. It reports whether Raft state exists.
func checkIdentity(cfg *config.Config) (restart bool, err error) {
	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return false, fmt.Errorf("data: %w", err)
	}
	path := filepath.Join(cfg.Data, identityFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		b, _ = json.Marshal(identity{ID: cfg.NodeID(), Cluster: cfg.Name})
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return false, fmt.Errorf("data: %w", err)
		}
	case err != nil:
		return false, fmt.Errorf("data: %w", err)
	default:
		var id identity
		if err := json.Unmarshal(b, &id); err != nil {
			return false, fmt.Errorf("data: %s: %w", path, err)
		}
		if id.ID != cfg.NodeID() {
			return false, fmt.Errorf("%w: %s holds node %s, but this node is %s (same --addr/--advertise and --port, or a new --data)",
				ErrIdentity, cfg.Data, id.ID, cfg.NodeID())
		}
		if id.Cluster != cfg.Name {
			return false, fmt.Errorf("%w: %s belongs to cluster %q, but --name is %q", ErrIdentity, cfg.Data, id.Cluster, cfg.Name)
		}
	}
	_, err = os.Stat(filepath.Join(cfg.Data, "raft", consensus.StoreFile))
	return err == nil, nil
}

// ClusterInfo is what `cluster_info` answers.
type ClusterInfo struct {
	Name              string `json:"name"`
	Node              string `json:"node"`
	Leader            string `json:"leader"`
	TableVersion      uint64 `json:"table_version"`
	DivBits           uint   `json:"div_bits"`
	Redundancy        int    `json:"redundancy"`
	ReplicationInHost bool   `json:"replication_in_host"`
	// Ready is true once the node is a member of an initialized cluster
	// and serves data.
	Ready bool `json:"ready"`
}

// fetchClusterInfo asks a member for its cluster's settings over the client
// protocol, retrying while the seed is still starting.
func fetchClusterInfo(ctx context.Context, seed string) (ClusterInfo, error) {
	var last error
	for {
		info, err := askClusterInfo(ctx, seed)
		if err == nil && info.DivBits > 0 {
			return info, nil
		}
		if err == nil {
			err = errors.New("the seed's cluster is not initialized yet")
		}
		last = err
		select {
		case <-ctx.Done():
			return ClusterInfo{}, fmt.Errorf("join %s: %w", seed, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func askClusterInfo(ctx context.Context, seed string) (ClusterInfo, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", seed)
	if err != nil {
		return ClusterInfo{}, err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := nc.Write([]byte("cluster_info\r\n")); err != nil {
		return ClusterInfo{}, err
	}
	line, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil {
		return ClusterInfo{}, err
	}
	line = strings.TrimSpace(line)
	var info ClusterInfo
	if err := json.Unmarshal([]byte(line), &info); err != nil {
		return ClusterInfo{}, fmt.Errorf("the seed answered %q to cluster_info: is it a sonae node?", line)
	}
	return info, nil
}

// raftConfig derives Raft's timing from the gossip profile: fast on one
// machine, raft's defaults on a LAN, slower across a WAN.
func raftConfig(cfg *config.Config, dir string, voter bool, log *slog.Logger) consensus.Config {
	rc := consensus.Default()
	rc.ID = cfg.NodeID()
	rc.BindAddr = cfg.AdvertiseAddr()
	rc.Dir = dir
	rc.Voter = voter
	rc.Logger = log
	switch cfg.GossipProfile {
	case config.GossipLocal:
		rc.HeartbeatTimeout, rc.ElectionTimeout = 300*time.Millisecond, 300*time.Millisecond
		rc.LeaderLeaseTimeout, rc.CommitTimeout = 150*time.Millisecond, 10*time.Millisecond
	case config.GossipWAN:
		rc.HeartbeatTimeout, rc.ElectionTimeout = 3*time.Second, 3*time.Second
		rc.LeaderLeaseTimeout = 1500 * time.Millisecond
	}
	return rc
}

// propose commits c through Raft: directly on the leader, else through the
// leader's peer port, then waits until this node's FSM has applied it.
func (cl *cluster) propose(ctx context.Context, c meta.Command) error {
	for {
		if cl.raft.IsLeader() {
			_, err := cl.raft.Apply(ctx, c.Encode())
			if !errors.Is(err, consensus.ErrNotLeader) {
				return err
			}
		}
		_, leader := cl.raft.Leader()
		if leader != "" {
			idx, err := cl.rep.ProposeAt(ctx, leader, c)
			if err == nil {
				return cl.waitIndex(ctx, idx)
			}
			if !errors.Is(err, replication.ErrNotLeader) && !errors.Is(err, replication.ErrPeerDown) {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("metadata %w: no Raft leader reachable", replication.ErrUnavailable)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// proposeLocal is what a peer's tPropose runs: only the leader applies.
func (cl *cluster) proposeLocal(ctx context.Context, c meta.Command) error {
	if !cl.raft.IsLeader() {
		return replication.ErrNotLeader
	}
	_, err := cl.raft.Apply(ctx, c.Encode())
	if errors.Is(err, consensus.ErrNotLeader) {
		return replication.ErrNotLeader
	}
	return err
}

// waitIndex waits until the FSM has applied index.
func (cl *cluster) waitIndex(ctx context.Context, index uint64) error {
	for {
		ch := cl.fsm.Changed()
		if cl.fsm.State().Index >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("metadata %w: waiting for index %d: %v", replication.ErrUnavailable, index, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// peers lists this cluster's members as gossip sees them.
func (cl *cluster) peers() []controller.Peer {
	var out []controller.Peer
	for _, m := range cl.gossip.Members() {
		if m.Tags[tagCluster] != cl.cfg.Name || m.Tags[tagID] == "" || m.Tags[tagAddr] == "" {
			continue
		}
		out = append(out, controller.Peer{ID: routing.NodeID(m.Tags[tagID]), Addr: m.Tags[tagAddr], Status: m.Status.String()})
	}
	return out
}

// raftAdapter gives the controller the consensus node it needs.
type raftAdapter struct{ n *consensus.Node }

func (a raftAdapter) IsLeader() bool { return a.n.IsLeader() }
func (a raftAdapter) AddVoter(ctx context.Context, id, addr string) error {
	return a.n.AddVoter(ctx, id, addr)
}
func (a raftAdapter) AddNonvoter(ctx context.Context, id, addr string) error {
	return a.n.AddNonvoter(ctx, id, addr)
}
func (a raftAdapter) RemoveServer(ctx context.Context, id string) error {
	return a.n.RemoveServer(ctx, id)
}
func (a raftAdapter) DemoteVoter(ctx context.Context, id string) error {
	return a.n.DemoteVoter(ctx, id)
}
func (a raftAdapter) Servers() ([]controller.RaftServer, error) {
	ss, err := a.n.Servers()
	out := make([]controller.RaftServer, len(ss))
	for i, s := range ss {
		out[i] = controller.RaftServer{ID: s.ID, Voter: s.Voter}
	}
	return out, err
}

func (cl *cluster) poke() {
	select {
	case cl.nudge <- struct{}{}:
	default:
	}
}

// pumpEvents nudges the controller on every member event and keeps
// joining the seeds until this node sees another member.
func (cl *cluster) pumpEvents(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-cl.gossip.Events():
			if !ok {
				return
			}
			if ev.Kind.IsMember() {
				cl.log.Debug("member event", "event", ev.String())
				cl.poke()
			}
			cl.hooks.deliver(ev)
		}
	}
}

// watchLeadership nudges the controller when this node becomes leader.
func (cl *cluster) watchLeadership(ctx context.Context) {
	ch, cancel := cl.raft.WatchLeadership()
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return
		case l, ok := <-ch:
			if !ok {
				return
			}
			if l.IsLeader {
				cl.becameLeader(l.Seq)
				cl.log.Info("this node leads the metadata (Raft leader)")
				cl.poke()
				seq := l.Seq
				cl.wg.Add(1)
				go func() {
					defer cl.wg.Done()
					cl.awaitLeaderReady(ctx, seq)
				}()
			}
		}
	}
}

// joinSeeds joins gossip through the seeds, retrying until one answers.
func (cl *cluster) joinSeeds(ctx context.Context, seeds []string) {
	if len(seeds) == 0 {
		return
	}
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		n, err := cl.gossip.Join(seeds)
		if err == nil && n > 0 {
			cl.log.Info("joined gossip", "seeds", seeds, "contacted", n)
			return
		}
		cl.log.Debug("gossip join failed; retrying", "seeds", seeds, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// watchReady closes ready once the metadata is initialized and lists this
// node as a member.
func (cl *cluster) watchReady(ctx context.Context) {
	for {
		ch := cl.fsm.Changed()
		if st := cl.fsm.State(); st.Initialized() {
			if _, ok := st.Member(cl.self); ok {
				close(cl.ready)
				cl.log.Info("node ready", "node", cl.self, "members", len(st.Members))
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// waitApplied waits until node's metadata has applied index (asked over
// the peer port).
func (cl *cluster) waitApplied(ctx context.Context, node routing.NodeID, index uint64) error {
	m, ok := cl.fsm.State().Member(node)
	if !ok {
		return fmt.Errorf("%s is not a member", node)
	}
	for {
		idx, err := cl.rep.AppliedAt(ctx, m.Addr)
		if err == nil && idx >= index {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s has not applied index %d: %v (last error %v)", node, index, ctx.Err(), err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
