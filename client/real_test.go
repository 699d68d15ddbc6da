package client

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/testcluster"
	"github.com/sonae-kv/sonae/internal/testutil"
)

// TestClusterAgainstInProcessNode runs the Cluster client against a real
// sonaed node (in process, a one-node cluster): the contract of
// docs/cluster.md as the server implements it, not as the fake does.
func TestClusterAgainstInProcessNode(t *testing.T) {
	n := testcluster.StartInProcess(t, nil, nil, nil)
	o := DefaultClusterOptions()
	o.Logger = testutil.Logger(t)
	o.RefreshInterval = 10 * time.Millisecond
	var c *Cluster
	testutil.Eventually(t, 20*time.Second, "the node's routing table", func() error {
		var err error
		c, err = NewCluster([]string{n.Addr}, o)
		return err
	})
	t.Cleanup(func() { c.Close() })
	tab := c.Table()
	if len(tab.Nodes) != 1 || len(tab.Vnodes) != 1<<tab.DivBits || tab.Primary(0) != tab.Nodes[0].ID {
		t.Fatalf("table: %d nodes, %d vnodes, primary of 0 %q", len(tab.Nodes), len(tab.Vnodes), tab.Primary(0))
	}

	var keys []string
	for i := range 50 {
		k := "real:" + strconv.Itoa(i)
		keys = append(keys, k)
		if err := c.Set(k, []byte(k), uint32(i), 0); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.GetMulti(append(keys, "real:missing")...)
	if err != nil || len(got) != 50 || string(got["real:7"].Value) != "real:7" || got["real:7"].Flags != 7 {
		t.Fatalf("GetMulti: %d items, %v", len(got), err)
	}
	if err := c.Add("real:0", []byte("x"), 0, 0); !errors.Is(err, ErrNotStored) {
		t.Errorf("Add existing: %v", err)
	}
	if err := c.Replace("real:ctr", []byte("x"), 0, 0); !errors.Is(err, ErrNotStored) {
		t.Errorf("Replace missing: %v", err)
	}
	if err := c.Add("real:ctr", []byte("41"), 0, 0); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Incr("real:ctr", 2); err != nil || v != 43 {
		t.Errorf("Incr = %d, %v", v, err)
	}
	if v, err := c.Decr("real:ctr", 1); err != nil || v != 42 {
		t.Errorf("Decr = %d, %v", v, err)
	}
	if err := c.Append("real:ctr", []byte("b")); err != nil {
		t.Error(err)
	}
	if err := c.Prepend("real:ctr", []byte("a")); err != nil {
		t.Error(err)
	}
	it, err := c.Gets("real:ctr")
	if err != nil || string(it.Value) != "a42b" || it.CAS == 0 {
		t.Fatalf("Gets = %+v, %v", it, err)
	}
	if err := c.CompareAndSwap("real:ctr", []byte("z"), 0, 0, it.CAS+1000); !errors.Is(err, ErrCASConflict) {
		t.Errorf("cas conflict: %v", err)
	}
	if err := c.CompareAndSwap("real:ctr", []byte("z"), 0, 0, it.CAS); err != nil {
		t.Errorf("cas: %v", err)
	}
	if err := c.Touch("real:ctr", 1000); err != nil {
		t.Errorf("Touch: %v", err)
	}
	if err := c.Delete("real:ctr"); err != nil {
		t.Errorf("Delete: %v", err)
	}
	if _, err := c.Get("real:ctr"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get deleted: %v", err)
	}

	// The admin commands the CLI uses.
	cn, err := Dial(n.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	ms, err := cn.Members()
	if err != nil || len(ms) != 1 || ms[0].Status != "alive" {
		t.Errorf("Members = %+v, %v", ms, err)
	}
	ki, err := cn.KeyInfo("real:3")
	if err != nil || ki.Vnode != tab.Vnode("real:3") || ki.Primary != tab.Nodes[0].ID {
		t.Errorf("KeyInfo = %+v, %v (client says vnode %d)", ki, err, tab.Vnode("real:3"))
	}
}
