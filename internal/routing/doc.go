// Package routing owns the mapping from a key to its vnode. The mapping is a
// fixed, documented function of the key bytes alone (never the namespace, the
// node or the cluster), so every node, client and tool computes the same vnode:
//
//	vnode(key) = xxhash64(key) >> (64 - divBits)
//
// xxhash64 is XXH64 with seed 0 (github.com/cespare/xxhash/v2). With the
// default divBits of 9 there are 512 vnodes, numbered 0..511. Taking the top
// bits means that raising divBits by one splits every vnode v into 2v and 2v+1.
//
// Later the package also holds the routing table and the placement planner.
package routing
