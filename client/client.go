package client

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors of the client package.
var (
	// ErrNotFound means the key does not exist (get miss, delete NOT_FOUND).
	ErrNotFound = errors.New("client: not found")
	// ErrNotStored means add/replace/append/prepend found the key in the
	// wrong state.
	ErrNotStored = errors.New("client: not stored")
	// ErrCASConflict means cas found a newer value.
	ErrCASConflict = errors.New("client: cas conflict")
	// ErrProtocol means the server answered something unexpected.
	ErrProtocol = errors.New("client: protocol error")
	// ErrBadKey means the key cannot be sent (empty, too long, spaces or
	// control characters).
	ErrBadKey = errors.New("client: bad key")

	// ErrNotPrimary matches a *ServerError "SERVER_ERROR NOT_PRIMARY <vnode>
	// <primary> <version>": a node in direct mode refused a key it is not
	// the primary of, and did not apply the request. A Cluster refreshes its
	// table and retries; it returns this only once its retries are spent.
	ErrNotPrimary = errors.New("client: not the primary")
	// ErrUnavailable matches a *ServerError "SERVER_ERROR vnode <n>
	// unavailable: ...": no primary could take the request now. A write may
	// or may not have been applied.
	ErrUnavailable = errors.New("client: vnode unavailable")
	// ErrVnodeLost matches a *ServerError "SERVER_ERROR vnode <n> is lost",
	// and is what a Cluster returns for a key whose vnode has no replica in
	// its table: no node holds the data; an operator must act.
	ErrVnodeLost = errors.New("client: vnode lost")
	// ErrBadTable means a routing table (routingdump sonae) is malformed.
	ErrBadTable = errors.New("client: bad routing table")
	// ErrNoNode means no seed or node answered with a routing table.
	ErrNoNode = errors.New("client: no node answered")
	// ErrMaybeApplied wraps the connection error of a write that is not
	// safe to repeat (add, cas, incr, decr, append, prepend) and failed
	// after it was sent: the node may have applied it. A Cluster does not
	// retry such a write.
	ErrMaybeApplied = errors.New("client: write failed after it was sent and may have been applied")
	// ErrPoolTimeout means every pooled connection to a node stayed busy
	// for the whole timeout.
	ErrPoolTimeout = errors.New("client: connection pool exhausted")
	// ErrClosed means the Cluster was closed.
	ErrClosed = errors.New("client: cluster closed")
)

// ServerError is an ERROR, CLIENT_ERROR or SERVER_ERROR line from the server.
type ServerError struct {
	Line string
}

func (e *ServerError) Error() string { return "server: " + e.Line }

// Is lets errors.Is classify the cluster's error lines (docs/cluster.md):
// ErrNotPrimary, ErrUnavailable ("SERVER_ERROR vnode <n> unavailable: ...",
// and the "cluster unavailable" and "node <id> unavailable" forms) and
// ErrVnodeLost ("SERVER_ERROR vnode <n> is lost ...").
func (e *ServerError) Is(target error) bool {
	switch target {
	case ErrNotPrimary:
		return strings.HasPrefix(e.Line, notPrimaryPrefix)
	case ErrUnavailable:
		return strings.HasPrefix(e.Line, "SERVER_ERROR ") && strings.Contains(e.Line, " unavailable:")
	case ErrVnodeLost:
		return strings.HasPrefix(e.Line, "SERVER_ERROR vnode ") && strings.Contains(e.Line, " is lost")
	}
	return false
}

const notPrimaryPrefix = "SERVER_ERROR NOT_PRIMARY "

// notPrimary parses "SERVER_ERROR NOT_PRIMARY <vnode> <primary-id>
// <table-version>". ok is false for any other line; a NOT_PRIMARY line with
// unreadable fields gives ok with zero fields, so it still means "refresh".
func notPrimary(line string) (vnode int, primary string, version uint64, ok bool) {
	rest, ok := strings.CutPrefix(line, notPrimaryPrefix)
	if !ok {
		return 0, "", 0, false
	}
	f := strings.Fields(rest)
	if len(f) != 3 {
		return 0, "", 0, true
	}
	v, err1 := strconv.Atoi(f[0])
	ver, err2 := strconv.ParseUint(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, "", 0, true
	}
	return v, f[1], ver, true
}

// Item is a value with its memcached metadata.
type Item struct {
	Key   string
	Value []byte
	Flags uint32
	CAS   uint64
}

