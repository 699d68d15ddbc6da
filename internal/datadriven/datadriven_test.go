package datadriven

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	errs  []string
	fatal bool
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	r.fatal = true
	runtime.Goexit()
}

// record runs RunTest against a recorder, with -rewrite set to rewrite.
func record(t *testing.T, path string, rewrite bool, f func(testing.TB, *TestData) string) *recorder {
	t.Helper()
	old := *Rewrite
	*Rewrite = rewrite
	defer func() { *Rewrite = old }()
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		RunTest(r, path, f)
	}()
	<-done
	return r
}

func writeFile(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "script.txt")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// outputs answers each command with the given output, by command name.
func outputs(m map[string]string) func(testing.TB, *TestData) string {
	return func(_ testing.TB, d *TestData) string { return m[d.Cmd] }
}

const script = `# leading comment

one
----
1

# between cases
two key=v
----
2a
2b

three
----
`

func TestRunTestPasses(t *testing.T) {
	path := writeFile(t, script)
	r := record(t, path, false, outputs(map[string]string{"one": "1", "two": "2a\n2b", "three": ""}))
	if len(r.errs) != 0 || r.fatal {
		t.Fatalf("unexpected failures: %q", r.errs)
	}
}

func TestRunTestFailsOnMismatch(t *testing.T) {
	path := writeFile(t, script)
	r := record(t, path, false, outputs(map[string]string{"one": "1", "two": "2a\n2c", "three": "x"}))
	if r.fatal || len(r.errs) != 2 {
		t.Fatalf("want two non-fatal errors, got fatal=%v %q", r.fatal, r.errs)
	}
	want := path + ":8: two key=v\n got:\n2a\n2c\nwant:\n2a\n2b"
	if r.errs[0] != want {
		t.Errorf("error:\n%s\nwant:\n%s", r.errs[0], want)
	}
	if !strings.HasPrefix(r.errs[1], path+":13: three\n") {
		t.Errorf("error: %s", r.errs[1])
	}
	if readFile(t, path) != script {
		t.Error("a checking run changed the file")
	}
}

func TestRunTestParseErrorIsFatal(t *testing.T) {
	path := writeFile(t, "# x\nset value=\"oops\n----\nok\n")
	r := record(t, path, false, outputs(nil))
	if !r.fatal || len(r.errs) != 1 || !strings.Contains(r.errs[0], path+":2: unterminated quote") {
		t.Fatalf("fatal=%v %q", r.fatal, r.errs)
	}
}

func TestRewrite(t *testing.T) {
	src := "# keep me\n\n\none\n----\nold\n\n\n# two blank lines above\ntwo\n----\n\nthree\n----\ngone\ngone too\n\n# trailer"
	path := writeFile(t, src)
	out := map[string]string{"one": "new", "two": "a\nb", "three": ""}
	r := record(t, path, true, outputs(out))
	if len(r.errs) != 0 || r.fatal {
		t.Fatalf("rewrite failed: %q", r.errs)
	}
	want := "# keep me\n\n\none\n----\nnew\n\n\n# two blank lines above\ntwo\n----\na\nb\n\nthree\n----\n\n# trailer"
	if got := readFile(t, path); got != want {
		t.Fatalf("rewritten:\n%q\nwant:\n%q", got, want)
	}

	// A later run of the same file, in the same binary, checks against the
	// rewritten expectations even with -rewrite.
	r = record(t, path, true, outputs(map[string]string{"one": "other", "two": "a\nb"}))
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], ":4: one\n") {
		t.Fatalf("second run: %q", r.errs)
	}
	if readFile(t, path) != want {
		t.Fatal("second run rewrote the file")
	}
	if r = record(t, path, false, outputs(out)); len(r.errs) != 0 {
		t.Fatalf("checking the rewritten file: %q", r.errs)
	}
}

