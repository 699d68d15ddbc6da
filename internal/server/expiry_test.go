package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/clock"
)

// TestExpiry drives exptime rules with an injected clock: relative, absolute,
// negative, touch, gat, and the background reclaimer freeing the space.
func TestExpiry(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	clk := clock.NewFake(start)
	// The idle sweeper reads the same clock: jumping it by days must not
	// close the test's connection.
	n := startNode(t, clk, nil, func(c *configT) { c.IdleTimeout = 0 })
	c := dialRaw(t, n.addr)

	c.roundTrip("set rel 0 10 1\r\na\r\n", "STORED\r\n")
	c.roundTrip(fmt.Sprintf("set abs 0 %d 1\r\nb\r\n", start.Unix()+20), "STORED\r\n")
	c.roundTrip(fmt.Sprintf("set past 0 %d 1\r\nc\r\n", start.Unix()-1), "STORED\r\n")
	c.roundTrip("set neg 0 -1 1\r\nd\r\n", "STORED\r\n")
	c.roundTrip("set never 0 0 1\r\ne\r\n", "STORED\r\n")
	c.roundTrip("set month 0 2592000 1\r\nf\r\n", "STORED\r\n") // 30 days is still relative
	c.roundTrip("get past neg\r\n", "END\r\n")
	c.roundTrip("get rel abs never month\r\n",
		"VALUE rel 0 1\r\na\r\nVALUE abs 0 1\r\nb\r\nVALUE never 0 1\r\ne\r\nVALUE month 0 1\r\nf\r\nEND\r\n")

	clk.Advance(9 * time.Second)
	c.roundTrip("get rel\r\n", "VALUE rel 0 1\r\na\r\nEND\r\n")
	clk.Advance(time.Second) // exactly 10 s: expired, as memcached's exptime <= now
	c.roundTrip("get rel\r\n", "END\r\n")
	c.roundTrip("add rel 0 0 1\r\nz\r\n", "STORED\r\n") // add succeeds on an expired key

	c.roundTrip("touch abs 100\r\n", "TOUCHED\r\n")
	clk.Advance(15 * time.Second) // past the original absolute time
	c.roundTrip("gat 5 abs\r\n", "VALUE abs 0 1\r\nb\r\nEND\r\n")
	clk.Advance(5 * time.Second)
	c.roundTrip("get abs\r\n", "END\r\n")
	c.roundTrip("touch abs 10\r\n", "NOT_FOUND\r\n")
	clk.Advance(31 * 24 * time.Hour)
	c.roundTrip("get month never\r\n", "VALUE never 0 1\r\ne\r\nEND\r\n")

	// Expired items still occupy space until the reclaimer runs.
	before, _ := n.Store.Usage()
	removed, err := n.Store.ReclaimExpired(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	after, _ := n.Store.Usage()
	if removed < 2 || after != before-int64(removed) {
		t.Fatalf("reclaimed %d items; curr_items %d -> %d", removed, before, after)
	}
	if after != 2 { // never, and rel (re-added)
		t.Fatalf("curr_items after reclaim = %d, want 2", after)
	}
}

// TestFlushAllDelay follows memcached: "flush_all N" hides items written
// before now+N-1 once that second comes; later writes survive.
func TestFlushAllDelay(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	clk := clock.NewFake(start)
	// The idle sweeper reads the same clock: jumping it by days must not
	// close the test's connection.
	n := startNode(t, clk, nil, func(c *configT) { c.IdleTimeout = 0 })
	c := dialRaw(t, n.addr)
	c.roundTrip("set old 0 0 1\r\no\r\n", "STORED\r\n")
	c.roundTrip("flush_all 10\r\n", "OK\r\n")
	clk.Advance(8 * time.Second)
	c.roundTrip("get old\r\n", "VALUE old 0 1\r\no\r\nEND\r\n")
	clk.Advance(time.Second)
	c.roundTrip("get old\r\n", "END\r\n")
	clk.Advance(2 * time.Second)
	c.roundTrip("set new 0 0 1\r\nn\r\n", "STORED\r\n")
	c.roundTrip("get new\r\n", "VALUE new 0 1\r\nn\r\nEND\r\n")
	c.roundTrip("flush_all noreply\r\nget new\r\n", "END\r\n")
	c.roundTrip("flush_all abc\r\n", "CLIENT_ERROR invalid exptime argument\r\n")
	if err := n.Store.SweepFlushed(context.Background()); err != nil {
		t.Fatal(err)
	}
	if items, _ := n.Store.Usage(); items != 0 {
		t.Fatalf("curr_items after sweeping flushed items = %d", items)
	}
}
