package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sonae-kv/sonae/client"
)

// operator sends one operator command to the node and prints its answer;
// with wait it then follows the operation it started.
func (g *globals) operator(cmd *cobra.Command, wait bool, words ...string) error {
	c, err := g.dial()
	if err != nil {
		return err
	}
	var after uint64
	if wait {
		if p, err := c.Progress(); err == nil && p.Operation != nil {
			after = p.Operation.ID
		}
	}
	line, err := c.Operator(words...)
	c.Close()
	if err != nil {
		return friendly(err)
	}
	fmt.Fprintln(cmd.OutOrStdout(), line)
	if !wait || line != "STARTED" {
		return nil
	}
	err = g.follow(cmd.Context(), cmd.OutOrStdout(), time.Second, true, after)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func newReleaseCmd(g *globals) *cobra.Command {
	var cancel, wait bool
	cmd := &cobra.Command{
		Use:   "release [HOST_PORT]",
		Short: "Move every vnode off a node (ROMA's release), so that it can be stopped",
		Long: `release moves every replica the node holds (-s, or the one named) to the
other nodes, keeping every position balanced and never leaving a vnode with
fewer in-sync copies. It is refused when the other nodes could not hold the
redundancy. --cancel stops a release.`,
		Example: `  sonae -s 127.0.0.1_11213 release --wait
  sonae release 127.0.0.1_11213
  sonae release --cancel 127.0.0.1_11213`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			words := []string{"release"}
			if cancel {
				words = append(words, "cancel")
			}
			return g.operator(cmd, wait && !cancel, append(words, args...)...)
		},
	}
	cmd.Flags().BoolVar(&cancel, "cancel", false, "stop releasing the node")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the release with a progress bar until it ends")
	return cmd
}

func newBalanceCmd(g *globals) *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "balance",
		Short: "Even out every position (primaries and each secondary) across the nodes now",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return g.operator(cmd, wait, "balance") },
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the balance with a progress bar until it ends")
	return cmd
}

func newRecoverCmd(g *globals) *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "recover",
		Short: "Re-create the missing replicas of short vnodes now (instead of after auto-recover's delay)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return g.operator(cmd, wait, "recover") },
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the recovery with a progress bar until it ends")
	return cmd
}

func newShutdownSelfCmd(g *globals) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "shutdown-self",
		Short: "Stop the node (ROMA's shutdown_self): its vnodes lose a copy until it returns",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !yes {
				fmt.Fprintf(cmd.OutOrStdout(), "Stop %s? Its vnodes run with one copy less until it returns or recover runs. (yes/no) ", g.server)
				answer, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if strings.TrimSpace(answer) != "yes" {
					fmt.Fprintln(cmd.OutOrStdout(), "CANCELED")
					return nil
				}
			}
			return g.operator(cmd, false, "shutdown_self", "yes")
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask")
	return cmd
}

func newNodeCmd(g *globals) *cobra.Command {
	node := &cobra.Command{Use: "node", Short: "Manage the cluster's nodes"}
	var wait time.Duration
	remove := &cobra.Command{
		Use:   "remove HOST_PORT",
		Short: "Remove a node gracefully: release its vnodes, then have it leave and stop",
		Long: `remove releases every vnode of the node (through -s, any member), shows the
progress, and once the node holds nothing asks it to leave: it leaves gossip,
the cluster forgets it, and its process stops. A node that has failed (it
holds nothing any more) is forgotten directly.`,
		Example: `  sonae node remove 127.0.0.1_11213`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.removeNode(cmd, strings.Replace(args[0], ":", "_", 1), wait)
		},
	}
	remove.Flags().DurationVar(&wait, "wait", 30*time.Minute, "give up after this long")
	node.AddCommand(remove)
	return node
}

