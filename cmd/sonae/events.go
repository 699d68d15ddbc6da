package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sonae-kv/sonae/client"
)

func newEventCmd(g *globals) *cobra.Command {
	var coalesce bool
	cmd := &cobra.Command{
		Use:   "event NAME [PAYLOAD]",
		Short: "Send a cluster-wide user event to every member's event handlers (like serf event)",
		Long: `event gossips a user event to every member, this one included. Each runs its
--event-handler scripts that match (user or user:NAME) with SERF_EVENT=user,
SERF_USER_EVENT=NAME, SERF_USER_LTIME and the payload on stdin. Delivery is
best effort, as in serf. Name and payload together may be at most 512 bytes.`,
		Example: `  sonae event deploy v1.4.2
  sonae -s 127.0.0.1_11212 event --coalesce reload`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var payload []byte
			if len(args) == 2 {
				payload = []byte(args[1])
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.Event(args[0], payload, coalesce); err != nil {
				return friendly(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Event '%s' dispatched! Coalescing enabled: %v\n", args[0], coalesce)
			return nil
		},
	}
	cmd.Flags().BoolVar(&coalesce, "coalesce", false, "tell handlers that only the latest event of a burst of this name matters")
	return cmd
}

func newQueryCmd(g *globals) *cobra.Command {
	var (
		opts  client.QueryOptions
		nodes []string
		tags  []string
		wait  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "query NAME [PAYLOAD]",
		Short: "Ask the members a question their query handlers answer, and print the responses (like serf query)",
		Long: `query gossips a query to the members (all, or those named with --node and
those whose tags match every --tag KEY=REGEXP) and prints each response as
it came: the stdout of the first matching query handler (query or
query:NAME) that exited 0 with some output, at most 1 KiB.`,
		Example: `  sonae query load
  sonae query --node 127.0.0.1_11212 --tag role='^kv$' uptime`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var payload []byte
			if len(args) == 2 {
				payload = []byte(args[1])
			}
			opts.Nodes, opts.Timeout = nodes, wait
			for _, t := range tags {
				k, re, ok := strings.Cut(t, "=")
				if !ok || k == "" {
					return fmt.Errorf("--tag %q is not KEY=REGEXP", t)
				}
				if opts.Tags == nil {
					opts.Tags = map[string]string{}
				}
				opts.Tags[k] = re
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			resps, err := c.Query(args[0], payload, opts)
			if err != nil {
				return friendly(err)
			}
			return g.emit(cmd.OutOrStdout(), resps, func(w io.Writer) {
				for _, r := range resps {
					fmt.Fprintf(w, "Response from '%s': %s\n", r.From, strings.TrimSuffix(r.Payload, "\n"))
				}
				fmt.Fprintf(w, "Total Responses: %d\n", len(resps))
			})
		},
	}
	cmd.Flags().StringArrayVar(&nodes, "node", nil, "only this member answers (repeatable)")
	cmd.Flags().StringArrayVar(&tags, "tag", nil, "only members whose tag KEY matches REGEXP answer, KEY=REGEXP (repeatable)")
	cmd.Flags().DurationVar(&wait, "wait", 0, "collect responses this long (default: serf's, which grows with the cluster)")
	return cmd
}
