// Package replication owns the in-cluster data path: which node serves a
// key, forwarding a command to the vnode's primary, applying it there,
// replicating every change synchronously to the in-sync secondaries before
// the client's acknowledgement, refusing stale epochs, and bringing lagging
// replicas back in sync from the primary's change log (or with a full copy
// of the vnode when the log no longer reaches back).
//
// Peer traffic runs over connections that the node's port hands over after
// the 0xF3 marker (internal/netmux). Every message is a frame:
//
//	u32 length | u8 type | u64 id | payload
//
// A request carries a fresh id and its response the same id, so one
// connection carries many requests at once (pipelining). Replication
// frames of one vnode travel on one connection in seq order and the
// receiver applies them in the order they arrive.
//
// Consistency, in short (docs/cluster.md has the long form):
//   - a write is acknowledged only after every in-sync replica has applied
//     it, or after the replicas that did not answer were removed from the
//     in-sync set through Raft;
//   - a replica refuses replication frames from a lower epoch than the one
//     its routing table holds, so a deposed primary cannot get acks;
//   - a primary serves a read only while its last contact with the Raft
//     leader is younger than the read lease, and only after every change it
//     had applied when the read was taken has been acknowledged, so a read
//     never returns a value that a failover could lose.
package replication
