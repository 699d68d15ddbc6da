// Package routing maps keys to vnodes and vnodes to nodes, and plans where
// the vnodes go. It is pure and deterministic: no I/O, no goroutines, no
// clocks, no randomness; the same inputs always give the same outputs.
//
// # Key to vnode
//
// The mapping from a key to its vnode is a fixed, documented function of the
// key bytes alone (never the namespace, the node or the cluster), so every
// node, client and tool computes the same vnode:
//
//	vnode(key) = xxhash64(key) >> (64 - divBits)
//
// xxhash64 is XXH64 with seed 0 (github.com/cespare/xxhash/v2). With the
// default divBits of 9 there are 512 vnodes, numbered 0..511. Taking the top
// bits means that raising divBits by one splits every vnode v into 2v and 2v+1.
//
// # The routing table
//
// A Table holds the node set (Node: an id "host_port" and a Host, the
// anti-affinity group) and, for every vnode, an ordered replica list
// [primary, secondary1, ...] of at most Redundancy nodes with an Epoch that
// rises on every change of the primary. The replicas of a vnode are on
// distinct hosts unless ReplicationInHost (then on distinct nodes). A vnode
// with fewer replicas than Redundancy is short, one with none is lost.
// Validate checks all of this. The table's JSON (Encode, DecodeTable) is
// what Raft stores; MarshalRoutingDump gives ROMA's `routingdump json`
// shape ([header, nodes, v_idx], documented there).
//
// # Planning
//
// Plan computes the target table for a live node set; Promote is its first,
// data-free step (departed nodes removed, survivors moved up, so a vnode
// whose primary left is led by a survivor at once, epoch + 1); Moves lists
// the slots that differ between two tables, and CutOver commits one vnode's
// new list, for a mover that executes a plan step by step.
//
// With N live nodes in G hosts (nodes, with ReplicationInHost), V vnodes
// and r = min(Redundancy, G), every vnode of Plan's target has exactly r
// replicas on distinct hosts, and the target is balanced at every position,
// not only the primaries (ROMA issue #46 is the counter-example): every node
// is primary of, and secondary-i of, between floor(x/r) and ceil(x/r)
// vnodes, and holds between floor(x) and ceil(x) replicas in all, where x
// is its fair share. Without an oversized host, x = r*V/N: at each position
// every node holds floor(V/N) or ceil(V/N) vnodes, the even share within
// one. A host can hold at most one replica of each vnode, so a host with
// more than N/r of the nodes is capped at V replicas, split evenly among its
// nodes, and the others share the rest evenly (water-filling, the most even
// split the hosts allow; see Balanced and FairShares). A node's counts at
// its different positions also differ by at most one.
//
// Plan moves as little data as any balanced target allows: its number of
// copies (replicas placed on a node that did not hold the vnode) is the
// minimum over all balanced targets, which the tests check against an exact
// min-cost flow. So a surviving replica leaves its vnode only when balance
// requires it; a join copies only to the joining node (about r*V/N
// replicas) when hosts do not cap, and a leave re-places the departed
// node's replicas and, in all but a rare case where the vnodes cannot be
// matched to the nodes below their share, nothing else. Positions are then
// evened out by swapping roles inside vnodes, which copies nothing; the
// primary changes are kept few, and a vnode whose primary left keeps a
// survivor as primary unless the balance cannot be met otherwise.
//
// The algorithm, in Plan's order:
//
//  1. Promote: drop departed nodes and replicas that break host
//     anti-affinity, keeping the order of the rest.
//  2. Shares: compute each node's fair share x (water-filling) and round it
//     to a whole target count, ceilings first to the nodes that already
//     hold that many.
//  3. Fill: every node below its target takes a vnode, a hole in a short
//     vnode or the slot of a node above its target, or passes one along
//     the shortest chain of nodes (breadth-first), preferring vnodes whose
//     members share few vnodes with it, so that each node's vnodes have
//     many different partners and a failure spreads its primaries.
//  4. Minimise copies: cancel negative cycles (Bellman-Ford) in the
//     min-cost-flow view of the placement, which may also move one unit of
//     a target count between nodes within their floor..ceil ranges.
//  5. Positions: bring every node's primary count to floor or ceil of M/r
//     (M its replica count) by swapping a primary with a secondary along
//     shortest chains, then even out the secondary positions, at no cost.
//
// For 512 vnodes on 64 nodes a join or a leave plans in about a
// millisecond, and the worst starts measured (doubling the cluster, every
// vnode on the same two nodes, redundancy 3) in about 20 ms; see
// BenchmarkPlan.
package routing
