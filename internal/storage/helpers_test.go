package storage

import (
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/sonae-kv/sonae/internal/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(killChildEnv) != "" {
		// Child of TestKillDurability: it never returns normally.
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m)
}

// testLogger is the shared t.Log logger.
var testLogger = testutil.Logger

// testOptions are small engine options for tests.
func testOptions(t testing.TB, d Durability) Options {
	o := Default()
	o.Durability = d
	o.CacheSize = 8 << 20
	if t != nil {
		o.Logger = testLogger(t)
	} else {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

// engineKind names one engine configuration under test.
type engineKind struct {
	name       string
	persistent bool
	open       func(t testing.TB, dir string) Engine
}

var engineKinds = []engineKind{
	{"memory", false, func(t testing.TB, _ string) Engine { return NewMemory(testOptions(t, DurabilityInterval)) }},
	{"pebble-interval", true, func(t testing.TB, dir string) Engine { return mustOpenPebble(t, dir, DurabilityInterval) }},
	{"pebble-fsync", true, func(t testing.TB, dir string) Engine { return mustOpenPebble(t, dir, DurabilityFsync) }},
}

func mustOpenPebble(t testing.TB, dir string, d Durability) *Pebble {
	t.Helper()
	p, err := OpenPebble(dir, testOptions(t, d))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