// Conn is one connection to a sonae node (or any memcached server, for the
// memcached commands).
type Conn struct {
	nc      net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	timeout time.Duration
	line    []byte
}

// Dial connects to addr ("host:port" or sonae's "host_port") with timeout
// applied to the dial and to every request.
func Dial(addr string, timeout time.Duration) (*Conn, error) {
	addr = NormalizeAddr(addr)
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return &Conn{nc: nc, r: bufio.NewReaderSize(nc, 32<<10), w: bufio.NewWriterSize(nc, 32<<10), timeout: timeout}, nil
}

// NormalizeAddr turns a node id "host_port" into a dial address "host:port"
// ("::1_11211" into "[::1]:11211"); other forms are returned unchanged.
func NormalizeAddr(addr string) string {
	i := strings.LastIndexByte(addr, '_')
	if i <= 0 || i == len(addr)-1 {
		return addr
	}
	for _, b := range []byte(addr[i+1:]) {
		if b < '0' || b > '9' {
			return addr
		}
	}
	return net.JoinHostPort(addr[:i], addr[i+1:])
}

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

func (c *Conn) deadline() {
	if c.timeout > 0 {
		c.nc.SetDeadline(time.Now().Add(c.timeout))
	}
}

func checkKey(key string) error {
	if len(key) == 0 || len(key) > 250 {
		return fmt.Errorf("%w: %q must be 1..250 bytes", ErrBadKey, key)
	}
	for i := 0; i < len(key); i++ {
		if b := key[i]; (b <= ' ' || b == 0x7f) && b != 0x1b {
			return fmt.Errorf("%w: %q contains a space or control character", ErrBadKey, key)
		}
	}
	return nil
}

// readLine returns the next reply line without CRLF. The slice is valid until
// the next read.
func (c *Conn) readLine() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		c.line = append(c.line[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = c.r.ReadSlice('\n')
			c.line = append(c.line, line...)
		}
		line = c.line
	}
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

func lineError(line []byte) error {
	s := string(line)
	if s == "ERROR" || strings.HasPrefix(s, "CLIENT_ERROR") || strings.HasPrefix(s, "SERVER_ERROR") || strings.HasPrefix(s, "ERROR") {
		return &ServerError{Line: s}
	}
	return nil
}

// Get fetches one key.
func (c *Conn) Get(key string) (Item, error) {
	items, err := c.GetMulti(key)
	if err != nil {
		return Item{}, err
	}
	if len(items) == 0 {
		return Item{}, ErrNotFound
	}
	return items[0], nil
}

// GetMulti fetches keys with one gets command; missing keys are absent.
func (c *Conn) GetMulti(keys ...string) ([]Item, error) {
	return c.retrieve("gets", keys)
}

// retrieve sends cmd ("get" or "gets") for keys and reads the items up to
// END. An error line ends the reply.
func (c *Conn) retrieve(cmd string, keys []string) ([]Item, error) {
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return nil, err
		}
	}
	c.deadline()
	c.w.WriteString(cmd)
	for _, k := range keys {
		c.w.WriteByte(' ')
		c.w.WriteString(k)
	}
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	var items []Item
	for {
		line, err := c.readLine()
		if err != nil {
			return nil, err
		}
		if string(line) == "END" {
			return items, nil
		}
		if err := lineError(line); err != nil {
			return nil, err
		}
		it, n, err := parseValueLine(line)
		if err != nil {
			return nil, err
		}
		it.Value = make([]byte, n+2)
		if _, err := io.ReadFull(c.r, it.Value); err != nil {
			return nil, err
		}
		it.Value = it.Value[:n]
		items = append(items, it)
	}
}

// parseValueLine reads "VALUE key flags bytes [cas]".
func parseValueLine(line []byte) (Item, int, error) {
	f := strings.Fields(string(line))
	if len(f) < 4 || f[0] != "VALUE" {
		return Item{}, 0, fmt.Errorf("%w: %q", ErrProtocol, line)
	}
	flags, err1 := strconv.ParseUint(f[2], 10, 32)
	n, err2 := strconv.Atoi(f[3])
	if err1 != nil || err2 != nil || n < 0 {
		return Item{}, 0, fmt.Errorf("%w: %q", ErrProtocol, line)
	}
	it := Item{Key: f[1], Flags: uint32(flags)}
	if len(f) > 4 {
		if it.CAS, err1 = strconv.ParseUint(f[4], 10, 64); err1 != nil {
			return Item{}, 0, fmt.Errorf("%w: %q", ErrProtocol, line)
		}
	}
	return it, n, nil
}

