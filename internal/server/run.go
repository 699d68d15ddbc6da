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

// Node is a running sonaed: engine, store and client listener.
type Node struct {
	Server *Server
	Store  *kv.Store
	Engine storage.Engine
	Addr   net.Addr

	cancel context.CancelFunc
	bg     sync.WaitGroup
	served chan error
}

// Start opens everything cfg describes and starts serving. ln may be nil, in
// which case Start listens on cfg's address.
func Start(cfg config.Config, ln net.Listener, clk clock.Clock, log *slog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	eng, err := OpenEngine(&cfg, log.With("component", "storage"))
	if err != nil {
		return nil, err
	}
	store, err := kv.Open(eng, clk, KVOptions(&cfg), log.With("component", "kv"))
	if err != nil {
		eng.Close()
		return nil, err
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.ClientAddr()); err != nil {
			eng.Close()
			return nil, fmt.Errorf("listen on %s: %w", cfg.ClientAddr(), err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		Server: New(cfg, store, clk, log.With("component", "server")),
		Store:  store, Engine: eng, Addr: ln.Addr(), cancel: cancel,
		served: make(chan error, 1),
	}
	n.bg.Go(func() { store.Run(ctx) })
	go func() { n.served <- n.Server.Serve(ln) }()
	log.Info("sonaed serving", "addr", ln.Addr().String(),
		"engine", cfg.Engine, "data", cfg.StoragePath(), "cluster", cfg.Name)
	return n, nil
}

// Done returns the channel on which the accept loop reports why it ended.
func (n *Node) Done() <-chan error { return n.served }

// Stop shuts the node down gracefully: connections finish what they have
// read, background work stops, the engine is flushed and closed.
func (n *Node) Stop(ctx context.Context) error {
	err := n.Server.Shutdown(ctx)
	n.cancel()
	n.bg.Wait()
	if cerr := n.Engine.Close(); cerr != nil && !errors.Is(cerr, storage.ErrClosed) {
		err = errors.Join(err, cerr)
	}
	return err
}
