package protocoltest

import (
	"fmt"
	"testing"
	"time"
)

// TestMemcachedReference checks every case against a real memcached, which
// proves the expectations in testdata are what memcached really answers.
func TestMemcachedReference(t *testing.T) {
	addr := StartMemcached(t)
	Run(t, addr, TargetMemcached)
}

func TestCasesParse(t *testing.T) {
	cases, err := LoadCases()
	if err != nil {
		t.Fatal(err)
	}
	var both, mc, so int
	for _, c := range cases {
		switch {
		case c.HasTag(TagMemcachedOnly):
			mc++
		case c.HasTag(TagSonaeOnly):
			so++
		default:
			both++
		}
	}
	t.Logf("%d cases: %d for both, %d memcached-only, %d sonae-only", len(cases), both, mc, so)
	if len(cases) < 80 {
		t.Errorf("only %d cases", len(cases))
	}
}

func TestParsePayload(t *testing.T) {
	segs, err := parsePayload(`a\r\n\s\x41\\\<x>{{3*ab}}\{{2*c}}`, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 1 || string(segs[0].lit) != "a\r\n A\\<x>ababab{{2*c}}" {
		t.Fatalf("got %+v", segs)
	}
	if _, err := parsePayload("<num>", false); err == nil {
		t.Fatal("<num> accepted in a send")
	}
	segs, err = parsePayload("VALUE k 0 1 <cas>", true)
	if err != nil || len(segs) != 2 || segs[1].kind != segVar || segs[1].name != "cas" {
		t.Fatalf("got %+v, %v", segs, err)
	}
}

func TestMatchPrefix(t *testing.T) {
	mk := func(s string) []segment {
		segs, err := parsePayload(s, true)
		if err != nil {
			t.Fatal(err)
		}
		return mergeLits(segs)
	}
	vars := map[string]string{}
	for _, tc := range []struct {
		pat, buf string
		want     matchResult
		n        int
	}{
		{`STORED\r\n`, "STORED\r\nEND", matchOK, 8},
		{`STORED\r\n`, "STOR", matchNeedMore, 4},
		{`STORED\r\n`, "STORX", matchFail, 4},
		{`VALUE k 0 1 <num>\r\n`, "VALUE k 0 1 12", matchNeedMore, 14},
		{`VALUE k 0 1 <num>\r\n`, "VALUE k 0 1 12\r\n", matchOK, 16},
		{`VALUE k 0 1 <num>\r\n`, "VALUE k 0 1 \r\n", matchFail, 12},
		{`VERSION <any>\r\n`, "VERSION 1.6.18\r\n", matchOK, 16},
		{`VERSION <any>\r\n`, "VERSION \r\n", matchOK, 10},
	} {
		res, n, _ := matchPrefix(mk(tc.pat), []byte(tc.buf), vars)
		if res != tc.want || n != tc.n {
			t.Errorf("match(%q, %q) = %v,%d; want %v,%d", tc.pat, tc.buf, res, n, tc.want, tc.n)
		}
	}
	res, _, caps := matchPrefix(mk(`<cas> <cas>\r\n`), []byte("42 42\r\n"), vars)
	if res != matchOK || caps["cas"] != "42" {
		t.Fatalf("capture: %v %v", res, caps)
	}
	if res, _, _ := matchPrefix(mk(`<cas> <cas>\r\n`), []byte("42 43\r\n"), vars); res != matchFail {
		t.Fatalf("reuse of capture with another value matched")
	}
	if res, _, _ := matchPrefix(mk(`<cas>\r\n`), []byte("421\r\n"), map[string]string{"cas": "42"}); res != matchFail {
		t.Fatalf("known capture matched a longer number")
	}
}

type fatalReporter struct{ msg string }

type fatalStop struct{}

func (f *fatalReporter) Helper() {}
func (f *fatalReporter) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(fatalStop{})
}

// runExpectFailure runs one inline case and returns the failure message
// ("" if the case passed).
func runExpectFailure(t *testing.T, addr, script string) string {
	t.Helper()
	cases, err := ParseScript("inline", []byte(script))
	if err != nil || len(cases) != 1 {
		t.Fatalf("parse: %v (%d cases)", err, len(cases))
	}
	return runCaseCollect(addr, cases[0])
}

// runCaseCollect runs c and returns its failure message ("" if it passed).
func runCaseCollect(addr string, c *Case) string {
	f := &fatalReporter{}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(fatalStop); !ok {
					panic(r)
				}
			}
		}()
		runCase(f, addr, c)
	}()
	return f.msg
}

// TestSonaeOnlyCasesFailOnMemcached proves each sonae-only case really
// exercises a deliberate deviation: memcached must not pass it.
func TestSonaeOnlyCasesFailOnMemcached(t *testing.T) {
	cases, err := LoadCases()
	if err != nil {
		t.Fatal(err)
	}
	addr := StartMemcached(t)
	defer func(d time.Duration) { ReplyTimeout = d }(ReplyTimeout)
	ReplyTimeout = 300 * time.Millisecond
	for _, c := range cases {
		if !c.HasTag(TagSonaeOnly) {
			continue
		}
		if msg := runCaseCollect(addr, c); msg == "" {
			t.Errorf("%s:%d: sonae-only case %s passes on memcached; it does not test a deviation", c.File, c.Line, c.Name)
		}
	}
}

// TestRunnerDetectsMismatches makes sure the runner is strict: each of these
// scripts is wrong and must fail.
func TestRunnerDetectsMismatches(t *testing.T) {
	addr := StartMemcached(t)
	defer func(d time.Duration) { ReplyTimeout = d }(ReplyTimeout)
	ReplyTimeout = 300 * time.Millisecond
	if msg := runExpectFailure(t, addr, "=== ok\n> set self_ok 0 0 1\n> x\n< STORED\n"); msg != "" {
		t.Fatalf("a correct case failed: %s", msg)
	}
	for name, script := range map[string]string{
		"unread-reply":      "=== c\n> set self_a 0 0 1\n> x\n",
		"wrong-reply":       "=== c\n> set self_b 0 0 1\n> x\n< NOT_STORED\n",
		"reply-too-short":   "=== c\n> get self_c\n< END\n< END\n",
		"extra-reply-bytes": "=== c\n> set self_d 0 0 1\n> x\n> get self_d\n< STORED\n< VALUE self_d 0 1\n",
		"not-closed":        "=== c\n> version\n< VERSION <any>\nexpect-closed\n",
		"closed-unexpected": "=== c\n> quit\n< OK\n",
		"capture-mismatch":  "=== c\n> set self_e 0 0 1\n> x\n> gets self_e\n> set self_e 0 0 1\n> y\n> gets self_e\n< STORED\n< VALUE self_e 0 1 <cas>\n< x\n< END\n< STORED\n< VALUE self_e 0 1 <cas>\n< y\n< END\n",
		"stats-missing":     "=== c\n> stats\nexpect-stats pid no_such_stat\n",
		"not-stats":         "=== c\n> version\nexpect-stats pid\n",
		"stream-desync":     "=== c\n> set self_f 0 0 5\n> x\n",
	} {
		if msg := runExpectFailure(t, addr, script); msg == "" {
			t.Errorf("%s: wrong script passed", name)
		} else {
			t.Logf("%s: failed as it should:\n%s", name, msg)
		}
	}
}
