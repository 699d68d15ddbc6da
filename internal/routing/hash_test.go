package routing

import "testing"

// The vnode of a key is part of the on-disk format and the client contract:
// these values must never change.
func TestVnodeIsStable(t *testing.T) {
	cases := []struct {
		key     string
		divBits uint
		want    uint16
	}{
		{"", 9, 0x1de},
		{"foo", 9, 0x67},
		{"user:42", 9, 0x1b8},
		{"foo", 16, 0x33bf},
	}
	for _, c := range cases {
		if got := Vnode([]byte(c.key), c.divBits); got != c.want {
			t.Errorf("Vnode(%q, %d) = %#x, want %#x", c.key, c.divBits, got, c.want)
		}
	}
}

func TestVnodeSplitsByOneBit(t *testing.T) {
	for i := 0; i < 1000; i++ {
		k := []byte{byte(i), byte(i >> 8), 'k'}
		if Vnode(k, 10)>>1 != Vnode(k, 9) {
			t.Fatalf("key %x: vnode at 10 bits is not a child of vnode at 9 bits", k)
		}
	}
}
