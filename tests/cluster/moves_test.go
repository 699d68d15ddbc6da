package clustertest

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/testcluster"
)

// TestMoveSurvivesReceiverThenSenderKill: a third node joins a loaded
// cluster with data movement throttled so the copies take a while. The
// receiver is killed with SIGKILL in the middle of its transfers and
// restarted; then a sender (an old node, primary of vnodes being copied)
// is killed and restarted. Clients run checked operations throughout:
// the history is linearizable, no acknowledged write is lost, the cluster
// settles balanced with every replica in sync, and every bulk value is
// still there.
func TestMoveSurvivesReceiverThenSenderKill(t *testing.T) {
	c := testcluster.NewCluster(t, 2, testcluster.ClusterOptions{Redundancy: 2, DivBits: 5,
		ExtraArgs: []string{"--replication-timeout", "500ms"}})
	waitSettled(t, c, 2, 30*time.Second)
	const bulk, size = 3000, 2048
	bulkLoad(t, c.Node(0).Addr(), bulk, size)
	// About 4 MB to move at 512 KiB/s per sender: the transfers outlast the
	// kills below.
	if l := admin(t, c.Node(0).Addr(), "set_move_rate 512k"); l != "STORED" {
		t.Fatalf("set_move_rate: %q", l)
	}
	ld := startLoad(c.Addrs(), "kill-move", 8, 4)
	ld.more(t, 200, 30*time.Second)

	receiver := c.Add()
	eventually(t, 30*time.Second, "the new node receiving vnodes", func() error {
		if v, err := stat(receiver.Addr(), "stats.run_join"); err != nil || v != "true" {
			return fmt.Errorf("run_join %q %v", v, err)
		}
		return nil
	})
	c.Kill9(2)
	t.Logf("receiver killed mid-transfer")
	ld.more(t, 100, 30*time.Second)
	c.Restart(2)
	eventually(t, 60*time.Second, "the restarted receiver receiving again", func() error {
		if v, err := stat(receiver.Addr(), "stats.run_join"); err != nil || v != "true" {
			return fmt.Errorf("run_join %q %v", v, err)
		}
		return nil
	})
	// The sender: node 1, primary of half the vnodes (some being copied).
	c.Kill9(1)
	t.Logf("sender killed mid-transfer")
	ld.more(t, 100, 60*time.Second)
	c.Restart(1)
	if l := admin(t, c.Node(0).Addr(), "set_move_rate 0"); l != "STORED" {
		t.Fatalf("set_move_rate 0: %q", l)
	}
	waitSettled(t, c, 3, 180*time.Second)
	ld.more(t, 100, 30*time.Second)
	ld.finish(t, c.Node(2).Addr())
	checkBulk(t, c.Node(2).Addr(), bulk, size)
	for _, pos := range []string{"routing.primary", "routing.secondary1"} {
		evenly(t, c, 32, pos)
	}
}

// TestJoinTwoAtOnce: two nodes join a two-node cluster at the same time;
// the table ends balanced over four, every position within one of 128.
func TestJoinTwoAtOnce(t *testing.T) {
	c := testcluster.NewCluster(t, 2, testcluster.ClusterOptions{Redundancy: 2, Engine: "memory"})
	waitSettled(t, c, 2, 30*time.Second)
	bulkLoad(t, c.Node(0).Addr(), 2000, 512)
	c.Add()
	c.Add()
	waitSettled(t, c, 4, 120*time.Second)
	for _, pos := range []string{"routing.primary", "routing.secondary1"} {
		evenly(t, c, 512, pos)
	}
	checkBulk(t, c.Node(3).Addr(), 2000, 512)
}

