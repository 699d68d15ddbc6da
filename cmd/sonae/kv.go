package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/spf13/cobra"

	"github.com/sonae-kv/sonae/client"
)

// nsKey appends ROMA's namespace suffix when a namespace is given.
func nsKey(key, ns string) string {
	if ns == "" {
		return key
	}
	return key + "\x1b" + ns
}

func newGetCmd(g *globals) *cobra.Command {
	var ns string
	cmd := &cobra.Command{
		Use:   "get KEY [KEY...]",
		Short: "Fetch values; text output prints each value, JSON adds flags and cas",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			keys := make([]string, len(args))
			for i, k := range args {
				keys[i] = nsKey(k, ns)
			}
			items, err := c.GetMulti(keys...)
			if err != nil {
				return friendly(err)
			}
			type out struct {
				Key   string `json:"key"`
				Value string `json:"value"`
				Flags uint32 `json:"flags"`
				CAS   uint64 `json:"cas"`
			}
			res := make([]out, 0, len(items))
			for _, it := range items {
				res = append(res, out{it.Key, string(it.Value), it.Flags, it.CAS})
			}
			if err := g.emit(cmd.OutOrStdout(), res, func(w io.Writer) {
				for _, it := range items {
					if len(args) > 1 {
						fmt.Fprintf(w, "%s: ", it.Key)
					}
					w.Write(it.Value)
					fmt.Fprintln(w)
				}
			}); err != nil {
				return err
			}
			if len(items) < len(args) {
				found := map[string]bool{}
				for _, it := range items {
					found[it.Key] = true
				}
				var missing []string
				for _, k := range args {
					if !found[k] {
						missing = append(missing, k)
					}
				}
				return fmt.Errorf("not found: %v", missing)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "namespace (ROMA hash); default: the node's default")
	return cmd
}

func newSetCmd(g *globals) *cobra.Command {
	var ns string
	var flags int64
	var exptime int64
	cmd := &cobra.Command{
		Use:   "set KEY [VALUE]",
		Short: "Store a value (read from stdin when VALUE is omitted)",
		Example: `  sonae set greeting hello
  sonae set --exptime 60 session:1 "$(cat token)"
  sonae set blob < file.bin`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if flags < 0 || flags > math.MaxUint32 {
				return fmt.Errorf("--flags %d: must be in 0..%d", flags, uint32(math.MaxUint32))
			}
			var value []byte
			if len(args) == 2 {
				value = []byte(args[1])
			} else {
				var err error
				if value, err = io.ReadAll(cmd.InOrStdin()); err != nil {
					return fmt.Errorf("reading value from stdin: %w", err)
				}
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.Set(nsKey(args[0], ns), value, uint32(flags), exptime); err != nil {
				return friendly(err)
			}
			return g.emit(cmd.OutOrStdout(), map[string]any{"key": args[0], "stored": true, "bytes": len(value)},
				func(w io.Writer) { fmt.Fprintln(w, "STORED") })
		},
	}
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "namespace (ROMA hash)")
	cmd.Flags().Int64Var(&flags, "flags", 0, "32-bit client flags")
	cmd.Flags().Int64Var(&exptime, "exptime", 0, "memcached exptime: 0 never, <=30 days relative seconds, else unix time")
	cmd.SetIn(os.Stdin)
	return cmd
}

func newDeleteCmd(g *globals) *cobra.Command {
	var ns string
	cmd := &cobra.Command{
		Use:   "delete KEY",
		Short: "Delete a key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			err = c.Delete(nsKey(args[0], ns))
			if errors.Is(err, client.ErrNotFound) {
				return fmt.Errorf("not found: %s", args[0])
			}
			if err != nil {
				return friendly(err)
			}
			return g.emit(cmd.OutOrStdout(), map[string]any{"key": args[0], "deleted": true},
				func(w io.Writer) { fmt.Fprintln(w, "DELETED") })
		},
	}
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "namespace (ROMA hash)")
	return cmd
}
