package client

import (
	"fmt"
	"log/slog"
	"time"
)

// ClusterOptions configure a Cluster. Start from DefaultClusterOptions and
// change what you need; NewCluster calls Validate.
type ClusterOptions struct {
	// Timeout bounds every dial and every request (one round trip), and
	// the wait for a free pooled connection. Default 5s.
	Timeout time.Duration

	// PoolSize is the most connections the Cluster keeps open to one node.
	// A goroutine finding all of them busy waits up to Timeout for one.
	// Size it to the number of goroutines issuing requests at once.
	// Default 8.
	PoolSize int

	// MaxRetries is how many times one request is retried after a
	// NOT_PRIMARY answer, a connection error or an unavailable vnode; 0
	// never retries. Writes that are not safe to repeat (add, cas, incr,
	// decr, append, prepend) are retried only when the node cannot have
	// applied them: NOT_PRIMARY, or a failure before the request was sent.
	// Default 8: with the doubling backoff, about two seconds, which rides
	// out a vnode's cut-over to a new primary.
	MaxRetries int

	// RetryBackoff is the wait before the first retry that does not follow
	// a fresh table; it doubles with every further retry, up to 1s, with
	// jitter. Default 10ms.
	RetryBackoff time.Duration

	// RefreshInterval is how often the Cluster asks one node (round robin)
	// for `stat routing.version`, and refreshes the table when it grew. 0
	// turns polling off: the table is then refreshed only on NOT_PRIMARY
	// and connection errors. Default 1s.
	RefreshInterval time.Duration

	// ReadFromSecondaries puts every connection in read_secondary mode and
	// spreads Get and GetMulti over the replicas of each key that are not
	// lagging: reads become eventually consistent. Gets (whose CAS is meant
	// for a later CompareAndSwap) always goes to the primary. Default false.
	ReadFromSecondaries bool

	// Logger receives refreshes, retries and poll failures at debug and
	// warn level. nil discards them.
	Logger *slog.Logger
}

// DefaultClusterOptions returns a 5s timeout, 8 connections per node, 3
// retries from a 10ms backoff, a 1s version poll and reads at the primary.
func DefaultClusterOptions() ClusterOptions {
	return ClusterOptions{
		Timeout:         5 * time.Second,
		PoolSize:        8,
		MaxRetries:      8,
		RetryBackoff:    10 * time.Millisecond,
		RefreshInterval: time.Second,
	}
}

// Validate reports the first invalid field, naming it and its value.
func (o *ClusterOptions) Validate() error {
	switch {
	case o.Timeout <= 0:
		return fmt.Errorf("client: ClusterOptions.Timeout (%s) must be > 0", o.Timeout)
	case o.PoolSize < 1 || o.PoolSize > 10000:
		return fmt.Errorf("client: ClusterOptions.PoolSize (%d) must be in 1..10000", o.PoolSize)
	case o.MaxRetries < 0 || o.MaxRetries > 100:
		return fmt.Errorf("client: ClusterOptions.MaxRetries (%d) must be in 0..100", o.MaxRetries)
	case o.RetryBackoff <= 0:
		return fmt.Errorf("client: ClusterOptions.RetryBackoff (%s) must be > 0", o.RetryBackoff)
	case o.RefreshInterval < 0:
		return fmt.Errorf("client: ClusterOptions.RefreshInterval (%s) must be >= 0 (0 turns polling off)", o.RefreshInterval)
	case o.RefreshInterval > 0 && o.RefreshInterval < time.Millisecond:
		return fmt.Errorf("client: ClusterOptions.RefreshInterval (%s) must be 0 or >= 1ms", o.RefreshInterval)
	}
	return nil
}