// removeNode is `sonae node remove`.
func (g *globals) removeNode(cmd *cobra.Command, id string, within time.Duration) error {
	out := cmd.OutOrStdout()
	ctx, cancel := context.WithTimeout(cmd.Context(), within)
	defer cancel()
	c, err := g.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	ms, err := c.Members()
	if err != nil {
		return friendly(err)
	}
	var target *client.Member
	for i := range ms {
		if ms[i].Name == id {
			target = &ms[i]
		}
	}
	if target == nil {
		return fmt.Errorf("%s is not a member that %s knows", id, g.server)
	}
	if target.Status != "alive" {
		line, err := c.Operator("remove_node", id)
		if err != nil {
			return friendly(err)
		}
		fmt.Fprintf(out, "%s is %s: %s\n", id, target.Status, line)
		return g.waitGone(ctx, out, c, id)
	}
	var after uint64
	if p, err := c.Progress(); err == nil && p.Operation != nil {
		after = p.Operation.ID
	}
	line, err := c.Operator("release", id)
	var se *client.ServerError
	switch {
	case err == nil:
		fmt.Fprintf(out, "release %s: %s\n", id, line)
		if ferr := g.follow(ctx, out, time.Second, true, after); ferr != nil {
			return ferr
		}
	case errors.As(err, &se) && strings.Contains(se.Line, "already being released"):
		fmt.Fprintf(out, "%s is being released already; following\n", id)
		if ferr := g.follow(ctx, out, time.Second, false, 0); ferr != nil {
			return ferr
		}
	default:
		return friendly(err)
	}
	if err := g.waitEmpty(ctx, c, id); err != nil {
		return err
	}
	tc, err := client.Dial(target.Addr, g.timeout)
	if err != nil {
		return fmt.Errorf("%s holds nothing now, but cannot be reached to leave: %w", id, err)
	}
	line, err = tc.Operator("leave")
	tc.Close()
	if err != nil {
		return friendly(err)
	}
	fmt.Fprintf(out, "%s: %s\n", id, line)
	return g.waitGone(ctx, out, c, id)
}

// waitEmpty waits until the routing table gives id no replica.
func (g *globals) waitEmpty(ctx context.Context, c *client.Conn, id string) error {
	for {
		t, err := c.RoutingTable()
		if err != nil {
			return friendly(err)
		}
		held := 0
		for _, v := range t.Vnodes {
			for _, n := range v.Nodes {
				if n == id {
					held++
				}
			}
		}
		if held == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s still holds %d replicas: %w", id, held, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitGone waits until id is no longer a member of the cluster.
func (g *globals) waitGone(ctx context.Context, out io.Writer, c *client.Conn, id string) error {
	for {
		t, err := c.RoutingTable()
		if err != nil {
			return friendly(err)
		}
		if !slicesContainsMember(t, id) {
			fmt.Fprintf(out, "%s removed from the cluster\n", id)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s is still a member: %w", id, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func slicesContainsMember(t *client.RoutingTable, id string) bool {
	for _, m := range t.Members {
		if m.ID == id {
			return true
		}
	}
	return false
}

func newHistoryCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "history [N]",
		Short: "Print the routing history: joins, leaves, failures, moves, lost vnodes, operations",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := -1
			if len(args) == 1 {
				v, err := strconv.Atoi(args[0])
				if err != nil || v < 0 {
					return fmt.Errorf("N %q: must be a count of events", args[0])
				}
				n = v
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			lines, err := c.History(n)
			if err != nil {
				return friendly(err)
			}
			return g.emit(cmd.OutOrStdout(), lines, func(w io.Writer) {
				for _, l := range lines {
					fmt.Fprintln(w, l)
				}
			})
		},
	}
}

func newLostCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "lost [YYYYMMDDHHMMSS]",
		Short: "List the vnodes that lost every replica (ROMA's history_of_lost), since a time (UTC)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			lines, err := c.LostHistory(strings.Join(args, ""))
			if err != nil {
				return friendly(err)
			}
			return g.emit(cmd.OutOrStdout(), lines, func(w io.Writer) {
				for _, l := range lines {
					fmt.Fprintln(w, l)
				}
			})
		},
	}
}

func newOptionCmd(g *globals) *cobra.Command {
	opt := &cobra.Command{Use: "option", Short: "Show or set the cluster's runtime options (they change on every node at once)"}
	opt.AddCommand(&cobra.Command{
		Use:   "set NAME VALUE",
		Short: "Set a runtime option (dcnice, move_rate, move_parallel, failover, fail_threshold, fail_gap, fail_grace, auto_recover, auto_recover_time, lost_action, auto_balance, event_limit_line)",
		Example: `  sonae option set dcnice 1
  sonae option set move_rate 50m
  sonae option set lost_action auto_assign`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.operator(cmd, false, "set_option", args[0], args[1])
		},
	}, &cobra.Command{
		Use:   "list",
		Short: "Show the options in force",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			stats, err := c.Stat(`^(stats\.(dcnice|move_rate|move_parallel)|routing\.(enabled_failover|fail_cnt_threshold|fail_cnt_gap|fail_grace|lost_action|auto_recover|auto_recover_time|auto_balance|event_limit_line))$`)
			if err != nil {
				return friendly(err)
			}
			return g.emit(cmd.OutOrStdout(), stats, func(w io.Writer) {
				rows := make([][]string, len(stats))
				for i, s := range stats {
					rows[i] = []string{s.Name, s.Value}
				}
				writeTable(w, rows)
			})
		},
	})
	return opt
}
