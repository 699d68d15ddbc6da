package client

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Operation is a data-movement operation of the cluster (join, release,
// recover, balance), as `progress` reports it.
type Operation struct {
	ID      uint64 `json:"id"`
	Kind    string `json:"kind"`
	Node    string `json:"node,omitempty"`
	Started int64  `json:"started"` // Unix ms
	Ended   int64  `json:"ended,omitempty"`
	Pending []int  `json:"pending,omitempty"`
	Done    int    `json:"done"`
}

// Total is the number of vnodes the operation covers so far.
func (o *Operation) Total() int { return o.Done + len(o.Pending) }

// Running reports whether the operation is under way.
func (o *Operation) Running() bool { return o != nil && o.Ended == 0 }

// Progress is one node's `progress` answer: the cluster's operation and
// the node's own part of the data movement.
type Progress struct {
	Node      string     `json:"node"`
	Operation *Operation `json:"operation"`
	Moving    int        `json:"moving"`
	Lagging   int        `json:"lagging"`
	Short     int        `json:"short"`
	Lost      int        `json:"lost"`
	// BytesSent is what this node sent for the operation; TotalSent since
	// it started.
	BytesSent    int64 `json:"bytes_sent"`
	TotalSent    int64 `json:"total_bytes_sent"`
	SyncsRunning int   `json:"syncs_running"`
	Rate         int64 `json:"move_rate"`
	Parallel     int   `json:"move_parallel"`
	Now          int64 `json:"now"`
}

// Progress sends `progress`.
func (c *Conn) Progress() (Progress, error) {
	lines, err := c.Lines("progress")
	if err != nil {
		return Progress{}, err
	}
	if len(lines) != 1 {
		return Progress{}, fmt.Errorf("%w: progress answered %d lines", ErrProtocol, len(lines))
	}
	var p Progress
	if err := json.Unmarshal([]byte(lines[0]), &p); err != nil {
		return Progress{}, fmt.Errorf("%w: progress: %v", ErrProtocol, err)
	}
	return p, nil
}

// History sends `history [n]` (n < 0: all) and returns the event lines,
// oldest first.
func (c *Conn) History(n int) ([]string, error) {
	cmd := "history"
	if n >= 0 {
		cmd += " " + strconv.Itoa(n)
	}
	return c.Lines(cmd)
}

// LostHistory sends `history_of_lost [since]` (since: yyyymmddhhmmss, UTC,
// or empty for all).
func (c *Conn) LostHistory(since string) ([]string, error) {
	return c.Lines(strings.TrimSpace("history_of_lost " + since))
}

// Operator runs one of the operator commands that answer one line
// (release, balance, recover, leave, remove_node, the option setters) and
// returns that line; a refusal is a *ServerError.
func (c *Conn) Operator(words ...string) (string, error) {
	return c.Command(strings.Join(words, " "))
}

// QueryOptions narrows a Query, as serf query's flags do.
type QueryOptions struct {
	// Nodes limits the members that answer to these names.
	Nodes []string
	// Tags limits them to those whose tag matches each regular expression
	// (unanchored, like serf's).
	Tags map[string]string
	// Timeout is how long responses are collected; 0 is serf's default,
	// which grows with the cluster's size.
	Timeout time.Duration
}

// QueryResponse is one member's answer to a Query.
type QueryResponse struct {
	From    string `json:"from"`
	Payload string `json:"payload"`
}

// Event sends a user event to every member's event handlers (`event`).
func (c *Conn) Event(name string, payload []byte, coalesce bool) error {
	if err := checkMessageName(name); err != nil {
		return err
	}
	cmd := "event -base64 "
	if coalesce {
		cmd = "event -coalesce -base64 "
	}
	line, err := c.Command(cmd + name + " " + base64.StdEncoding.EncodeToString(payload))
	if err != nil {
		return err
	}
	if line != "OK" {
		return fmt.Errorf("%w: event answered %q", ErrProtocol, line)
	}
	return nil
}

// Query asks the members a question their query handlers answer (`query`)
// and returns the responses in arrival order. The connection waits for the
// whole collection time, beyond its own timeout.
func (c *Conn) Query(name string, payload []byte, opts QueryOptions) ([]QueryResponse, error) {
	if err := checkMessageName(name); err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString("query")
	for _, n := range opts.Nodes {
		if n == "" || strings.ContainsAny(n, " \t\r\n") {
			return nil, fmt.Errorf("client: query node %q is not a node name", n)
		}
		b.WriteString(" -node " + n)
	}
	for _, k := range slices.Sorted(maps.Keys(opts.Tags)) {
		kv := k + "=" + opts.Tags[k]
		if k == "" || strings.ContainsAny(kv, " \t\r\n") {
			return nil, fmt.Errorf("client: query tag filter %q must be KEY=REGEXP without blanks", kv)
		}
		b.WriteString(" -tag " + kv)
	}
	if opts.Timeout > 0 {
		b.WriteString(" -timeout " + opts.Timeout.String())
	}
	b.WriteString(" -base64 " + name + " " + base64.StdEncoding.EncodeToString(payload))
	saved := c.timeout
	if saved > 0 {
		// serf's default collection time is well under a minute for any
		// cluster sonae runs; an explicit one is added to the usual bound.
		c.timeout = saved + max(opts.Timeout, time.Minute)
		defer func() { c.timeout = saved }()
	}
	lines, err := c.Lines(b.String())
	if err != nil {
		return nil, err
	}
	out := make([]QueryResponse, 0, len(lines))
	for _, l := range lines {
		f := strings.SplitN(l, " ", 3)
		if len(f) != 3 || f[0] != "RESPONSE" {
			return nil, fmt.Errorf("%w: query answered %q", ErrProtocol, l)
		}
		p, err := strconv.Unquote(f[2])
		if err != nil {
			return nil, fmt.Errorf("%w: query answered %q: %v", ErrProtocol, l, err)
		}
		out = append(out, QueryResponse{From: f[1], Payload: p})
	}
	return out, nil
}

// checkMessageName refuses a user event or query name the text protocol
// cannot carry as one word.
func checkMessageName(name string) error {
	if name == "" || strings.HasPrefix(name, "-") || strings.ContainsAny(name, " \t\r\n") {
		return fmt.Errorf("client: %q is not an event or query name (one word, not starting with '-')", name)
	}
	return nil
}