// TestReleaseThenJoinBalancesSecondaries is ROMA #46 turned into a test: a
// node is released and leaves, then a new node joins; the secondaries must
// end as balanced as the primaries. Along the way: release is refused when
// it would leave too few nodes, progress reports the operation, the
// history records it, and a drained node leaves cleanly.
func TestReleaseThenJoinBalancesSecondaries(t *testing.T) {
	c := testcluster.NewCluster(t, 3, testcluster.ClusterOptions{Redundancy: 2, Engine: "memory"})
	waitSettled(t, c, 3, 60*time.Second)
	bulkLoad(t, c.Node(0).Addr(), 2000, 256)

	// With two nodes left, releasing one more would leave redundancy 2 on
	// one host: refused. Here: release node 2 (fine), then try node 1.
	if l := admin(t, c.Node(0).Addr(), "release "+c.Node(2).NodeID()); l != "STARTED" {
		t.Fatalf("release: %q", l)
	}
	if l := admin(t, c.Node(0).Addr(), "release "+c.Node(1).NodeID()); !strings.HasPrefix(l, "SERVER_ERROR Sufficient nodes do not found") {
		t.Errorf("second release answered %q, want the refusal for too few nodes", l)
	}
	if l := admin(t, c.Node(0).Addr(), "release "+c.Node(2).NodeID()); !strings.Contains(l, "already running") {
		t.Errorf("repeated release answered %q", l)
	}
	eventually(t, 120*time.Second, "node 2 drained", func() error {
		if n := statInt(t, c.Node(2).Addr(), "routing.primary") + statInt(t, c.Node(2).Addr(), "routing.secondary1"); n != 0 {
			return fmt.Errorf("it still holds %d replicas", n)
		}
		if v, _ := stat(c.Node(0).Addr(), "routing.lagging_replicas"); v != "0" {
			return fmt.Errorf("lagging %s", v)
		}
		return nil
	})
	hist := mustMC(t, c.Node(1).Addr())
	lines, err := hist.lines("history\r\n")
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(lines, "\n")
	for _, want := range []string{"release " + c.Node(2).NodeID() + " asked", "start " + c.Node(2).NodeID() + " release",
		"end " + c.Node(2).NodeID() + " release", "move vnode"} {
		if !strings.Contains(joined, want) {
			t.Errorf("history lacks %q:\n%s", want, joined)
		}
	}
	if l := admin(t, c.Node(2).Addr(), "leave"); l != "LEAVING" {
		t.Fatalf("leave: %q", l)
	}
	eventually(t, 30*time.Second, "the released node gone", func() error {
		if c.Node(2).Running() {
			return fmt.Errorf("still running")
		}
		if n, _ := stat(c.Node(0).Addr(), "routing.nodes.length"); n != "2" {
			return fmt.Errorf("routing.nodes.length %s", n)
		}
		return nil
	})
	c.Add()
	eventually(t, 120*time.Second, "three nodes balanced", func() error {
		for _, i := range []int{0, 1, 3} {
			for name, want := range map[string]string{"routing.balanced": "true", "routing.moving_vnodes": "0",
				"routing.lagging_replicas": "0", "routing.nodes.length": "3"} {
				if v, err := stat(c.Node(i).Addr(), name); err != nil || v != want {
					return fmt.Errorf("node %d: %s %q %v", i, name, v, err)
				}
			}
		}
		return nil
	})
	for _, pos := range []string{"routing.primary", "routing.secondary1"} {
		evenly(t, c, 512, pos)
	}
	checkBulk(t, c.Node(3).Addr(), 2000, 256)
}

// TestDroppedVnodeSpaceComesBack: after a join moves vnodes off the old
// nodes, they drop what they no longer hold: their item counts fall to
// their share and their disk usage falls too.
func TestDroppedVnodeSpaceComesBack(t *testing.T) {
	c := testcluster.NewCluster(t, 2, testcluster.ClusterOptions{Redundancy: 1, DivBits: 6})
	waitSettled(t, c, 2, 30*time.Second)
	const n = 4000
	bulkLoad(t, c.Node(0).Addr(), n, 4096)
	items := map[int]int{}
	disk := map[int]int{}
	for i := range 2 {
		items[i] = statInt(t, c.Node(i).Addr(), "stats.curr_items")
		disk[i] = statInt(t, c.Node(i).Addr(), "storage.disk_usage")
	}
	if items[0]+items[1] != n {
		t.Fatalf("items %v, want %d in all", items, n)
	}
	c.Add()
	c.Add()
	waitSettled(t, c, 4, 120*time.Second)
	for i := range 2 {
		eventually(t, 60*time.Second, fmt.Sprintf("node %d's space back", i), func() error {
			it := statInt(t, c.Node(i).Addr(), "stats.curr_items")
			d := statInt(t, c.Node(i).Addr(), "storage.disk_usage")
			// Half of its vnodes moved away: half of its items and, once
			// compacted, about half of its space.
			if it > items[i]*6/10 || d > disk[i]*3/4 {
				return fmt.Errorf("items %d (was %d), disk %d (was %d)", it, items[i], d, disk[i])
			}
			return nil
		})
	}
	total := 0
	for i := range 4 {
		total += statInt(t, c.Node(i).Addr(), "stats.curr_items")
	}
	if total != n {
		t.Errorf("%d items on the four nodes, want %d", total, n)
	}
	checkBulk(t, c.Node(3).Addr(), n, 4096)
}

