package protocol

import (
	"strings"
	"testing"
)

// FuzzParser checks that no input panics the parser, that it never claims
// more bytes than it was given, and that cutting the input at any point
// changes nothing: the split-safety the server depends on.
func FuzzParser(f *testing.F) {
	for _, s := range []string{
		"get a\r\n", "set k 0 0 1\r\nx\r\n", "cas k 0 0 1 5 noreply\r\ny\r\n",
		"set k 0 0 3\r\nabcd\r\n", "set k 0 0 -1\r\n", "\r\n\r\n", "set k 0 0 9999\r\n",
		"incr k 1\r\ndecr k 1 noreply\r\n", "gat 10 a b\r\n", "stat routing\r\n",
	} {
		f.Add([]byte(s), uint16(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		whole := parseChunks(NewParser(512, 256, nil), [][]byte{in})
		at := int(cut) % (len(in) + 1)
		split := parseChunks(NewParser(512, 256, nil), [][]byte{in[:at], in[at:]})
		if strings.Join(whole, "\n") != strings.Join(split, "\n") {
			t.Fatalf("split at %d changed the parse:\nwhole %q\nsplit %q", at, whole, split)
		}
	})
}
