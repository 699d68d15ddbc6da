package testcluster

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sonae-kv/sonae/internal/testutil"
)

// commandTimeout bounds one Command round trip, dial included: a paused or
// partitioned node must make a poll fail quickly, not hang it.
const commandTimeout = 2 * time.Second

// Command sends one text-protocol command to addr on a fresh connection and
// returns the reply lines, the final one included (END, STORED, VERSION …,
// SERVER_ERROR …). cmd is sent as is plus "\r\n", so a storage command
// carries its data block after an inner "\r\n":
//
//	Command(addr, "set k 0 0 1\r\nv")
//
// A retrieval reply's data lines are returned like any other line; a value
// that itself reads "END" would end the reply early, so tests use values
// that don't.
func Command(addr, cmd string) ([]string, error) {
	c, err := net.DialTimeout("tcp", addr, commandTimeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(commandTimeout))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	var lines []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return lines, fmt.Errorf("%s: reply to %q cut short after %q: %w", addr, firstLine(cmd), lines, err)
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if finalLine(line) {
			return lines, nil
		}
	}
}

func firstLine(cmd string) string {
	line, _, _ := strings.Cut(cmd, "\r\n")
	return line
}

// finalLine reports whether line ends a reply of the text protocol.
func finalLine(line string) bool {
	switch line {
	case "END", "STORED", "NOT_STORED", "EXISTS", "NOT_FOUND", "DELETED", "TOUCHED", "OK", "ERROR":
		return true
	}
	for _, prefix := range []string{"VERSION ", "CLIENT_ERROR", "SERVER_ERROR"} {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}

// Stat runs ROMA's `stat REGEXP` on addr and returns its key/value pairs.
func Stat(addr, pattern string) (map[string]string, error) {
	lines, err := Command(addr, "stat "+pattern)
	if err != nil {
		return nil, err
	}
	if last := lines[len(lines)-1]; last != "END" {
		return nil, fmt.Errorf("%s: stat %s: %s", addr, pattern, last)
	}
	m := map[string]string{}
	for _, line := range lines[:len(lines)-1] {
		k, v, _ := strings.Cut(line, " ")
		m[k] = v
	}
	return m, nil
}

// RoutingNodes returns the node count that addr's routing table holds
// (`stat routing.nodes.length`).
func RoutingNodes(addr string) (int, error) {
	m, err := Stat(addr, `^routing\.nodes\.length$`)
	if err != nil {
		return 0, err
	}
	v, ok := m["routing.nodes.length"]
	if !ok {
		return 0, fmt.Errorf("%s: no routing.nodes.length in stat reply %v", addr, m)
	}
	return strconv.Atoi(v)
}

// waitMembers polls every address that live returns until each one's table
// holds n nodes. live is called on every poll, so a node that dies in the
// meantime stops being asked.
func waitMembers(t testing.TB, n int, within time.Duration, live func() []string) {
	t.Helper()
	testutil.Eventually(t, within, fmt.Sprintf("%d nodes in the routing table of every live node", n), func() error {
		addrs := live()
		if len(addrs) == 0 {
			return fmt.Errorf("no live node")
		}
		var bad []string
		for _, a := range addrs {
			got, err := RoutingNodes(a)
			switch {
			case err != nil:
				bad = append(bad, fmt.Sprintf("%s: %v", a, err))
			case got != n:
				bad = append(bad, fmt.Sprintf("%s has %d", a, got))
			}
		}
		if len(bad) > 0 {
			return fmt.Errorf("%s", strings.Join(bad, "; "))
		}
		return nil
	})
}
