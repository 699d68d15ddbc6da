package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"time"

	"github.com/sonae-kv/sonae/internal/clock"
	"github.com/sonae-kv/sonae/internal/config"
	"github.com/sonae-kv/sonae/internal/consensus"
	"github.com/sonae-kv/sonae/internal/controller"
	"github.com/sonae-kv/sonae/internal/events"
	"github.com/sonae-kv/sonae/internal/kv"
	"github.com/sonae-kv/sonae/internal/membership"
	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/netmux"
	"github.com/sonae-kv/sonae/internal/replication"
	"github.com/sonae-kv/sonae/internal/routing"
	"github.com/sonae-kv/sonae/internal/storage"
)

// joinTimeout bounds how long a new node waits for its seed's settings.
const joinTimeout = 30 * time.Second

// startCluster brings up everything but the client server: it settles the
// cluster settings (from the seed when joining), opens the engine and the
// store with the replication hook, and starts Raft, gossip, the data path
// and the controller on the multiplexed listener.
func startCluster(cfg *config.Config, ln net.Listener, clk clock.Clock, log *slog.Logger) (_ *cluster, _ *kv.Store, _ storage.Engine, err error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			cancel()
		}
	}()
	restart, err := checkIdentity(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	if cfg.Join != "" && !restart {
		seed, _ := config.ParseHostPort(cfg.Join)
		jctx, cancel := context.WithTimeout(ctx, joinTimeout)
		info, err := fetchClusterInfo(jctx, seed)
		cancel()
		if err != nil {
			return nil, nil, nil, err
		}
		if info.Name != cfg.Name {
			return nil, nil, nil, fmt.Errorf("%w: %s is in cluster %q, this node is configured for %q (--name)",
				ErrWrongCluster, cfg.Join, info.Name, cfg.Name)
		}
		cfg.DivBits, cfg.Redundancy, cfg.ReplicationInHost = int(info.DivBits), info.Redundancy, info.ReplicationInHost
		log.Info("joining cluster", "seed", cfg.Join, "name", info.Name, "leader", info.Leader,
			"div_bits", info.DivBits, "redundancy", info.Redundancy)
	}

	cl := &cluster{
		self: routing.NodeID(cfg.NodeID()), addr: cfg.AdvertiseAddr(), cfg: *cfg, log: log,
		fsm: meta.NewFSM(log.With("component", "meta")), nudge: make(chan struct{}, 1), ready: make(chan struct{}),
		cancel: cancel,
	}
	cl.lease.init()
	defer func() {
		if err != nil {
			cl.close()
		}
	}()
	cl.mux = netmux.New(ln, netmux.Default(), log.With("component", "netmux"))
	go cl.mux.Serve()

	// The store needs the hook before it opens; the hook needs the
	// replicator, which needs the store: the replicator is created first
	// and attached to the store after.
	var store *kv.Store
	rep, err := replication.New(replication.Config{
		Self: cl.self, ReplicationTimeout: time.Duration(cfg.ReplicationTimeout), ReadLease: time.Duration(cfg.ReadLease),
		PoolSize: 4,
	}, replication.Deps{
		State:         cl.fsm.State,
		Changed:       cl.fsm.Changed,
		Propose:       cl.propose,
		LeaderContact: cl.leaderContact,
		GrantLease:    cl.grantLease,
		Flush:         func(ns string, delay int64) error { return store.FlushAll(ns, delay) },
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			return netmux.Dial(ctx, addr, netmux.KindPeer)
		},
		Clock: clk, Log: log.With("component", "replication"),
	})
	if err != nil {
		return nil, nil, nil, err
	}
	cl.rep = rep

	eng, err := OpenEngine(cfg, log.With("component", "storage"))
	if err != nil {
		return nil, nil, nil, err
	}
	kvo := KVOptions(cfg)
	kvo.Replicate = rep.Hook
	store, err = kv.Open(eng, clk, kvo, log.With("component", "kv"))
	if err != nil {
		eng.Close()
		return nil, nil, nil, err
	}
	rep.Attach(store)

	trans, err := consensus.NewStreamTransport(cl.mux.Listener(netmux.KindRaft), cl.addr,
		func(ctx context.Context, addr string) (net.Conn, error) {
			return netmux.Dial(ctx, addr, netmux.KindRaft)
		},
		log.With("component", "raft"))
	if err != nil {
		eng.Close()
		return nil, nil, nil, err
	}
	bootstrap := !restart && cfg.Join == ""
	rn, err := consensus.Open(raftConfig(cfg, filepath.Join(cfg.Data, "raft"), bootstrap, log.With("component", "raft")), cl.fsm, trans)
	if err != nil {
		eng.Close()
		return nil, nil, nil, err
	}
	cl.raft = rn
	if bootstrap {
		if err := rn.Bootstrap(consensus.Server{ID: cfg.NodeID(), Addr: cl.addr, Voter: true}); err != nil && !errors.Is(err, consensus.ErrAlreadyBootstrapped) {
			eng.Close()
			return nil, nil, nil, err
		}
	}

	self := func() events.Self {
		lm := cl.gossip.LocalMember()
		return events.Self{Name: lm.Name, Tags: lm.Tags}
	}
	if cl.hooks, err = newGossipHooks(cfg, self, log.With("component", "events")); err != nil {
		eng.Close()
		return nil, nil, nil, err
	}
	mc := membership.Default()
	mc.NodeName = cfg.NodeID()
	mc.BindAddr = cfg.Addr
	mc.BindPort = ln.Addr().(*net.TCPAddr).Port
	mc.AdvertiseAddr = cfg.AdvertiseHost()
	mc.ClusterName = cfg.Name
	mc.SecretKey = cfg.GossipKeyBytes()
	mc.Profile = cfg.GossipProfile
	mc.SnapshotPath = filepath.Join(cfg.Data, "serf.snapshot")
	mc.Tags = map[string]string{tagCluster: cfg.Name, tagID: cfg.NodeID(), tagAddr: cl.addr}
	if cfg.Role != "" {
		mc.Tags[tagRole] = cfg.Role
	}
	mc.Streams = cl.mux.Listener(netmux.KindGossip)
	mc.Logger = log.With("component", "gossip")
	if cl.gossip, err = membership.Start(mc); err != nil {
		eng.Close()
		return nil, nil, nil, err
	}

	ctl, err := controller.New(controller.Config{
		Self: meta.Member{ID: cl.self, Addr: cl.addr, Voter: true},
		Settings: meta.Settings{
			Name: cfg.Name, DivBits: uint(cfg.DivBits), Redundancy: cfg.Redundancy, ReplicationInHost: cfg.ReplicationInHost,
		},
		MaxVoters: cfg.MaxVoters, Interval: time.Second, MaxMoves: 32, ReadLease: time.Duration(cfg.ReadLease),
	}, controller.Deps{
		Changed:     cl.fsm.Changed,
		WaitApplied: cl.waitApplied,
		State:       cl.fsm.State,
		Apply: func(ctx context.Context, c meta.Command) error {
			_, err := rn.Apply(ctx, c.Encode())
			return err
		},
		Raft: raftAdapter{rn}, Peers: cl.peers, Nudge: cl.nudge, Log: log.With("component", "controller"),
		Probe: func(ctx context.Context, addr string) error {
			_, err := cl.rep.AppliedAt(ctx, addr)
			return err
		},
		LeaseBound: cl.leaseBound, WithholdLease: cl.withholdLease, Clock: clk,
	})
	if err != nil {
		eng.Close()
		return nil, nil, nil, err
	}
	bg := func(f func(context.Context)) {
		cl.wg.Add(1)
		go func() {
			defer cl.wg.Done()
			f(ctx)
		}()
	}
	bg(func(ctx context.Context) { rep.Serve(cl.mux.Listener(netmux.KindPeer)) })
	bg(rep.Run)
	bg(ctl.Run)
	bg(cl.pumpEvents)
	bg(func(ctx context.Context) {
		cl.hooks.keepLiveNodes(ctx, cfg.Name, cl.gossip.Members, clk.Now, log.With("component", "events"))
	})
	bg(cl.watchLeadership)
	bg(cl.renewLeases)
	bg(cl.watchReady)
	bg(func(ctx context.Context) { cl.syncNamespaces(ctx, store) })
	var seeds []string
	if cfg.Join != "" {
		seed, _ := config.ParseHostPort(cfg.Join)
		seeds = append(seeds, seed)
	}
	for _, m := range cl.fsm.State().Members {
		if m.ID != cl.self {
			seeds = append(seeds, m.Addr)
		}
	}
	bg(func(ctx context.Context) { cl.joinSeeds(ctx, seeds) })
	return cl, store, eng, nil
}

