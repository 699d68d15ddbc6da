package server

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sonae-kv/sonae/internal/controller"
	"github.com/sonae-kv/sonae/internal/meta"
	"github.com/sonae-kv/sonae/internal/protocol"
	"github.com/sonae-kv/sonae/internal/routing"
)

// The operator commands of data movement and membership (ROMA's names).
// Each answers at once, STARTED or a refusal that says why; the work then
// runs in the background, driven by the Raft leader's controller, and
// `sonae progress` follows it from any node.

// proposeTimeout bounds an admin command's metadata commit.
const proposeTimeout = 10 * time.Second

// opsCluster returns the cluster for an operator command, or answers why
// there is none.
func (c *conn) opsCluster(cmd string) *cluster {
	if !c.authorized(&protocol.Request{}, cmd) {
		return nil
	}
	cl := c.srv.cl
	if cl == nil || !cl.fsm.State().Initialized() {
		c.line("SERVER_ERROR " + cmd + ": this node is not in an initialized cluster yet")
		return nil
	}
	return cl
}

func (c *conn) propose(cmd meta.Command) error {
	ctx, cancel := context.WithTimeout(context.Background(), proposeTimeout)
	defer cancel()
	if cmd.Time == 0 {
		cmd.Time = c.srv.clk.Now().UnixMilli()
	}
	return c.srv.cl.propose(ctx, cmd)
}

// aliveSet is the members gossip sees alive, this node included.
func (cl *cluster) aliveSet() map[routing.NodeID]bool {
	alive := map[routing.NodeID]bool{cl.self: true}
	for _, p := range cl.peers() {
		if p.Status == "alive" {
			alive[p.ID] = true
		}
	}
	return alive
}

// hostsOf counts the distinct placement groups among nodes: hosts, or
// nodes with replication in host.
func hostsOf(t *routing.Table, nodes []routing.Node) int {
	if t.ReplicationInHost {
		return len(nodes)
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		seen[n.Host] = true
	}
	return len(seen)
}

// cmdRelease is ROMA's release: every vnode moves off the node (this one,
// or the one named), after which it holds nothing and can be stopped.
// `release cancel [NODE]` stops a release.
func (c *conn) cmdRelease(args [][]byte) {
	cancel := len(args) > 0 && string(args[0]) == "cancel"
	if cancel {
		args = args[1:]
	}
	if len(args) > 1 {
		c.usage("release [cancel] [HOST_PORT]")
		return
	}
	cl := c.opsCluster("release")
	if cl == nil {
		return
	}
	st := cl.fsm.State()
	node := cl.self
	if len(args) == 1 {
		node = routing.NodeID(strings.Replace(string(args[0]), ":", "_", 1))
	}
	m, ok := st.Member(node)
	switch {
	case !ok:
		c.line(fmt.Sprintf("SERVER_ERROR %s is not a member of cluster %s", node, st.Settings.Name))
		return
	case cancel && !m.Draining:
		c.line(fmt.Sprintf("SERVER_ERROR %s is not being released", node))
		return
	case cancel:
		if err := c.propose(meta.Command{Op: meta.OpSetDraining, Node: node, Draining: false}); err != nil {
			c.line("SERVER_ERROR release cancel: " + err.Error())
			return
		}
		c.line("CANCELED")
		return
	case m.Failed:
		c.line(fmt.Sprintf("SERVER_ERROR %s has failed: it holds nothing to release (remove_node %s forgets it)", node, node))
		return
	case m.Draining:
		c.line(fmt.Sprintf("SERVER_ERROR Other process is already running: %s is being released", node))
		return
	}
	var rest []routing.Node
	for _, n := range controller.ActiveNodes(st, cl.aliveSet()) {
		if n.ID != node {
			rest = append(rest, n)
		}
	}
	if h := hostsOf(st.Table, rest); h < st.Table.Redundancy {
		c.line(fmt.Sprintf("SERVER_ERROR Sufficient nodes do not found: releasing %s would leave %d nodes on %d hosts for redundancy %d",
			node, len(rest), h, st.Table.Redundancy))
		return
	}
	if err := c.propose(meta.Command{Op: meta.OpSetDraining, Node: node, Draining: true}); err != nil {
		c.line("SERVER_ERROR release: " + err.Error())
		return
	}
	c.line("STARTED")
}

// cmdBalance is ROMA's balance: even out every position now (the leader
// also does it on its own unless auto_balance is off).
func (c *conn) cmdBalance(args [][]byte) {
	if len(args) != 0 {
		c.usage("balance")
		return
	}
	cl := c.opsCluster("balance")
	if cl == nil {
		return
	}
	st := cl.fsm.State()
	alive := cl.aliveSet()
	if st.Running() {
		o := st.Operation
		c.line(fmt.Sprintf("SERVER_ERROR Other process is already running: %s%s, %d of %d vnodes done (sonae progress)",
			o.Kind, nodeSuffix(o.Node), o.Done, o.Total()))
		return
	}
	for _, n := range st.Table.Nodes {
		if !alive[n.ID] {
			c.line(fmt.Sprintf("SERVER_ERROR cannot balance while %s is down: it is failed over first, then recover refills", n.ID))
			return
		}
	}
	if controller.BalancedOn(st.Table, controller.ActiveNodes(st, alive)) {
		c.line("SERVER_ERROR already balanced: every position is within one of an even share")
		return
	}
	if err := c.propose(meta.Command{Op: meta.OpRequest, Kind: meta.OpKindBalance}); err != nil {
		c.line("SERVER_ERROR balance: " + err.Error())
		return
	}
	c.line("STARTED")
}

