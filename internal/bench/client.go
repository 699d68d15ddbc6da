package bench

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Client is what a worker sends its requests through: one connection, or
// anything that behaves like one (a routing-aware cluster client). A worker
// calls it from one goroutine; the key and value slices are only valid
// during the call.
type Client interface {
	// Get fetches key and reports whether it was found.
	Get(key []byte) (hit bool, err error)
	// Set stores value under key.
	Set(key, value []byte) error
	// Close releases the client.
	Close() error
}

// Dialer opens the client of connection i (0 <= i < Options.Conns; the
// preload opens its own, numbered from 0 too).
type Dialer func(i int) (Client, error)

// rawDialer opens raw memcached connections to o.Addr, or round robin to
// o.Addrs.
func (o Options) rawDialer() Dialer {
	addrs := o.Addrs
	if len(addrs) == 0 {
		addrs = []string{o.Addr}
	}
	return func(i int) (Client, error) {
		addr := addrs[i%len(addrs)]
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return nil, fmt.Errorf("connect %s: %w", addr, err)
		}
		return &rawClient{nc: nc, r: bufio.NewReaderSize(nc, 64<<10), w: bufio.NewWriterSize(nc, 64<<10),
			buf: make([]byte, 0, 512)}, nil
	}
}

// rawClient speaks the memcached text protocol on one connection without
// allocating per request.
type rawClient struct {
	nc  net.Conn
	r   *bufio.Reader
	w   *bufio.Writer
	buf []byte
}

func (c *rawClient) Close() error { return c.nc.Close() }

func (c *rawClient) Get(key []byte) (bool, error) {
	b := append(c.buf[:0], "get "...)
	b = append(b, key...)
	b = append(b, '\r', '\n')
	c.buf = b
	c.w.Write(b)
	if err := c.w.Flush(); err != nil {
		return false, err
	}
	hit := false
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return hit, err
		}
		if len(line) >= 5 && string(line[:5]) == "END\r\n" {
			return hit, nil
		}
		if len(line) < 6 || string(line[:6]) != "VALUE " {
			return hit, fmt.Errorf("bench: unexpected reply %q", line)
		}
		n, err := valueLen(line)
		if err != nil {
			return hit, err
		}
		if _, err := c.r.Discard(n + 2); err != nil {
			return hit, err
		}
		hit = true
	}
}

// valueLen reads the byte count, the 4th word of a VALUE line.
func valueLen(line []byte) (int, error) {
	field, start := 0, 0
	for i := 0; i <= len(line); i++ {
		if i == len(line) || line[i] == ' ' || line[i] == '\r' {
			if field == 3 {
				return strconv.Atoi(string(line[start:i]))
			}
			field++
			start = i + 1
			if i < len(line) && line[i] == '\r' {
				break
			}
		}
	}
	return 0, fmt.Errorf("bench: bad VALUE line %q", line)
}

func (c *rawClient) Set(key, value []byte) error {
	b := append(c.buf[:0], "set "...)
	b = append(b, key...)
	b = append(b, " 0 0 "...)
	b = strconv.AppendInt(b, int64(len(value)), 10)
	b = append(b, '\r', '\n')
	c.buf = b
	c.w.Write(b)
	c.w.Write(value)
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return err
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if string(line) != "STORED\r\n" {
		return fmt.Errorf("bench: set answered %q", line)
	}
	return nil
}
