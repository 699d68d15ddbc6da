package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/protocol"
)

// setOptions commits runtime options (the cluster's, through Raft, so
// every node changes at once) and answers ok, or the refusal.
func (c *conn) setOptions(cmd, ok string, kv ...string) {
	cl := c.opsCluster(cmd)
	if cl == nil {
		return
	}
	// Check every value first, so a two-option command changes both or
	// neither.
	for i := 0; i < len(kv); i += 2 {
		if _, err := meta.CheckOption(kv[i], kv[i+1]); err != nil {
			c.line("CLIENT_ERROR " + cmd + ": " + strings.TrimPrefix(err.Error(), "meta: "))
			return
		}
	}
	for i := 0; i < len(kv); i += 2 {
		if err := c.propose(meta.Command{Op: meta.OpSetOption, Name: kv[i], Value: kv[i+1]}); err != nil {
			c.line("SERVER_ERROR " + cmd + ": " + err.Error())
			return
		}
	}
	c.line(ok)
}

// optionAdmin runs the commands that set options; false for another word.
func (c *conn) optionAdmin(word string, args [][]byte) bool {
	arg := func(i int) string { return string(args[i]) }
	one := func(usage, option string) {
		if len(args) != 1 {
			c.usage(usage)
			return
		}
		c.setOptions(word, protocol.ReplyStored, option, arg(0))
	}
	switch word {
	case "dcnice":
		one("dcnice <1..5>", meta.OptDCNice)
	case "set_move_rate":
		one("set_move_rate <bytes per second, k/m/g suffix; 0 = dcnice's>", meta.OptMoveRate)
	case "set_move_parallel":
		one("set_move_parallel <0..64; 0 = dcnice's>", meta.OptMoveParallel)
	case "set_threshold_for_failover":
		one("set_threshold_for_failover <probes 1..100>", meta.OptFailThreshold)
	case "set_gap_for_failover":
		one("set_gap_for_failover <seconds between probes>", meta.OptFailGap)
	case "set_grace_for_failover":
		one("set_grace_for_failover <seconds>", meta.OptFailGrace)
	case "set_lost_action":
		one("set_lost_action <no_action|auto_assign|shutdown>", meta.OptLostAction)
	case "set_auto_balance":
		one("set_auto_balance <true|false>", meta.OptAutoBalance)
	case "switch_failover":
		if len(args) != 1 || (arg(0) != "on" && arg(0) != "off") {
			c.usage("switch_failover <on|off>")
			return true
		}
		reply := "ENABLED"
		if arg(0) == "off" {
			reply = "DISABLED"
		}
		c.setOptions(word, reply, meta.OptFailover, arg(0))
	case "set_auto_recover":
		if len(args) < 1 || len(args) > 2 {
			c.usage("set_auto_recover <true|false> [seconds]")
			return true
		}
		kv := []string{meta.OptAutoRecover, arg(0)}
		if len(args) == 2 {
			kv = append(kv, meta.OptAutoRecoverTime, arg(1))
		}
		c.setOptions(word, protocol.ReplyStored, kv...)
	case "set_option":
		if len(args) != 2 {
			c.usage("set_option <name> <value> (names: " + strings.Join(meta.OptionNames(), ", ") + ")")
			return true
		}
		c.setOptions(word, protocol.ReplyStored, arg(0), arg(1))
	default:
		return false
	}
	return true
}

// cmdHistory prints the routing history, oldest first: all of it, or the
// last N events.
func (c *conn) cmdHistory(args [][]byte) {
	if len(args) > 1 {
		c.usage("history [N]")
		return
	}
	n := -1
	if len(args) == 1 {
		v, err := strconv.Atoi(string(args[0]))
		if err != nil || v < 0 {
			c.line("CLIENT_ERROR history: N must be a count of events, not " + strconv.Quote(string(args[0])))
			return
		}
		n = v
	}
	if cl := c.srv.cl; cl != nil {
		h := cl.fsm.State().History
		if n >= 0 && n < len(h) {
			h = h[len(h)-n:]
		}
		for _, e := range h {
			c.line(e.String())
		}
	}
	c.line(protocol.ReplyEnd)
}

// romaTime is history_of_lost's argument form.
const romaTime = "20060102150405"

// cmdHistoryOfLost is ROMA's history_of_lost [yyyymmddhhmmss]: the vnodes
// that lost every replica (since then), with when, and whether they are
// still lost.
func (c *conn) cmdHistoryOfLost(args [][]byte) {
	if len(args) > 1 {
		c.usage("history_of_lost [yyyymmddhhmmss]")
		return
	}
	var since int64
	if len(args) == 1 {
		t, err := time.ParseInLocation(romaTime, string(args[0]), time.UTC)
		if err != nil {
			c.line("CLIENT_ERROR history_of_lost: want yyyymmddhhmmss (UTC), not " + strconv.Quote(string(args[0])))
			return
		}
		since = t.UnixMilli()
	}
	if cl := c.srv.cl; cl != nil && cl.fsm.State().Initialized() {
		st := cl.fsm.State()
		for _, e := range st.History {
			if e.Kind != meta.EvLost || e.Time < since {
				continue
			}
			now := "restored"
			if len(st.Table.Vnodes[e.Vnode].Nodes) == 0 {
				now = "lost"
			}
			c.line(fmt.Sprintf("%d %s last held by %s (%s)", e.Vnode,
				time.UnixMilli(e.Time).UTC().Format(romaTime), e.Node, now))
		}
	}
	c.line(protocol.ReplyEnd)
}

// Progress is what `progress` answers: the cluster's current (or last)
// operation and this node's part of the data movement. `sonae progress`
// asks every member and adds the bytes up.
type Progress struct {
	Node      string          `json:"node"`
	Operation *meta.Operation `json:"operation"`
	Moving    int             `json:"moving"`
	Lagging   int             `json:"lagging"`
	Short     int             `json:"short"`
	Lost      int             `json:"lost"`
	// BytesSent is this node's move traffic for the operation (OpBytes
	// when the operation is the one its counters follow).
	BytesSent    int64 `json:"bytes_sent"`
	TotalSent    int64 `json:"total_bytes_sent"`
	SyncsRunning int   `json:"syncs_running"`
	Rate         int64 `json:"move_rate"`
	Parallel     int   `json:"move_parallel"`
	NowMS        int64 `json:"now"`
}

var errNoCluster = errors.New("not in an initialized cluster")

func (s *Server) progress() (Progress, error) {
	if s.cl == nil || !s.cl.fsm.State().Initialized() {
		return Progress{}, errNoCluster
	}
	st := s.cl.fsm.State()
	ms := s.cl.rep.MoveStats()
	p := Progress{
		Node: string(s.cl.self), Operation: st.Operation, Moving: len(st.Moves),
		Short: len(st.Table.ShortVnodes()), Lost: len(st.Table.LostVnodes()),
		TotalSent: ms.BytesSent, SyncsRunning: ms.Running, Rate: ms.Rate, Parallel: ms.Parallel,
		NowMS: s.clk.Now().UnixMilli(),
	}
	for _, l := range st.Lagging {
		p.Lagging += len(l)
	}
	if st.Operation != nil && ms.OpID == st.Operation.ID {
		p.BytesSent = ms.OpBytes
	}
	return p, nil
}

func (c *conn) cmdProgress(args [][]byte) {
	if len(args) != 0 {
		c.usage("progress")
		return
	}
	p, err := c.srv.progress()
	if err != nil {
		c.line("SERVER_ERROR progress: " + err.Error())
		return
	}
	b, _ := json.Marshal(p)
	c.line(string(b))
	c.line(protocol.ReplyEnd)
}
