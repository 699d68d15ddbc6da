package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"sync"
	"sync/atomic"
)

// Runner runs the configured handlers for dispatched events, one event at
// a time, on its own goroutine. Its methods are safe for concurrent use.
type Runner struct {
	cfg  Config
	self func() Self
	log  *slog.Logger

	// ctx is cancelled (cause ErrClosed) by Close: it kills a running
	// handler's process group.
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu     sync.Mutex // guards queue and closed, and sends on wake
	queue  []pending  // events waiting for the worker, oldest first
	closed bool
	// wake (capacity 1) tells the worker the queue or closed changed; Close
	// closes it.
	wake chan struct{}
	done chan struct{} // closed when the worker has returned

	ran, failed, timedOut, dropped atomic.Uint64
}

// pending is one dispatched event.
type pending struct {
	ev      Event
	respond func([]byte) error
}

// Stats counts what a Runner did.
type Stats struct {
	// Ran counts finished handler runs, whatever their outcome.
	Ran uint64
	// Failed counts runs that did not succeed: a non-zero exit, a shell
	// that could not start, a kill at the timeout or at Close.
	Failed uint64
	// TimedOut counts runs killed at Config.Timeout (also in Failed).
	TimedOut uint64
	// Dropped counts events dropped, oldest first, from a full queue.
	Dropped uint64
}

// NewRunner validates cfg and starts the worker. self is called once per
// event that some handler matches, for the SERF_SELF_* and SERF_TAG_*
// variables.
func NewRunner(cfg Config, self func() Self) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if self == nil {
		return nil, fmt.Errorf("%w: NewRunner needs a self func", ErrBadConfig)
	}
	if _, err := exec.LookPath(cfg.Shell); err != nil {
		return nil, &configError{field: "Shell", msg: fmt.Sprintf("%q: %v", cfg.Shell, err)}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Handlers = append([]Handler(nil), cfg.Handlers...)
	ctx, cancel := context.WithCancelCause(context.Background())
	r := &Runner{
		cfg: cfg, self: self, log: log,
		ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	go r.work()
	return r, nil
}

// Dispatch queues ev for the handlers and returns at once: it never waits
// for a handler. For a query, respond (which may be nil) is called with
// the output of the first matching handler that exits 0 with some output.
// When the queue is full the oldest waiting event is dropped. After Close,
// and for an unknown Kind, ev is logged and ignored.
func (r *Runner) Dispatch(ev Event, respond func([]byte) error) {
	if !validKind(ev.Kind) {
		r.log.Warn("events: ignoring an event of unknown kind", "event", ev.String())
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		r.log.Debug("events: ignoring an event dispatched after Close", "event", ev.String(), "error", ErrClosed)
		return
	}
	if len(r.queue) >= r.cfg.QueueSize {
		old := r.queue[0]
		r.queue[0] = pending{}
		r.queue = r.queue[1:]
		// The first drop, then every 1024th: a hung handler under an event
		// storm must not flood the log too.
		if n := r.dropped.Add(1); n == 1 || n%1024 == 0 {
			r.log.Warn("events: queue full, dropped the oldest waiting event",
				"dropped", old.ev.String(), "dropped_total", n, "queue_size", r.cfg.QueueSize)
		}
	}
	r.queue = append(r.queue, pending{ev: ev, respond: respond})
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Close stops accepting events, discards the waiting ones, kills the
// running handler's process group and waits for the worker to return. It
// may be called more than once.
func (r *Runner) Close() {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.wake)
	}
	r.mu.Unlock()
	r.cancel(ErrClosed)
	<-r.done
}

// Stats returns the counters so far.
func (r *Runner) Stats() Stats {
	return Stats{Ran: r.ran.Load(), Failed: r.failed.Load(), TimedOut: r.timedOut.Load(), Dropped: r.dropped.Load()}
}

// work is the worker: it runs the queued events in arrival order.
func (r *Runner) work() {
	defer close(r.done)
	for {
		p, ok := r.next()
		if !ok {
			return
		}
		r.handle(p)
	}
}

// next waits for the oldest queued event; ok is false once closed.
func (r *Runner) next() (p pending, ok bool) {
	for {
		r.mu.Lock()
		if r.closed {
			n := len(r.queue)
			r.queue = nil
			r.mu.Unlock()
			if n > 0 {
				r.log.Info("events: closed, discarded waiting events", "discarded", n)
			}
			return pending{}, false
		}
		if len(r.queue) > 0 {
			p = r.queue[0]
			r.queue[0] = pending{}
			r.queue = r.queue[1:]
			r.mu.Unlock()
			return p, true
		}
		r.mu.Unlock()
		<-r.wake
	}
}

// handle runs the handlers matching one event, in order.
func (r *Runner) handle(p pending) {
	var self Self
	haveSelf, responded := false, false
	for _, h := range r.cfg.Handlers {
		if !h.Matches(p.ev) {
			continue
		}
		if r.ctx.Err() != nil {
			return
		}
		if !haveSelf {
			self, haveSelf = r.self(), true
		}
		res := r.invoke(h, self, p.ev)
		r.ran.Add(1)
		r.report(h, p.ev, res)
		if p.ev.Kind != Query || res.err != nil || len(res.output) == 0 || p.respond == nil {
			continue
		}
		if responded {
			r.log.Debug("events: query already answered by an earlier handler", "handler", h.String(), "event", p.ev.String())
			continue
		}
		responded = true
		if err := p.respond(res.output); err != nil {
			r.log.Warn("events: query response failed", "handler", h.String(), "event", p.ev.String(), "error", err)
		}
	}
}

// report counts and logs one run.
func (r *Runner) report(h Handler, ev Event, res result) {
	attrs := []any{"handler", h.String(), "event", ev.String(), "duration", res.duration}
	if res.total > len(res.output) {
		attrs = append(attrs, "output_bytes", res.total, "output_kept", len(res.output))
	}
	switch {
	case res.err == nil:
		r.log.Debug("events: handler ran", append(attrs, "output", string(res.output))...)
		return
	case errors.Is(res.err, ErrTimeout):
		r.timedOut.Add(1)
		attrs = append(attrs, "timeout", r.cfg.Timeout)
	}
	r.failed.Add(1)
	r.log.Warn("events: handler failed", append(attrs, "status", res.status, "error", res.err,
		"output", firstLines(res.output, 5))...)
}
