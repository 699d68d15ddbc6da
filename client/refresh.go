package client

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// flight is one table fetch; callers arriving meanwhile wait for it
// instead of starting their own (single-flight).
type flight struct {
	done chan struct{}
}

// refreshTo fetches the table unless the one in use has version want
// already; nodes are asked (prefer first) until one has version >= want,
// else the newest table found is kept. It reports whether the table in use
// changed.
func (c *Cluster) refreshTo(want uint64, prefer string) bool {
	before := c.table.Load().Version
	c.refresh(want, prefer, "", func(cur uint64) bool { return want == 0 || cur < want })
	return c.table.Load().Version != before
}

// refreshAfterError fetches the table after a failure at node avoid, unless
// it changed since the failed request was routed with version seen. The
// first node that answers is enough; avoid is asked last. It reports
// whether the table in use changed since seen.
func (c *Cluster) refreshAfterError(seen uint64, avoid string) bool {
	c.refresh(0, "", avoid, func(cur uint64) bool { return cur == seen })
	return c.table.Load().Version != seen
}

// refresh runs one fetch, or waits for the one in flight. needed, given
// the version in use, says whether a fetch is still wanted; it is checked
// under flightMu, so a caller that raced with a finished fetch (which
// installs its table before it ends) does not fetch again.
func (c *Cluster) refresh(want uint64, prefer, avoid string, needed func(cur uint64) bool) {
	c.flightMu.Lock()
	if f := c.flight; f != nil {
		c.flightMu.Unlock()
		select {
		case <-f.done:
		case <-c.closed:
		}
		return
	}
	if !needed(c.table.Load().Version) {
		c.flightMu.Unlock()
		return
	}
	f := &flight{done: make(chan struct{})}
	c.flight = f
	c.flightMu.Unlock()

	if err := c.fetch(want, prefer, avoid); err != nil {
		c.log.Warn("sonae client: routing table refresh failed", "error", err)
	}

	c.flightMu.Lock()
	c.flight = nil
	c.flightMu.Unlock()
	close(f.done)
}

// fetch asks the table's nodes (prefer first, avoid last), then the seeds,
// for the table, stopping at the first with version >= want, and installs
// the newest table found.
func (c *Cluster) fetch(want uint64, prefer, avoid string) error {
	cur := c.table.Load()
	var order []string
	if prefer != "" {
		order = append(order, prefer)
	}
	n := len(cur.Nodes)
	start := int(c.rr.Add(1))
	for i := range n {
		id := cur.Nodes[(start+i)%n].ID
		if id != prefer && id != avoid {
			order = append(order, id)
		}
	}
	if avoid != "" && avoid != prefer {
		order = append(order, avoid)
	}
	var best *RoutingTable
	var errs []error
	try := func(t *RoutingTable, err error) bool {
		if err != nil {
			errs = append(errs, err)
			return false
		}
		if best == nil || t.Version > best.Version {
			best = t
		}
		return best.Version >= want
	}
	done := false
	for _, id := range order {
		if done = try(c.fetchFromNode(id)); done {
			break
		}
		if c.isClosed() {
			return ErrClosed
		}
	}
	for _, addr := range c.seeds {
		if done {
			break
		}
		done = try(c.fetchFromSeed(addr))
	}
	if best == nil {
		return fmt.Errorf("%w: %w", ErrNoNode, errors.Join(errs...))
	}
	c.install(best)
	return nil
}

func (c *Cluster) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// fetchFromNode asks node id over a pooled connection.
func (c *Cluster) fetchFromNode(id string) (*RoutingTable, error) {
	p, err := c.pool(id)
	if err != nil {
		return nil, err
	}
	cn, err := p.get(c.opts.Timeout, false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	t, err := cn.RoutingTable()
	p.put(cn, err)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	return t, nil
}

// fetchFromSeed asks a seed over a connection of its own.
func (c *Cluster) fetchFromSeed(addr string) (*RoutingTable, error) {
	cn, err := Dial(addr, c.opts.Timeout)
	if err != nil {
		return nil, err
	}
	defer cn.Close()
	t, err := cn.RoutingTable()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	if len(t.Nodes) == 0 {
		return nil, fmt.Errorf("%w: %s answered a table without nodes", ErrBadTable, addr)
	}
	return t, nil
}

// install makes t the table in use if it is newer, and closes the pools of
// nodes that left.
func (c *Cluster) install(t *RoutingTable) {
	for {
		cur := c.table.Load()
		if t.Version <= cur.Version {
			return
		}
		if c.table.CompareAndSwap(cur, t) {
			c.log.Debug("sonae client: routing table installed", "version", t.Version, "previous", cur.Version)
			break
		}
	}
	keep := make(map[string]bool, len(t.Nodes))
	for _, n := range t.Nodes {
		keep[n.ID] = true
	}
	c.mu.Lock()
	var gone []*nodePool
	for id, p := range c.pools {
		if !keep[id] {
			gone = append(gone, p)
			delete(c.pools, id)
		}
	}
	c.mu.Unlock()
	for _, p := range gone {
		p.close()
	}
}

// pollLoop asks one node (round robin) for routing.version every
// RefreshInterval and refreshes when it grew.
func (c *Cluster) pollLoop() {
	tick := time.NewTicker(c.opts.RefreshInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.closed:
			return
		case <-tick.C:
		}
		c.poll()
	}
}

// poll asks the nodes in turn, from the next in round robin, until one
// answers, and refreshes when its version is newer than the table's.
func (c *Cluster) poll() {
	t := c.table.Load()
	n := len(t.Nodes)
	start := int(c.rr.Add(1) % uint64(max(n, 1)))
	for i := range n {
		id := t.Nodes[(start+i)%n].ID
		v, err := c.pollVersion(id)
		if err != nil {
			c.log.Debug("sonae client: polling routing.version failed", "node", id, "error", err)
			if c.isClosed() {
				return
			}
			continue
		}
		if v > t.Version {
			c.log.Debug("sonae client: routing.version grew", "node", id, "version", v, "have", t.Version)
			c.refreshTo(v, id)
		}
		return
	}
}

// pollVersion reads routing.version from node id.
func (c *Cluster) pollVersion(id string) (uint64, error) {
	p, err := c.pool(id)
	if err != nil {
		return 0, err
	}
	cn, err := p.get(c.opts.Timeout, false)
	if err != nil {
		return 0, err
	}
	stats, err := cn.Stat("routing.version")
	p.put(cn, err)
	if err != nil {
		return 0, err
	}
	for _, s := range stats {
		if s.Name == "routing.version" {
			v, err := strconv.ParseUint(s.Value, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%w: routing.version %q", ErrProtocol, s.Value)
			}
			return v, nil
		}
	}
	return 0, fmt.Errorf("%w: stat has no routing.version", ErrProtocol)
}
