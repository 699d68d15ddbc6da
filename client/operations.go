package client

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
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
