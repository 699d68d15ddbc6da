package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sonae-kv/sonae/internal/clock"
	"github.com/sonae-kv/sonae/internal/config"
	"github.com/sonae-kv/sonae/internal/kv"
	"github.com/sonae-kv/sonae/internal/netmux"
	"github.com/sonae-kv/sonae/internal/protocol"
	"github.com/sonae-kv/sonae/internal/storage"
)

// OpenEngine opens the engine cfg names.
func OpenEngine(cfg *config.Config, log *slog.Logger) (storage.Engine, error) {
	opts := storage.Default()
	opts.Logger = log
	opts.CacheSize = cfg.CacheSize
	opts.RowCacheSize = cfg.RowCacheSize
	opts.SyncInterval = time.Duration(cfg.SyncInterval)
	opts.Durability = storage.DurabilityInterval
	if cfg.Durability == config.DurabilityFsync {
		opts.Durability = storage.DurabilityFsync
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	switch cfg.Engine {
	case config.EngineMemory:
		return storage.NewMemory(opts), nil
	default:
		dir := filepath.Join(cfg.Data, "pebble")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("data: %w", err)
		}
		return storage.OpenPebble(dir, opts)
	}
}

// KVOptions derives the kv options from cfg.
func KVOptions(cfg *config.Config) kv.Options {
	o := kv.DefaultOptions()
	o.DivBits = uint(cfg.DivBits)
	o.MaxItemSize = cfg.MaxItemSize
	o.ItemFits = func(keyLen int, flags uint32, valueLen int) bool {
		return protocol.ItemFits(keyLen, flags, valueLen, cfg.MaxItemSize)
	}
	o.RetainEntries = cfg.ChangeLogRetainEntries
	o.RetainAge = time.Duration(cfg.ChangeLogRetainAge)
	o.ExpiryScanInterval = time.Duration(cfg.ExpiryScanInterval)
	return o
}

// Node is a running sonaed: engine, store, cluster machinery and client
// listener.
type Node struct {
	Server *Server
	Store  *kv.Store
	Engine storage.Engine
	Addr   net.Addr

	cl     *cluster
	cancel context.CancelFunc
	bg     sync.WaitGroup
	served chan error
}

// Start opens everything cfg describes and starts serving. ln may be nil, in
// which case Start listens on cfg's address; when given, its port is the
// node's port. Start returns once the node listens; Ready tells when it
// belongs to an initialized cluster and serves data.
func Start(cfg config.Config, ln net.Listener, clk clock.Clock, log *slog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.ClientAddr()); err != nil {
			return nil, fmt.Errorf("listen on %s: %w", cfg.ClientAddr(), err)
		}
	}
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		cfg.Port = a.Port
	}
	cl, store, eng, err := startCluster(&cfg, ln, clk, log)
	if err != nil {
		ln.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		Server: New(cfg, store, clk, log.With("component", "server")),
		Store:  store, Engine: eng, Addr: ln.Addr(), cl: cl, cancel: cancel,
		served: make(chan error, 1),
	}
	n.Server.cl = cl
	n.bg.Go(func() { store.Run(ctx) })
	n.bg.Go(func() { n.Server.watchLost(ctx) })
	go func() { n.served <- n.Server.Serve(cl.mux.Listener(netmux.KindClient)) }()
	log.Info("sonaed listening", "addr", ln.Addr().String(), "node", cfg.NodeID(),
		"engine", cfg.Engine, "data", cfg.StoragePath(), "cluster", cfg.Name, "join", cfg.Join)
	return n, nil
}

// Ready is closed once the node is a member of an initialized cluster.
func (n *Node) Ready() <-chan struct{} { return n.cl.ready }

// Done returns the channel on which the accept loop reports why it ended.
func (n *Node) Done() <-chan error { return n.served }

// StopRequests delivers admin commands' requests to stop the node.
func (n *Node) StopRequests() <-chan StopRequest { return n.Server.StopRequests() }

// Leave leaves the cluster gracefully before a Stop: leadership is handed
// to another voter, and gossip announces the leave, so the others remove
// this node instead of failing it over.
func (n *Node) Leave(ctx context.Context) error {
	return n.cl.leave(ctx)
}

// Stop shuts the node down: connections finish what they have read, the
// cluster machinery stops (without leaving the cluster), background work
// stops, the engine is flushed and closed.
func (n *Node) Stop(ctx context.Context) error {
	err := n.Server.Shutdown(ctx)
	n.cl.close()
	n.cancel()
	n.bg.Wait()
	if cerr := n.Engine.Close(); cerr != nil && !errors.Is(cerr, storage.ErrClosed) {
		err = errors.Join(err, cerr)
	}
	return err
}
