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

func TestRatePacesTheLoad(t *testing.T) {
	var mu sync.Mutex
	closed := 0
	dial := func(int) (Client, error) { return memClient{&mu, map[string][]byte{}, &closed}, nil }
	o := DefaultOptions()
	o.Preload, o.Conns, o.Keys, o.Duration, o.Rate = false, 4, 50, 500*time.Millisecond, 400
	res, err := RunWith(context.Background(), o, dial, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The schedule allows at most rate×duration requests, plus one per
	// connection for the first, due at once.
	if most := int64(400*0.5) + 4; res.Ops > most || res.Ops < most/2 {
		t.Errorf("%d requests in %s at 400/s, want about %d and never more", res.Ops, o.Duration, most)
	}
	o.Rate = -1
	if _, err := RunWith(context.Background(), o, dial, nil); err == nil || !strings.Contains(err.Error(), "rate -1") {
		t.Errorf("negative rate accepted: %v", err)
	}
}

// stallClient answers at once, except that its first request stalls for
// stall: a server that freezes once.
type stallClient struct {
	memClient
	stall time.Duration
	once  *sync.Once
}

func (c stallClient) Get(key []byte) (bool, error) {
	c.once.Do(func() { time.Sleep(c.stall) })
	return c.memClient.Get(key)
}

// TestRateCountsTheStall: with a paced load, the requests that were due
// while the server stalled count their wait, so a 400 ms stall in a
// 600 ms run moves the median, which a closed loop (one slow request)
// would not.
func TestRateCountsTheStall(t *testing.T) {
	var mu sync.Mutex
	closed := 0
	for _, rate := range []float64{0, 100} {
		var once sync.Once
		dial := func(int) (Client, error) {
			return stallClient{memClient{&mu, map[string][]byte{}, &closed}, 400 * time.Millisecond, &once}, nil
		}
		o := DefaultOptions()
		o.Preload, o.Conns, o.Keys, o.Duration, o.GetRatio, o.Rate = false, 1, 10, 600*time.Millisecond, 1, rate
		res, err := RunWith(context.Background(), o, dial, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Max < 400*time.Millisecond {
			t.Errorf("rate %g: max %s, the stall was 400ms", rate, res.Max)
		}
		if paced := rate > 0; paced != (res.P50 >= 20*time.Millisecond) {
			t.Errorf("rate %g: median %s over %d requests", rate, res.P50, res.Ops)
		}
	}
}
