package server

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sonae-kv/sonae/internal/membership"
	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/protocol"
	"github.com/sonae-kv/sonae/internal/routing"
)

// clusterAdmin runs the admin commands a cluster adds (docs/cluster.md).
// It returns false for a word it does not know.
func (c *conn) clusterAdmin(toks [][]byte) bool {
	args := toks[1:]
	switch string(toks[0]) {
	case "members":
		c.cmdMembers(args)
	case "routingdump":
		c.cmdRoutingDump(args)
	case "get_key_info":
		c.cmdKeyInfo(args)
	case "conn_option":
		c.cmdConnOption(args)
	case "cluster_info":
		c.cmdClusterInfo(args)
	case "release":
		c.cmdRelease(args)
	case "balance":
		c.cmdBalance(args)
	case "recover":
		c.cmdRecover(args)
	case "shutdown_self":
		c.cmdShutdownSelf(args)
	case "leave":
		c.cmdLeave(args)
	case "remove_node":
		c.cmdRemoveNode(args)
	case "history":
		c.cmdHistory(args)
	case "history_of_lost":
		c.cmdHistoryOfLost(args)
	case "progress":
		c.cmdProgress(args)
	case "event":
		c.cmdEvent(args)
	case "query":
		c.cmdQuery(args)
	default:
		return c.optionAdmin(string(toks[0]), args)
	}
	return true
}

