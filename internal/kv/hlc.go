package kv

import (
	"sync/atomic"

	"github.com/sonae-kv/sonae/internal/clock"
)

// HLC is a hybrid logical clock: readings are physical unix milliseconds
// shifted left by 16 bits, plus a logical counter that breaks ties and keeps
// readings strictly increasing when the wall clock stalls or steps back.
type HLC struct {
	clk  clock.Clock
	last atomic.Uint64
}

// NewHLC returns a clock that never reads at or below floor.
func NewHLC(clk clock.Clock, floor uint64) *HLC {
	h := &HLC{clk: clk}
	h.last.Store(floor)
	return h
}

// Now returns a reading greater than every earlier one.
func (h *HLC) Now() uint64 {
	phys := uint64(h.clk.Now().UnixMilli()) << 16
	for {
		last := h.last.Load()
		next := phys
		if next <= last {
			next = last + 1
		}
		if h.last.CompareAndSwap(last, next) {
			return next
		}
	}
}

// Observe moves the clock past t, so later readings order after it.
func (h *HLC) Observe(t uint64) {
	for {
		last := h.last.Load()
		if t <= last || h.last.CompareAndSwap(last, t) {
			return
		}
	}
}

// HLCFromUnixMilli is the smallest reading at physical time ms.
func HLCFromUnixMilli(ms int64) uint64 { return uint64(ms) << 16 }

// UnixMilliOf returns the physical part of an HLC reading.
func UnixMilliOf(t uint64) int64 { return int64(t >> 16) }
