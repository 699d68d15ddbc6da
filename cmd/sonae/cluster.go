package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sonae-kv/sonae/client"
)

func newMembersCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "members",
		Short: "List the cluster's members as the node's gossip sees them (like serf members)",
		Example: `  sonae members
  sonae -s 127.0.0.1_11212 members -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ms, err := c.Members()
			if err != nil {
				return friendly(err)
			}
			return g.emit(cmd.OutOrStdout(), ms, func(w io.Writer) {
				rows := make([][]string, 0, len(ms))
				for _, m := range ms {
					rows = append(rows, []string{m.Name, m.Addr, m.Status, formatTags(m.Tags)})
				}
				writeTable(w, rows)
			})
		},
	}
}

// writeTable writes rows as aligned columns two spaces apart, without
// trailing blanks.
func writeTable(w io.Writer, rows [][]string) {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
	for line := range strings.Lines(b.String()) {
		fmt.Fprintln(w, strings.TrimRight(line, " \n"))
	}
}

// formatTags writes tags as serf does: k=v,k=v, sorted by key.
func formatTags(tags map[string]string) string {
	parts := make([]string, 0, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		parts = append(parts, k+"="+tags[k])
	}
	return strings.Join(parts, ",")
}

func newRoutingCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "routing",
		Short: "Summarise the routing table: vnodes per node and position, and the table version",
		Long: `routing fetches the node's committed routing table (routingdump sonae) and
prints, per node, how many vnodes it holds as primary, secondary1, ... and
how many of its replicas are still catching up (lagging). -o json prints the
table exactly as the node sent it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			raw, err := c.RoutingDump()
			if err != nil {
				return friendly(err)
			}
			if g.output == "json" {
				if !json.Valid(raw) {
					return fmt.Errorf("the node sent a routing table that is not JSON: %.80q", raw)
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s\n", raw)
				return err
			}
			t, err := client.ParseRoutingTable(raw)
			if err != nil {
				return err
			}
			printRouting(cmd.OutOrStdout(), t)
			return nil
		},
	}
}

// printRouting writes the per-node summary of t.
func printRouting(w io.Writer, t *client.RoutingTable) {
	fmt.Fprintf(w, "table version %d: %d vnodes (div_bits %d), redundancy %d, %d nodes\n",
		t.Version, len(t.Vnodes), t.DivBits, t.Redundancy, len(t.Nodes))
	positions := t.Redundancy
	for _, r := range t.Vnodes {
		positions = max(positions, len(r.Nodes))
	}
	lagging := map[string]int{}
	short, lost, lagTotal := 0, 0, 0
	for _, r := range t.Vnodes {
		switch n := len(r.Nodes); {
		case n == 0:
			lost++
		case n < t.Redundancy:
			short++
		}
		for _, id := range r.Lagging {
			lagging[id]++
			lagTotal++
		}
	}
	head := []string{"node", "primary"}
	for i := 1; i < positions; i++ {
		head = append(head, fmt.Sprintf("secondary%d", i))
	}
	rows := [][]string{append(head, "lagging")}
	for _, n := range t.Nodes {
		row := []string{n.ID}
		counts := t.Counts(n.ID)
		for p := range positions {
			row = append(row, strconv.Itoa(counts[p]))
		}
		rows = append(rows, append(row, strconv.Itoa(lagging[n.ID])))
	}
	writeTable(w, rows)
	fmt.Fprintf(w, "short vnodes %d, lost vnodes %d, lagging replicas %d\n", short, lost, lagTotal)
}

func newKeyinfoCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "keyinfo KEY",
		Short: "Show where a key lives: its vnode, epoch, primary, secondaries and in-sync replicas",
		Example: `  sonae keyinfo user:42
  sonae keyinfo user:42 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ki, err := c.KeyInfo(args[0])
			if err != nil {
				return friendly(err)
			}
			return g.emit(cmd.OutOrStdout(), ki, func(w io.Writer) {
				rows := [][]string{
					{"key", ki.Key}, {"vnode", strconv.Itoa(ki.Vnode)},
					{"epoch", strconv.FormatUint(ki.Epoch, 10)}, {"primary", ki.Primary},
				}
				for i, id := range ki.Secondaries {
					rows = append(rows, []string{fmt.Sprintf("secondary%d", i+1), id})
				}
				writeTable(w, append(rows, []string{"in_sync", strings.Join(ki.InSync, ",")}))
			})
		},
	}
}