// syncNamespaces keeps the local store's namespaces equal to the
// metadata's (createhash and deletehash are cluster-wide).
func (cl *cluster) syncNamespaces(ctx context.Context, store *kv.Store) {
	for {
		ch := cl.fsm.Changed()
		if st := cl.fsm.State(); st.Initialized() {
			for _, ns := range st.Namespaces {
				if !store.HasNamespace(ns) {
					if err := store.CreateNamespace(ns); err != nil && !errors.Is(err, kv.ErrNamespaceExists) {
						cl.log.Error("creating namespace", "namespace", ns, "error", err)
					}
				}
			}
			for _, ns := range store.Namespaces() {
				if ns != meta.DefaultNamespace && !slices.Contains(st.Namespaces, ns) {
					if err := store.DeleteNamespace(ns); err != nil && !errors.Is(err, kv.ErrNoNamespace) {
						cl.log.Error("deleting namespace", "namespace", ns, "error", err)
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// leave hands over leadership and leaves gossip gracefully.
func (cl *cluster) leave(ctx context.Context) error {
	if cl.raft.IsLeader() {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := cl.raft.TransferLeadership(tctx); err != nil {
			cl.log.Warn("leadership transfer before leaving failed", "error", err)
		}
		cancel()
	}
	return cl.gossip.Leave()
}

// close stops the cluster machinery: the data path, gossip (without a
// leave: a stopped node is down, not gone; see `sonae node remove`), Raft
// and the listener.
func (cl *cluster) close() {
	cl.cancel()
	if cl.rep != nil {
		cl.rep.Close()
	}
	if cl.gossip != nil {
		cl.gossip.Shutdown()
	}
	cl.hooks.close()
	if cl.raft != nil {
		cl.raft.Shutdown()
	}
	if cl.mux != nil {
		cl.mux.Close()
	}
	cl.wg.Wait()
}