// cmdRecover is ROMA's recover: re-create the missing replicas of short
// vnodes now, without waiting for auto-recover.
func (c *conn) cmdRecover(args [][]byte) {
	if len(args) != 0 {
		c.usage("recover")
		return
	}
	cl := c.opsCluster("recover")
	if cl == nil {
		return
	}
	st := cl.fsm.State()
	short := len(st.Table.ShortVnodes())
	if short == 0 {
		c.line("SERVER_ERROR no short vnodes: every vnode has its replicas")
		return
	}
	alive := cl.aliveSet()
	if controller.Refillable(st, alive) == 0 {
		active := controller.ActiveNodes(st, alive)
		c.line(fmt.Sprintf("SERVER_ERROR nodes num < redundant num: %d nodes on %d hosts for redundancy %d; %d vnodes stay short",
			len(active), hostsOf(st.Table, active), st.Table.Redundancy, short))
		return
	}
	if err := c.propose(meta.Command{Op: meta.OpRequest, Kind: meta.OpKindRecover}); err != nil {
		c.line("SERVER_ERROR recover: " + err.Error())
		return
	}
	c.line("STARTED")
}

func nodeSuffix(n routing.NodeID) string {
	if n == "" {
		return ""
	}
	return " of " + string(n)
}

// shutdownCaution is ROMA's shutdown_self prompt.
const shutdownCaution = "=================================================================\r\n" +
	"CAUTION!!\r\n" +
	"        This command kills the instance!\r\n" +
	"        There is some possibility of occurring redundancy down!\r\n" +
	"=================================================================\r\n" +
	"\r\n" +
	"Are you sure to shutdown this instance?(yes/no)"

// cmdShutdownSelf is ROMA's shutdown_self: after a yes, this node stops
// (down, not gone: the others fail it over, and it comes back with its
// data when restarted). `shutdown_self yes` skips the prompt.
func (c *conn) cmdShutdownSelf(args [][]byte) {
	if len(args) > 1 || (len(args) == 1 && string(args[0]) != "yes") {
		c.usage("shutdown_self [yes]")
		return
	}
	if !c.authorized(&protocol.Request{}, "shutdown_self") {
		return
	}
	stop := func() {
		c.line("BYE")
		c.srv.requestStop("shutdown_self", false)
	}
	if len(args) == 1 {
		stop()
		return
	}
	if cl := c.srv.cl; cl != nil && cl.fsm.State().Initialized() {
		st := cl.fsm.State()
		held := 0
		for _, k := range st.Table.Counts(cl.self) {
			held += k
		}
		if held > 0 {
			c.w.WriteString(fmt.Sprintf("This node holds %d replicas; their vnodes lose a copy until it returns or recover runs.\r\n", held))
		}
	}
	c.line(shutdownCaution)
	c.confirm = func(answer string) {
		if answer == "yes" {
			stop()
			return
		}
		c.line("CANCELED")
	}
}

// cmdLeave is a graceful leave: a node that holds no replica (release
// first) leaves gossip, is removed from the cluster, and stops.
func (c *conn) cmdLeave(args [][]byte) {
	if len(args) != 0 {
		c.usage("leave")
		return
	}
	cl := c.opsCluster("leave")
	if cl == nil {
		return
	}
	st := cl.fsm.State()
	held := 0
	for _, k := range st.Table.Counts(cl.self) {
		held += k
	}
	if held > 0 {
		c.line(fmt.Sprintf("SERVER_ERROR this node still holds %d replicas: release it first (sonae node remove does both)", held))
		return
	}
	for v := range st.Moves {
		for _, id := range st.Incoming(v) {
			if id == cl.self {
				c.line("SERVER_ERROR this node is receiving vnodes; release it first")
				return
			}
		}
	}
	if len(st.Members) == 1 {
		c.line("SERVER_ERROR this node is the cluster's only member; stop it instead")
		return
	}
	c.line("LEAVING")
	c.srv.requestStop("leave", true)
}

// cmdRemoveNode forgets a failed member (serf's force-leave): it is
// reported left, and the leader removes it from the metadata and Raft.
func (c *conn) cmdRemoveNode(args [][]byte) {
	if len(args) != 1 {
		c.usage("remove_node HOST_PORT")
		return
	}
	cl := c.opsCluster("remove_node")
	if cl == nil {
		return
	}
	node := routing.NodeID(strings.Replace(string(args[0]), ":", "_", 1))
	st := cl.fsm.State()
	if _, ok := st.Member(node); !ok {
		c.line(fmt.Sprintf("SERVER_ERROR %s is not a member of cluster %s", node, st.Settings.Name))
		return
	}
	if cl.aliveSet()[node] {
		c.line(fmt.Sprintf("SERVER_ERROR %s is alive: release it and have it leave (sonae node remove %s)", node, node))
		return
	}
	if err := cl.gossip.RemoveFailed(string(node)); err != nil {
		c.line("SERVER_ERROR remove_node: " + err.Error())
		return
	}
	c.line("REMOVED")
}

// watchLost applies lost_action shutdown on this node: when a vnode has
// lost every replica, every node stops rather than serve a keyspace with
// a hole in it (ROMA's rbalse lose_data).
func (s *Server) watchLost(ctx context.Context) {
	for {
		ch := s.cl.fsm.Changed()
		if st := s.cl.fsm.State(); st.Initialized() && st.Tuning().LostAction == meta.LostShutdown {
			if lost := st.Table.LostVnodes(); len(lost) > 0 {
				s.log.Error("vnodes lost every replica and lost_action is shutdown: stopping", "lost_vnodes", len(lost), "first", lost[0])
				s.requestStop(fmt.Sprintf("lost_action shutdown: %d vnodes lost", len(lost)), false)
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}
