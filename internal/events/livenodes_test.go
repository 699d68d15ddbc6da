package events

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"
)

func readLiveNodes(t *testing.T, path string) LiveNodes {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ln LiveNodes
	if err := json.Unmarshal(data, &ln); err != nil {
		t.Fatalf("%s does not parse: %v\n%s", path, err, data)
	}
	return ln
}

func onlyFile(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !reflect.DeepEqual(names, []string{name}) {
		t.Fatalf("directory holds %q, want only %q (no temp files)", names, name)
	}
}

func TestWriteLiveNodes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "live-nodes.json")
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	members := []Member{
		{Name: "c", Addr: "10.0.0.3", Status: "failed", Tags: map[string]string{"role": "kv"}},
		{Name: "a", Addr: "10.0.0.1", Status: "alive", Tags: map[string]string{"role": "kv", "dc": "east"}},
		{Name: "b", Addr: "::1", Status: "alive"},
		{Name: "d", Addr: "10.0.0.4", Status: "left"},
	}
	if err := WriteLiveNodes(path, NewLiveNodes("prod", members, now)); err != nil {
		t.Fatal(err)
	}
	want := LiveNodes{Cluster: "prod", UpdatedAt: now, Live: []string{"a", "b"}, Members: []Member{
		{Name: "a", Addr: "10.0.0.1", Status: "alive", Tags: map[string]string{"role": "kv", "dc": "east"}},
		{Name: "b", Addr: "::1", Status: "alive", Tags: map[string]string{}},
		{Name: "c", Addr: "10.0.0.3", Status: "failed", Tags: map[string]string{"role": "kv"}},
		{Name: "d", Addr: "10.0.0.4", Status: "left", Tags: map[string]string{}},
	}}
	if got := readLiveNodes(t, path); !reflect.DeepEqual(got, want) {
		t.Fatalf("read back\n%+v\nwant\n%+v", got, want)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, %v: want 0644 for outside readers", st.Mode(), err)
	}
	onlyFile(t, dir, "live-nodes.json")

	// Overwrite: everyone failed; Live is an empty list, not null.
	if err := WriteLiveNodes(path, NewLiveNodes("prod", members[:1], now.Add(time.Second))); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil || string(raw["live"]) != "[]" {
		t.Fatalf("live = %s (%v), want []", raw["live"], err)
	}
	if got := readLiveNodes(t, path); len(got.Members) != 1 || !got.UpdatedAt.Equal(now.Add(time.Second)) {
		t.Fatalf("overwrite read back %+v", got)
	}
	onlyFile(t, dir, "live-nodes.json")
}

func TestWriteLiveNodesReadersNeverSeePartialFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "live.json")
	big := func(n int) LiveNodes {
		var ms []Member
		for i := range n {
			ms = append(ms, Member{Name: fmt.Sprintf("node-%04d", i), Addr: "10.1.2.3", Status: "alive",
				Tags: map[string]string{"role": "kv", "zone": fmt.Sprintf("z%d", i%3)}})
		}
		return NewLiveNodes("c", ms, time.Now())
	}
	if err := WriteLiveNodes(path, big(1)); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for reads := 0; !stop.Load() || reads == 0; reads++ {
			data, err := os.ReadFile(path)
			var ln LiveNodes
			if err == nil {
				err = json.Unmarshal(data, &ln)
			}
			if err != nil || len(ln.Live) != len(ln.Members) {
				errs <- fmt.Errorf("read %d: %d bytes, %d live of %d members: %v", reads, len(data), len(ln.Live), len(ln.Members), err)
				return
			}
		}
	}()
	for i := range 100 {
		if err := WriteLiveNodes(path, big(1+i*7%300)); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	onlyFile(t, dir, "live.json")
}

func TestWriteLiveNodesErrors(t *testing.T) {
	dir := t.TempDir()
	if err := WriteLiveNodes(filepath.Join(dir, "missing", "live.json"), LiveNodes{}); err == nil {
		t.Fatal("wrote into a missing directory")
	}
	// The target is a directory: the rename fails, the temp file goes.
	if err := os.Mkdir(filepath.Join(dir, "live.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteLiveNodes(filepath.Join(dir, "live.json"), LiveNodes{}); err == nil {
		t.Fatal("replaced a directory")
	}
	onlyFile(t, dir, "live.json")
}
