package datadriven

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Rewrite is the -rewrite flag: regenerate the expected blocks of the
// scripts from the actual output instead of checking them.
var Rewrite = flag.Bool("rewrite", false, "rewrite the expected output of data-driven test scripts")

// TestData is one case of a script.
type TestData struct {
	Pos      string   // file:line of the command
	Cmd      string   // the first word of the command line
	CmdArgs  []CmdArg // the rest of the command line, in order
	Input    string   // the lines between the command and "----"
	Expected string   // the expected block, without its final newline

	// Err is the first bad argument met by Int or Uint; the test function
	// may set it too. The package itself never reads it.
	Err error

	line             string // the command line as written
	expStart, expEnd int    // the expected block: lines[expStart:expEnd]
}

// CmdArg is one argument: a word (Key alone) or Key=Val.
type CmdArg struct {
	Key    string
	Val    string // unquoted
	HasVal bool
}

// Arg returns the value of the last key=value argument named key.
func (d *TestData) Arg(key string) (string, bool) {
	for i := len(d.CmdArgs) - 1; i >= 0; i-- {
		if a := d.CmdArgs[i]; a.HasVal && a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

// Words returns the arguments without a value, in order.
func (d *TestData) Words() []string {
	var ws []string
	for _, a := range d.CmdArgs {
		if !a.HasVal {
			ws = append(ws, a.Key)
		}
	}
	return ws
}

// HasWord reports whether w is one of the arguments without a value.
func (d *TestData) HasWord(w string) bool { return slices.Contains(d.Words(), w) }

// Str returns the value of key, or def without one.
func (d *TestData) Str(key, def string) string {
	if v, ok := d.Arg(key); ok {
		return v
	}
	return def
}

// Int returns the value of key as an int64, or def without one. A bad
// number sets Err (unless already set).
func (d *TestData) Int(key string, def int64) int64 {
	return scanArg(d, key, def, func(v string) (int64, error) { return strconv.ParseInt(v, 10, 64) })
}

// Uint returns the value of key as an unsigned integer of the given bit
// size, or def without one. A bad number sets Err (unless already set).
func (d *TestData) Uint(key string, def uint64, bits int) uint64 {
	return scanArg(d, key, def, func(v string) (uint64, error) { return strconv.ParseUint(v, 10, bits) })
}

func scanArg[T any](d *TestData, key string, def T, parse func(string) (T, error)) T {
	v, ok := d.Arg(key)
	if !ok {
		return def
	}
	n, err := parse(v)
	if err != nil && d.Err == nil {
		d.Err = fmt.Errorf("bad %s=%q", key, v)
	}
	return n
}

// Walk runs f as a subtest, named after the file, for every dir/*.txt in
// name order. It fails if there are none.
func Walk(t *testing.T, dir string, f func(t *testing.T, path string)) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("datadriven: no scripts %s/*.txt (%v)", dir, err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { f(t, file) })
	}
}

// RunTest runs the cases of the script at path in order through f and
// reports every output that differs from its expected block. With -rewrite
// the first RunTest of path in this test binary rewrites the file instead;
// see the package comment.
func RunTest(t testing.TB, path string, f func(t testing.TB, d *TestData) string) {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("datadriven: %v", err)
	}
	lines, cases, err := parse(path, string(src))
	if err != nil {
		t.Fatalf("datadriven: %v", err)
	}
	rewrite := *Rewrite && claim(path)
	outs := make([]string, len(cases))
	for i, d := range cases {
		outs[i] = f(t, d)
		if !rewrite && outs[i] != d.Expected {
			t.Errorf("%s: %s\n got:\n%s\nwant:\n%s", d.Pos, d.line, outs[i], d.Expected)
		}
	}
	if !rewrite {
		return
	}
	var b []string
	prev := 0
	for i, d := range cases {
		b = append(b, lines[prev:d.expStart]...)
		if outs[i] != "" {
			out := strings.Split(outs[i], "\n")
			for _, l := range out {
				if l == "" {
					t.Fatalf("datadriven: %s: %s: output has a blank line, which a script cannot hold:\n%s", d.Pos, d.line, outs[i])
				}
			}
			b = append(b, out...)
		}
		prev = d.expEnd
	}
	b = append(b, lines[prev:]...)
	if out := strings.Join(b, "\n"); out != string(src) {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatalf("datadriven: %v", err)
		}
	}
}

