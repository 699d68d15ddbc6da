package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newStatCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "stat [REGEXP]",
		Short: "Show a node's ROMA-style statistics, optionally filtered by a regexp on the name",
		Example: `  sonae stat
  sonae stat routing
  sonae -s 127.0.0.1_11212 stat 'primary|secondary' -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			pattern := ""
			if len(args) == 1 {
				pattern = args[0]
			}
			stats, err := c.Stat(pattern)
			if err != nil {
				return friendly(err)
			}
			if g.output == "json" {
				m := make(map[string]string, len(stats))
				for _, s := range stats {
					m[s.Name] = s.Value
				}
				return g.emit(cmd.OutOrStdout(), m, nil)
			}
			return g.emit(cmd.OutOrStdout(), nil, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				for _, s := range stats {
					fmt.Fprintf(tw, "%s\t%s\n", s.Name, s.Value)
				}
				tw.Flush()
			})
		},
	}
}

func newHashlistCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "hashlist",
		Short: "List the namespaces (ROMA hashes)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			line, err := c.Command("hashlist")
			if err != nil {
				return friendly(err)
			}
			names := splitWords(line)
			return g.emit(cmd.OutOrStdout(), names, func(w io.Writer) {
				for _, n := range names {
					fmt.Fprintln(w, n)
				}
			})
		},
	}
}

func splitWords(s string) []string {
	var out []string
	start := -1
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ' ' {
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
	}
	if out == nil {
		out = []string{}
	}
	return out
}
