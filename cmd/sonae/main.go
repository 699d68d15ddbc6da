package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sonae-kv/sonae/client"
)

// globals are the persistent flags every command shares.
type globals struct {
	server  string
	output  string
	timeout time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot(os.Stdout, os.Stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "sonae: %v\n", err)
		os.Exit(1)
	}
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "sonae",
		Short:         "Administer and exercise sonae nodes",
		Long:          "sonae talks to a sonaed node over its client port: memcached commands, ROMA-style admin commands, and load generation.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if g.output != "text" && g.output != "json" {
				return fmt.Errorf("--output %q: must be text or json", g.output)
			}
			if g.timeout <= 0 {
				return fmt.Errorf("--timeout %s: must be positive", g.timeout)
			}
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVarP(&g.server, "server", "s", "127.0.0.1_11211", "node to talk to, HOST_PORT or HOST:PORT")
	pf.StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	pf.DurationVar(&g.timeout, "timeout", 5*time.Second, "connect and request timeout")
	root.AddCommand(
		newStatCmd(g), newGetCmd(g), newSetCmd(g), newDeleteCmd(g),
		newHashlistCmd(g), newBenchCmd(g),
		newMembersCmd(g), newRoutingCmd(g), newKeyinfoCmd(g),
		newProgressCmd(g), newHistoryCmd(g), newLostCmd(g),
		newReleaseCmd(g), newBalanceCmd(g), newRecoverCmd(g), newNodeCmd(g), newShutdownSelfCmd(g),
		newOptionCmd(g), newEventCmd(g), newQueryCmd(g),
	)
	return root
}

// dial connects to the chosen node.
func (g *globals) dial() (*client.Conn, error) {
	c, err := client.Dial(g.server, g.timeout)
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s: %w", g.server, err)
	}
	return c, nil
}

// emit prints v as JSON with -o json, or calls text otherwise.
func (g *globals) emit(w io.Writer, v any, text func(io.Writer)) error {
	if g.output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(w)
	return nil
}

// friendly turns client errors into messages for a person.
func friendly(err error) error {
	var se *client.ServerError
	if errors.As(err, &se) {
		return fmt.Errorf("the node refused: %s", se.Line)
	}
	return err
}