// TestOperatorCommandsCheckArguments: every operator command refuses bad
// arguments with a clear message, and the accepted ones say STARTED,
// STORED and so on; the options reach every node.
func TestOperatorCommandsCheckArguments(t *testing.T) {
	c := testcluster.NewCluster(t, 2, testcluster.ClusterOptions{Redundancy: 2, Engine: "memory"})
	waitSettled(t, c, 2, 30*time.Second)
	a := c.Node(0).Addr()
	for _, tc := range []struct{ cmd, want string }{
		{"dcnice 0", "CLIENT_ERROR dcnice: bad option value: dcnice \"0\": want 1 (fastest) .. 5 (gentlest)"},
		{"dcnice", "CLIENT_ERROR usage: dcnice <1..5>"},
		{"dcnice 1", "STORED"},
		{"set_move_rate fast", "CLIENT_ERROR set_move_rate: bad option value"},
		{"set_move_rate 20m", "STORED"},
		{"set_move_parallel 65", "CLIENT_ERROR set_move_parallel: bad option value"},
		{"switch_failover maybe", "CLIENT_ERROR usage: switch_failover <on|off>"},
		{"switch_failover off", "DISABLED"},
		{"switch_failover on", "ENABLED"},
		{"set_auto_recover true 30", "STORED"},
		{"set_auto_recover yes 3000000", "CLIENT_ERROR set_auto_recover: bad option value: auto_recover_time"},
		{"set_lost_action drop", "CLIENT_ERROR set_lost_action: bad option value"},
		{"set_option speed 3", "CLIENT_ERROR set_option: unknown option: \"speed\""},
		{"set_threshold_for_failover 2", "STORED"},
		{"set_gap_for_failover 0.001", "CLIENT_ERROR set_gap_for_failover: bad option value"},
		{"balance", "SERVER_ERROR already balanced"},
		{"recover", "SERVER_ERROR no short vnodes"},
		{"release zz_1", "SERVER_ERROR zz_1 is not a member"},
		{"release " + c.Node(1).NodeID(), "SERVER_ERROR Sufficient nodes do not found"},
		{"release a b", "CLIENT_ERROR usage: release [cancel] [HOST_PORT]"},
		{"release cancel", "SERVER_ERROR " + c.Node(0).NodeID() + " is not being released"},
		{"remove_node " + c.Node(1).NodeID(), "SERVER_ERROR " + c.Node(1).NodeID() + " is alive"},
		{"leave", "SERVER_ERROR this node still holds"},
		{"history x", "CLIENT_ERROR history: N must be a count of events"},
		{"history_of_lost 2026", "CLIENT_ERROR history_of_lost: want yyyymmddhhmmss"},
		{"shutdown_self now", "CLIENT_ERROR usage: shutdown_self [yes]"},
	} {
		if l := admin(t, a, tc.cmd); !strings.HasPrefix(l, tc.want) {
			t.Errorf("%s: %q, want %q...", tc.cmd, l, tc.want)
		}
	}
	for name, want := range map[string]string{
		"stats.dcnice": "1", "stats.move_rate": strconv.Itoa(20 << 20), "routing.fail_cnt_threshold": "2",
		"routing.auto_recover_time": "30", "routing.enabled_failover": "true",
	} {
		eventually(t, 10*time.Second, "node 1 seeing "+name+" "+want, func() error {
			if v, err := stat(c.Node(1).Addr(), name); err != nil || v != want {
				return fmt.Errorf("%q (%v)", v, err)
			}
			return nil
		})
	}
	// shutdown_self asks first; anything but yes cancels.
	sc := mustMC(t, a)
	if err := sc.send("shutdown_self\r\n"); err != nil {
		t.Fatal(err)
	}
	for {
		l, err := sc.line()
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(l, "Are you sure") {
			break
		}
	}
	if l, _ := sc.simple("no\r\n"); l != "CANCELED" {
		t.Errorf("shutdown_self, then no: %q", l)
	}
	if !c.Node(0).Running() {
		t.Errorf("node stopped after a no")
	}
}
