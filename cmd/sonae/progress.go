package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sonae-kv/sonae/client"
)

// clusterProgress is the whole cluster's view of the running operation:
// the operation as the asked node's metadata has it, and the move traffic
// of every member that answered.
type clusterProgress struct {
	Operation *client.Operation `json:"operation"`
	Moving    int               `json:"moving"`
	Lagging   int               `json:"lagging"`
	Short     int               `json:"short"`
	Lost      int               `json:"lost"`
	BytesSent int64             `json:"bytes_sent"`
	Syncs     int               `json:"syncs_running"`
	Nodes     int               `json:"nodes_answered"`
	Missing   []string          `json:"nodes_not_answering,omitempty"`
	At        time.Time         `json:"at"`
}

// gather asks the node, then every alive member, for its progress.
func (g *globals) gather() (clusterProgress, error) {
	c, err := g.dial()
	if err != nil {
		return clusterProgress{}, err
	}
	defer c.Close()
	p, err := c.Progress()
	if err != nil {
		return clusterProgress{}, friendly(err)
	}
	cp := clusterProgress{Operation: p.Operation, Moving: p.Moving, Lagging: p.Lagging, Short: p.Short, Lost: p.Lost,
		At: time.Now()}
	ms, err := c.Members()
	if err != nil {
		return clusterProgress{}, friendly(err)
	}
	for _, m := range ms {
		if m.Status != "alive" {
			continue
		}
		var mp client.Progress
		if m.Name == p.Node {
			mp = p
		} else {
			mc, err := client.Dial(m.Addr, g.timeout)
			if err == nil {
				mp, err = mc.Progress()
				mc.Close()
			}
			if err != nil {
				cp.Missing = append(cp.Missing, m.Name)
				continue
			}
		}
		cp.Nodes++
		cp.Syncs += mp.SyncsRunning
		if mp.Operation != nil && p.Operation != nil && mp.Operation.ID == p.Operation.ID {
			cp.BytesSent += mp.BytesSent
		}
	}
	return cp, nil
}

// bar draws done/total as a fixed-width bar.
func bar(done, total, width int) string {
	if total <= 0 {
		return "[" + strings.Repeat("=", width) + "]"
	}
	n := min(width, done*width/total)
	s := strings.Repeat("=", n)
	if n < width {
		s += ">" + strings.Repeat(" ", width-n-1)
	}
	return "[" + s + "]"
}

// bytesHuman prints a byte count in binary units.
func bytesHuman(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f %s", n, units[i])
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}

func opName(o *client.Operation) string {
	if o.Node != "" {
		return o.Kind + " of " + o.Node
	}
	return o.Kind
}

// progressLine renders one update: rate is the recent byte rate.
func progressLine(cp clusterProgress, rate float64) string {
	o := cp.Operation
	elapsed := time.Duration(time.Now().UnixMilli()-o.Started) * time.Millisecond
	eta := "--"
	if o.Done > 0 && o.Total() > o.Done {
		eta = (elapsed / time.Duration(o.Done) * time.Duration(o.Total()-o.Done)).Round(time.Second).String()
	}
	line := fmt.Sprintf("%s %s %d/%d vnodes  %s  %s/s  ETA %s  (moving %d, catching up %d)",
		opName(o), bar(o.Done, o.Total(), 30), o.Done, o.Total(), bytesHuman(float64(cp.BytesSent)),
		bytesHuman(rate), eta, cp.Moving, cp.Lagging)
	if len(cp.Missing) > 0 {
		line += fmt.Sprintf("  [%d nodes not answering]", len(cp.Missing))
	}
	return line
}

func summaryLine(cp clusterProgress) string {
	o := cp.Operation
	took := time.Duration(o.Ended-o.Started) * time.Millisecond
	s := fmt.Sprintf("%s finished: %d vnodes in %s", opName(o), o.Done, took.Round(time.Millisecond))
	if cp.BytesSent > 0 && took > 0 {
		s += fmt.Sprintf(", %s sent (%s/s)", bytesHuman(float64(cp.BytesSent)), bytesHuman(float64(cp.BytesSent)/took.Seconds()))
	}
	return s + fmt.Sprintf("; short vnodes %d, lost vnodes %d", cp.Short, cp.Lost)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// follow prints the progress of the running operation (one that starts
// after `after`, if wait) until it ends. On a terminal the line is
// redrawn in place; otherwise a line is printed per interval.
func (g *globals) follow(ctx context.Context, w io.Writer, interval time.Duration, wait bool, after uint64) error {
	tty := isTerminal(w)
	var lastBytes int64
	var lastAt time.Time
	var rate float64
	printed := false
	for {
		cp, err := g.gather()
		if err != nil {
			return err
		}
		o := cp.Operation
		switch {
		case o == nil || (wait && o.ID <= after):
			if !wait {
				fmt.Fprintln(w, "no data-movement operation has run in this cluster")
				return nil
			}
		case !o.Running():
			if printed && tty {
				fmt.Fprint(w, "\r\033[K")
			}
			fmt.Fprintln(w, summaryLine(cp))
			return nil
		default:
			if !lastAt.IsZero() {
				if dt := cp.At.Sub(lastAt).Seconds(); dt > 0 && cp.BytesSent >= lastBytes {
					rate = 0.5*rate + 0.5*float64(cp.BytesSent-lastBytes)/dt
				}
			}
			lastBytes, lastAt = cp.BytesSent, cp.At
			if tty {
				fmt.Fprint(w, "\r\033[K"+progressLine(cp, rate))
			} else {
				fmt.Fprintln(w, progressLine(cp, rate))
			}
			printed = true
		}
		select {
		case <-ctx.Done():
			if printed && tty {
				fmt.Fprintln(w)
			}
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

func newProgressCmd(g *globals) *cobra.Command {
	var interval time.Duration
	var once, wait bool
	cmd := &cobra.Command{
		Use:   "progress",
		Short: "Follow the cluster's data movement (join, release, recover, balance) with a progress bar",
		Long: `progress asks the node for the cluster's current operation, and every alive
member for the bytes it sent for it, and shows vnodes done/total, bytes,
rate and ETA until the operation ends. It works from any node.`,
		Example: `  sonae progress
  sonae progress --once -o json
  sonae progress --wait     # wait for the next operation to start`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval <= 0 {
				return fmt.Errorf("--interval %s: must be positive", interval)
			}
			out := cmd.OutOrStdout()
			if once || g.output == "json" {
				cp, err := g.gather()
				if err != nil {
					return err
				}
				return g.emit(out, cp, func(w io.Writer) {
					switch o := cp.Operation; {
					case o == nil:
						fmt.Fprintln(w, "no data-movement operation has run in this cluster")
					case o.Running():
						fmt.Fprintln(w, progressLine(cp, 0))
					default:
						fmt.Fprintln(w, summaryLine(cp))
					}
				})
			}
			var after uint64
			if wait {
				cp, err := g.gather()
				if err != nil {
					return err
				}
				if cp.Operation != nil && !cp.Operation.Running() {
					after = cp.Operation.ID
				}
			}
			err := g.follow(cmd.Context(), out, interval, wait, after)
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "time between updates")
	cmd.Flags().BoolVar(&once, "once", false, "print one snapshot and exit")
	cmd.Flags().BoolVar(&wait, "wait", false, "if no operation runs, wait for the next one")
	return cmd
}
