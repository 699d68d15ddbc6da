package routing

import (
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// DefaultDivBits gives 512 vnodes.
const DefaultDivBits = 9

// MaxDivBits bounds the vnode count at 65536, so a vnode id fits in a uint16.
const MaxDivBits = 16

// Vnode returns the vnode of key for a table of 2^divBits vnodes.
// divBits must be in 1..MaxDivBits.
func Vnode(key []byte, divBits uint) uint16 {
	return uint16(xxhash.Sum64(key) >> (64 - divBits))
}

// VnodeCount returns 2^divBits.
func VnodeCount(divBits uint) int { return 1 << divBits }

// ValidateDivBits reports whether divBits is usable.
func ValidateDivBits(divBits int) error {
	if divBits < 1 || divBits > MaxDivBits {
		return fmt.Errorf("div_bits %d out of range 1..%d", divBits, MaxDivBits)
	}
	return nil
}
