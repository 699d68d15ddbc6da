package testcluster

import (
	"slices"
	"strings"
	"testing"
)

// do runs one command on addr and fails the test on a transport error.
func do(t *testing.T, addr, cmd string) []string {
	t.Helper()
	lines, err := Command(addr, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// expect runs cmd and fails the test unless the reply is want (lines joined
// by "|").
func expect(t *testing.T, addr, cmd, want string) {
	t.Helper()
	if got := strings.Join(do(t, addr, cmd), "|"); got != want {
		t.Fatalf("%s: %q answered %q, want %q", addr, firstLine(cmd), got, want)
	}
}

// distinct fails the test if ss has duplicates.
func distinct(t *testing.T, what string, ss []string) {
	t.Helper()
	sorted := slices.Clone(ss)
	slices.Sort(sorted)
	if len(slices.Compact(sorted)) != len(ss) {
		t.Fatalf("%s not distinct: %v", what, ss)
	}
}
