package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sonae-kv/sonae/client"
	"github.com/sonae-kv/sonae/internal/bench"
)

func newBenchCmd(g *globals) *cobra.Command {
	o := bench.DefaultOptions()
	var compare, cluster, spread []string
	var rounds int
	var readSecondaries bool
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Generate memcached-protocol load and report ops/s and p50/p99/p999",
		Long: `bench drives -s SERVER (or, with --compare, several servers in alternating
rounds) with --conns connections, each sending one request at a time.

--cluster SEED,... sends the load through the routing-aware cluster client
instead: every request goes straight to its key's primary, over a pool of
--conns connections per node. --spread ADDR,... spreads plain connections
round robin over several nodes, which forward what they do not own.`,
		Example: `  sonae bench -s 127.0.0.1_11211 --duration 10s
  sonae bench --compare memcached=127.0.0.1:21211,memory=127.0.0.1:21212 --rounds 5
  sonae bench --cluster 127.0.0.1_11211,127.0.0.1_11212
  sonae bench --spread 127.0.0.1_11211,127.0.0.1_11212,127.0.0.1_11213`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			errw := cmd.ErrOrStderr()
			if err := checkBenchTargets(cmd, compare, cluster, spread, readSecondaries); err != nil {
				return err
			}
			if len(compare) > 0 {
				targets, err := parseTargets(compare)
				if err != nil {
					return err
				}
				o.Addr = targets[0].Addr
				if err := o.Validate(); err != nil {
					return err
				}
				ss, err := bench.Compare(cmd.Context(), o, targets, rounds, func(s string) { fmt.Fprintln(errw, s) })
				if err != nil {
					return err
				}
				return g.emit(out, map[string]any{"options": o, "rounds": rounds, "results": ss},
					func(w io.Writer) { bench.PrintTable(w, o, rounds, ss) })
			}
			var dial bench.Dialer
			var target string
			report := map[string]any{"options": &o}
			switch {
			case len(cluster) > 0:
				copts := client.DefaultClusterOptions()
				copts.Timeout = g.timeout
				copts.PoolSize = o.Conns
				copts.ReadFromSecondaries = readSecondaries
				cl, err := client.NewCluster(cluster, copts)
				if err != nil {
					return fmt.Errorf("cannot reach the cluster at %s: %w", strings.Join(cluster, ","), err)
				}
				defer cl.Close()
				dial = func(int) (bench.Client, error) { return clusterBench{cl}, nil }
				o.Addr = ""
				t := cl.Table()
				target = fmt.Sprintf("cluster %s (table version %d, %d nodes)", strings.Join(cluster, ","), t.Version, len(t.Nodes))
				report["cluster"] = map[string]any{"seeds": cluster, "table_version": t.Version, "nodes": len(t.Nodes),
					"read_secondaries": readSecondaries}
			case len(spread) > 0:
				o.Addr = ""
				for _, a := range spread {
					o.Addrs = append(o.Addrs, client.NormalizeAddr(a))
				}
				target = strings.Join(o.Addrs, ",") + " (round robin)"
			default:
				o.Addr = client.NormalizeAddr(g.server)
				target = o.Addr
			}
			res, err := bench.RunWith(cmd.Context(), o, dial, func(ops int64, el time.Duration) {
				if g.output == "text" {
					fmt.Fprintf(errw, "\r%s / %s  %d ops  %.0f ops/s ", el.Truncate(time.Second), o.Duration, ops, float64(ops)/el.Seconds())
				}
			})
			if g.output == "text" {
				fmt.Fprintln(errw)
			}
			if err != nil {
				return err
			}
			report["result"] = res
			return g.emit(out, report, func(w io.Writer) {
				pace := ""
				if o.Rate > 0 {
					pace = fmt.Sprintf(", paced at %.0f requests/s", o.Rate)
				}
				fmt.Fprintf(w, "target %s: %d conns, %.0f%% get, %d-byte values, %d keys, %s%s\n",
					target, o.Conns, o.GetRatio*100, o.ValueSize, o.Keys, o.Duration, pace)
				fmt.Fprintf(w, "ops/s %.0f  (gets %d, hits %d, sets %d, errors %d)\n", res.OpsPerSec, res.Gets, res.Hits, res.Sets, res.Errors)
				fmt.Fprintf(w, "latency p50 %s  p99 %s  p999 %s  max %s\n", res.P50, res.P99, res.P999, res.Max)
			})
		},
	}
	f := cmd.Flags()
	f.IntVarP(&o.Conns, "conns", "c", o.Conns, "concurrent connections (with --cluster: concurrent requests, and the pool size per node)")
	f.Float64Var(&o.GetRatio, "get-ratio", o.GetRatio, "fraction of requests that are gets, 0..1")
	f.IntVar(&o.ValueSize, "value-size", o.ValueSize, "value size in bytes")
	f.IntVar(&o.Keys, "keys", o.Keys, "key space size")
	f.DurationVarP(&o.Duration, "duration", "d", o.Duration, "length of each run")
	f.BoolVar(&o.Preload, "preload", o.Preload, "set every key once before measuring")
	f.StringVar(&o.KeyPrefix, "key-prefix", o.KeyPrefix, "prefix of generated keys")
	f.Float64Var(&o.Rate, "rate", 0, "pace the load to this many requests/s over all connections, latency counted from each request's due time (0: as fast as possible)")
	f.StringSliceVar(&compare, "compare", nil, "NAME=ADDR,... servers to compare in alternating rounds (ratios are to the first)")
	f.IntVar(&rounds, "rounds", 5, "rounds per target with --compare (medians are reported)")
	f.StringSliceVar(&cluster, "cluster", nil, "SEED,... drive a cluster through the routing-aware client (seeds: HOST_PORT or HOST:PORT)")
	f.BoolVar(&readSecondaries, "read-secondaries", false, "with --cluster: spread gets over the in-sync replicas")
	f.StringSliceVar(&spread, "spread", nil, "ADDR,... spread plain connections round robin over these nodes")
	return cmd
}

