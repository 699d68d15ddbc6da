// Package client is sonae's Go client. It has two levels:
//
// Conn is one connection speaking the memcached text protocol and sonae's
// ROMA-style admin commands (stat, members, routingdump sonae,
// get_key_info, conn_option). It is what the sonae CLI uses. A Conn is not
// safe for concurrent use; open one per goroutine.
//
// Cluster is a routing-aware client of a whole cluster (docs/cluster.md).
// It fetches the routing table (`routingdump sonae`) from a seed, maps a key
// to its vnode as the server does (the top div_bits bits of the key's
// xxhash64, see Vnode), and sends each request over a pooled direct-mode
// connection (`conn_option direct on`) straight to the vnode's primary.
// GetMulti sends one get per node. A Cluster is safe for concurrent use.
//
// The table is refreshed (one fetch at a time, from any node that answers)
// when a node answers `SERVER_ERROR NOT_PRIMARY <vnode> <primary>
// <version>`, when a connection to a node fails, and when the
// routing.version that the Cluster polls grows. A request is then retried
// up to ClusterOptions.MaxRetries times with backoff:
//
//   - after NOT_PRIMARY, every request: the node applied nothing;
//   - after a failure to get a connection, every request: nothing was sent;
//   - after a connection error once sent, or an unavailable vnode, only the
//     requests that are safe to repeat (get, gets, set, replace, delete,
//     touch). add, cas, incr, decr, append and prepend return the error
//     instead, wrapped with ErrMaybeApplied: the node may have applied them.
//
// Errors are the sentinels of client.go, wrapped with the details; check
// them with errors.Is. Server error lines are *ServerError, which also
// matches ErrNotPrimary, ErrUnavailable or ErrVnodeLost by its text.
package client
