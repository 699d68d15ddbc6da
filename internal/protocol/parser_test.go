package protocol

import (
	"fmt"
	"strings"
	"testing"
)

// event is a parsed request rendered as text, so whole-input and split-input
// parses can be compared.
func render(r *Request) string {
	switch r.Kind {
	case KindError:
		return fmt.Sprintf("error %q noreply=%v op=%v key=%q", r.Reply, r.Noreply, r.Op, r.Key)
	case KindFatal:
		return fmt.Sprintf("fatal %q", r.Reply)
	}
	words := make([]string, len(r.Tokens))
	for i, t := range r.Tokens {
		words[i] = string(t)
	}
	s := fmt.Sprintf("cmd %q", words)
	if r.Op != StorageNone {
		s += fmt.Sprintf(" op=%v key=%q flags=%d exp=%d cas=%d noreply=%v data=%q", r.Op, r.Key, r.Flags, r.Exptime, r.CAS, r.Noreply, r.Data)
	}
	return s
}

// parseChunks feeds chunks one after the other and returns every request.
func parseChunks(p *Parser, chunks [][]byte) []string {
	var out []string
	for _, in := range chunks {
		for len(in) > 0 {
			n, r := p.Next(in)
			if n < 0 || n > len(in) {
				panic(fmt.Sprintf("consumed %d of %d", n, len(in)))
			}
			in = in[n:]
			if r == nil {
				if len(in) != 0 {
					panic("nil request with input left")
				}
				break
			}
			out = append(out, render(r))
			if r.Kind == KindFatal {
				return out
			}
		}
	}
	return out
}

func newTestParser() *Parser { return NewParser(2048, 1024, nil) }

func TestParseTable(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"get a b\r\n", []string{`cmd ["get" "a" "b"]`}},
		{"get a\n", []string{`cmd ["get" "a"]`}},
		{"  get   a  \r\n", []string{`cmd ["get" "a"]`}},
		{"\r\n", []string{`error "ERROR" noreply=false op=none key=""`}},
		{"set k 1 2 3\r\nabc\r\n", []string{`cmd ["set" "k" "1" "2" "3"] op=set key="k" flags=1 exp=2 cas=0 noreply=false data="abc"`}},
		{"set k 1 2 3 noreply\r\nabc\r\n", []string{`cmd ["set" "k" "1" "2" "3" "noreply"] op=set key="k" flags=1 exp=2 cas=0 noreply=true data="abc"`}},
		{"cas k 0 0 1 99\r\nx\r\n", []string{`cmd ["cas" "k" "0" "0" "1" "99"] op=cas key="k" flags=0 exp=0 cas=99 noreply=false data="x"`}},
		{"set k 0 0 0\r\n\r\n", []string{`cmd ["set" "k" "0" "0" "0"] op=set key="k" flags=0 exp=0 cas=0 noreply=false data=""`}},
		// Wrong word counts: ERROR and the block is read as a command.
		{"set k 0 0\r\nabc\r\n", []string{`error "ERROR" noreply=false op=none key=""`, `cmd ["abc"]`}},
		{"cas k 0 0 1\r\n", []string{`error "ERROR" noreply=false op=none key=""`}},
		// Bad numbers: CLIENT_ERROR, block not consumed.
		{"set k x 0 1\r\nz\r\n", []string{`error "CLIENT_ERROR bad command line format" noreply=false op=none key=""`, `cmd ["z"]`}},
		{"set k 0 0 -1\r\n", []string{`error "CLIENT_ERROR bad command line format" noreply=false op=none key=""`}},
		{"set k 0 0 noreply\r\n", []string{`error "CLIENT_ERROR bad command line format" noreply=true op=none key=""`}},
		{"set " + strings.Repeat("k", 251) + " 0 0 1\r\nz\r\n", []string{`error "CLIENT_ERROR bad command line format" noreply=false op=none key=""`, `cmd ["z"]`}},
		// Wrong terminator: the block is still exactly bytes+2 long.
		{"set k 0 0 3\r\nabcd\r\nget k\r\n", []string{`error "CLIENT_ERROR bad data chunk" noreply=false op=none key=""`, `error "ERROR" noreply=false op=none key=""`, `cmd ["get" "k"]`}},
		// Too large: answered at once, block swallowed.
		{"set k 0 0 2000\r\n" + strings.Repeat("v", 2000) + "\r\nget k\r\n", []string{`error "SERVER_ERROR object too large for cache" noreply=false op=set key="k"`, `cmd ["get" "k"]`}},
		{"get " + strings.Repeat("k", 3000), []string{`fatal "CLIENT_ERROR line too long"`}},
	}
	for _, tc := range cases {
		got := parseChunks(newTestParser(), [][]byte{[]byte(tc.in)})
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("parse %q:\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

// splitAll returns in cut into single bytes.
func splitAll(in []byte) [][]byte {
	out := make([][]byte, len(in))
	for i := range in {
		out[i] = in[i : i+1]
	}
	return out
}

// TestByteByByte feeds a long pipelined script one byte at a time, and at
// every single split point, and expects exactly what the whole input gives.
func TestByteByByte(t *testing.T) {
	script := []byte("set a 0 0 5\r\nhello\r\nget a b c\r\nappend a 0 0 1 noreply\r\n!\r\n" +
		"cas a 1 2 3 4\r\nxyz\r\nset bad 0 0 2\r\nabc\r\nincr n 5\r\n\n" +
		"set big 0 0 1500\r\n" + strings.Repeat("q", 1500) + "\r\ndelete a\r\nquit\r\n")
	want := parseChunks(newTestParser(), [][]byte{script})
	if len(want) < 10 {
		t.Fatalf("whole parse gave only %d requests: %q", len(want), want)
	}
	got := parseChunks(newTestParser(), splitAll(script))
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("byte-by-byte parse differs:\n got %q\nwant %q", got, want)
	}
	for i := 1; i < len(script); i++ {
		got := parseChunks(newTestParser(), [][]byte{script[:i], script[i:]})
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("split at %d differs:\n got %q\nwant %q", i, got, want)
		}
	}
}