// checkBenchTargets refuses target flags that cannot be combined.
func checkBenchTargets(cmd *cobra.Command, compare, cluster, spread []string, readSecondaries bool) error {
	named := 0
	for _, s := range [][]string{compare, cluster, spread} {
		if len(s) > 0 {
			named++
		}
	}
	switch {
	case len(cluster) > 0 && len(compare) > 0:
		return errors.New("--cluster and --compare cannot be combined: --compare alternates plain addresses; run bench --cluster once per cluster instead")
	case named > 1:
		return errors.New("--compare, --cluster and --spread each name the target: use one of them")
	case named == 1 && cmd.Flags().Changed("server"):
		return errors.New("-s names the target too: drop it when using --compare, --cluster or --spread")
	case readSecondaries && len(cluster) == 0:
		return errors.New("--read-secondaries needs --cluster")
	case len(spread) == 1:
		return fmt.Errorf("--spread needs at least two addresses, got %q (use -s for one)", spread[0])
	}
	if slices.Contains(cluster, "") || slices.Contains(spread, "") {
		return errors.New("--cluster and --spread take non-empty addresses")
	}
	return nil
}

// clusterBench adapts the cluster client to bench.Client. One Cluster
// serves every worker; Close is the caller's.
type clusterBench struct{ c *client.Cluster }

func (b clusterBench) Get(key []byte) (bool, error) {
	_, err := b.c.Get(string(key))
	if errors.Is(err, client.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (b clusterBench) Set(key, value []byte) error { return b.c.Set(string(key), value, 0, 0) }

func (clusterBench) Close() error { return nil }

func parseTargets(specs []string) ([]bench.Target, error) {
	var ts []bench.Target
	for _, s := range specs {
		name, addr, ok := strings.Cut(s, "=")
		if !ok || name == "" || addr == "" {
			return nil, fmt.Errorf("--compare %q: want NAME=ADDR", s)
		}
		ts = append(ts, bench.Target{Name: name, Addr: client.NormalizeAddr(addr)})
	}
	if len(ts) < 2 {
		return nil, fmt.Errorf("--compare needs at least two targets, got %d", len(ts))
	}
	return ts, nil
}
