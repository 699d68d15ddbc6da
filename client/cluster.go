package client

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Cluster is a routing-aware client of a sonae cluster. It keeps the
// cluster's routing table, a pool of direct-mode connections per node, and
// sends every single-key request straight to the key's primary (reads to
// any in-sync replica with ReadFromSecondaries). It refreshes the table
// when a node answers NOT_PRIMARY, when a connection fails, and when the
// polled routing.version grows, and retries as ClusterOptions describes.
//
// A Cluster is safe for concurrent use by many goroutines. Close it to stop
// its poller and close its connections.
type Cluster struct {
	opts  ClusterOptions
	seeds []string // dial addresses
	log   *slog.Logger

	table atomic.Pointer[RoutingTable] // never nil after NewCluster
	rr    atomic.Uint64                // spreads secondary reads and polls

	mu         sync.Mutex // guards pools and closedFlag
	pools      map[string]*nodePool
	closedFlag bool

	flightMu sync.Mutex // guards flight
	flight   *flight    // the table fetch in progress, if any

	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup // the poller
}

// NewCluster fetches the routing table from the first seed that answers
// (seeds are "host:port" or node ids "host_port") and starts polling the
// table version. Errors match ErrNoNode when no seed answered.
func NewCluster(seeds []string, opts ClusterOptions) (*Cluster, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if len(seeds) == 0 {
		return nil, fmt.Errorf("%w: no seed given", ErrNoNode)
	}
	c := &Cluster{opts: opts, log: opts.Logger, pools: map[string]*nodePool{}, closed: make(chan struct{})}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	for _, s := range seeds {
		c.seeds = append(c.seeds, NormalizeAddr(s))
	}
	var errs []error
	for _, addr := range c.seeds {
		t, err := c.fetchFromSeed(addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.table.Store(t)
		break
	}
	if c.table.Load() == nil {
		return nil, fmt.Errorf("%w: %w", ErrNoNode, errors.Join(errs...))
	}
	if opts.RefreshInterval > 0 {
		c.wg.Go(c.pollLoop)
	}
	return c, nil
}

// Close stops the poller, closes every connection and makes every later
// call return ErrClosed. Requests in flight fail. It is safe to call twice.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.mu.Lock()
		c.closedFlag = true
		pools := c.pools
		c.pools = nil
		c.mu.Unlock()
		for _, p := range pools {
			p.close()
		}
		c.wg.Wait()
	})
	return nil
}

// Table returns the routing table in use. Do not modify it.
func (c *Cluster) Table() *RoutingTable { return c.table.Load() }

// TableVersion returns the version of the routing table in use.
func (c *Cluster) TableVersion() uint64 { return c.table.Load().Version }

// dialNode opens a connection to a node and puts it in the Cluster's modes.
func (c *Cluster) dialNode(addr string) (*Conn, error) {
	cn, err := Dial(addr, c.opts.Timeout)
	if err != nil {
		return nil, err
	}
	err = cn.ConnOption("direct", true)
	if err == nil && c.opts.ReadFromSecondaries {
		err = cn.ConnOption("read_secondary", true)
	}
	if err != nil {
		cn.Close()
		return nil, fmt.Errorf("client: setting up a connection to %s: %w", addr, err)
	}
	return cn, nil
}

// pool returns the pool of node id, creating it.
func (c *Cluster) pool(id string) (*nodePool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closedFlag {
		return nil, ErrClosed
	}
	p := c.pools[id]
	if p == nil {
		p = newNodePool(id, c.opts.PoolSize, c.dialNode)
		c.pools[id] = p
	}
	return p, nil
}

// retry says when a failed request may be sent again.
type retry uint8

const (
	// retrySafe: repeating the request is harmless (get, gets, set,
	// replace, delete, touch), so it is retried after any connection error.
	retrySafe retry = iota
	// retryUnsent: the request is retried only when the node cannot have
	// applied it: NOT_PRIMARY, or a failure before it was sent.
	retryUnsent
)