// store sends a storage command and maps the reply.
func (c *Conn) store(cmd, key string, value []byte, flags uint32, exptime int64, cas uint64) error {
	if err := checkKey(key); err != nil {
		return err
	}
	c.deadline()
	b := c.line[:0]
	b = append(b, cmd...)
	b = append(b, ' ')
	b = append(b, key...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(flags), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, exptime, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(value)), 10)
	if cmd == "cas" {
		b = append(b, ' ')
		b = strconv.AppendUint(b, cas, 10)
	}
	b = append(b, '\r', '\n')
	c.line = b
	c.w.Write(b)
	c.w.Write(value)
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return err
	}
	line, err := c.readLine()
	if err != nil {
		return err
	}
	switch string(line) {
	case "STORED":
		return nil
	case "NOT_STORED":
		return ErrNotStored
	case "EXISTS":
		return ErrCASConflict
	case "NOT_FOUND":
		return ErrNotFound
	}
	if err := lineError(line); err != nil {
		return err
	}
	return fmt.Errorf("%w: %q", ErrProtocol, line)
}

// Set stores value under key.
func (c *Conn) Set(key string, value []byte, flags uint32, exptime int64) error {
	return c.store("set", key, value, flags, exptime, 0)
}

// Add stores value only if key is absent.
func (c *Conn) Add(key string, value []byte, flags uint32, exptime int64) error {
	return c.store("add", key, value, flags, exptime, 0)
}

// CompareAndSwap stores value if key still has cas.
func (c *Conn) CompareAndSwap(key string, value []byte, flags uint32, exptime int64, cas uint64) error {
	return c.store("cas", key, value, flags, exptime, cas)
}

// Delete removes key; ErrNotFound if it was absent.
func (c *Conn) Delete(key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	line, err := c.Command("delete " + key)
	if err != nil {
		return err
	}
	switch line {
	case "DELETED":
		return nil
	case "NOT_FOUND":
		return ErrNotFound
	}
	return fmt.Errorf("%w: %q", ErrProtocol, line)
}

// Command sends one command line and returns the one-line reply. Error
// replies are returned as *ServerError.
func (c *Conn) Command(cmd string) (string, error) {
	c.deadline()
	c.w.WriteString(cmd)
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return "", err
	}
	line, err := c.readLine()
	if err != nil {
		return "", err
	}
	if err := lineError(line); err != nil {
		return "", err
	}
	return string(line), nil
}

// Lines sends one command and returns the reply lines up to END.
func (c *Conn) Lines(cmd string) ([]string, error) {
	c.deadline()
	c.w.WriteString(cmd)
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	var out []string
	for {
		line, err := c.readLine()
		if err != nil {
			return nil, err
		}
		if string(line) == "END" {
			return out, nil
		}
		if len(out) == 0 {
			if err := lineError(line); err != nil {
				return nil, err
			}
		}
		out = append(out, string(line))
	}
}

// Stat is one "name value" pair of the stat command.
type Stat struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Stat runs ROMA's "stat [regexp]".
func (c *Conn) Stat(pattern string) ([]Stat, error) {
	cmd := "stat"
	if pattern != "" {
		cmd += " " + pattern
	}
	lines, err := c.Lines(cmd)
	if err != nil {
		return nil, err
	}
	out := make([]Stat, 0, len(lines))
	for _, l := range lines {
		name, value, _ := strings.Cut(l, " ")
		out = append(out, Stat{Name: name, Value: value})
	}
	return out, nil
}

// Stats runs memcached's "stats [group]".
func (c *Conn) Stats(group string) ([]Stat, error) {
	cmd := "stats"
	if group != "" {
		cmd += " " + group
	}
	lines, err := c.Lines(cmd)
	if err != nil {
		return nil, err
	}
	out := make([]Stat, 0, len(lines))
	for _, l := range lines {
		rest, ok := strings.CutPrefix(l, "STAT ")
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrProtocol, l)
		}
		name, value, _ := strings.Cut(rest, " ")
		out = append(out, Stat{Name: name, Value: value})
	}
	return out, nil
}
