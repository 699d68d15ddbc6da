package clustertest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mc is a minimal text-protocol client whose every error is a value, so a
// history can record it as an unknown outcome.
type mc struct {
	nc      net.Conn
	r       *bufio.Reader
	timeout time.Duration
}

func dialMC(addr string, timeout time.Duration) (*mc, error) {
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	return &mc{nc: nc, r: bufio.NewReader(nc), timeout: timeout}, nil
}

func mustMC(t testing.TB, addr string) *mc {
	t.Helper()
	c, err := dialMC(addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.close() })
	return c
}

func (c *mc) close() { c.nc.Close() }

func (c *mc) send(s string) error {
	c.nc.SetDeadline(time.Now().Add(c.timeout))
	_, err := c.nc.Write([]byte(s))
	return err
}

func (c *mc) line() (string, error) {
	l, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(l, "\r\n"), nil
}

// errServer is a SERVER_ERROR, CLIENT_ERROR or ERROR answer.
var errServer = errors.New("server error")

func (c *mc) simple(cmd string) (string, error) {
	if err := c.send(cmd); err != nil {
		return "", err
	}
	l, err := c.line()
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(l, "SERVER_ERROR") || strings.HasPrefix(l, "CLIENT_ERROR") || l == "ERROR" {
		return l, fmt.Errorf("%w: %s", errServer, l)
	}
	return l, nil
}

func (c *mc) set(key, value string) (string, error) {
	return c.simple(fmt.Sprintf("set %s 0 0 %d\r\n%s\r\n", key, len(value), value))
}

func (c *mc) cas(key, value string, cas uint64) (string, error) {
	return c.simple(fmt.Sprintf("cas %s 0 0 %d %d\r\n%s\r\n", key, len(value), cas, value))
}

func (c *mc) del(key string) (string, error) { return c.simple("delete " + key + "\r\n") }

// gets returns the value and cas of key; found is false on a miss.
func (c *mc) gets(key string) (value string, cas uint64, found bool, err error) {
	if err := c.send("gets " + key + "\r\n"); err != nil {
		return "", 0, false, err
	}
	l, err := c.line()
	if err != nil {
		return "", 0, false, err
	}
	if l == "END" {
		return "", 0, false, nil
	}
	f := strings.Fields(l)
	if len(f) != 5 || f[0] != "VALUE" {
		return "", 0, false, fmt.Errorf("%w: %s", errServer, l)
	}
	n, _ := strconv.Atoi(f[3])
	cas, _ = strconv.ParseUint(f[4], 10, 64)
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(c.r, buf); err != nil {
		return "", 0, false, err
	}
	end, err := c.line()
	if err != nil {
		return "", 0, false, err
	}
	if end != "END" {
		return "", 0, false, fmt.Errorf("%w: %s after the value", errServer, end)
	}
	return string(buf[:n]), cas, true, nil
}

// lines sends cmd and collects lines up to END (exclusive).
func (c *mc) lines(cmd string) ([]string, error) {
	if err := c.send(cmd); err != nil {
		return nil, err
	}
	var out []string
	for {
		l, err := c.line()
		if err != nil {
			return out, err
		}
		if l == "END" {
			return out, nil
		}
		if strings.HasPrefix(l, "SERVER_ERROR") || strings.HasPrefix(l, "CLIENT_ERROR") || l == "ERROR" {
			return out, fmt.Errorf("%w: %s", errServer, l)
		}
		out = append(out, l)
	}
}

// stat returns one ROMA stat of the node at addr.
func stat(addr, name string) (string, error) {
	c, err := dialMC(addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer c.close()
	ls, err := c.lines("stat ^" + strings.ReplaceAll(name, ".", `\.`) + "$\r\n")
	if err != nil {
		return "", err
	}
	for _, l := range ls {
		if k, v, ok := strings.Cut(l, " "); ok && k == name {
			return v, nil
		}
	}
	return "", fmt.Errorf("no stat %s at %s", name, addr)
}
