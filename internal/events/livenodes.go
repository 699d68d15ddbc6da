package events

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// LiveNodes is the live-node list (Droonga's live-nodes-list) written for
// outside tools that want to know who is alive without speaking gossip.
type LiveNodes struct {
	Cluster   string    `json:"cluster"`
	UpdatedAt time.Time `json:"updated_at"`
	// Live are the names of the alive members, sorted.
	Live []string `json:"live"`
	// Members are all members known, sorted by name, with status and tags.
	Members []Member `json:"members"`
}

// NewLiveNodes builds the list from members: Live gets the alive ones.
func NewLiveNodes(cluster string, members []Member, now time.Time) LiveNodes {
	ln := LiveNodes{Cluster: cluster, UpdatedAt: now, Live: []string{}, Members: slices.Clone(members)}
	for _, m := range members {
		if m.Status == "alive" {
			ln.Live = append(ln.Live, m.Name)
		}
	}
	return ln
}

// WriteLiveNodes writes ln to path as indented JSON, Live and Members
// sorted, atomically: into a temporary file in the same directory, which
// is synced, renamed over path, and the directory synced. Readers see the
// old file or the new one, never part of one, and a crash leaves one of
// the two (plus, at worst, a stray ".<name>.tmp-*" file).
func WriteLiveNodes(path string, ln LiveNodes) error {
	ln.Live = slices.Sorted(slices.Values(ln.Live))
	if ln.Live == nil {
		ln.Live = []string{}
	}
	ln.Members = slices.Clone(ln.Members)
	if ln.Members == nil {
		ln.Members = []Member{}
	}
	for i, m := range ln.Members {
		if m.Tags == nil {
			ln.Members[i].Tags = map[string]string{}
		} else {
			ln.Members[i].Tags = maps.Clone(m.Tags)
		}
	}
	slices.SortStableFunc(ln.Members, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	data, err := json.MarshalIndent(ln, "", "  ")
	if err != nil {
		return fmt.Errorf("events: encode live nodes: %w", err)
	}
	if err := writeAtomic(path, append(data, '\n')); err != nil {
		return fmt.Errorf("events: write live nodes %s: %w", path, err)
	}
	return nil
}

// writeAtomic replaces path with data: temp file, fsync, rename, fsync dir.
func writeAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	// CreateTemp makes 0600; the list is for other tools to read.
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
