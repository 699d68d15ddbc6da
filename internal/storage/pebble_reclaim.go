package storage

import (
	"slices"
	"sync"
	"time"
)

// reclaimMaxWait bounds how long a dropped vnode's space waits for the
// drops to stop: a release of a large node drops vnodes for a long time.
const reclaimMaxWait = 5 * time.Minute

// reclaimer gives the disk space of dropped vnodes back. A range deletion
// frees nothing until a compaction drops what it covers, and a manual
// compaction rewrites every sstable that overlaps its range. Vnodes are
// dropped in bursts while data moves (one per vnode handed off, seconds
// apart), and compacting after each drop rewrote the same tables over and
// over, taking most of the sender's CPU from its clients. So drops are
// collected until none has come for Options.ReclaimDelay, and then every
// run of adjacent dropped vnodes is compacted once.
type reclaimer struct {
	mu      sync.Mutex
	pending map[uint16]struct{}
	kick    chan struct{} // a drop was queued (buffered, 1)
	done    chan struct{} // closed when the loop has stopped
}

func (p *Pebble) startReclaimer() {
	p.reclaim = reclaimer{pending: map[uint16]struct{}{}, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go p.reclaimLoop()
}

// queueReclaim schedules the compaction of a dropped vnode's ranges.
func (p *Pebble) queueReclaim(vnode uint16) {
	p.reclaim.mu.Lock()
	p.reclaim.pending[vnode] = struct{}{}
	p.reclaim.mu.Unlock()
	select {
	case p.reclaim.kick <- struct{}{}:
	default:
	}
}

func (p *Pebble) reclaimLoop() {
	defer close(p.reclaim.done)
	for {
		select {
		case <-p.bg.Done():
			return
		case <-p.reclaim.kick:
		}
		if !p.waitForQuiet() {
			return
		}
		p.reclaim.mu.Lock()
		vnodes := make([]uint16, 0, len(p.reclaim.pending))
		for v := range p.reclaim.pending {
			vnodes = append(vnodes, v)
		}
		clear(p.reclaim.pending)
		p.reclaim.mu.Unlock()
		slices.Sort(vnodes)
		for _, run := range adjacentRuns(vnodes) {
			for _, kind := range []byte{prefixData, prefixLog} {
				lo := appendVnodePrefix(nil, kind, run[0])
				hi := prefixEnd(appendVnodePrefix(nil, kind, run[1]))
				if err := p.db.Compact(p.bg, lo, hi, false); err != nil {
					if p.bg.Err() != nil {
						return
					}
					p.logger.Warn("storage: compacting dropped vnodes", "first", run[0], "last", run[1], "error", err)
				}
			}
		}
		p.logger.Debug("storage: dropped vnodes compacted", "vnodes", len(vnodes))
	}
}

// waitForQuiet waits until no drop has been queued for ReclaimDelay (or
// reclaimMaxWait has passed). It returns false when the engine closes.
func (p *Pebble) waitForQuiet() bool {
	d := p.opts.ReclaimDelay
	if d <= 0 {
		return p.bg.Err() == nil
	}
	quiet := time.NewTimer(d)
	defer quiet.Stop()
	limit := time.NewTimer(reclaimMaxWait)
	defer limit.Stop()
	for {
		select {
		case <-p.bg.Done():
			return false
		case <-p.reclaim.kick:
			quiet.Reset(d)
		case <-quiet.C:
			return true
		case <-limit.C:
			return true
		}
	}
}

// adjacentRuns splits sorted vnodes into runs of consecutive numbers, each
// as its first and last vnode.
func adjacentRuns(vnodes []uint16) [][2]uint16 {
	var runs [][2]uint16
	for _, v := range vnodes {
		if n := len(runs); n > 0 && runs[n-1][1]+1 == v {
			runs[n-1][1] = v
			continue
		}
		runs = append(runs, [2]uint16{v, v})
	}
	return runs
}
