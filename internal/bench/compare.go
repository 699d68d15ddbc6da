package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"
)

// Target is one server in a comparison.
type Target struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
}

// Summary is the median of a target's rounds.
type Summary struct {
	Target    Target        `json:"target"`
	Rounds    []Result      `json:"rounds"`
	OpsPerSec float64       `json:"median_ops_per_sec"`
	P50       time.Duration `json:"median_p50_ns"`
	P99       time.Duration `json:"median_p99_ns"`
	P999      time.Duration `json:"median_p999_ns"`
	// Ratio is OpsPerSec over the first target's.
	Ratio float64 `json:"ratio_to_first"`
}

// Compare runs o against every target, rounds times, alternating targets
// within each round (and rotating the order between rounds), and returns
// per-target medians.
func Compare(ctx context.Context, o Options, targets []Target, rounds int, log func(string)) ([]Summary, error) {
	if rounds < 1 {
		return nil, fmt.Errorf("bench: rounds %d must be at least 1", rounds)
	}
	results := make([][]Result, len(targets))
	for _, t := range targets {
		if !o.Preload {
			break
		}
		po := o
		po.Addr, po.Addrs = t.Addr, nil
		if err := preload(ctx, po, po.rawDialer()); err != nil {
			return nil, fmt.Errorf("bench: preload %s: %w", t.Name, err)
		}
	}
	run := o
	run.Preload = false
	run.Addrs = nil
	for r := range rounds {
		for j := range targets {
			i := (j + r) % len(targets)
			run.Addr = targets[i].Addr
			res, err := Run(ctx, run, nil)
			if err != nil {
				return nil, fmt.Errorf("bench: %s round %d: %w", targets[i].Name, r+1, err)
			}
			results[i] = append(results[i], res)
			if log != nil {
				log(fmt.Sprintf("round %d/%d %-10s %10.0f ops/s  p50 %-8s p99 %-8s p999 %s",
					r+1, rounds, targets[i].Name, res.OpsPerSec, res.P50, res.P99, res.P999))
			}
		}
	}
	out := make([]Summary, len(targets))
	for i, t := range targets {
		rs := results[i]
		s := Summary{Target: t, Rounds: rs}
		s.OpsPerSec = median(rs, func(r Result) float64 { return r.OpsPerSec })
		s.P50 = time.Duration(median(rs, func(r Result) float64 { return float64(r.P50) }))
		s.P99 = time.Duration(median(rs, func(r Result) float64 { return float64(r.P99) }))
		s.P999 = time.Duration(median(rs, func(r Result) float64 { return float64(r.P999) }))
		out[i] = s
	}
	for i := range out {
		out[i].Ratio = out[i].OpsPerSec / out[0].OpsPerSec
	}
	return out, nil
}

func median(rs []Result, f func(Result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// PrintTable writes the comparison as a table.
func PrintTable(w io.Writer, o Options, rounds int, ss []Summary) {
	fmt.Fprintf(w, "load: %d conns, %.0f%% get, %d-byte values, %d keys, %s per run, %d alternating rounds (medians)\n",
		o.Conns, o.GetRatio*100, o.ValueSize, o.Keys, o.Duration, rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "target\tops/s\tratio\tp50\tp99\tp999\t\n")
	for _, s := range ss {
		fmt.Fprintf(tw, "%s\t%.0f\t%.2fx\t%s\t%s\t%s\t\n", s.Target.Name, s.OpsPerSec, s.Ratio, s.P50, s.P99, s.P999)
	}
	tw.Flush()
}
