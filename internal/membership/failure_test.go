package membership

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestFailureDetection: a member shut down without Leave (as if killed) is
// reported failed by the others within DetectionEstimate's bound, for the
// local profile and for the lan default (the ~2 s one, measured here on
// loopback). Then a graceful Leave is reported as MemberLeave.
func TestFailureDetection(t *testing.T) {
	t.Parallel()
	for _, profile := range []string{ProfileLocal, ProfileLAN} {
		t.Run(profile, func(t *testing.T) {
			t.Parallel()
			var cfg Config
			nodes := startCluster(t, 3, func(i int, c *Config) { c.Profile = profile; cfg = *c })
			typical, bound := cfg.DetectionEstimate(3)

			victim := nodes[2]
			start := time.Now()
			victim.stop()
			for _, o := range nodes[:2] {
				at := o.rec.waitEvent(t, bound+5*time.Second, MemberFailed, victim.Name(), start)
				d := at.Sub(start)
				t.Logf("profile %s: %s reported %s failed after %s (estimate: typical %s, bound %s)",
					profile, o.Name(), victim.Name(), d.Round(time.Millisecond), typical, bound)
				if d > bound {
					t.Errorf("%s took %s to report the failure, over the bound %s", o.Name(), d, bound)
				}
			}
			waitStatus(t, time.Second, victim.Name(), StatusFailed, nodes[:2]...)

			// A graceful leave is a leave, not a failure.
			leaver, stayer := nodes[1], nodes[0]
			since := time.Now()
			if err := leaver.Leave(); err != nil {
				t.Fatal(err)
			}
			t.Logf("Leave took %s", time.Since(since).Round(time.Millisecond))
			stayer.rec.waitEvent(t, 5*time.Second, MemberLeave, leaver.Name(), since)
			waitStatus(t, 5*time.Second, leaver.Name(), StatusLeft, stayer)
			if _, ok := stayer.rec.find(MemberFailed, leaver.Name(), since); ok {
				t.Errorf("%s reported %s failed after a graceful leave", stayer.Name(), leaver.Name())
			}
			if _, err := leaver.Join([]string{stayer.Addr().String()}); !errors.Is(err, ErrLeft) {
				t.Errorf("Join after Leave: %v, want ErrLeft", err)
			}
			if err := leaver.UserEvent("x", nil, false); !errors.Is(err, ErrLeft) {
				t.Errorf("UserEvent after Leave: %v, want ErrLeft", err)
			}
			leaver.stop()
			waitStatus(t, 5*time.Second, leaver.Name(), StatusLeft, stayer)
		})
	}
}

// TestRestartFromSnapshot: a member killed (Shutdown without Leave) and
// restarted with the same name and snapshot re-joins by itself, without
// Join, and the others see it alive again. On its old port this is
// immediate. On a new port the others first refuse the name from another
// address ("conflicting address") until it has been dead for
// DeadNodeReclaimTime; the member's next push/pull then gets it accepted,
// so that case converges within DeadNodeReclaimTime + PushPullInterval
// (shortened to 1 s here to keep the test quick).
func TestRestartFromSnapshot(t *testing.T) {
	t.Parallel()
	for _, samePort := range []bool{true, false} {
		t.Run("samePort="+strconv.FormatBool(samePort), func(t *testing.T) {
			t.Parallel()
			snap := snapshotPath(t)
			edit := func(c *Config) {
				if !samePort {
					c.PushPullInterval = time.Second
				}
			}
			nodes := startCluster(t, 3, func(i int, c *Config) {
				edit(c)
				if i == 2 {
					c.SnapshotPath = snap
				}
			})
			victim := nodes[2]
			old := victim.Addr()
			victim.stop()
			waitStatus(t, 10*time.Second, victim.Name(), StatusFailed, nodes[:2]...)

			c := testConfig(t, victim.Name())
			edit(&c)
			c.SnapshotPath = snap
			if samePort {
				c.BindPort = int(old.Port())
			}
			r := c.Resolved()
			within := 2 * time.Second
			if !samePort {
				within += r.DeadNodeReclaimTime + r.PushPullInterval
			}
			since := time.Now()
			back := startNode(t, c) // no Join: the snapshot names a0 and a1
			if samePort && back.Addr() != old {
				t.Fatalf("restarted on %s, want %s", back.Addr(), old)
			}
			waitAlive(t, within, []string{"a0", "a1", "a2"}, nodes[0], nodes[1], back)
			for _, o := range nodes[:2] {
				at := o.rec.waitEvent(t, time.Second, MemberJoin, victim.Name(), since)
				t.Logf("%s saw %s (%s -> %s) alive again %s after the restart",
					o.Name(), victim.Name(), old, back.Addr(), at.Sub(since).Round(time.Millisecond))
			}
		})
	}
}

// TestRejoinSeeds: a Join whose seed is down is retried every
// RejoinInterval, so the member joins once the seed is back, with nobody
// calling Join again (pitfalls 3 and 4: splits serf does not heal itself).
func TestRejoinSeeds(t *testing.T) {
	t.Parallel()
	seed := startNode(t, testConfig(t, "seed"))
	addr := seed.Addr()
	seed.stop()

	n := startNode(t, testConfig(t, "joiner"))
	if _, err := n.Join([]string{addr.String()}); !errors.Is(err, ErrJoinFailed) {
		t.Fatalf("Join of a stopped seed: %v, want ErrJoinFailed", err)
	}
	c := testConfig(t, "seed")
	c.BindPort = int(addr.Port())
	start := time.Now()
	seed = startNode(t, c) // a fresh member: it knows nobody
	waitAlive(t, 10*time.Second, []string{"joiner", "seed"}, n, seed)
	t.Logf("re-joined %s after the seed came back (RejoinInterval %s)", time.Since(start).Round(time.Millisecond), n.cfg.RejoinInterval)
}

