package protocoltest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

var (
	// ReplyTimeout bounds how long a single expectation waits for bytes.
	ReplyTimeout = 3 * time.Second
	// SplitPause is slept between two consecutive writes that have no
	// expectation in between, so that the server really sees them apart.
	SplitPause = 2 * time.Millisecond
)

// Run replays every case selected for target ("memcached" or "sonae")
// against the server at addr, one subtest per case, sequentially, each on a
// fresh connection. Some cases run flush_all, so the server must not be
// used by anything else meanwhile.
func Run(t *testing.T, addr string, target string) {
	t.Helper()
	if target != TargetMemcached && target != TargetSonae {
		t.Fatalf("protocoltest.Run: unknown target %q (want %q or %q)", target, TargetMemcached, TargetSonae)
	}
	cases, err := LoadCases()
	if err != nil {
		t.Fatalf("loading protocol cases: %v", err)
	}
	n := 0
	for _, c := range cases {
		if !c.RunsOn(target) {
			continue
		}
		n++
		t.Run(c.Name, func(t *testing.T) { runCase(t, addr, c) })
	}
	t.Logf("%d protocol cases selected for target %s", n, target)
}

// reporter is the part of testing.T used while running a case.
type reporter interface {
	Helper()
	Fatalf(format string, args ...any)
}

type session struct {
	t         reporter
	c         *Case
	conn      net.Conn
	buf       []byte // received, not yet matched
	pending   []byte // to be written
	lastWrite bool   // the previous action was a write
	vars      map[string]string
	closed    bool
}

func runCase(t reporter, addr string, c *Case) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("%s:%d: dial %s: %v", c.File, c.Line, addr, err)
	}
	defer conn.Close()
	s := &session{t: t, c: c, conn: conn, vars: map[string]string{}}
	endsClosed := false
	for _, st := range c.steps {
		switch st.kind {
		case opSend:
			s.pending = append(s.pending, s.render(st)...)
		case opSplit:
			s.flush(st)
		case opSendBytewise:
			s.flush(st)
			for _, b := range s.render(st) {
				s.pending = append(s.pending, b)
				s.flush(st)
			}
		case opExpect:
			s.flush(st)
			s.expect(st, st.segs, "")
		case opExpectStats:
			s.flush(st)
			s.expectStats(st)
		case opExpectClosed:
			s.flush(st)
			s.expectClosed(st)
			endsClosed = true
		}
	}
	if endsClosed || c.NoSync {
		s.flush(step{line: c.Line})
		return
	}
	// Sync: the stream must be in command state with no unread replies.
	sync := step{kind: opExpect, line: c.Line}
	s.pending = append(s.pending, "version\r\n"...)
	s.flush(sync)
	s.expect(sync, []segment{{kind: segLit, lit: []byte("VERSION ")}, {kind: segAny}, {kind: segLit, lit: []byte("\r\n")}},
		"end-of-case sync (runner sent \"version\\r\\n\"; unread replies or a stream out of sync show up here)")
	if len(s.buf) > 0 {
		s.fail(sync, "unexpected bytes after the sync reply:\n\t%s", quote(s.buf))
	}
}

func (s *session) where(st step) string {
	return fmt.Sprintf("%s:%d (case %s)", s.c.File, st.line, s.c.Name)
}

func (s *session) fail(st step, format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("%s: %s", s.where(st), fmt.Sprintf(format, args...))
}

func (s *session) render(st step) []byte {
	s.t.Helper()
	var out []byte
	for _, seg := range st.segs {
		switch seg.kind {
		case segLit:
			out = append(out, seg.lit...)
		case segVar:
			v, ok := s.vars[seg.name]
			if !ok {
				s.fail(st, "<%s> used before being captured by an expectation", seg.name)
			}
			out = append(out, v...)
		default:
			s.fail(st, "placeholder not allowed in send")
		}
	}
	return out
}

