package storage

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestOptionsValidate(t *testing.T) {
	if o := Default(); o.Validate() != nil || o.Durability != DurabilityInterval ||
		o.SyncInterval != 50*time.Millisecond || o.CacheSize != 128<<20 || o.Logger == nil {
		t.Fatalf("bad defaults: %+v", o)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*Options)
		field string // "" means valid
	}{
		{"fsync ignores interval", func(o *Options) { o.Durability = DurabilityFsync; o.SyncInterval = 0 }, ""},
		{"zero cache", func(o *Options) { o.CacheSize = 0 }, ""},
		{"nil logger", func(o *Options) { o.Logger = nil }, ""},
		{"zero interval", func(o *Options) { o.SyncInterval = 0 }, "SyncInterval"},
		{"negative interval", func(o *Options) { o.SyncInterval = -time.Second }, "SyncInterval"},
		{"huge interval", func(o *Options) { o.SyncInterval = time.Hour }, "SyncInterval"},
		{"bad durability", func(o *Options) { o.Durability = 7 }, "Durability"},
		{"negative cache", func(o *Options) { o.CacheSize = -1 }, "CacheSize"},
		{"reclaim at once", func(o *Options) { o.ReclaimDelay = 0 }, ""},
		{"negative reclaim delay", func(o *Options) { o.ReclaimDelay = -time.Second }, "ReclaimDelay"},
		{"reclaim delay over an hour", func(o *Options) { o.ReclaimDelay = 2 * time.Hour }, "ReclaimDelay"},
	} {
		o := Default()
		tc.edit(&o)
		err := o.Validate()
		if tc.field == "" && err != nil || tc.field != "" && (err == nil || !strings.Contains(err.Error(), "Options."+tc.field)) {
			t.Errorf("%s: Validate() = %v, want error naming %q", tc.name, err, tc.field)
		}
	}
}

func TestParseDurability(t *testing.T) {
	for _, d := range []Durability{DurabilityInterval, DurabilityFsync} {
		if got, err := ParseDurability(d.String()); err != nil || got != d {
			t.Errorf("ParseDurability(%q) = %v, %v", d, got, err)
		}
	}
	if _, err := ParseDurability("never"); err == nil {
		t.Error("ParseDurability(never) succeeded")
	}
}

func TestValidNamespace(t *testing.T) {
	good := []string{"a", "default", "A-Z_0.9", strings.Repeat("x", MaxNamespaceLen)}
	bad := []string{"", "a b", "a/b", "a\x00", "é", strings.Repeat("x", MaxNamespaceLen+1), "a:b"}
	for _, ns := range good {
		if err := ValidNamespace(ns); err != nil {
			t.Errorf("ValidNamespace(%q) = %v", ns, err)
		}
	}
	for _, ns := range bad {
		if err := ValidNamespace(ns); !errors.Is(err, ErrBadNamespace) {
			t.Errorf("ValidNamespace(%q) = %v, want ErrBadNamespace", ns, err)
		}
	}
}

func TestStats(t *testing.T) {
	for _, k := range engineKinds[:2] {
		e := k.open(t, t.TempDir())
		if err := e.Apply(&Change{Vnode: 3, Seq: 1, Op: OpPut, Namespace: "a", Key: []byte("k")}); err != nil {
			t.Fatal(err)
		}
		names := map[string]string{}
		for _, s := range e.Stats() {
			names[s.Name] = s.Value
		}
		want := map[string][]string{
			"memory":          {"engine", "shards", "items", "log_entries", "expiry_refs"},
			"pebble-interval": {"engine", "durability", "disk_usage", "memtable_size", "compactions", "read_amp", "block_cache_hits", "block_cache_misses"},
		}[k.name]
		for _, n := range want {
			if names[n] == "" {
				t.Errorf("%s: no stat %q in %v", k.name, n, names)
			}
		}
		if k.name == "memory" && (names["shards"] != "1" || names["items"] != "1") {
			t.Errorf("memory stats %v", names)
		}
		_ = e.Close()
	}
}
