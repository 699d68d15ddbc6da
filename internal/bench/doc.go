// Package bench generates memcached-protocol load and measures it: a fixed
// number of connections, each sending one request at a time (get or set, by
// ratio) over a key space, for a duration. It records every latency in an
// HdrHistogram and reports ops/s with p50/p99/p999. Compare runs several
// targets in alternating rounds, so that noise on a shared machine hits every
// target alike, and reports medians and ratios to the first target.
//
// The requests go over raw memcached connections to one address, or round
// robin to several (Options.Addrs), or through any Client a Dialer opens
// (RunWith): the sonae CLI passes its routing-aware cluster client that way,
// since this package imports nothing of the module.
package bench
