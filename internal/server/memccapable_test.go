package server_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMemccapable runs libmemcached's ASCII conformance suite (memccapable,
// Debian libmemcached-tools) against sonae. scripts/install-deps.sh installs
// it; without it the test says so and skips.
func TestMemccapable(t *testing.T) {
	bin, err := exec.LookPath("memccapable")
	if err != nil {
		t.Skip("memccapable not installed (run scripts/install-deps.sh)")
	}
	for _, engine := range []string{"memory", "pebble"} {
		t.Run(engine, func(t *testing.T) {
			n := startNode(t, nil, nil, func(c *configT) { c.Engine = engine })
			host, port, _ := strings.Cut(n.addr, ":")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "-h", host, "-p", port, "-a").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "All tests passed") {
				t.Fatalf("memccapable failed: %v\n%s", err, out)
			}
			if passed := strings.Count(string(out), "[pass]"); passed < 27 {
				t.Fatalf("only %d memccapable tests passed:\n%s", passed, out)
			}
		})
	}
}
