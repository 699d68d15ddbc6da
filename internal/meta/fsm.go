package meta

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// FSM is the raft.FSM of the metadata. Raft calls Apply, Snapshot and
// Restore from one goroutine; State and Changed may be called from any.
type FSM struct {
	log   *slog.Logger
	state atomic.Pointer[State]

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every new state
}

// NewFSM returns an FSM holding the empty, uninitialized state.
func NewFSM(log *slog.Logger) *FSM {
	f := &FSM{log: log, changed: make(chan struct{})}
	f.state.Store(&State{})
	return f
}

// State returns the current state. It must not be modified.
func (f *FSM) State() *State { return f.state.Load() }

// Changed returns a channel that is closed when the state next changes.
// Load State after it fires (and take a new channel before doing so, to
// miss nothing).
func (f *FSM) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

func (f *FSM) publish(s *State) {
	f.state.Store(s)
	f.mu.Lock()
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// Apply implements raft.FSM. It returns nil when the command was applied,
// or the error that refused it (the same on every node).
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	cur := f.state.Load()
	c, err := DecodeCommand(l.Data)
	if err != nil {
		f.log.Error("undecodable metadata command; skipped", "index", l.Index, "error", err)
		f.advance(cur, l.Index)
		return err
	}
	c.index = l.Index
	next, err := apply(cur, c)
	if err != nil {
		f.log.Debug("metadata command refused", "index", l.Index, "op", c.Op, "error", err)
		f.advance(cur, l.Index)
		return err
	}
	if next == cur {
		f.advance(cur, l.Index)
		return nil
	}
	next.Index = l.Index
	f.publish(next)
	f.log.Debug("metadata changed", "index", l.Index, "op", c.Op, "table_version", next.Table.Version)
	return nil
}

// advance records the index without publishing a change; watchers only care
// about content.
func (f *FSM) advance(cur *State, index uint64) {
	n := *cur
	n.Index = index
	f.state.Store(&n)
}

// Snapshot implements raft.FSM.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	b, err := json.Marshal(f.state.Load())
	if err != nil {
		return nil, fmt.Errorf("meta: snapshot: %w", err)
	}
	return snapshot(b), nil
}

// Restore implements raft.FSM.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var s State
	if err := json.NewDecoder(rc).Decode(&s); err != nil {
		return fmt.Errorf("meta: restore: %w", err)
	}
	if err := s.validate(); err != nil {
		return fmt.Errorf("meta: restore: %w", err)
	}
	f.publish(&s)
	return nil
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (snapshot) Release() {}
