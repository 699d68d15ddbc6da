package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Options describe one load run.
type Options struct {
	// Addr is host:port of the server.
	Addr string `json:"addr"`
	// Addrs, when not empty, spreads the connections round robin over
	// several servers instead (connection i goes to Addrs[i%len(Addrs)]):
	// for example every node of a cluster, each forwarding what it does not
	// own. Addr is then ignored.
	Addrs []string `json:"addrs,omitempty"`
	// Conns is the number of concurrent connections.
	Conns int `json:"conns"`
	// GetRatio is the fraction of requests that are gets (0..1).
	GetRatio float64 `json:"get_ratio"`
	// ValueSize is the size of every value set, in bytes.
	ValueSize int `json:"value_size"`
	// Keys is the size of the key space.
	Keys int `json:"keys"`
	// Duration is how long to send load.
	Duration time.Duration `json:"duration"`
	// Preload sets every key once before the run, so gets hit.
	Preload bool `json:"preload"`
	// KeyPrefix namespaces the generated keys.
	KeyPrefix string `json:"key_prefix"`
	// Rate, when positive, paces the load to this many requests per second
	// over all connections (an open loop, as wrk2 and memtier's rate limit
	// do): each connection sends on a fixed schedule and a request's
	// latency counts from when it was due, so a stall shows in the
	// percentiles instead of just lowering the rate (no coordinated
	// omission). Zero sends as fast as each connection can go.
	Rate float64 `json:"rate,omitempty"`
}

// DefaultOptions is the reference load: 90% gets, 100-byte values,
// 32 connections.
func DefaultOptions() Options {
	return Options{Conns: 32, GetRatio: 0.9, ValueSize: 100, Keys: 100000, Duration: 10 * time.Second, Preload: true, KeyPrefix: "bench:"}
}

// Validate names the first bad field.
func (o *Options) Validate() error {
	if o.Addr == "" && len(o.Addrs) == 0 {
		return errors.New("bench: addr is empty")
	}
	for _, a := range o.Addrs {
		if a == "" {
			return fmt.Errorf("bench: addrs %q has an empty address", o.Addrs)
		}
	}
	return o.validateLoad()
}

// validateLoad checks the fields that describe the load, not its target.
func (o *Options) validateLoad() error {
	switch {
	case o.Conns < 1 || o.Conns > 10000:
		return fmt.Errorf("bench: conns %d outside 1..10000", o.Conns)
	case o.GetRatio < 0 || o.GetRatio > 1:
		return fmt.Errorf("bench: get ratio %g outside 0..1", o.GetRatio)
	case o.ValueSize < 0 || o.ValueSize > 1<<20:
		return fmt.Errorf("bench: value size %d outside 0..1048576", o.ValueSize)
	case o.Keys < 1:
		return fmt.Errorf("bench: keys %d must be at least 1", o.Keys)
	case o.Duration <= 0:
		return fmt.Errorf("bench: duration %s must be positive", o.Duration)
	case o.Rate < 0 || o.Rate > 1e8:
		return fmt.Errorf("bench: rate %g outside 0..100000000 requests per second", o.Rate)
	}
	return nil
}

