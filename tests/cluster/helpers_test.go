package clustertest

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/histcheck"
	"github.com/sonae-kv/sonae/internal/testcluster"
	"github.com/sonae-kv/sonae/internal/testutil"
)

// admin sends one admin command and returns its one-line answer.
func admin(t testing.TB, addr, cmd string) string {
	t.Helper()
	c := mustMC(t, addr)
	defer c.close()
	l, err := c.simple(cmd + "\r\n")
	if err != nil && l == "" {
		t.Fatalf("%s at %s: %v", cmd, addr, err)
	}
	return l // a refusal is returned as its SERVER_ERROR line
}

func statInt(t testing.TB, addr, name string) int {
	t.Helper()
	v, err := stat(addr, name)
	if err != nil {
		t.Fatalf("stat %s at %s: %v", name, addr, err)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("stat %s at %s: %q is not a number", name, addr, v)
	}
	return n
}

// bulkLoad writes n values of size bytes through addr.
func bulkLoad(t testing.TB, addr string, n, size int) {
	t.Helper()
	c := mustMC(t, addr)
	value := strings.Repeat("x", size)
	for i := range n {
		if l, err := c.set(fmt.Sprintf("bulk-%d", i), value); err != nil || l != "STORED" {
			t.Fatalf("bulk set %d: %q %v", i, l, err)
		}
	}
}

// checkBulk reads back what bulkLoad wrote, through addr.
func checkBulk(t testing.TB, addr string, n, size int) {
	t.Helper()
	c := mustMC(t, addr)
	for i := range n {
		v, _, found, err := c.gets(fmt.Sprintf("bulk-%d", i))
		if err != nil || !found || len(v) != size {
			t.Fatalf("bulk-%d through %s: %d bytes, found=%v, %v", i, addr, len(v), found, err)
		}
	}
}

// load is a set of checked clients (runClient) over the cluster's nodes.
type load struct {
	rec   *histcheck.Recorder
	keys  []string
	stop  chan struct{}
	wg    sync.WaitGroup
	acked atomic.Int64
}

func startLoad(addrs []string, prefix string, keys, clients int) *load {
	var names []string
	for i := range keys {
		names = append(names, fmt.Sprintf("%s-%d", prefix, i))
	}
	return startLoadOn(addrs, names, clients)
}

// startLoadOn is startLoad over the given keys. Every write to them must
// go through the load, or the history cannot explain what reads see.
func startLoadOn(addrs, keys []string, clients int) *load {
	l := &load{rec: histcheck.NewRecorder(), stop: make(chan struct{}), keys: keys}
	for cl := range clients {
		l.wg.Go(func() { runClient(cl, addrs, l.keys, l.rec, l.stop, &l.acked) })
	}
	return l
}

// more waits until n more writes are acknowledged.
func (l *load) more(t *testing.T, n int64, within time.Duration) {
	t.Helper()
	waitAcked(t, &l.acked, l.acked.Load()+n, within)
}

// finish stops the clients, reads the final values through addr and checks
// the history: linearizable, and no acknowledged write lost.
func (l *load) finish(t *testing.T, addr string) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	final := finalValues(t, addr, l.keys)
	t.Logf("%d operations, %d acknowledged writes", len(l.rec.Ops()), l.acked.Load())
	histcheck.Check(t, l.rec, 60*time.Second)
	histcheck.CheckLost(t, l.rec, final)
}

// waitSettled waits until the live nodes agree the cluster is in sync,
// with n nodes in the table.
func waitSettled(t *testing.T, c *testcluster.Cluster, n int, within time.Duration) {
	t.Helper()
	c.WaitMembers(t, n, within)
	waitInSync(t, c, within)
}

// counts returns each node's count at a position (routing.primary,
// routing.secondary1).
func counts(t *testing.T, c *testcluster.Cluster, pos string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, i := range c.Live() {
		out[c.Node(i).NodeID()] = statInt(t, c.Node(i).Addr(), pos)
	}
	return out
}

// evenly checks that every node's count at pos is within one of an even
// share of vnodes.
func evenly(t *testing.T, c *testcluster.Cluster, vnodes int, pos string) {
	t.Helper()
	cs := counts(t, c, pos)
	lo, hi := vnodes/len(cs), (vnodes+len(cs)-1)/len(cs)
	for n, k := range cs {
		if k < lo || k > hi {
			t.Errorf("%s: %s %d, want %d..%d (all: %v)", n, pos, k, lo, hi, cs)
		}
	}
}

// eventually is testutil.Eventually with the message first.
func eventually(t *testing.T, within time.Duration, what string, f func() error) {
	t.Helper()
	testutil.Eventually(t, within, what, f)
}
