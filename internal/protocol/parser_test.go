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
	if r.Meta.Cmd != 0 {
		s += renderMeta(r)
	}
	return s
}

// renderMeta shows what the parser read from a meta command: the key, the
// flags that are not at their defaults, and the data block.
func renderMeta(r *Request) string {
	m := r.Meta
	s := fmt.Sprintf(" meta=%c key=%q", m.Cmd, r.Key)
	opt := func(on bool, f string, args ...any) {
		if on {
			s += " " + fmt.Sprintf(f, args...)
		}
	}
	opt(m.Binary, "b")
	opt(m.Quiet, "q")
	opt(m.Value, "v")
	opt(m.Mode != 0, "M=%c", m.Mode)
	opt(m.HasTTL, "T=%d", m.TTL)
	opt(m.Vivify, "N=%d", m.VivifyTTL)
	opt(m.ClientFlags != 0, "F=%d", m.ClientFlags)
	opt(m.HasCAS, "C=%d", m.CAS)
	opt(m.Delta != 1, "D=%d", m.Delta)
	opt(m.Initial != 0, "J=%d", m.Initial)
	opt(m.Cmd == 's', "len=%d data=%q", m.DataLen, r.Data)
	opt(r.Reply != "", "reply=%q", r.Reply)
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
		// Meta commands. ms carries a block like set; its flags are read
		// before the block, and a flag error swallows the block.
		{"ms k 3 T5 F7 c\r\nabc\r\n", []string{`cmd ["ms" "k" "3" "T5" "F7" "c"] meta=s key="k" T=5 F=7 len=3 data="abc"`}},
		{"ms Zm9v 2 b k q MA C9\r\nhi\r\n", []string{`cmd ["ms" "Zm9v" "2" "b" "k" "q" "MA" "C9"] meta=s key="foo" b q M=A C=9 len=2 data="hi"`}},
		{"ms k 0\r\n\r\n", []string{`cmd ["ms" "k" "0"] meta=s key="k" len=0 data=""`}},
		{"ms k 3\r\nabcd\r\nmn\r\n", []string{`error "CLIENT_ERROR bad data chunk" noreply=false op=none key=""`, `error "ERROR" noreply=false op=none key=""`, `cmd ["mn"]`}},
		{"ms k 3 q\r\nabcd\r\n", []string{`error "CLIENT_ERROR bad data chunk" noreply=false op=none key=""`, `error "ERROR" noreply=false op=none key=""`}},
		{"ms k 3 z\r\nabc\r\nmn\r\n", []string{`error "CLIENT_ERROR invalid flag" noreply=false op=none key=""`, `cmd ["mn"]`}},
		{"ms k 3 I\r\nabc\r\nmn\r\n", []string{`error "CLIENT_ERROR invalid flag" noreply=false op=none key=""`, `cmd ["mn"]`}},
		{"ms k 3 MX O" + strings.Repeat("x", 40) + "\r\nabc\r\nmn\r\n", []string{`error "CLIENT_ERROR invalid mode for ms M token" noreply=false op=none key=""`, `cmd ["mn"]`}},
		{"ms k 3 O" + strings.Repeat("x", 32) + "\r\nabc\r\nmn\r\n", []string{`error "CLIENT_ERROR opaque token too long" noreply=false op=none key=""`, `cmd ["mn"]`}},
		{"ms Zm9 3 b\r\nabc\r\nmn\r\n", []string{`error "CLIENT_ERROR error decoding key" noreply=false op=none key=""`, `cmd ["mn"]`}},
		{"ms k 3 F\r\nabc\r\nmn\r\n", []string{`error "CLIENT_ERROR bad command line format" noreply=false op=none key=""`, `cmd ["mn"]`}},
		// Errors on the line itself leave the block to be read as a command.
		{"ms k x\r\nabc\r\n", []string{`error "CLIENT_ERROR bad command line format" noreply=false op=none key=""`, `cmd ["abc"]`}},
		{"ms k\r\n", []string{`error "CLIENT_ERROR bad command line format" noreply=false op=none key=""`}},
		{"ms\r\n", []string{`error "ERROR" noreply=false op=none key=""`}},
		{"ms k 3" + strings.Repeat(" v", 18) + "\r\nabc\r\n", []string{`error "CLIENT_ERROR options flags too long" noreply=false op=none key=""`, `cmd ["abc"]`}},
		// Too large: the block is swallowed and the server answers.
		{"ms k 2000\r\n" + strings.Repeat("v", 2000) + "\r\nmn\r\n", []string{`cmd ["ms" "k" "2000"] meta=s key="k" len=2000 data="" reply="SERVER_ERROR object too large for cache"`, `cmd ["mn"]`}},
		{"mg k v T-1 v\r\n", []string{`error "CLIENT_ERROR duplicate flag" noreply=false op=none key=""`}},
		{"mg k s v T-1 O1\r\n", []string{`cmd ["mg" "k" "s" "v" "T-1" "O1"] meta=g key="k" v T=-1`}},
		{"mg Zm9 b T\r\n", []string{`error "CLIENT_ERROR bad token in command line format" noreply=false op=none key=""`}},
		{"mg Z!m9v b\r\n", []string{`cmd ["mg" "Z!m9v" "b"] meta=g key="foo" b`}},
		{"mg k h\r\n", []string{`error "CLIENT_ERROR invalid flag" noreply=false op=none key=""`}},
		{"mg k" + strings.Repeat(" v", 18) + "\r\n", []string{`error "CLIENT_ERROR options flags are too long" noreply=false op=none key=""`}},
		{"md k C5 q\r\n", []string{`cmd ["md" "k" "C5" "q"] meta=d key="k" q C=5`}},
		{"md k z\r\n", []string{`error "CLIENT_ERROR invalid or duplicate flag" noreply=false op=none key=""`}},
		{"ma k N10 J5 D3 MD\r\n", []string{`cmd ["ma" "k" "N10" "J5" "D3" "MD"] meta=a key="k" M=D N=10 D=3 J=5`}},
		{"ma k MX\r\n", []string{`error "CLIENT_ERROR invalid mode for ma M token" noreply=false op=none key=""`}},
		{"ma k Dx\r\n", []string{`error "CLIENT_ERROR invalid or duplicate flag" noreply=false op=none key=""`}},
		{"mn\r\nme k\r\n", []string{`cmd ["mn"]`, `cmd ["me" "k"]`}},
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
		"set big 0 0 1500\r\n" + strings.Repeat("q", 1500) + "\r\ndelete a\r\n" +
		"ms m 4 T9 F3 c k\r\nwxyz\r\nms Zm9v 2 b MA\r\nhi\r\nms m 2 z\r\nno\r\nms m 1\r\nxyz\r\n" +
		"ms big 1500\r\n" + strings.Repeat("r", 1500) + "\r\nmg Zm9v b v\r\nma m N0 J1 q\r\nmn\r\nquit\r\n")
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

// TestBase64KeysLikeMemcached checks the b flag's decoding against answers
// probed from memcached 1.6.18 (mg <key> b k echoes the key re-encoded).
func TestBase64KeysLikeMemcached(t *testing.T) {
	cases := []struct {
		in   string
		want string // "" for memcached's "error decoding key"
	}{
		{"Zm9v", "foo"}, {"Zm9vYg==", "foob"}, {"Zm9vYmE=", "fooba"},
		{"Z!m9v", "foo"}, {"Zg==Zm9v", "f"}, {"Z=g=", "d"},
		{"Zm9", ""}, {"Zm9v==", ""}, {"====", ""}, {"A===", ""}, {"!!!!", ""},
	}
	for _, c := range cases {
		got, ok := DecodeBase64Key(nil, []byte(c.in))
		if c.want == "" {
			if ok {
				t.Errorf("%q decoded to %q, want an error", c.in, got)
			}
			continue
		}
		if !ok || string(got) != c.want {
			t.Errorf("%q decoded to %q, %v; want %q", c.in, got, ok, c.want)
		}
	}
	if got := string(AppendBase64Key(nil, []byte("foob"))); got != "Zm9vYg==" {
		t.Errorf("encoding foob: %q", got)
	}
}
