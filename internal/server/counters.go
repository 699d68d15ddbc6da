package server

import "sync/atomic"

// counters are the memcached statistics a connection updates. Each
// connection owns one set, so updates do not contend; `stats` sums the live
// connections and the totals of closed ones.
type counters struct {
	cmdGet, cmdSet, cmdFlush, cmdTouch         atomic.Int64
	getHits, getMisses                         atomic.Int64
	deleteHits, deleteMisses                   atomic.Int64
	incrHits, incrMisses, decrHits, decrMisses atomic.Int64
	casHits, casMisses, casBadval              atomic.Int64
	touchHits, touchMisses                     atomic.Int64
	storeTooLarge, storeNoMemory               atomic.Int64
	authCmds, authErrors                       atomic.Int64
	bytesRead, bytesWritten                    atomic.Int64
	adminCmds, protocolErrors                  atomic.Int64
}

// fields lists every counter with its memcached stat name, in output order.
func (c *counters) fields() []struct {
	name string
	v    *atomic.Int64
} {
	return []struct {
		name string
		v    *atomic.Int64
	}{
		{"cmd_get", &c.cmdGet}, {"cmd_set", &c.cmdSet}, {"cmd_flush", &c.cmdFlush}, {"cmd_touch", &c.cmdTouch},
		{"get_hits", &c.getHits}, {"get_misses", &c.getMisses},
		{"delete_misses", &c.deleteMisses}, {"delete_hits", &c.deleteHits},
		{"incr_misses", &c.incrMisses}, {"incr_hits", &c.incrHits},
		{"decr_misses", &c.decrMisses}, {"decr_hits", &c.decrHits},
		{"cas_misses", &c.casMisses}, {"cas_hits", &c.casHits}, {"cas_badval", &c.casBadval},
		{"touch_hits", &c.touchHits}, {"touch_misses", &c.touchMisses},
		{"store_too_large", &c.storeTooLarge}, {"store_no_memory", &c.storeNoMemory},
		{"auth_cmds", &c.authCmds}, {"auth_errors", &c.authErrors},
		{"bytes_read", &c.bytesRead}, {"bytes_written", &c.bytesWritten},
		{"admin_cmds", &c.adminCmds}, {"protocol_errors", &c.protocolErrors},
	}
}

// addTo adds c into dst.
func (c *counters) addTo(dst *counters) {
	src, d := c.fields(), dst.fields()
	for i := range src {
		d[i].v.Add(src[i].v.Load())
	}
}

// reset zeroes every counter.
func (c *counters) reset() {
	for _, f := range c.fields() {
		f.v.Store(0)
	}
}
