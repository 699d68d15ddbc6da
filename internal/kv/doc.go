// Package kv owns memcached item semantics on top of a storage.Engine:
// set/add/replace/append/prepend/cas, incr/decr, touch, delete and flush_all,
// each applied atomically per key under a per-vnode lock that also orders the
// vnode's change-log sequence. It assigns versions from a hybrid logical clock
// (the CAS id is the version time of the last value write), turns memcached
// exptimes into absolute times, hides expired and flushed items, keeps the
// namespace list, and reclaims expired items and trims change logs in the
// background.
//
// Exptime rules (memcached 1.6): 0 never expires; 1..2592000 (30 days) is
// relative to now; larger values are absolute unix times; a negative value,
// or an absolute time not in the future, means the item is already expired.
//
// flush_all is per namespace. An immediate flush hides every item whose
// version is not newer than the flush; a delayed flush of N seconds does the
// same, N-1 seconds later, for items last written before that moment, as
// memcached does. Flush horizons are kept in the engine's metadata, so a
// restart does not bring flushed items back, and the reclaimer removes them.
package kv
