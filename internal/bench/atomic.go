package bench

import "sync/atomic"

// atomicCounter is read by the progress reporter while the worker writes it.
type atomicCounter = atomic.Int64
