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
	runtime.GOMAXPROCS(cfg.EffectiveThreads(runtime.NumCPU()))
	node, err := server.Start(cfg, nil, clock.Real{}, log)
	if err != nil {
		log.Error("start failed", "error", err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	code := 0
	select {
	case sig := <-sigs:
		log.Info("shutting down", "signal", sig.String())
	case err := <-node.Done():
		log.Error("listener failed", "error", err)
		code = 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := node.Stop(ctx); err != nil {
		log.Error("shutdown incomplete", "error", err)
		code = 1
	}
	log.Info("stopped")
	return code
}

// loadConfig builds the config: embedded defaults, then the file given with
// --config, then every flag that was set on the command line.
func loadConfig(args []string, stderr io.Writer) (config.Config, error) {
	cfg := config.Default()
	fs := pflag.NewFlagSet("sonaed", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var f config.Config // flag values; only the ones set are applied
	var idle, syncEvery time.Duration
	var cfgPath string
	fs.StringVar(&cfgPath, "config", "", "YAML config file (same keys as the flags, with _ for -)")
	fs.StringVar(&f.Addr, "addr", cfg.Addr, "address to listen on; also the host part of the node id")
	fs.IntVarP(&f.Port, "port", "p", cfg.Port, "client port (memcached protocol and admin commands)")
	fs.StringVar(&f.Data, "data", cfg.Data, "data directory")
	fs.StringVar(&f.Engine, "engine", cfg.Engine, "storage engine: pebble or memory")
	fs.StringVar(&f.Name, "name", cfg.Name, "cluster name (whoami)")
	fs.IntVar(&f.DivBits, "div-bits", cfg.DivBits, "vnode count is 2^div-bits")
	fs.IntVar(&f.MaxItemSize, "max-item-size", cfg.MaxItemSize, "largest value in bytes")
	fs.IntVar(&f.MaxConnections, "max-connections", cfg.MaxConnections, "most concurrent client connections")
	fs.DurationVar(&idle, "idle-timeout", time.Duration(cfg.IdleTimeout), "close connections idle this long (0 = never)")
	fs.IntVar(&f.MaxLineLength, "max-line-length", cfg.MaxLineLength, "longest command line in bytes")
	fs.StringVar(&f.AuthToken, "auth-token", "", "token that lets remote clients run state-changing admin commands after `auth`")
	fs.StringVar(&f.Durability, "durability", cfg.Durability, "interval (write to the OS, fsync every --sync-interval) or fsync (every write)")
	fs.DurationVar(&syncEvery, "sync-interval", time.Duration(cfg.SyncInterval), "fsync period of the interval durability policy")
	fs.IntVarP(&f.Threads, "threads", "t", cfg.Threads, "threads running Go code (GOMAXPROCS), like memcached -t; 0 = max(4, CPUs)")
	fs.StringVar(&f.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	fs.StringVar(&f.LogFormat, "log-format", cfg.LogFormat, "text or json")
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
	fs.Visit(func(fl *pflag.Flag) {
		switch fl.Name {
		case "addr":
			cfg.Addr = f.Addr
		case "port":
			cfg.Port = f.Port
		case "data":
			cfg.Data = f.Data
		case "engine":
			cfg.Engine = f.Engine
		case "name":
			cfg.Name = f.Name
		case "div-bits":
			cfg.DivBits = f.DivBits
		case "max-item-size":
			cfg.MaxItemSize = f.MaxItemSize
		case "max-connections":
			cfg.MaxConnections = f.MaxConnections
		case "idle-timeout":
			cfg.IdleTimeout = config.Duration(idle)
		case "max-line-length":
			cfg.MaxLineLength = f.MaxLineLength
		case "auth-token":
			cfg.AuthToken = f.AuthToken
		case "durability":
			cfg.Durability = f.Durability
		case "sync-interval":
			cfg.SyncInterval = config.Duration(syncEvery)
		case "threads":
			cfg.Threads = f.Threads
		case "log-level":
			cfg.LogLevel = f.LogLevel
		case "log-format":
			cfg.LogFormat = f.LogFormat
		}
	})
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