func TestRewriteRefusesBlankLines(t *testing.T) {
	path := writeFile(t, script)
	r := record(t, path, true, outputs(map[string]string{"one": "a\n\nb"}))
	if !r.fatal || len(r.errs) != 1 || !strings.Contains(r.errs[0], path+":3: one: output has a blank line") {
		t.Fatalf("fatal=%v %q", r.fatal, r.errs)
	}
	if readFile(t, path) != script {
		t.Error("file changed")
	}
}

func TestWalk(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"b.txt", "a.txt", "c.md"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("cmd\n----\nok\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	Walk(t, dir, func(t *testing.T, path string) {
		seen = append(seen, t.Name()+" "+filepath.Base(path))
		RunTest(t, path, func(testing.TB, *TestData) string { return "ok" })
	})
	if want := []string{"TestWalk/a.txt a.txt", "TestWalk/b.txt b.txt"}; !reflect.DeepEqual(seen, want) {
		t.Errorf("walked %q, want %q", seen, want)
	}
}

func TestParse(t *testing.T) {
	src := "# c\n" +
		"set key=k value=\"a b\\\" \\x00\" flags=3 delete \"quoted word\"\tx=a=b y=\n" +
		"in 1\n" +
		"in 2\n" +
		"----\n" +
		"out\n" +
		"\n" +
		"raw v=a\"b c\" \"\"\n" +
		"----"
	_, cases, err := parse("f.txt", src)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != 2 {
		t.Fatalf("%d cases", len(cases))
	}
	d := cases[0]
	wantArgs := []CmdArg{
		{Key: "key", Val: "k", HasVal: true},
		{Key: "value", Val: "a b\" \x00", HasVal: true},
		{Key: "flags", Val: "3", HasVal: true},
		{Key: "delete"},
		{Key: "quoted word"},
		{Key: "x", Val: "a=b", HasVal: true},
		{Key: "y", Val: "", HasVal: true},
	}
	if d.Pos != "f.txt:2" || d.Cmd != "set" || d.Input != "in 1\nin 2" || d.Expected != "out" ||
		!reflect.DeepEqual(d.CmdArgs, wantArgs) {
		t.Errorf("case 1: %+v", d)
	}
	d = cases[1]
	wantArgs = []CmdArg{{Key: "v", Val: `a"b c"`, HasVal: true}, {Key: ""}}
	if d.Pos != "f.txt:8" || d.Cmd != "raw" || d.Input != "" || d.Expected != "" || !reflect.DeepEqual(d.CmdArgs, wantArgs) {
		t.Errorf("case 2: %+v", d)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"a\n----\n\nset value=\"x\n----\n", `f.txt:4: unterminated quote`},
		{"# c\nset value=\"\\q\"\n----\n", `f.txt:2: bad quoted value in value="\q"`},
		{"set \"\\q\"\n----\n", `f.txt:1: bad quoted word "\q"`},
		{"\n\nget\n\n----\n", `f.txt:3: command "get" not followed by ----`},
		{"get\nin", `f.txt:1: command "get" not followed by ----`},
	} {
		if _, _, err := parse("f.txt", tc.src); err == nil || err.Error() != tc.want {
			t.Errorf("parse(%q) = %v, want %s", tc.src, err, tc.want)
		}
	}
}

func TestArgs(t *testing.T) {
	_, cases, err := parse("f", "c n=1 n=2 u=70000 i=x w1 s=\"q\" w2\n----\n")
	if err != nil {
		t.Fatal(err)
	}
	d := cases[0]
	if d.Int("n", 9) != 2 || d.Int("missing", 9) != 9 || d.Str("s", "") != "q" || d.Str("missing", "def") != "def" {
		t.Errorf("accessors: %+v", d)
	}
	if !d.HasWord("w2") || d.HasWord("n") || !reflect.DeepEqual(d.Words(), []string{"w1", "w2"}) {
		t.Errorf("words: %q", d.Words())
	}
	if d.Err != nil {
		t.Fatal(d.Err)
	}
	d.Uint("u", 0, 16)
	d.Int("i", 0)
	if d.Err == nil || d.Err.Error() != `bad u="70000"` {
		t.Errorf("Err = %v, want the first bad argument", d.Err)
	}
}