func (s *session) flush(st step) {
	s.t.Helper()
	if len(s.pending) == 0 {
		return
	}
	if s.lastWrite && SplitPause > 0 {
		time.Sleep(SplitPause)
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.conn.Write(s.pending); err != nil {
		s.fail(st, "write: %v (received so far:\n\t%s)", err, quote(s.buf))
	}
	s.pending = s.pending[:0]
	s.lastWrite = true
}

// fill reads more bytes into s.buf. It returns an error on timeout or when
// the connection is closed.
func (s *session) fill(timeout time.Duration) error {
	if s.closed {
		return errConnClosed
	}
	_ = s.conn.SetReadDeadline(time.Now().Add(timeout))
	var tmp [64 << 10]byte
	n, err := s.conn.Read(tmp[:])
	s.buf = append(s.buf, tmp[:n]...)
	if n > 0 {
		return nil
	}
	if err == nil {
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errTimeout
	}
	s.closed = true
	return errConnClosed
}

var (
	errTimeout    = errors.New("timed out waiting for the server")
	errConnClosed = errors.New("connection closed by the server")
)

// drain collects whatever else arrives shortly, to make failure messages
// more useful.
func (s *session) drain() {
	deadline := time.Now().Add(100 * time.Millisecond)
	for time.Now().Before(deadline) && len(s.buf) < 1<<16 {
		if s.fill(time.Until(deadline)) != nil {
			return
		}
	}
}

func (s *session) expect(st step, segs []segment, what string) {
	s.t.Helper()
	s.lastWrite = false
	if what == "" {
		what = "expectation"
	}
	for {
		res, n, caps := matchPrefix(segs, s.buf, s.vars)
		switch res {
		case matchOK:
			for k, v := range caps {
				s.vars[k] = v
			}
			s.buf = s.buf[n:]
			return
		case matchFail:
			s.drain()
			s.fail(st, "%s: reply mismatch at byte %d\nexpected:\n\t%s\nreceived:\n\t%s\nreceived from the mismatch on:\n\t%s",
				what, n, describe(segs, s.vars), shorten(s.buf), shorten(s.buf[n:]))
		case matchNeedMore:
			if err := s.fill(ReplyTimeout); err != nil {
				s.fail(st, "%s: %v\nexpected:\n\t%s\nreceived:\n\t%s", what, err, describe(segs, s.vars), shorten(s.buf))
			}
		}
	}
}

func (s *session) expectClosed(st step) {
	s.t.Helper()
	s.lastWrite = false
	deadline := time.Now().Add(ReplyTimeout)
	for len(s.buf) == 0 {
		if time.Now().After(deadline) {
			s.fail(st, "expected the server to close the connection; it stayed open")
		}
		err := s.fill(time.Until(deadline))
		if errors.Is(err, errConnClosed) {
			return
		}
	}
	s.drain()
	s.fail(st, "expected the server to close the connection, but it sent:\n\t%s", shorten(s.buf))
}

func (s *session) expectStats(st step) {
	s.t.Helper()
	s.lastWrite = false
	for {
		end := -1
		if bytes.HasPrefix(s.buf, []byte("END\r\n")) {
			end = 0
		} else if i := bytes.Index(s.buf, []byte("\r\nEND\r\n")); i >= 0 {
			end = i + 2
		}
		if end >= 0 {
			block := s.buf[:end]
			s.buf = s.buf[end+len("END\r\n"):]
			have := map[string]bool{}
			for _, line := range strings.SplitAfter(string(block), "\r\n") {
				if line == "" {
					continue
				}
				body, ok := strings.CutSuffix(line, "\r\n")
				rest, ok2 := strings.CutPrefix(body, "STAT ")
				name, value, ok3 := strings.Cut(rest, " ")
				if !ok || !ok2 || !ok3 || name == "" || value == "" {
					s.fail(st, "malformed stats line %s in:\n\t%s", quote([]byte(line)), shorten(block))
				}
				have[name] = true
			}
			var missing []string
			for _, n := range st.stats {
				if !have[n] {
					missing = append(missing, n)
				}
			}
			if len(missing) > 0 {
				s.fail(st, "stats reply lacks %v; got:\n\t%s", missing, shorten(block))
			}
			return
		}
		if !bytes.HasPrefix(s.buf, []byte("STAT ")) && len(s.buf) >= 5 {
			s.drain()
			s.fail(st, "expected a stats reply (STAT lines then END), got:\n\t%s", shorten(s.buf))
		}
		if err := s.fill(ReplyTimeout); err != nil {
			s.fail(st, "waiting for stats reply: %v; received:\n\t%s", err, shorten(s.buf))
		}
	}
}

func shorten(b []byte) string {
	const max = 2048
	if len(b) <= max {
		return quote(b)
	}
	return quote(b[:max/2]) + fmt.Sprintf(" ...[%d bytes]... ", len(b)-max) + quote(b[len(b)-max/2:])
}

// FindMemcached returns the path of a memcached binary: $MEMCACHED, then
// /usr/bin/memcached, then memcached on $PATH. It returns "" if none exists.
func FindMemcached() string {
	if p := os.Getenv("MEMCACHED"); p != "" {
		return p
	}
	if st, err := os.Stat("/usr/bin/memcached"); err == nil && !st.IsDir() {
		return "/usr/bin/memcached"
	}
	if p, err := exec.LookPath("memcached"); err == nil {
		return p
	}
	return ""
}