// Result is what one run measured.
type Result struct {
	Ops       int64         `json:"ops"`
	Gets      int64         `json:"gets"`
	Hits      int64         `json:"hits"`
	Sets      int64         `json:"sets"`
	Errors    int64         `json:"errors"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	OpsPerSec float64       `json:"ops_per_sec"`
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
	P999      time.Duration `json:"p999_ns"`
	Max       time.Duration `json:"max_ns"`
}

func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(60*time.Second/time.Microsecond), 3)
}

// Run sends load as o describes and returns the measurements. progress, if
// not nil, is called about once a second with the ops completed so far.
func Run(ctx context.Context, o Options, progress func(ops int64, elapsed time.Duration)) (Result, error) {
	return RunWith(ctx, o, nil, progress)
}

// RunWith is Run over the clients dial opens (connection i is dial(i)),
// such as a routing-aware cluster client; o.Addr and o.Addrs are then
// ignored. dial nil means raw connections to o.Addr or o.Addrs.
func RunWith(ctx context.Context, o Options, dial Dialer, progress func(ops int64, elapsed time.Duration)) (Result, error) {
	if dial == nil {
		if err := o.Validate(); err != nil {
			return Result{}, err
		}
		dial = o.rawDialer()
	} else if err := o.validateLoad(); err != nil {
		return Result{}, err
	}
	if o.Preload {
		if err := preload(ctx, o, dial); err != nil {
			return Result{}, fmt.Errorf("bench: preload: %w", err)
		}
	}
	conns := make([]*worker, o.Conns)
	for i := range conns {
		w, err := newWorker(o, i, dial)
		if err != nil {
			for _, c := range conns[:i] {
				c.close()
			}
			return Result{}, fmt.Errorf("bench: connection %d: %w", i, err)
		}
		conns[i] = w
	}
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for _, w := range conns {
		wg.Go(func() { w.loop(ctx) })
	}
	if progress != nil {
		go reportProgress(ctx, conns, start, progress)
	}
	wg.Wait()
	elapsed := time.Since(start)
	res := Result{Elapsed: elapsed}
	h := newHist()
	for _, w := range conns {
		w.close()
		h.Merge(w.hist)
		res.Gets += w.gets
		res.Hits += w.hits
		res.Sets += w.sets
		res.Errors += w.errors
	}
	res.Ops = res.Gets + res.Sets
	res.OpsPerSec = float64(res.Ops) / elapsed.Seconds()
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	res.P50, res.P99, res.P999 = us(h.ValueAtQuantile(50)), us(h.ValueAtQuantile(99)), us(h.ValueAtQuantile(99.9))
	res.Max = us(h.Max())
	if res.Ops == 0 {
		return res, errors.New("bench: no request completed")
	}
	return res, nil
}

func reportProgress(ctx context.Context, ws []*worker, start time.Time, progress func(int64, time.Duration)) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			var ops int64
			for _, w := range ws {
				ops += w.done.Load()
			}
			progress(ops, time.Since(start))
		}
	}
}

// preload sets every key once, spread over the connections.
func preload(ctx context.Context, o Options, dial Dialer) error {
	n := min(o.Conns, 16)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			w, err := newWorker(o, i, dial)
			if err != nil {
				errs <- err
				return
			}
			defer w.close()
			for k := i; k < o.Keys; k += n {
				if ctx.Err() != nil {
					errs <- ctx.Err()
					return
				}
				if err := w.set(k); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// worker drives one client with the lean request path: no allocation per
// request (with the raw client), so the generator disturbs the measurement
// as little as it can.
type worker struct {
	o     Options
	c     Client
	rng   *rand.Rand
	value []byte
	kbuf  []byte
	hist  *hdrhistogram.Histogram
	// every is the pace of a rate-limited run (0 = none) and phase this
	// connection's offset in it, so the connections do not send in step.
	every, phase time.Duration

	gets, hits, sets, errors int64
	done                     atomicCounter
}

func newWorker(o Options, i int, dial Dialer) (*worker, error) {
	c, err := dial(i)
	if err != nil {
		return nil, err
	}
	value := make([]byte, o.ValueSize)
	for j := range value {
		value[j] = 'a' + byte(j%26)
	}
	w := &worker{
		o: o, c: c,
		rng: rand.New(rand.NewPCG(uint64(i)+1, uint64(time.Now().UnixNano()))), value: value,
		kbuf: make([]byte, 0, 256), hist: newHist(),
	}
	if o.Rate > 0 {
		w.every = time.Duration(float64(time.Second) * float64(o.Conns) / o.Rate)
		w.phase = w.every * time.Duration(i) / time.Duration(o.Conns)
	}
	return w, nil
}

func (w *worker) close() { w.c.Close() }

func (w *worker) loop(ctx context.Context) {
	due := time.Now().Add(w.phase)
	var timer *time.Timer
	if w.every > 0 {
		timer = time.NewTimer(time.Until(due))
		defer timer.Stop()
	}
	for ctx.Err() == nil {
		k := w.rng.IntN(w.o.Keys)
		isGet := w.rng.Float64() < w.o.GetRatio
		t0 := time.Now()
		if timer != nil {
			if d := time.Until(due); d > 0 {
				timer.Reset(d)
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
			}
			t0 = due // a late request's wait counts, as a client's would
			due = due.Add(w.every)
		}
		var err error
		if isGet {
			err = w.get(k)
			w.gets++
		} else {
			err = w.set(k)
			w.sets++
		}
		if err != nil {
			w.errors++
			if ctx.Err() != nil {
				return
			}
			// A broken connection cannot recover its framing; stop.
			if errors.Is(err, io.EOF) || isNetErr(err) {
				return
			}
			continue
		}
		w.hist.RecordValue(max(1, int64(time.Since(t0)/time.Microsecond)))
		w.done.Add(1)
	}
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

func (w *worker) key(b []byte, k int) []byte {
	b = append(b, w.o.KeyPrefix...)
	return strconv.AppendInt(b, int64(k), 10)
}

func (w *worker) get(k int) error {
	w.kbuf = w.key(w.kbuf[:0], k)
	hit, err := w.c.Get(w.kbuf)
	if hit {
		w.hits++
	}
	return err
}

func (w *worker) set(k int) error {
	w.kbuf = w.key(w.kbuf[:0], k)
	return w.c.Set(w.kbuf, w.value)
}
