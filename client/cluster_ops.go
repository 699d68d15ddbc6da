package client

import (
	"errors"
	"fmt"
	"sync"
)

// Get fetches key (the get command: Item.CAS is 0). It reads at the
// primary, or at any in-sync replica with ReadFromSecondaries.
// ErrNotFound on a miss.
func (c *Cluster) Get(key string) (Item, error) {
	var it Item
	err := c.do("get", key, retrySafe, true, func(cn *Conn) (err error) {
		it, err = cn.getOne("get", key)
		return err
	})
	return it, err
}

// Gets fetches key with its CAS unique, always at the primary.
func (c *Cluster) Gets(key string) (Item, error) {
	var it Item
	err := c.do("gets", key, retrySafe, false, func(cn *Conn) (err error) {
		it, err = cn.getOne("gets", key)
		return err
	})
	return it, err
}

// Set stores value under key.
func (c *Cluster) Set(key string, value []byte, flags uint32, exptime int64) error {
	return c.do("set", key, retrySafe, false, func(cn *Conn) error { return cn.Set(key, value, flags, exptime) })
}

// Add stores value only if key is absent (ErrNotStored otherwise). It is
// not retried after a connection error once sent (ErrMaybeApplied).
func (c *Cluster) Add(key string, value []byte, flags uint32, exptime int64) error {
	return c.do("add", key, retryUnsent, false, func(cn *Conn) error { return cn.Add(key, value, flags, exptime) })
}

// Replace stores value only if key exists (ErrNotStored otherwise).
// Repeating a replace leaves the same value, so it is retried like Set.
func (c *Cluster) Replace(key string, value []byte, flags uint32, exptime int64) error {
	return c.do("replace", key, retrySafe, false, func(cn *Conn) error { return cn.Replace(key, value, flags, exptime) })
}

// Append adds value after key's value (ErrNotStored if absent). Not
// retried once sent.
func (c *Cluster) Append(key string, value []byte) error {
	return c.do("append", key, retryUnsent, false, func(cn *Conn) error { return cn.Append(key, value) })
}

// Prepend adds value before key's value (ErrNotStored if absent). Not
// retried once sent.
func (c *Cluster) Prepend(key string, value []byte) error {
	return c.do("prepend", key, retryUnsent, false, func(cn *Conn) error { return cn.Prepend(key, value) })
}

// CompareAndSwap stores value if key still has cas (ErrCASConflict if it
// changed, ErrNotFound if it is gone). Not retried once sent.
func (c *Cluster) CompareAndSwap(key string, value []byte, flags uint32, exptime int64, cas uint64) error {
	return c.do("cas", key, retryUnsent, false, func(cn *Conn) error {
		return cn.CompareAndSwap(key, value, flags, exptime, cas)
	})
}

// Delete removes key; ErrNotFound if it was absent. A delete retried after
// a connection error may report ErrNotFound for a key its first attempt
// deleted.
func (c *Cluster) Delete(key string) error {
	return c.do("delete", key, retrySafe, false, func(cn *Conn) error { return cn.Delete(key) })
}

// Incr adds delta to key's decimal value and returns the new value. Not
// retried once sent.
func (c *Cluster) Incr(key string, delta uint64) (uint64, error) {
	var n uint64
	err := c.do("incr", key, retryUnsent, false, func(cn *Conn) (err error) {
		n, err = cn.Incr(key, delta)
		return err
	})
	return n, err
}

// Decr subtracts delta from key's decimal value (stopping at 0) and returns
// the new value. Not retried once sent.
func (c *Cluster) Decr(key string, delta uint64) (uint64, error) {
	var n uint64
	err := c.do("decr", key, retryUnsent, false, func(cn *Conn) (err error) {
		n, err = cn.Decr(key, delta)
		return err
	})
	return n, err
}

// Touch sets a new exptime on key (ErrNotFound if absent).
func (c *Cluster) Touch(key string, exptime int64) error {
	return c.do("touch", key, retrySafe, false, func(cn *Conn) error { return cn.Touch(key, exptime) })
}

// GetMulti fetches keys with one get command per node, sent in parallel,
// and returns the items found by key (Item.CAS is 0). Keys whose node
// answers NOT_PRIMARY or fails are regrouped under a refreshed table and
// retried. On error the map still holds the items fetched.
func (c *Cluster) GetMulti(keys ...string) (map[string]Item, error) {
	out := make(map[string]Item, len(keys))
	pending := make([]string, 0, len(keys))
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return out, err
		}
		if !seen[k] {
			seen[k] = true
			pending = append(pending, k)
		}
	}
	var last error
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt > 0 {
			if attempt > c.opts.MaxRetries {
				return out, last
			}
			if err := c.backoff(attempt); err != nil {
				return out, err
			}
		}
		t := c.table.Load()
		groups := map[string][]string{}
		var lost []string // keys of vnodes without a replica: a refresh may find them
		for _, k := range pending {
			v := t.Vnode(k)
			node := c.target(t, v, attempt == 0)
			if node == "" {
				last = fmt.Errorf("%w: get %q: vnode %d has no replica in table version %d", ErrVnodeLost, k, v, t.Version)
				lost = append(lost, k)
				continue
			}
			groups[node] = append(groups[node], k)
		}
		var (
			mu       sync.Mutex
			retryNow = lost
			final    error
			want     uint64 // highest version named by NOT_PRIMARY
			failed   string // a node that failed on I/O
			wg       sync.WaitGroup
		)
		for node, ks := range groups {
			wg.Go(func() {
				items, err := c.getGroup(node, ks)
				mu.Lock()
				defer mu.Unlock()
				for _, it := range items {
					out[it.Key] = it
				}
				switch {
				case err == nil:
					return
				case errors.Is(err, ErrClosed):
					final = err
				case errors.Is(err, ErrNotPrimary):
					_, _, v, _ := notPrimaryOf(err)
					want = max(want, v)
				case errors.Is(err, ErrUnavailable), !reusable(err):
					failed = node
				default:
					final = err // an answer that is not a miss
					return
				}
				last = err
				retryNow = append(retryNow, ks...)
			})
		}
		wg.Wait()
		if final != nil {
			return out, final
		}
		pending = retryNow
		switch {
		case want > 0:
			c.refreshTo(want, "")
		case failed != "" || len(lost) > 0:
			c.refreshAfterError(t.Version, failed)
		}
	}
	return out, nil
}

// getGroup sends one get for keys to node.
func (c *Cluster) getGroup(node string, keys []string) ([]Item, error) {
	p, err := c.pool(node)
	if err != nil {
		return nil, err
	}
	cn, err := p.get(c.opts.Timeout, false)
	if err != nil {
		return nil, fmt.Errorf("client: get at %s: %w", node, err)
	}
	items, err := cn.retrieve("get", keys)
	p.put(cn, err)
	if err != nil {
		return nil, fmt.Errorf("client: get of %d keys at %s: %w", len(keys), node, err)
	}
	return items, nil
}