// rewritten holds the absolute paths of the files rewritten so far.
var rewritten sync.Map

// claim reports whether this is the first rewriting run of path.
func claim(path string) bool {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	_, done := rewritten.LoadOrStore(path, true)
	return !done
}

func blank(l string) bool { return strings.TrimSpace(l) == "" }

// parse splits a script into its lines and cases; name is used in errors.
func parse(name, src string) (lines []string, cases []*TestData, err error) {
	lines = strings.Split(src, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if blank(l) || strings.HasPrefix(l, "#") {
			continue
		}
		d := &TestData{Pos: fmt.Sprintf("%s:%d", name, i+1), line: l}
		if d.Cmd, d.CmdArgs, err = parseLine(l); err != nil {
			return nil, nil, fmt.Errorf("%s: %v", d.Pos, err)
		}
		j := i + 1
		for j < len(lines) && lines[j] != "----" && !blank(lines[j]) {
			j++
		}
		if j == len(lines) || lines[j] != "----" {
			return nil, nil, fmt.Errorf("%s: command %q not followed by ----", d.Pos, l)
		}
		d.Input = strings.Join(lines[i+1:j], "\n")
		d.expStart, d.expEnd = j+1, j+1
		for d.expEnd < len(lines) && lines[d.expEnd] != "" {
			d.expEnd++
		}
		d.Expected = strings.Join(lines[d.expStart:d.expEnd], "\n")
		cases = append(cases, d)
		i = d.expEnd
	}
	return lines, cases, nil
}

// parseLine splits a command line into the command and its arguments.
func parseLine(line string) (cmd string, args []CmdArg, err error) {
	toks, err := tokenize(line)
	if err != nil {
		return "", nil, err
	}
	if len(toks) == 0 {
		return "", nil, errors.New("empty command line")
	}
	for _, tok := range toks[1:] {
		if strings.HasPrefix(tok, `"`) {
			w, err := strconv.Unquote(tok)
			if err != nil {
				return "", nil, fmt.Errorf("bad quoted word %s", tok)
			}
			args = append(args, CmdArg{Key: w})
			continue
		}
		k, v, ok := strings.Cut(tok, "=")
		if !ok {
			args = append(args, CmdArg{Key: tok})
			continue
		}
		if strings.HasPrefix(v, `"`) {
			if v, err = strconv.Unquote(v); err != nil {
				return "", nil, fmt.Errorf("bad quoted value in %s", tok)
			}
		}
		args = append(args, CmdArg{Key: k, Val: v, HasVal: true})
	}
	return toks[0], args, nil
}

// tokenize splits on spaces and tabs outside double quotes; a backslash
// inside quotes escapes the next character.
func tokenize(s string) ([]string, error) {
	var toks []string
	var cur strings.Builder
	inQuote, escaped := false, false
	for _, r := range s {
		switch {
		case escaped:
			escaped = false
		case inQuote && r == '\\':
			escaped = true
		case r == '"':
			inQuote = !inQuote
		case (r == ' ' || r == '\t') && !inQuote:
			if cur.Len() > 0 {
				toks = append(toks, cur.String())
				cur.Reset()
			}
			continue
		}
		cur.WriteRune(r)
	}
	if inQuote {
		return nil, errors.New("unterminated quote")
	}
	if cur.Len() > 0 {
		toks = append(toks, cur.String())
	}
	return toks, nil
}
