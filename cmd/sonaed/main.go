package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/sonae-kv/sonae/internal/clock"
	"github.com/sonae-kv/sonae/internal/config"
	"github.com/sonae-kv/sonae/internal/server"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run is main without the exit, so tests can drive it.
func run(args []string, stderr io.Writer) int {
	cfg, err := loadConfig(args, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "sonaed: %v\n", err)
		return 2
	}
	log := newLogger(&cfg, stderr)
	runtime.GOMAXPROCS(cfg.EffectiveThreads(runtime.GOMAXPROCS(0)))
	node, err := server.Start(cfg, nil, clock.Real{}, log)
	if err != nil {
		log.Error("start failed", "error", err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	code := 0
	leave := false
	select {
	case sig := <-sigs:
		log.Info("shutting down", "signal", sig.String())
	case req := <-node.StopRequests():
		log.Info("shutting down", "requested_by", req.Reason)
		leave = req.Leave
	case err := <-node.Done():
		log.Error("listener failed", "error", err)
		code = 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if leave {
		if err := node.Leave(ctx); err != nil {
			log.Error("graceful leave failed; the others will fail this node over", "error", err)
		}
	}
	if err := node.Stop(ctx); err != nil {
		log.Error("shutdown incomplete", "error", err)
		code = 1
	}
	log.Info("stopped")
	return code
}

// loadConfig builds the config: embedded defaults, then the file given with
// --config, then every flag that was set on the command line. Every flag is
// named after its YAML key (dashes for underscores) and bound to that field.
func loadConfig(args []string, stderr io.Writer) (config.Config, error) {
	cfg := config.Default()
	f := cfg // flag values; only the ones set are applied
	fs := pflag.NewFlagSet("sonaed", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfgPath string
	fs.StringVar(&cfgPath, "config", "", "YAML config file (same keys as the flags, with _ for -)")
	fs.StringVar(&f.Addr, "addr", f.Addr, "address to listen on; also the host part of the node id")
	fs.IntVarP(&f.Port, "port", "p", f.Port, "client port (memcached protocol and admin commands)")
	fs.StringVar(&f.Data, "data", f.Data, "data directory")
	fs.StringVar(&f.Engine, "engine", f.Engine, "storage engine: pebble or memory")
	fs.StringVar(&f.Name, "name", f.Name, "cluster name (whoami)")
	fs.IntVar(&f.DivBits, "div-bits", f.DivBits, "vnode count is 2^div-bits (fixed when the cluster is created)")
	fs.StringVar(&f.Advertise, "advertise", f.Advertise, "host other nodes and clients reach this node at (default: --addr)")
	fs.StringVarP(&f.Join, "join", "j", f.Join, "HOST_PORT of any member of the cluster to join (empty: bootstrap a new cluster)")
	fs.IntVar(&f.Redundancy, "redundancy", f.Redundancy, "replicas per vnode, primary included (fixed when the cluster is created)")
	fs.BoolVar(&f.ReplicationInHost, "replication-in-host", f.ReplicationInHost, "allow replicas of a vnode on the same host (ROMA's --replication_in_host)")
	fs.IntVar(&f.MaxVoters, "max-voters", f.MaxVoters, "Raft voters (1..5); other nodes follow the metadata without voting")
	fs.StringVar(&f.GossipKey, "gossip-key", f.GossipKey, "base64 key (16, 24 or 32 bytes) that encrypts gossip")
	fs.StringVar(&f.GossipProfile, "gossip-profile", f.GossipProfile, "failure-detection timing: local, lan or wan")
	fs.StringVar(&f.Role, "role", f.Role, "this member's role gossip tag, SERF_SELF_ROLE for event handlers")
	fs.StringArrayVar(&f.EventHandlers, "event-handler", f.EventHandlers,
		"[FILTER=]CMD run on gossip events with serf's handler contract; FILTER e.g. member-join,member-failed, user:deploy, query:load (repeatable)")
	fs.Var(&f.EventHandlerTimeout, "event-handler-timeout", "kill an event handler's process group after this long")
	fs.StringVar(&f.LiveNodesFile, "live-nodes-file", f.LiveNodesFile, "rewrite this JSON file atomically with the live members on every membership change")
	fs.Var(&f.ReplicationTimeout, "replication-timeout", "wait for a secondary's ack this long before dropping it from the in-sync set")
	fs.Var(&f.ReadLease, "read-lease", "a primary serves reads this long after its last contact with the Raft leader")
	fs.IntVar(&f.MaxItemSize, "max-item-size", f.MaxItemSize, "item size limit in bytes, counted as memcached -I counts it")
	fs.IntVar(&f.MaxConnections, "max-connections", f.MaxConnections, "most concurrent client connections")
	fs.Var(&f.IdleTimeout, "idle-timeout", "close connections idle this long, even mid-command (0 = never)")
	fs.IntVar(&f.MaxLineLength, "max-line-length", f.MaxLineLength, "longest multi-get line in bytes")
	fs.Int64Var(&f.MaxPendingValueBytes, "max-pending-value-bytes", f.MaxPendingValueBytes, "memory for values being received, all connections together")
	fs.StringVar(&f.AuthToken, "auth-token", f.AuthToken, "token that lets remote clients run state-changing admin commands after `auth`")
	fs.StringVar(&f.Durability, "durability", f.Durability, "interval (write to the OS, fsync every --sync-interval) or fsync (every write)")
	fs.Var(&f.SyncInterval, "sync-interval", "fsync period of the interval durability policy")
	fs.Int64Var(&f.CacheSize, "cache-size", f.CacheSize, "pebble block cache in bytes")
	fs.Int64Var(&f.RowCacheSize, "row-cache-size", f.RowCacheSize, "pebble engine's record cache in bytes (0 = off)")
	fs.IntVar(&f.ChangeLogRetainEntries, "changelog-retain-entries", f.ChangeLogRetainEntries, "change-log entries kept per vnode, at most")
	fs.Var(&f.ChangeLogRetainAge, "changelog-retain-age", "change-log entries older than this are dropped")
	fs.Var(&f.ExpiryScanInterval, "expiry-scan-interval", "how often expired items are reclaimed")
	fs.IntVarP(&f.Threads, "threads", "t", f.Threads, "threads running Go code (GOMAXPROCS), like memcached -t; 0 = the CPUs available")
	fs.StringVar(&f.LogLevel, "log-level", f.LogLevel, "debug, info, warn or error")
	fs.StringVar(&f.LogFormat, "log-format", f.LogFormat, "text or json")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: sonaed [flags]\n\nRuns one sonae node. Flags override the --config file; both override the defaults.\n\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	if cfgPath != "" {
		if err := cfg.LoadFile(cfgPath); err != nil {
			return cfg, err
		}
		cfg.SetConfigPath(cfgPath)
	}
	var errs []error
	fs.Visit(func(fl *pflag.Flag) {
		if fl.Name != "config" {
			errs = append(errs, cfg.Override(strings.ReplaceAll(fl.Name, "-", "_"), &f))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel)) // validated already
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h).With("node", cfg.NodeID())
}
