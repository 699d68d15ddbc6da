package server_test

import (
	"testing"

	"github.com/sonae-kv/sonae/internal/config"
	protocoltest "github.com/sonae-kv/sonae/tests/protocol"
)

// TestDifferentialProtocol replays the transcripts that were recorded from a
// real memcached 1.6.18 (tests/protocol) against sonae, on both engines.
// tests/protocol's TestMemcachedReference keeps them honest against memcached.
func TestDifferentialProtocol(t *testing.T) {
	for _, engine := range []string{config.EngineMemory, config.EnginePebble} {
		t.Run(engine, func(t *testing.T) {
			n := startNode(t, nil, nil, func(c *configT) { c.Engine = engine })
			protocoltest.Run(t, n.addr, "sonae")
		})
	}
}
