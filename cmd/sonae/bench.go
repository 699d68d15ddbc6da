package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sonae-kv/sonae/client"
	"github.com/sonae-kv/sonae/internal/bench"
)

func newBenchCmd(g *globals) *cobra.Command {
	o := bench.DefaultOptions()
	var compare []string
	var rounds int
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Generate memcached-protocol load and report ops/s and p50/p99/p999",
		Long: `bench drives -s SERVER (or, with --compare, several servers in alternating
rounds) with --conns connections, each sending one request at a time.`,
		Example: `  sonae bench -s 127.0.0.1_11211 --duration 10s
  sonae bench --compare memcached=127.0.0.1:21211,memory=127.0.0.1:21212 --rounds 5`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			errw := cmd.ErrOrStderr()
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
			o.Addr = client.NormalizeAddr(g.server)
			res, err := bench.Run(cmd.Context(), o, func(ops int64, el time.Duration) {
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
			return g.emit(out, map[string]any{"options": o, "result": res}, func(w io.Writer) {
				fmt.Fprintf(w, "target %s: %d conns, %.0f%% get, %d-byte values, %d keys, %s\n",
					o.Addr, o.Conns, o.GetRatio*100, o.ValueSize, o.Keys, o.Duration)
				fmt.Fprintf(w, "ops/s %.0f  (gets %d, hits %d, sets %d, errors %d)\n", res.OpsPerSec, res.Gets, res.Hits, res.Sets, res.Errors)
				fmt.Fprintf(w, "latency p50 %s  p99 %s  p999 %s  max %s\n", res.P50, res.P99, res.P999, res.Max)
			})
		},
	}
	f := cmd.Flags()
	f.IntVarP(&o.Conns, "conns", "c", o.Conns, "concurrent connections")
	f.Float64Var(&o.GetRatio, "get-ratio", o.GetRatio, "fraction of requests that are gets, 0..1")
	f.IntVar(&o.ValueSize, "value-size", o.ValueSize, "value size in bytes")
	f.IntVar(&o.Keys, "keys", o.Keys, "key space size")
	f.DurationVarP(&o.Duration, "duration", "d", o.Duration, "length of each run")
	f.BoolVar(&o.Preload, "preload", o.Preload, "set every key once before measuring")
	f.StringVar(&o.KeyPrefix, "key-prefix", o.KeyPrefix, "prefix of generated keys")
	f.StringSliceVar(&compare, "compare", nil, "NAME=ADDR,... servers to compare in alternating rounds (ratios are to the first)")
	f.IntVar(&rounds, "rounds", 5, "rounds per target with --compare (medians are reported)")
	return cmd
}

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
