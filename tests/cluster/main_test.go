package clustertest

import (
	"os"
	"strconv"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// soak is the SONAE_SOAK scale factor (1 when unset): `make soak` raises
// it to run the fault scenarios longer.
func soak() int {
	if n, err := strconv.Atoi(os.Getenv("SONAE_SOAK")); err == nil && n > 1 {
		return n
	}
	return 1
}
