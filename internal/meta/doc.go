// Package meta owns the cluster's metadata as a Raft state machine: the
// cluster's settings (name, vnode count, redundancy), its members, its
// namespaces, the routing table, and which replicas of each vnode are in
// sync with their primary.
//
// Every change is a Command, encoded as JSON into the Raft log and applied
// in log order by every node's FSM, so every node ends up with the same
// State. Commands carry their preconditions (for example the epoch of the
// vnode they change) and the FSM refuses a command whose preconditions no
// longer hold; a refusal is returned as the Apply result, identically on
// every node. State values are immutable once published: readers load the
// current one with FSM.State without locks, and wait for the next one with
// FSM.Changed.
//
// The package is pure: it knows nothing of Raft's transport, the network
// or storage. Snapshots are the State's JSON.
package meta