// TestSlowConsumer: a member whose Events() nobody reads keeps gossiping:
// its view converges under churn, serf is never blocked (a burst of local
// user events, more than every buffer between serf and Events() holds,
// returns at once, and the member still joins others afterwards), and the
// queue keeps the newest events and counts the dropped ones.
func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	const queue = 8
	c := testConfig(t, "a0")
	c.EventQueueSize = queue
	obs, err := Start(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = obs.Shutdown() })
	join := func(name string) *node {
		n := startNode(t, testConfig(t, name))
		if _, err := n.Join([]string{obs.Addr().String()}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Churn, with nobody reading a0's events: joins, tag updates, a failure
	// and a leave; more events than the queue holds.
	nodes := []*node{join("a1"), join("a2"), join("a3"), join("a4")}
	for i := range 3 {
		if err := obs.SetTags(map[string]string{"role": "kv", "gen": strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
		if err := nodes[0].SetTags(map[string]string{"gen": strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	nodes[2].stop()
	if err := nodes[3].Leave(); err != nil {
		t.Fatal(err)
	}
	nodes[3].stop()
	converged := func(want map[string]MemberStatus) {
		t.Helper()
		eventually(t, 10*time.Second, "a0's view to converge", func() error {
			for name, st := range want {
				if got := statusOf(obs, name); got != st {
					return fmt.Errorf("a0 sees %s as %s, want %s", name, got, st)
				}
			}
			return nil
		})
	}
	converged(map[string]MemberStatus{"a0": StatusAlive, "a1": StatusAlive, "a2": StatusAlive, "a3": StatusFailed, "a4": StatusLeft})
	eventually(t, 10*time.Second, "a0's latest tags at a1 and a2", func() error {
		for _, o := range nodes[:2] {
			for _, m := range o.Members() {
				if m.Name == "a0" && m.Tags["gen"] != "2" {
					return fmt.Errorf("%s sees a0's tags %v", o.Name(), m.Tags)
				}
			}
		}
		return nil
	})
	churnDropped := obs.DroppedEvents()
	if churnDropped == 0 {
		t.Errorf("no event dropped from a %d-event queue after the churn", queue)
	}

	// 8000 user events: each is delivered locally and synchronously by
	// UserEvent, through serf's internal channel (1024) and ours (4096).
	// Were serf waiting on the consumer, this would block.
	const burst = 8000
	start := time.Now()
	for i := range burst {
		if err := obs.UserEvent("burst", []byte(strconv.Itoa(i)), false); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d user events sent in %s with nobody reading Events()", burst, time.Since(start).Round(time.Millisecond))
	eventually(t, 5*time.Second, "the burst to be dropped", func() error {
		if d := obs.DroppedEvents() - churnDropped; d < burst-queue {
			return fmt.Errorf("%d events dropped during the burst, want >= %d", d, burst-queue)
		}
		return nil
	})
	// Still working: another member joins through a0.
	late := join("a5")
	waitStatus(t, 10*time.Second, "a5", StatusAlive, &node{Membership: obs}, late)

	// What is left in the queue is the newest: the last user events and
	// a5's join, not the oldest user events.
	var got []Event
	eventually(t, 5*time.Second, "a5's join among the queued events", func() error {
		for {
			select {
			case e := <-obs.Events():
				got = append(got, e)
				continue
			default:
			}
			break
		}
		if !slices.ContainsFunc(got, func(e Event) bool {
			return e.Kind == MemberJoin && slices.ContainsFunc(e.Members, func(m Member) bool { return m.Name == "a5" })
		}) {
			return fmt.Errorf("no member-join a5 among %d queued events", len(got))
		}
		return nil
	})
	for _, e := range got {
		if e.Kind != UserEvent {
			continue
		}
		if i, _ := strconv.Atoi(string(e.Payload)); i < burst-queue {
			t.Errorf("an old user event (%d) survived in a %d-event queue", i, queue)
		}
	}
	t.Logf("dropped %d events in all (%d during the churn), then read %d queued ones", obs.DroppedEvents(), churnDropped, len(got))
}

// TestShutdown: Shutdown closes Events(), is idempotent, and makes the
// other methods fail with ErrShutdown.
func TestShutdown(t *testing.T) {
	t.Parallel()
	n := startNode(t, testConfig(t, "solo"))
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	<-n.rec.done // Events() was closed
	if _, err := n.Join([]string{"127.0.0.1:1"}); !errors.Is(err, ErrShutdown) {
		t.Errorf("Join: %v", err)
	}
	if err := n.UserEvent("x", nil, false); !errors.Is(err, ErrShutdown) {
		t.Errorf("UserEvent: %v", err)
	}
	if err := n.SetTags(nil); !errors.Is(err, ErrShutdown) {
		t.Errorf("SetTags: %v", err)
	}
	if _, err := n.Query(t.Context(), "q", nil, QueryOptions{}); !errors.Is(err, ErrShutdown) {
		t.Errorf("Query: %v", err)
	}
	if err := n.Leave(); !errors.Is(err, ErrShutdown) {
		t.Errorf("Leave: %v", err)
	}
}