// changeNamespace commits createhash or deletehash through Raft and waits
// until this node's store reflects it.
func (s *Server) changeNamespace(op meta.Op, name string) error {
	if s.cl == nil {
		if op == meta.OpCreateNamespace {
			return s.store.CreateNamespace(name)
		}
		return s.store.DeleteNamespace(name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.cl.propose(ctx, meta.Command{Op: op, Namespace: name}); err != nil {
		return err
	}
	for s.store.HasNamespace(name) != (op == meta.OpCreateNamespace) {
		ch := s.cl.fsm.Changed()
		select {
		case <-ctx.Done():
			return fmt.Errorf("namespace %s committed but not yet applied here: %w", name, ctx.Err())
		case <-ch:
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

func isVoter(st *meta.State, id routing.NodeID) bool {
	m, ok := st.Member(id)
	return ok && m.Voter
}

func balanced(t *routing.Table) bool {
	ok, _ := routing.Balanced(t)
	return ok
}

// nodeList is ROMA's nodelist: every node of the routing table.
func (s *Server) nodeList() []string {
	if s.cl == nil || !s.cl.fsm.State().Initialized() {
		return []string{s.cfg.NodeID()}
	}
	nodes := s.cl.fsm.State().Table.Nodes
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = string(n.ID)
	}
	return ids
}

// receiving maps the vnodes this node is receiving in a move (as decimal
// strings, ROMA's run_receive_a_vnode) to the primary sending each; nil
// when there is none.
func (s *Server) receiving() map[string]string {
	if s.cl == nil {
		return nil
	}
	st := s.cl.fsm.State()
	var out map[string]string
	for v := range st.Moves {
		if slices.Contains(st.Incoming(v), s.cl.self) {
			if out == nil {
				out = map[string]string{}
			}
			out[fmt.Sprint(v)] = string(st.Table.Vnodes[v].Primary())
		}
	}
	return out
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// routingStats are ROMA's routing.* keys, for this node, from the table.
func (s *Server) routingStats() []stat {
	cfg := s.cfg
	if s.cl == nil || !s.cl.fsm.State().Initialized() {
		return []stat{
			{"routing.redundant", fmt.Sprint(cfg.Redundancy)},
			{"routing.nodes.length", "0"},
			{"routing.nodes", "[]"},
			{"routing.div_bits", fmt.Sprint(cfg.DivBits)},
			{"routing.vnodes.length", fmt.Sprint(s.store.VnodeCount())},
			{"routing.version", "0"},
		}
	}
	st := s.cl.fsm.State()
	t := st.Table
	ids := make([]string, len(t.Nodes))
	for i, n := range t.Nodes {
		ids[i] = string(n.ID)
	}
	out := []stat{
		{"routing.redundant", fmt.Sprint(t.Redundancy)},
		{"routing.nodes.length", fmt.Sprint(len(ids))},
		{"routing.nodes", jsonString(ids)},
		{"routing.div_bits", fmt.Sprint(t.DivBits)},
		{"routing.vnodes.length", fmt.Sprint(t.VnodeCount())},
	}
	for p, n := range t.Counts(s.cl.self) {
		out = append(out, stat{"routing." + routing.PositionName(p), fmt.Sprint(n)})
	}
	lagging := 0
	for _, l := range st.Lagging {
		lagging += len(l)
	}
	leader, _ := s.cl.raft.Leader()
	out = append(out,
		stat{"routing.short_vnodes", fmt.Sprint(len(t.ShortVnodes()))},
		stat{"routing.lost_vnodes", fmt.Sprint(len(t.LostVnodes()))},
		stat{"routing.lagging_replicas", fmt.Sprint(lagging)},
		stat{"routing.moving_vnodes", fmt.Sprint(len(st.Moves))},
		stat{"routing.balanced", fmt.Sprint(balanced(t))},
		stat{"routing.version", fmt.Sprint(t.Version)},
		stat{"routing.replication_in_host", fmt.Sprint(t.ReplicationInHost)},
		stat{"routing.meta_leader", leader},
		stat{"routing.meta_voter", fmt.Sprint(isVoter(st, s.cl.self))},
		stat{"routing.meta_index", fmt.Sprint(st.Index)},
		stat{"routing.read_lease", s.cl.leaseStatus()},
	)
	return append(out, failoverStats(st)...)
}

// failoverStats are ROMA's failover and event keys, from the options.
func failoverStats(st *meta.State) []stat {
	tun := st.Tuning()
	var failed []string
	for _, m := range st.Members {
		if m.Failed {
			failed = append(failed, string(m.ID))
		}
	}
	recoverStatus := "waiting"
	switch {
	case st.Running() && st.Operation.Kind == meta.OpKindRecover:
		recoverStatus = "executing"
	case tun.AutoRecover && st.ShortSince > 0:
		recoverStatus = "preparing"
	}
	events := make([]string, len(st.History))
	for i, e := range st.History {
		events[i] = e.String()
	}
	return []stat{
		{"routing.enabled_failover", fmt.Sprint(tun.Failover)},
		{"routing.fail_cnt_threshold", fmt.Sprint(tun.FailThreshold)},
		{"routing.fail_cnt_gap", fmt.Sprint(tun.FailGap.Seconds())},
		{"routing.fail_grace", fmt.Sprint(tun.FailGrace.Seconds())},
		{"routing.failed_nodes", jsonString(orEmptyList(failed))},
		{"routing.lost_action", tun.LostAction},
		{"routing.auto_recover", fmt.Sprint(tun.AutoRecover)},
		{"routing.auto_recover_status", recoverStatus},
		{"routing.auto_recover_time", fmt.Sprint(tun.AutoRecoverTime.Seconds())},
		{"routing.auto_balance", fmt.Sprint(tun.AutoBalance)},
		{"routing.event", jsonString(events)},
		{"routing.event_limit_line", fmt.Sprint(tun.EventLimit)},
	}
}

func orEmptyList(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// moveStats are the stats.* keys of data movement on this node.
func (s *Server) moveStats() []stat {
	if s.cl == nil || !s.cl.fsm.State().Initialized() {
		return nil
	}
	st := s.cl.fsm.State()
	tun := st.Tuning()
	ms := s.cl.rep.MoveStats()
	op := "null"
	if st.Operation != nil {
		op = jsonString(st.Operation)
	}
	return []stat{
		{"stats.dcnice", fmt.Sprint(tun.DCNice)},
		{"stats.move_rate", fmt.Sprint(tun.MoveRate)},
		{"stats.move_parallel", fmt.Sprint(tun.MoveParallel)},
		{"stats.move_bytes_sent", fmt.Sprint(ms.BytesSent)},
		{"stats.move_vnodes_synced", fmt.Sprint(ms.VnodesSynced)},
		{"stats.move_full_copies", fmt.Sprint(ms.FullCopies)},
		{"stats.move_syncs_running", fmt.Sprint(ms.Running)},
		{"stats.operation", op},
	}
}

// running reports whether an operation of kind runs (and, for a release,
// whether it releases this node).
func (s *Server) running(kind string) bool {
	if s.cl == nil {
		return false
	}
	st := s.cl.fsm.State()
	if !st.Running() || st.Operation.Kind != kind {
		return false
	}
	return kind != meta.OpKindRelease || st.Operation.Node == s.cl.self
}

func (c *conn) cmdMembers(args [][]byte) {
	if len(args) != 0 {
		c.usage("members")
		return
	}
	if c.srv.cl == nil {
		c.line(protocol.ReplyEnd)
		return
	}
	ms := c.srv.cl.gossip.Members()
	slices.SortFunc(ms, func(a, b memberView) int { return strings.Compare(a.Name, b.Name) })
	for _, m := range ms {
		keys := make([]string, 0, len(m.Tags))
		for k := range m.Tags {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		tags := make([]string, len(keys))
		for i, k := range keys {
			tags[i] = k + "=" + m.Tags[k]
		}
		c.line(fmt.Sprintf("MEMBER %s %s %s %s", m.Name, m.HostPort(), m.Status, strings.Join(tags, ",")))
	}
	c.line(protocol.ReplyEnd)
}

// tableDump is `routingdump sonae`: the table plus the lagging replicas.
type tableDump struct {
	Version           uint64         `json:"version"`
	DivBits           uint           `json:"div_bits"`
	Redundancy        int            `json:"redundancy"`
	ReplicationInHost bool           `json:"replication_in_host"`
	Nodes             []routing.Node `json:"nodes"`
	Vnodes            []vnodeDump    `json:"vnodes"`
	Members           []meta.Member  `json:"members"`
}

type vnodeDump struct {
	Nodes   []routing.NodeID `json:"nodes"`
	Epoch   uint64           `json:"epoch"`
	Lagging []routing.NodeID `json:"lagging,omitempty"`
}

func (c *conn) clusterState() (*meta.State, bool) {
	if c.srv.cl == nil {
		c.line("SERVER_ERROR this node runs without a cluster")
		return nil, false
	}
	st := c.srv.cl.fsm.State()
	if !st.Initialized() {
		c.line("SERVER_ERROR the cluster is not initialized yet")
		return nil, false
	}
	return st, true
}

func (c *conn) cmdRoutingDump(args [][]byte) {
	if len(args) > 1 {
		c.usage("routingdump [json|sonae]")
		return
	}
	st, ok := c.clusterState()
	if !ok {
		return
	}
	form := "json"
	if len(args) == 1 {
		form = string(args[0])
	}
	var b []byte
	var err error
	switch form {
	case "json":
		b, err = st.Table.MarshalRoutingDump()
	case "sonae":
		d := tableDump{
			Version: st.Table.Version, DivBits: st.Table.DivBits, Redundancy: st.Table.Redundancy,
			ReplicationInHost: st.Table.ReplicationInHost, Nodes: st.Table.Nodes, Members: st.Members,
			Vnodes: make([]vnodeDump, st.Table.VnodeCount()),
		}
		for v, r := range st.Table.Vnodes {
			d.Vnodes[v] = vnodeDump{Nodes: r.Nodes, Epoch: r.Epoch, Lagging: st.Lagging[v]}
		}
		b, err = json.Marshal(d)
	default:
		c.line("CLIENT_ERROR routingdump: unknown form " + form + " (json or sonae)")
		return
	}
	if err != nil {
		c.line(serverError(err))
		return
	}
	c.w.Write(b)
	c.w.WriteString("\r\n")
	c.line(protocol.ReplyEnd)
}

func (c *conn) cmdKeyInfo(args [][]byte) {
	if len(args) != 1 {
		c.usage("get_key_info <key>")
		return
	}
	st, ok := c.clusterState()
	if !ok {
		return
	}
	_, key, bad := c.splitKey(args[0])
	if bad != "" {
		c.line(bad)
		return
	}
	v, r := st.Table.Lookup(key)
	c.line(fmt.Sprintf("vnode %d", v))
	c.line(fmt.Sprintf("epoch %d", r.Epoch))
	for p, n := range r.Nodes {
		c.line(routing.PositionName(p) + " " + string(n))
	}
	ins := st.InSyncReplicas(v)
	parts := make([]string, len(ins))
	for i, n := range ins {
		parts[i] = string(n)
	}
	c.line("in_sync " + strings.Join(parts, ","))
	c.line(protocol.ReplyEnd)
}

func (c *conn) cmdConnOption(args [][]byte) {
	if len(args) != 2 || (string(args[1]) != "on" && string(args[1]) != "off") {
		c.usage("conn_option direct|read_secondary on|off")
		return
	}
	on := string(args[1]) == "on"
	switch string(args[0]) {
	case "direct":
		c.direct = on
	case "read_secondary":
		c.readSecondary = on
	default:
		c.line("CLIENT_ERROR conn_option: unknown option " + string(args[0]) + " (direct or read_secondary)")
		return
	}
	c.setData()
	c.line(protocol.ReplyOK)
}

func (c *conn) cmdClusterInfo(args [][]byte) {
	if len(args) != 0 {
		c.usage("cluster_info")
		return
	}
	info := ClusterInfo{Name: c.srv.cfg.Name, Node: c.srv.cfg.NodeID()}
	if cl := c.srv.cl; cl != nil {
		info.Leader, _ = cl.raft.Leader()
		select {
		case <-cl.ready:
			info.Ready = true
		default:
		}
		if st := cl.fsm.State(); st.Initialized() {
			info.TableVersion = st.Table.Version
			info.DivBits, info.Redundancy = st.Settings.DivBits, st.Settings.Redundancy
			info.ReplicationInHost = st.Settings.ReplicationInHost
		}
	}
	b, _ := json.Marshal(info)
	c.w.Write(b)
	c.w.WriteString("\r\n")
	c.line(protocol.ReplyEnd)
}

// flushCluster runs flush_all on every member (this node included).
func (s *Server) flushCluster(ns string, delay int64) error {
	if s.cl == nil {
		return s.store.FlushAll(ns, delay)
	}
	st := s.cl.fsm.State()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []string
	for _, m := range st.Members {
		var err error
		if m.ID == s.cl.self {
			err = s.store.FlushAll(ns, delay)
		} else {
			err = s.cl.rep.FlushAt(ctx, m.Addr, ns, delay)
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", m.ID, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("flush_all failed on %s", strings.Join(errs, "; "))
	}
	return nil
}

// memberView is a gossip member as `members` prints it.
type memberView = membership.Member
