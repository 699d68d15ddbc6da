package bench

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// memClient is a Client over a shared map.
type memClient struct {
	mu     *sync.Mutex
	data   map[string][]byte
	closed *int
}

func (c memClient) Get(key []byte) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.data[string(key)]
	return ok, nil
}

func (c memClient) Set(key, value []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.data[string(key)] = append([]byte(nil), value...)
	return nil
}

func (c memClient) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	*c.closed++
	return nil
}

func TestRunWithClients(t *testing.T) {
	var mu sync.Mutex
	data := map[string][]byte{}
	closed, dials := 0, 0
	dial := func(i int) (Client, error) {
		mu.Lock()
		defer mu.Unlock()
		dials++
		return memClient{&mu, data, &closed}, nil
	}
	o := DefaultOptions()
	o.Addr = "" // not needed with a Dialer
	o.Conns, o.Keys, o.Duration, o.ValueSize = 4, 50, 100*time.Millisecond, 10
	res, err := RunWith(context.Background(), o, dial, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops == 0 || res.Gets+res.Sets != res.Ops || res.Hits != res.Gets || res.Errors != 0 || res.P50 <= 0 {
		t.Errorf("result %+v: with preload every get hits", res)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(data) != 50 || len(data["bench:49"]) != 10 {
		t.Errorf("%d keys stored, value %q", len(data), data["bench:49"])
	}
	if closed != dials || dials != 4+4 { // preload opens min(conns,16)
		t.Errorf("%d dials, %d closes", dials, closed)
	}
}

func TestRunWithDialError(t *testing.T) {
	o := DefaultOptions()
	o.Preload, o.Duration = false, 10*time.Millisecond
	boom := errors.New("boom")
	_, err := RunWith(context.Background(), o, func(int) (Client, error) { return nil, boom }, nil)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "connection 0") {
		t.Errorf("err = %v", err)
	}
	o.Conns = 0
	if _, err := RunWith(context.Background(), o, func(int) (Client, error) { return nil, boom }, nil); err == nil || !strings.Contains(err.Error(), "conns 0") {
		t.Errorf("invalid load accepted: %v", err)
	}
}

func TestValidateTargets(t *testing.T) {
	o := DefaultOptions()
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "addr is empty") {
		t.Errorf("no address: %v", err)
	}
	o.Addrs = []string{"a:1", ""}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "empty address") {
		t.Errorf("empty spread address: %v", err)
	}
	o.Addrs = []string{"a:1", "b:1"}
	if err := o.Validate(); err != nil {
		t.Errorf("spread: %v", err)
	}
}
