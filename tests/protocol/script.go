// Package protocoltest is a differential test suite for the memcached 1.6
// text protocol. Test cases live in testdata/*.txt (format: README.md) and
// are replayed byte-for-byte against a server with Run.
package protocoltest

import (
	"bufio"
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

//go:embed testdata/*.txt
var testdataFS embed.FS

// Tags selecting which targets run a case.
const (
	TagMemcachedOnly = "memcached-only"
	TagSonaeOnly     = "sonae-only"
)

// Targets accepted by Run.
const (
	TargetMemcached = "memcached"
	TargetSonae     = "sonae"
)

// opKind is the kind of one step of a case.
type opKind int

const (
	opSend         opKind = iota // append bytes to the pending write
	opSplit                      // write the pending bytes now, as their own write
	opSendBytewise               // write each byte in its own write
	opExpect                     // read and match a pattern
	opExpectClosed               // the server must close the connection
	opExpectStats                // a STAT ... END block containing the named stats
)

// segKind is the kind of a pattern segment.
type segKind int

const (
	segLit segKind = iota // literal bytes
	segNum                // <num>: one or more ASCII digits
	segAny                // <any>: zero or more bytes other than \r and \n
	segVar                // <name>: digits, captured on first use, must be equal afterwards
)

type segment struct {
	kind segKind
	lit  []byte
	name string
}

// step is one executable line of a case.
type step struct {
	kind  opKind
	segs  []segment // payload for send/expect
	stats []string  // names for opExpectStats
	line  int
}

// Case is one parsed test case.
type Case struct {
	Name   string
	File   string
	Line   int
	Tags   []string
	NoSync bool
	steps  []step
}

// HasTag reports whether the case carries tag.
func (c *Case) HasTag(tag string) bool {
	for _, t := range c.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// RunsOn reports whether the case is selected for target.
func (c *Case) RunsOn(target string) bool {
	switch target {
	case TargetMemcached:
		return !c.HasTag(TagSonaeOnly)
	case TargetSonae:
		return !c.HasTag(TagMemcachedOnly)
	}
	return false
}

// LoadCases parses every embedded testdata/*.txt file, in file-name order.
func LoadCases() ([]*Case, error) {
	names, err := fs.Glob(testdataFS, "testdata/*.txt")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var all []*Case
	seen := map[string]string{}
	for _, n := range names {
		data, err := testdataFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		cases, err := ParseScript(path.Base(n), data)
		if err != nil {
			return nil, err
		}
		for _, c := range cases {
			if prev, dup := seen[c.Name]; dup {
				return nil, fmt.Errorf("%s:%d: duplicate case name %q (first in %s)", c.File, c.Line, c.Name, prev)
			}
			seen[c.Name] = fmt.Sprintf("%s:%d", c.File, c.Line)
		}
		all = append(all, cases...)
	}
	return all, nil
}

var caseNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// ParseScript parses one script file. file is used in error messages only.
func ParseScript(file string, data []byte) ([]*Case, error) {
	var (
		cases []*Case
		cur   *Case
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSuffix(sc.Text(), "\r")
		errf := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: %s", file, lineNo, fmt.Sprintf(format, args...))
		}
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "===") {
			name := strings.TrimSpace(strings.TrimPrefix(line, "==="))
			if !caseNameRE.MatchString(name) {
				return nil, errf("bad case name %q", name)
			}
			cur = &Case{Name: name, File: file, Line: lineNo}
			cases = append(cases, cur)
			continue
		}
		if cur == nil {
			return nil, errf("statement outside of a case (start cases with '=== name')")
		}
		op, payload, hasPayload := strings.Cut(line, " ")
		switch op {
		case ">", ">>", "send-bytewise":
			if !hasPayload && op != ">" {
				return nil, errf("%s needs a payload", op)
			}
			segs, err := parsePayload(payload, false)
			if err != nil {
				return nil, errf("%v", err)
			}
			kind := opSend
			if op == "send-bytewise" {
				kind = opSendBytewise
				if hasVar(segs) {
					return nil, errf("send-bytewise cannot use captured values")
				}
			}
			if op == ">" {
				segs = append(segs, segment{kind: segLit, lit: []byte("\r\n")})
			}
			cur.steps = append(cur.steps, step{kind: kind, segs: segs, line: lineNo})
		case "<", "<<":
			if !hasPayload && op != "<" {
				return nil, errf("%s needs a payload", op)
			}
			segs, err := parsePayload(payload, true)
			if err != nil {
				return nil, errf("%v", err)
			}
			if op == "<" {
				segs = append(segs, segment{kind: segLit, lit: []byte("\r\n")})
			}
			cur.steps = append(cur.steps, step{kind: opExpect, segs: mergeLits(segs), line: lineNo})
		case "split":
			cur.steps = append(cur.steps, step{kind: opSplit, line: lineNo})
		case "expect-closed":
			cur.steps = append(cur.steps, step{kind: opExpectClosed, line: lineNo})
		case "expect-stats":
			names := strings.Fields(payload)
			if len(names) == 0 {
				return nil, errf("expect-stats needs at least one stat name")
			}
			cur.steps = append(cur.steps, step{kind: opExpectStats, stats: names, line: lineNo})
		case "tags":
			for _, t := range strings.Fields(payload) {
				if t != TagMemcachedOnly && t != TagSonaeOnly {
					return nil, errf("unknown tag %q", t)
				}
				cur.Tags = append(cur.Tags, t)
			}
		case "nosync":
			cur.NoSync = true
		default:
			return nil, errf("unknown statement %q", op)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	for _, c := range cases {
		if len(c.steps) == 0 {
			return nil, fmt.Errorf("%s:%d: case %q has no steps", c.File, c.Line, c.Name)
		}
		if c.HasTag(TagMemcachedOnly) && c.HasTag(TagSonaeOnly) {
			return nil, fmt.Errorf("%s:%d: case %q is both memcached-only and sonae-only", c.File, c.Line, c.Name)
		}
		for i, s := range c.steps {
			if s.kind == opExpectClosed && i != len(c.steps)-1 {
				return nil, fmt.Errorf("%s:%d: expect-closed must be the last step", c.File, s.line)
			}
		}
	}
	return cases, nil
}

func hasVar(segs []segment) bool {
	for _, s := range segs {
		if s.kind != segLit {
			return true
		}
	}
	return false
}

func mergeLits(segs []segment) []segment {
	var out []segment
	for _, s := range segs {
		if s.kind == segLit && len(out) > 0 && out[len(out)-1].kind == segLit {
			out[len(out)-1].lit = append(out[len(out)-1].lit, s.lit...)
			continue
		}
		if s.kind == segLit {
			s.lit = append([]byte(nil), s.lit...)
		}
		out = append(out, s)
	}
	return out
}

var placeholderRE = regexp.MustCompile(`^<([a-z][a-z0-9_]*)>`)
var repeatRE = regexp.MustCompile(`^\{\{([0-9]+)\*`)

// parsePayload turns the textual payload into segments. Escapes: \r \n \t
// \0 \s (space) \\ \< \{ \xHH. {{N*text}} repeats text (which may itself
// contain escapes) N times. <name> is a placeholder; <num> and <any> are
// only valid in expectations.
func parsePayload(s string, expect bool) ([]segment, error) {
	var segs []segment
	var lit []byte
	flush := func() {
		if len(lit) > 0 {
			segs = append(segs, segment{kind: segLit, lit: lit})
			lit = nil
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("dangling backslash")
			}
			e := s[i+1]
			i += 2
			switch e {
			case 'r':
				lit = append(lit, '\r')
			case 'n':
				lit = append(lit, '\n')
			case 't':
				lit = append(lit, '\t')
			case '0':
				lit = append(lit, 0)
			case 's':
				lit = append(lit, ' ')
			case '\\', '<', '{':
				lit = append(lit, e)
			case 'x':
				if i+2 > len(s) {
					return nil, fmt.Errorf("short \\x escape")
				}
				v, err := strconv.ParseUint(s[i:i+2], 16, 8)
				if err != nil {
					return nil, fmt.Errorf("bad \\x escape %q", s[i:i+2])
				}
				lit = append(lit, byte(v))
				i += 2
			default:
				return nil, fmt.Errorf("unknown escape \\%c", e)
			}
		case c == '{' && repeatRE.MatchString(s[i:]):
			m := repeatRE.FindStringSubmatch(s[i:])
			n, err := strconv.Atoi(m[1])
			if err != nil || n < 0 || n > 64<<20 {
				return nil, fmt.Errorf("bad repeat count %q", m[1])
			}
			end := strings.Index(s[i+len(m[0]):], "}}")
			if end < 0 {
				return nil, fmt.Errorf("unterminated {{N*text}}")
			}
			inner := s[i+len(m[0]) : i+len(m[0])+end]
			innerSegs, err := parsePayload(inner, false)
			if err != nil {
				return nil, err
			}
			if hasVar(innerSegs) || len(innerSegs) != 1 {
				return nil, fmt.Errorf("{{N*text}} needs non-empty literal text")
			}
			lit = append(lit, bytes.Repeat(innerSegs[0].lit, n)...)
			i += len(m[0]) + end + 2
		case c == '<' && placeholderRE.MatchString(s[i:]):
			m := placeholderRE.FindStringSubmatch(s[i:])
			name := m[1]
			flush()
			switch name {
			case "num", "any":
				if !expect {
					return nil, fmt.Errorf("<%s> is only allowed in expectations", name)
				}
				k := segNum
				if name == "any" {
					k = segAny
				}
				segs = append(segs, segment{kind: k})
			default:
				segs = append(segs, segment{kind: segVar, name: name})
			}
			i += len(m[0])
		default:
			lit = append(lit, c)
			i++
		}
	}
	flush()
	return segs, nil
}

// quote renders bytes readably for failure messages, using the script escapes.
func quote(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		switch {
		case c == '\r':
			sb.WriteString(`\r`)
		case c == '\n':
			sb.WriteString(`\n` + "\n\t")
		case c == '\t':
			sb.WriteString(`\t`)
		case c == '\\':
			sb.WriteString(`\\`)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&sb, `\x%02x`, c)
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

// describe renders a pattern for failure messages.
func describe(segs []segment, vars map[string]string) string {
	var sb strings.Builder
	for _, s := range segs {
		switch s.kind {
		case segLit:
			sb.WriteString(quote(s.lit))
		case segNum:
			sb.WriteString("<num>")
		case segAny:
			sb.WriteString("<any>")
		case segVar:
			if v, ok := vars[s.name]; ok {
				fmt.Fprintf(&sb, "<%s=%s>", s.name, v)
			} else {
				fmt.Fprintf(&sb, "<%s>", s.name)
			}
		}
	}
	return sb.String()
}
