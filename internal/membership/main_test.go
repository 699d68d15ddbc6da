package membership

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/testutil"
	"go.uber.org/goleak"
)

// TestMain checks for leaked goroutines after the tests, like
// goleak.VerifyTestMain, but waits up to leakGrace for them to end:
// memberlist does not wait for its probe goroutine at Shutdown, and that
// goroutine ends only at the probe's deadline (up to 8x ProbeInterval when
// Lifeguard has slowed probing, 3.2 s in the lan profile).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := waitNoLeaks(leakGrace); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// leakGrace bounds how long TestMain waits for goroutines to end.
const leakGrace = 10 * time.Second

// waitNoLeaks polls goleak.Find until it finds nothing or within passes.
func waitNoLeaks(within time.Duration) error {
	deadline := time.After(within)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := goleak.Find()
		if err == nil {
			return nil
		}
		select {
		case <-deadline:
			return err
		case <-tick.C:
		}
	}
}

// testKey is the AES-256 gossip key of the test clusters.
var testKey = []byte("0123456789abcdef0123456789abcdef")

// testLogger and eventually are the shared test helpers.
var (
	testLogger = testutil.Logger
	eventually = testutil.Eventually
)

// testConfig is a local-profile member on 127.0.0.1, a free port, with the
// test key, in cluster "test".
func testConfig(t testing.TB, name string) Config {
	c := Default()
	c.NodeName = name
	c.BindAddr = "127.0.0.1"
	c.BindPort = 0
	c.ClusterName = "test"
	c.SecretKey = testKey
	c.Profile = ProfileLocal
	c.Tags = map[string]string{"role": "kv", "name": name}
	c.Logger = testLogger(t).With("test_node", name)
	return c
}

// node is a started member with a recorder of its events.
type node struct {
	*Membership
	rec *recorder
}

// startNode starts a member from cfg, records its events, answers queries
// with "<query>:<name>", and shuts it down at the end of the test.
func startNode(t testing.TB, cfg Config) *node {
	t.Helper()
	m, err := Start(cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.NodeName, err)
	}
	n := &node{Membership: m, rec: newRecorder(m, true)}
	t.Cleanup(func() { n.stop() })
	return n
}

// stop shuts the member down (without Leave) and waits for the recorder.
func (n *node) stop() {
	_ = n.Shutdown()
	<-n.rec.done
}

// recorder keeps every event a member reports.
type recorder struct {
	mu     sync.Mutex
	events []recorded
	done   chan struct{}
}

type recorded struct {
	at time.Time
	e  Event
}

func newRecorder(m *Membership, answer bool) *recorder {
	r := &recorder{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for e := range m.Events() {
			if answer && e.Kind == QueryEvent {
				_ = e.Respond([]byte(e.Name + ":" + m.Name()))
			}
			r.mu.Lock()
			r.events = append(r.events, recorded{time.Now(), e})
			r.mu.Unlock()
		}
	}()
	return r
}

// find returns the time of the first event of kind about member (or, for
// user events, named member) after since.
func (r *recorder) find(kind EventKind, member string, since time.Time) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, re := range r.events {
		if re.e.Kind != kind || re.at.Before(since) {
			continue
		}
		if kind == UserEvent || kind == QueryEvent {
			if re.e.Name == member {
				return re.at, true
			}
			continue
		}
		if slices.ContainsFunc(re.e.Members, func(m Member) bool { return m.Name == member }) {
			return re.at, true
		}
	}
	return time.Time{}, false
}

// userPayloads returns the payloads of the user events named name.
func (r *recorder) userPayloads(name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, re := range r.events {
		if re.e.Kind == UserEvent && re.e.Name == name {
			out = append(out, string(re.e.Payload))
		}
	}
	return out
}

// waitEvent waits until r has an event of kind about member after since,
// and returns its time.
func (r *recorder) waitEvent(t testing.TB, within time.Duration, kind EventKind, member string, since time.Time) time.Time {
	t.Helper()
	var at time.Time
	eventually(t, within, fmt.Sprintf("%s %s", kind, member), func() error {
		var ok bool
		if at, ok = r.find(kind, member, since); !ok {
			return fmt.Errorf("no %s event for %s yet", kind, member)
		}
		return nil
	})
	return at
}

// statusOf returns member's status in m's view (StatusNone if unknown).
func statusOf(m *Membership, member string) MemberStatus {
	for _, mm := range m.Members() {
		if mm.Name == member {
			return mm.Status
		}
	}
	return StatusNone
}

// waitStatus waits until every observer sees member with status want.
func waitStatus(t testing.TB, within time.Duration, member string, want MemberStatus, observers ...*node) {
	t.Helper()
	eventually(t, within, fmt.Sprintf("%s to be %s everywhere", member, want), func() error {
		for _, o := range observers {
			if got := statusOf(o.Membership, member); got != want {
				return fmt.Errorf("%s sees %s as %s", o.Name(), member, got)
			}
		}
		return nil
	})
}

// aliveNames returns the sorted names of m's alive members.
func aliveNames(m *Membership) []string {
	var out []string
	for _, mm := range m.Members() {
		if mm.Status == StatusAlive {
			out = append(out, mm.Name)
		}
	}
	return out
}

// waitAlive waits until every observer sees exactly names alive.
func waitAlive(t testing.TB, within time.Duration, names []string, observers ...*node) {
	t.Helper()
	want := slices.Sorted(slices.Values(names))
	eventually(t, within, fmt.Sprintf("alive members %v everywhere", want), func() error {
		for _, o := range observers {
			if got := aliveNames(o.Membership); !slices.Equal(got, want) {
				return fmt.Errorf("%s sees alive %v", o.Name(), got)
			}
		}
		return nil
	})
}

// startCluster starts n members a0..a(n-1) of cluster "test"; all but the
// first join through a0. edit may change each config.
func startCluster(t testing.TB, n int, edit func(i int, c *Config)) []*node {
	t.Helper()
	nodes := make([]*node, n)
	var names []string
	for i := range n {
		c := testConfig(t, fmt.Sprintf("a%d", i))
		if edit != nil {
			edit(i, &c)
		}
		nodes[i] = startNode(t, c)
		names = append(names, c.NodeName)
		if i > 0 {
			if _, err := nodes[i].Join([]string{nodes[0].Addr().String()}); err != nil {
				t.Fatalf("%s join: %v", c.NodeName, err)
			}
		}
	}
	waitAlive(t, 10*time.Second, names, nodes...)
	return nodes
}

// snapshotPath returns a snapshot file path in a fresh directory.
func snapshotPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "serf", "snapshot")
}