// target picks the node for key in t. read spreads over the replicas that
// are not lagging when ReadFromSecondaries is set.
func (c *Cluster) target(t *RoutingTable, v int, read bool) string {
	r := t.Vnodes[v]
	if !read || !c.opts.ReadFromSecondaries || len(r.Nodes) < 2 {
		return t.Primary(v)
	}
	n := 0
	for _, id := range r.Nodes {
		if !contains(r.Lagging, id) {
			n++
		}
	}
	if n == 0 {
		return t.Primary(v)
	}
	k := int(c.rr.Add(1) % uint64(n))
	for _, id := range r.Nodes {
		if contains(r.Lagging, id) {
			continue
		}
		if k == 0 {
			return id
		}
		k--
	}
	return t.Primary(v)
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// do runs fn on a connection to the node of key, with the retry policy of
// the package comment. op names the request in errors.
func (c *Cluster) do(op, key string, policy retry, read bool, fn func(*Conn) error) error {
	if err := checkKey(key); err != nil {
		return err
	}
	hint := "" // a node named by NOT_PRIMARY that the table does not know yet
	fresh := false
	var last error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if attempt > c.opts.MaxRetries {
				return last
			}
			if !fresh {
				if err := c.backoff(attempt); err != nil {
					return err
				}
			}
		}
		fresh = false
		t := c.table.Load()
		v := t.Vnode(key)
		node := c.target(t, v, read && attempt == 0)
		if hint != "" {
			node, hint = hint, ""
		}
		if node == "" {
			last = fmt.Errorf("%w: %s %q: vnode %d has no replica in table version %d", ErrVnodeLost, op, key, v, t.Version)
			fresh = c.refreshAfterError(t.Version, "")
			continue
		}
		p, err := c.pool(node)
		if err != nil {
			return err
		}
		cn, err := p.get(c.opts.Timeout, policy == retryUnsent)
		if err != nil {
			// Nothing was sent: every request may be retried.
			last = fmt.Errorf("client: %s %q: connecting to %s: %w", op, key, node, err)
			if errors.Is(err, ErrPoolTimeout) {
				continue
			}
			fresh = c.refreshAfterError(t.Version, node)
			continue
		}
		err = fn(cn)
		p.put(cn, err)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrNotPrimary):
			// The node refused without applying: retry every request.
			last = fmt.Errorf("client: %s %q at %s: %w", op, key, node, err)
			_, primary, version, _ := notPrimaryOf(err)
			fresh = c.refreshTo(version, node)
			if nt := c.table.Load(); c.target(nt, nt.Vnode(key), false) == node && primary != "" && primary != node {
				// The table we could get still names the refusing node:
				// follow the node's own word for one attempt.
				hint = primary
				fresh = true
			}
			c.log.Debug("sonae client: not primary", "op", op, "key", key, "node", node, "primary", primary, "version", version)
		case errors.Is(err, ErrUnavailable):
			if policy != retrySafe {
				return fmt.Errorf("client: %s %q at %s: %w", op, key, node, err)
			}
			last = fmt.Errorf("client: %s %q at %s: %w", op, key, node, err)
		case reusable(err):
			return err // an answer: not found, not stored, exists, a server error
		default:
			if policy != retrySafe {
				return fmt.Errorf("%w: %s %q at %s: %w", ErrMaybeApplied, op, key, node, err)
			}
			last = fmt.Errorf("client: %s %q at %s: %w", op, key, node, err)
			c.log.Debug("sonae client: connection error", "op", op, "node", node, "error", err)
			fresh = c.refreshAfterError(t.Version, node)
		}
	}
}

// notPrimaryOf finds the NOT_PRIMARY line in err.
func notPrimaryOf(err error) (vnode int, primary string, version uint64, ok bool) {
	var se *ServerError
	if !errors.As(err, &se) {
		return 0, "", 0, false
	}
	return notPrimary(se.Line)
}

// backoff waits before retry attempt (1, 2, ...): RetryBackoff doubled per
// attempt, capped at 1s, with up to 50% jitter. It returns ErrClosed when
// the Cluster closes meanwhile.
func (c *Cluster) backoff(attempt int) error {
	d := c.opts.RetryBackoff << min(attempt-1, 20)
	d = min(d, time.Second)
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-c.closed:
		return ErrClosed
	}
}