func TestPendingAndReset(t *testing.T) {
	p := newTestParser()
	if p.Pending() {
		t.Fatal("fresh parser pending")
	}
	if _, r := p.Next([]byte("set k 0 0 3\r\nab")); r != nil {
		t.Fatalf("partial block gave %s", render(r))
	}
	if !p.Pending() {
		t.Fatal("parser with half a block not pending")
	}
	p.Reset()
	if p.Pending() {
		t.Fatal("pending after Reset")
	}
	if got := parseChunks(p, [][]byte{[]byte("get k\r\n")}); len(got) != 1 || got[0] != `cmd ["get" "k"]` {
		t.Fatalf("after reset: %q", got)
	}
}

type fakeBudget struct{ free, held int }

func (b *fakeBudget) Acquire(n int) bool {
	if n > b.free {
		return false
	}
	b.free -= n
	b.held += n
	return true
}
func (b *fakeBudget) Release(n int) { b.free += n; b.held -= n }

func TestBudgetIsReleasedAndRefusalSwallows(t *testing.T) {
	b := &fakeBudget{free: 10}
	p := NewParser(2048, 1024, b)
	got := parseChunks(p, [][]byte{[]byte("set k 0 0 3\r\nabc\r\n")})
	if len(got) != 1 || b.held != 5 {
		t.Fatalf("got %q, held %d (want the block's 5 bytes held until the next call)", got, b.held)
	}
	got = parseChunks(p, [][]byte{[]byte("set k 0 0 20\r\n" + strings.Repeat("x", 20) + "\r\nget k\r\n")})
	want := []string{`error "SERVER_ERROR out of memory storing object" noreply=false op=set key="k"`, `cmd ["get" "k"]`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got %q want %q", got, want)
	}
	p.Close()
	if b.held != 0 {
		t.Fatalf("budget still holds %d bytes after Close", b.held)
	}
}

func TestNumbersMatchMemcached(t *testing.T) {
	u32 := []struct {
		in string
		v  uint32
		ok bool
	}{
		{"0", 0, true}, {"4294967295", 4294967295, true}, {"4294967296", 0, true},
		{"-1", 0, false}, {"+7", 7, true}, {"12a", 0, false}, {"", 0, false}, {"-0", 0, true},
		{"18446744073709551616", 0, false},
	}
	for _, c := range u32 {
		v, ok := ParseUint32([]byte(c.in))
		if v != c.v || ok != c.ok {
			t.Errorf("ParseUint32(%q) = %d, %v; want %d, %v", c.in, v, ok, c.v, c.ok)
		}
	}
	i32 := []struct {
		in string
		v  int32
		ok bool
	}{
		{"0", 0, true}, {"-1", -1, true}, {"2147483647", 2147483647, true}, {"2147483648", -2147483648, true},
		{"-2147483648", -2147483648, true}, {"x", 0, false}, {"5 ", 5, true},
		{"4294967296", 0, true}, {"4000000000", -294967296, true}, {"9223372036854775808", 0, false},
	}
	for _, c := range i32 {
		v, ok := ParseInt32([]byte(c.in))
		if v != c.v || ok != c.ok {
			t.Errorf("ParseInt32(%q) = %d, %v; want %d, %v", c.in, v, ok, c.v, c.ok)
		}
	}
	if v, ok := ParseUint64([]byte("18446744073709551615")); !ok || v != 1<<64-1 {
		t.Errorf("ParseUint64(max) = %d, %v", v, ok)
	}
}
