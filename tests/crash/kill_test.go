package crash

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/client"
	"github.com/sonae-kv/sonae/internal/testcluster"
)

// keyState is what the history says a key must look like after a crash.
type keyState struct {
	// acked is the last acknowledged operation; pending is one that was in
	// flight at the kill (it may or may not have happened).
	acked, pending *op
}

type op struct {
	del   bool
	value string
	flags uint32
}

// history records acknowledged and in-flight operations per key.
type history struct {
	mu   sync.Mutex
	keys map[string]*keyState
}

func (h *history) begin(key string, o *op) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ks := h.keys[key]
	if ks == nil {
		ks = &keyState{}
		h.keys[key] = ks
	}
	ks.pending = o
}

func (h *history) ack(key string, o *op) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ks := h.keys[key]
	ks.acked, ks.pending = o, nil
}

// cycles, writers and the run length per cycle; SONAE_SOAK raises them.
func scale() (cycles int, writers int, perCycle time.Duration) {
	if os.Getenv("SONAE_SOAK") != "" {
		return 20, 8, 3 * time.Second
	}
	return 3, 4, 700 * time.Millisecond
}

// TestKill9LosesNoAcknowledgedWrite runs sets (with flags) and deletes from
// several connections, kills sonaed with SIGKILL at a random moment, restarts
// it on the same data and checks every key against the history: the value,
// flags and absence of every acknowledged operation must survive; an operation
// in flight at the kill may have happened or not.
func TestKill9LosesNoAcknowledgedWrite(t *testing.T) {
	for _, durability := range []string{"interval", "fsync"} {
		t.Run(durability, func(t *testing.T) {
			p := testcluster.Start(t, "--durability", durability)
			h := &history{keys: map[string]*keyState{}}
			cycles, writers, perCycle := scale()
			totalAcked := 0
			for cycle := range cycles {
				acked, inFlight := writeThenKill(t, p, h, cycle, writers, perCycle)
				totalAcked += acked
				if inFlight == 0 {
					t.Fatalf("cycle %d: no operation was in flight at the kill", cycle)
				}
				p.Launch()
				if lost := verify(t, p.Addr(), h); lost > 0 {
					t.Fatalf("cycle %d: %d acknowledged changes lost after kill -9", cycle, lost)
				}
				t.Logf("cycle %d: %d acknowledged ops, %d in flight at the kill, 0 lost", cycle, acked, inFlight)
			}
			if totalAcked < 100 {
				t.Fatalf("only %d operations acknowledged: the test exercised too little", totalAcked)
			}
		})
	}
}

// writeThenKill runs writers against p, kills p with SIGKILL after perCycle
// while they are still writing, and returns the acknowledged operations and
// the number that were in flight when the process died.
func writeThenKill(t *testing.T, p *testcluster.Proc, h *history, cycle, writers int, perCycle time.Duration) (acked, inFlight int) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	killed := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			c, err := client.Dial(p.Addr(), 5*time.Second)
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			defer c.Close()
			rng := rand.New(rand.NewPCG(uint64(cycle), uint64(w)))
			for i := 0; ; i++ {
				// Writers own disjoint keys, so per-key order is the
				// order of this loop.
				key := fmt.Sprintf("w%d-k%d", w, rng.IntN(200))
				o := &op{value: fmt.Sprintf("c%d-w%d-i%d", cycle, w, i), flags: rng.Uint32()}
				if rng.IntN(4) == 0 {
					o = &op{del: true}
				}
				h.begin(key, o)
				if o.del {
					err = c.Delete(key)
					if errors.Is(err, client.ErrNotFound) {
						err = nil
					}
				} else {
					err = c.Set(key, []byte(o.value), o.flags, 0)
				}
				if err != nil {
					select {
					case <-killed: // expected: the server died under us
						mu.Lock()
						inFlight++
						mu.Unlock()
					default:
						t.Errorf("%s: %v", key, err)
					}
					return
				}
				h.ack(key, o)
				mu.Lock()
				acked++
				mu.Unlock()
			}
		})
	}
	// Let the load build up; the kill must land mid-stream.
	waitForAcks(t, &mu, &acked, minAcksBeforeKill, perCycle)
	close(killed)
	p.Kill9()
	wg.Wait()
	return acked, inFlight
}

// minAcksBeforeKill is how many operations must be acknowledged in a cycle
// before the kill.
const minAcksBeforeKill = 500

// waitForAcks polls until at least want operations are acknowledged and at
// least minRun has passed, so each cycle both covers enough writes and lets
// the soak run longer.
func waitForAcks(t *testing.T, mu *sync.Mutex, acked *int, want int, minRun time.Duration) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(time.Minute)
	for {
		mu.Lock()
		n := *acked
		mu.Unlock()
		if n >= want && time.Since(start) >= minRun {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d operations acknowledged after a minute", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// verify reads every key of the history and counts acknowledged changes that
// are missing. A key matching its pending operation is accepted, and the
// pending operation then becomes the acknowledged state.
func verify(t *testing.T, addr string, h *history) int {
	t.Helper()
	c, err := client.Dial(addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lost := 0
	for key, ks := range h.keys {
		it, err := c.Get(key)
		var got *op
		switch {
		case errors.Is(err, client.ErrNotFound):
			got = &op{del: true}
		case err != nil:
			t.Fatalf("get %s: %v", key, err)
		default:
			got = &op{value: string(it.Value), flags: it.Flags}
		}
		matches := func(o *op) bool {
			if o == nil {
				return got.del // never acknowledged: absent is right
			}
			return *o == *got
		}
		switch {
		case matches(ks.acked):
		case ks.pending != nil && matches(ks.pending):
			ks.acked = ks.pending
		default:
			lost++
			t.Errorf("key %s: got %+v, want acknowledged %+v (pending %+v)", key, got, ks.acked, ks.pending)
		}
		ks.pending = nil
	}
	return lost
}
