package consensus

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/sonae-kv/sonae/internal/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLogger and eventually are the shared test helpers.
var (
	testLogger = testutil.Logger
	eventually = testutil.Eventually
)

// errRejected is what testFSM returns for the command "fail".
var errRejected = errors.New("testfsm: rejected")

// testFSM is a key->value map. A command is "key=value" (set) or "fail"
// (rejected with errRejected, changing nothing). Apply returns the entry's
// index. Snapshots are JSON.
type testFSM struct {
	mu       sync.Mutex
	kv       map[string]string
	applied  uint64 // index of the last entry applied or restored
	restores int    // Restore calls
}

func newTestFSM() *testFSM { return &testFSM{kv: map[string]string{}} }

var _ raft.FSM = (*testFSM)(nil)

func (f *testFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = l.Index
	cmd := string(l.Data)
	if cmd == "fail" {
		return errRejected
	}
	k, v, ok := strings.Cut(cmd, "=")
	if !ok {
		return fmt.Errorf("testfsm: bad command %q", cmd)
	}
	f.kv[k] = v
	return l.Index
}

type fsmState struct {
	Applied uint64            `json:"applied"`
	KV      map[string]string `json:"kv"`
}

func (f *testFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	data, err := json.Marshal(fsmState{Applied: f.applied, KV: f.kv})
	if err != nil {
		return nil, err
	}
	return fsmSnapshot(data), nil
}

func (f *testFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var st fsmState
	if err := json.NewDecoder(rc).Decode(&st); err != nil {
		return err
	}
	if st.KV == nil {
		st.KV = map[string]string{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kv, f.applied = st.KV, st.Applied
	f.restores++
	return nil
}

// state returns a copy of the map, the applied index and the restore count.
func (f *testFSM) state() (map[string]string, uint64, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.kv), f.applied, f.restores
}

type fsmSnapshot []byte

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() {}
