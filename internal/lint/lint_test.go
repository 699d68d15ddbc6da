package lint

import (
	"bufio"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// importRule is what one package may import from this module.
type importRule struct {
	// allow lists the module-relative directories the package may import.
	allow []string
	// any lets the package import every package of the module (tests).
	any bool
}

// importRules maps every package directory (relative to the module root) to
// the internal packages its non-test files may import. Dependencies point
// downward: leaves import nothing of ours; only cmd/ and tests/ sit on top.
// A key ending in "/..." covers every package below that directory. Test
// files are not checked: a _test.go file may import what it needs (cmd/sonae
// tests run an in-process server, for example).
var importRules = map[string]importRule{
	// Clock interface, real and fake clocks: a leaf everyone may use.
	"internal/clock": {},
	// Key hash -> vnode: pure and deterministic, a leaf.
	"internal/routing": {},
	// memcached text protocol parser and encoder: a leaf (no net, no kv).
	"internal/protocol": {},
	// Config struct, defaults, validation, YAML; it checks event handler
	// specs with the events parser.
	"internal/config": {allow: []string{"internal/events"}},
	// Engines and the Engine interface: knows nothing of items, routing or
	// the server.
	"internal/storage": {},
	// hashicorp/raft wiring, bbolt LogStore/StableStore, hclog adapter: a leaf.
	"internal/consensus": {},
	// serf/memberlist wiring behind sonae types (events, tags, queries); its
	// gossip streams may ride the shared port through netmux.
	"internal/membership": {allow: []string{"internal/netmux"}},
	// First-byte split of the node's one TCP port by traffic kind: a leaf.
	"internal/netmux": {},
	// memcached item semantics over an Engine.
	"internal/kv": {allow: []string{"internal/clock", "internal/routing", "internal/storage"}},
	// Raft state machine of the cluster metadata: pure data over routing.
	"internal/meta": {allow: []string{"internal/routing", "internal/storage"}},
	// In-cluster data path: forwarding, sync replication, catch-up.
	"internal/replication": {allow: []string{
		"internal/clock", "internal/kv", "internal/meta", "internal/routing", "internal/storage",
	}},
	// The Raft leader's decisions, over the metadata; Raft and gossip come
	// in as interfaces.
	"internal/controller": {allow: []string{"internal/clock", "internal/meta", "internal/routing"}},
	// Serf-compatible event handler scripts and the live-node-list file:
	// a leaf that knows nothing of serf (the server translates events).
	"internal/events": {},
	// Composes a node: listeners, cluster machinery, dispatch onto the data
	// path.
	"internal/server": {allow: []string{
		"internal/config", "internal/clock", "internal/kv", "internal/protocol",
		"internal/storage", "internal/routing", "internal/meta", "internal/consensus",
		"internal/membership", "internal/netmux", "internal/replication", "internal/controller",
		"internal/events",
	}},
	// Load generator over raw sockets: independent of the server's code.
	"internal/bench": {},
	// Test harness: real sonaed processes (over sockets only) and in-process
	// nodes (server.Start). Only tests import it, so it may sit on top.
	"internal/testcluster": {allow: []string{"internal/config", "internal/clock", "internal/server", "internal/testutil"}},
	// Text-protocol client copied into the docker test image: stdlib only.
	"internal/testcluster/dockerclient": {},
	// Shared test helpers (t.Log logger, polling): a leaf, imported by tests.
	"internal/testutil": {},
	// Lint-as-tests; its only non-test file is doc.go.
	"internal/lint": {},
	// Script runner for data-driven tests (storage, kv): a leaf. Only
	// _test.go files import it (it registers the -rewrite flag).
	"internal/datadriven": {},
	// History recorder, porcupine model and lost-write check: a leaf, only tests import it.
	"internal/histcheck": {},
	// The public Go client: must not depend on anything internal.
	"client": {},
	// The admin CLI talks to nodes over the wire only: never server, kv or
	// storage.
	"cmd/sonae": {allow: []string{"client", "internal/bench"}},
	// The daemon: flags and config, then server.Start.
	"cmd/sonaed": {allow: []string{"internal/config", "internal/clock", "internal/server"}},
	// Black-box and crash tests and their helpers sit on top of everything.
	"tests/...": {any: true},
}

// excludedDirs are skipped by every check.
var excludedDirs = map[string]string{
	"internal/zzprof": "local, untracked profiling helper",
}

// maxFileLines bounds non-test files: split a longer file by concern.
const maxFileLines = 800

// sleepAllowed lists the test functions ("file:func", "file:Type.method")
// that may call time.Sleep, each with the reason. Tests must poll a
// condition (see testutil.Eventually), not sleep for a guessed
// time. Entries starting with "TODO" are known violations kept visible here
// until they are fixed; an entry that no longer matches any call fails the
// test, so the list only shrinks.
var sleepAllowed = map[string]string{
	"internal/bench/bench_test.go:stallClient.Get":            "a fake server that stalls for a known time: the stall is what the test measures",
	"internal/testcluster/proc.go:Proc.WaitReady":             "polls the node until it answers",
	"internal/storage/persist_test.go:TestPebbleMachineCrash": "poll loop with a deadline on walfs.unsynced()",
	"internal/storage/walfs_test.go:TestWALFSBackground":      "poll loop with a deadline on the sync count",
	"tests/protocol/run.go:session.flush":                     "paces split writes so the server sees separate reads (SplitPause)",
	"tests/crash/kill_test.go:waitForAcks":                    "polls the acknowledged-write count until the kill may land",
	"tests/cluster/failover_test.go:writeWindow":              "polls writes until one is stored; the pace is the measurement's resolution",
}

// docAllowed lists package directories allowed to lack a doc.go (or its
// package comment). Same rules as sleepAllowed: TODO entries are known
// violations, stale entries fail.
var docAllowed = map[string]string{}

// goFile is one parsed Go file.
type goFile struct {
	rel   string // slash path relative to the module root
	dir   string // package directory, relative ("" for the root)
	test  bool   // a _test.go file
	lines int
	ast   *ast.File
	fset  *token.FileSet
}

// module is the parsed module.
type module struct {
	path  string // module path from go.mod
	files []*goFile
}

var (
	loadOnce sync.Once
	loaded   *module
	loadErr  error
)

// loadModule parses every Go file of the module containing the working
// directory, once per test binary.
func loadModule(t *testing.T) *module {
	t.Helper()
	loadOnce.Do(func() { loaded, loadErr = parseModule() })
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return loaded
}

func parseModule() (*module, error) {
	root, modPath, err := findModule()
	if err != nil {
		return nil, err
	}
	m := &module{path: modPath}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			name := d.Name()
			switch {
			case rel == ".":
				return nil
			case strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor":
				return filepath.SkipDir
			case excludedDirs[rel] != "":
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
				return filepath.SkipDir // a nested module
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		f, err := parseFile(fset, rel, src)
		if err != nil {
			return err
		}
		m.files = append(m.files, f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(m.files) == 0 {
		return nil, errors.New("lint: no Go files found")
	}
	return m, nil
}

func parseFile(fset *token.FileSet, rel string, src []byte) (*goFile, error) {
	f, err := parser.ParseFile(fset, rel, src, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	dir := path.Dir(rel)
	if dir == "." {
		dir = ""
	}
	return &goFile{
		rel: rel, dir: dir, test: strings.HasSuffix(rel, "_test.go"),
		lines: fset.File(f.Pos()).LineCount(), ast: f, fset: fset,
	}, nil
}

// findModule walks up from the working directory to go.mod.
func findModule() (root, modPath string, err error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", "", err
	}
	for {
		f, err := os.Open(filepath.Join(dir, "go.mod"))
		if err == nil {
			defer f.Close()
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
					return dir, strings.Trim(strings.TrimSpace(rest), `"`), nil
				}
			}
			return "", "", fmt.Errorf("lint: no module line in %s/go.mod", dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", "", errors.New("lint: go.mod not found")
		}
		dir = parent
	}
}

// violation is one finding. key identifies it for the allow lists.
type violation struct {
	pos string // file:line or directory
	key string
	msg string
}

func (v violation) String() string { return v.pos + ": " + v.msg }

// checkAll reports the violations not in allowed, and the allowed entries
// that matched nothing (stale), as test errors.
func checkAll(t *testing.T, vs []violation, allowed map[string]string) {
	t.Helper()
	for _, e := range filterAllowed(vs, allowed) {
		t.Error(e)
	}
}

// filterAllowed returns the violations not in allowed, and one complaint
// per allowed entry that matched nothing.
func filterAllowed(vs []violation, allowed map[string]string) []string {
	var out []string
	used := map[string]bool{}
	for _, v := range vs {
		if _, ok := allowed[v.key]; ok {
			used[v.key] = true
			continue
		}
		out = append(out, v.String())
	}
	for _, k := range sortedKeys(allowed) {
		if !used[k] {
			out = append(out, fmt.Sprintf("allow-list entry %q matches nothing any more: remove it from internal/lint/lint_test.go", k))
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// ruleFor finds the rule of a package directory: an exact entry, else the
// longest "dir/..." entry above it.
func ruleFor(rules map[string]importRule, dir string) (importRule, string, bool) {
	if r, ok := rules[dir]; ok {
		return r, dir, true
	}
	best := ""
	for k := range rules {
		if prefix, ok := strings.CutSuffix(k, "/..."); ok && (dir == prefix || strings.HasPrefix(dir, prefix+"/")) && len(k) > len(best) {
			best = k
		}
	}
	if best == "" {
		return importRule{}, "", false
	}
	return rules[best], best, true
}

// checkImports enforces rules on the non-test files.
func checkImports(modPath string, files []*goFile, rules map[string]importRule) []violation {
	var vs []violation
	missing := map[string]bool{}
	for _, f := range files {
		if f.test {
			continue
		}
		r, name, ok := ruleFor(rules, f.dir)
		if !ok {
			if !missing[f.dir] {
				missing[f.dir] = true
				vs = append(vs, violation{pos: f.dir, key: f.dir, msg: fmt.Sprintf(
					"package %s has no entry in importRules (internal/lint/lint_test.go): add one saying what it may import", pkgName(f.dir))})
			}
			continue
		}
		for _, imp := range f.ast.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			target, ok := internalTarget(modPath, p)
			if !ok || r.any || slices.Contains(r.allow, target) {
				continue
			}
			allowed := "nothing of this module"
			if len(r.allow) > 0 {
				allowed = strings.Join(r.allow, ", ")
			}
			vs = append(vs, violation{
				pos: f.fset.Position(imp.Pos()).String(), key: f.rel + ":" + p,
				msg: fmt.Sprintf("%s imports %s, but rule %q allows only: %s", f.rel, p, name, allowed),
			})
		}
	}
	return vs
}

func pkgName(dir string) string {
	if dir == "" {
		return "(module root)"
	}
	return dir
}

// internalTarget returns the module-relative directory of an import of
// this module.
func internalTarget(modPath, imp string) (string, bool) {
	if imp == modPath {
		return "", true
	}
	rest, ok := strings.CutPrefix(imp, modPath+"/")
	return rest, ok
}

// checkDocs wants a doc.go with a package comment in every directory that
// has non-test Go files; outside package main the comment must start with
// "Package <name>".
func checkDocs(files []*goFile) []violation {
	dirs := map[string]bool{}
	docs := map[string]*goFile{}
	for _, f := range files {
		if f.test {
			continue
		}
		dirs[f.dir] = true
		if path.Base(f.rel) == "doc.go" {
			docs[f.dir] = f
		}
	}
	var vs []violation
	for _, dir := range sortedKeys(dirs) {
		doc := docs[dir]
		switch {
		case doc == nil:
			vs = append(vs, violation{pos: pkgName(dir), key: dir, msg: "no doc.go: every package keeps its package comment in doc.go"})
		case doc.ast.Doc == nil:
			vs = append(vs, violation{pos: doc.rel, key: dir, msg: "doc.go has no package comment"})
		case doc.ast.Name.Name != "main" && !strings.HasPrefix(doc.ast.Doc.Text(), "Package "+doc.ast.Name.Name+" "):
			vs = append(vs, violation{pos: doc.rel, key: dir, msg: fmt.Sprintf("the package comment must start with %q", "Package "+doc.ast.Name.Name+" ")})
		}
	}
	return vs
}

// checkLength lists non-test files over max lines.
func checkLength(files []*goFile, max int) []violation {
	var vs []violation
	for _, f := range files {
		if !f.test && f.lines > max {
			vs = append(vs, violation{pos: f.rel, key: f.rel, msg: fmt.Sprintf("%d lines, over the limit of %d: split it by concern", f.lines, max)})
		}
	}
	return vs
}

// importNames maps the local names of a file's imports to their paths.
func importNames(f *ast.File) map[string]string {
	m := map[string]string{}
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		name := path.Base(p)
		if imp.Name != nil {
			name = imp.Name.Name
		}
		if name != "_" && name != "." {
			m[name] = p
		}
	}
	return m
}

// calls calls fn for every call of a package-level function (pkg path,
// function name) or builtin (pkg "") in f, with the enclosing function's
// name ("Type.method" for methods, "" outside functions).
func calls(f *ast.File, fn func(pkg, name, encl string, pos token.Pos)) {
	names := importNames(f)
	visit := func(encl string) func(ast.Node) bool {
		return func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			switch fun := call.Fun.(type) {
			case *ast.SelectorExpr:
				if id, ok := fun.X.(*ast.Ident); ok && names[id.Name] != "" {
					fn(names[id.Name], fun.Sel.Name, encl, call.Pos())
				}
			case *ast.Ident:
				fn("", fun.Name, encl, call.Pos())
			}
			return true
		}
	}
	for _, d := range f.Decls {
		encl := ""
		if fd, ok := d.(*ast.FuncDecl); ok {
			encl = fd.Name.Name
			if fd.Recv != nil && len(fd.Recv.List) == 1 {
				encl = recvName(fd.Recv.List[0].Type) + "." + encl
			}
		}
		ast.Inspect(d, visit(encl))
	}
}

func recvName(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.StarExpr:
		return recvName(x.X)
	case *ast.IndexExpr: // generic receiver T[P]
		return recvName(x.X)
	case *ast.IndexListExpr:
		return recvName(x.X)
	case *ast.Ident:
		return x.Name
	}
	return "?"
}

// printFuncs are the banned printing functions by package ("" = builtin).
var printFuncs = map[string][]string{
	"fmt": {"Print", "Printf", "Println"},
	"log": {"Print", "Printf", "Println", "Fatal", "Fatalf", "Fatalln", "Panic", "Panicf", "Panicln"},
	"":    {"print", "println"},
}

// checkPrints bans printing to stdout/stderr through fmt, log or builtins
// in non-test files outside cmd/: libraries log through slog.
func checkPrints(files []*goFile) []violation {
	var vs []violation
	for _, f := range files {
		if f.test || f.dir == "cmd" || strings.HasPrefix(f.dir, "cmd/") {
			continue
		}
		calls(f.ast, func(pkg, name, encl string, pos token.Pos) {
			if !slices.Contains(printFuncs[pkg], name) {
				return
			}
			what := name
			if pkg != "" {
				what = pkg + "." + name
			}
			vs = append(vs, violation{pos: f.fset.Position(pos).String(), key: f.rel + ":" + encl,
				msg: fmt.Sprintf("%s in library code: log through the injected *slog.Logger instead", what)})
		})
	}
	return vs
}

// isTestCode reports whether f is test code: a _test.go file, or any file
// of a test-only package (internal/testcluster, tests/...).
func isTestCode(f *goFile) bool {
	return f.test || f.dir == "internal/testcluster" || f.dir == "tests" || strings.HasPrefix(f.dir, "tests/")
}

// checkSleeps finds time.Sleep in test code.
func checkSleeps(files []*goFile) []violation {
	var vs []violation
	for _, f := range files {
		if !isTestCode(f) {
			continue
		}
		calls(f.ast, func(pkg, name, encl string, pos token.Pos) {
			if pkg != "time" || name != "Sleep" {
				return
			}
			vs = append(vs, violation{pos: f.fset.Position(pos).String(), key: f.rel + ":" + encl,
				msg: fmt.Sprintf("time.Sleep in %s: poll the condition you are waiting for (with a deadline) instead", encl)})
		})
	}
	return vs
}

func TestImports(t *testing.T) {
	m := loadModule(t)
	checkAll(t, checkImports(m.path, m.files, importRules), nil)
	// Every rule must name a package that exists, and allow only packages
	// that exist, so the table does not rot.
	dirs := map[string]bool{}
	for _, f := range m.files {
		dirs[f.dir] = true
	}
	for _, name := range sortedKeys(importRules) {
		prefix, wild := strings.CutSuffix(name, "/...")
		if !wild && !dirs[name] {
			t.Errorf("importRules has an entry for %s, which has no Go files: remove it", name)
		}
		if wild && !slices.ContainsFunc(sortedKeys(dirs), func(d string) bool { return strings.HasPrefix(d, prefix+"/") }) {
			t.Errorf("importRules has an entry for %s, which has no packages: remove it", name)
		}
		for _, a := range importRules[name].allow {
			if !dirs[a] {
				t.Errorf("importRules[%q] allows %s, which has no Go files", name, a)
			}
		}
	}
}

func TestDocFiles(t *testing.T) {
	m := loadModule(t)
	checkAll(t, checkDocs(m.files), docAllowed)
}

func TestFileLength(t *testing.T) {
	m := loadModule(t)
	checkAll(t, checkLength(m.files, maxFileLines), nil)
}

func TestNoPrint(t *testing.T) {
	m := loadModule(t)
	checkAll(t, checkPrints(m.files), nil)
}

func TestNoSleepInTests(t *testing.T) {
	m := loadModule(t)
	checkAll(t, checkSleeps(m.files), sleepAllowed)
}

func TestExcludedDirsSkipped(t *testing.T) {
	m := loadModule(t)
	for _, f := range m.files {
		for dir := range excludedDirs {
			if f.dir == dir || strings.HasPrefix(f.dir, dir+"/") {
				t.Errorf("%s was loaded, but %s is excluded", f.rel, dir)
			}
		}
	}
}

// ---- Each checker must be able to fail. ----

const fakeMod = "example.com/fake"

// fakeFiles parses an in-memory file set (path -> source).
func fakeFiles(t *testing.T, srcs map[string]string) []*goFile {
	t.Helper()
	fset := token.NewFileSet()
	var files []*goFile
	for _, rel := range sortedKeys(srcs) {
		f, err := parseFile(fset, rel, []byte(srcs[rel]))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}

// wantViolations checks that vs has exactly the keys want.
func wantViolations(t *testing.T, vs []violation, want ...string) {
	t.Helper()
	var got []string
	for _, v := range vs {
		got = append(got, v.key)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("got violations %q, want %q; all:\n%v", got, want, vs)
	}
}

func TestCheckImportsFails(t *testing.T) {
	rules := map[string]importRule{
		"internal/leaf": {},
		"internal/mid":  {allow: []string{"internal/leaf"}},
		"cmd/tool":      {allow: []string{"internal/mid"}},
		"tests/...":     {any: true},
	}
	files := fakeFiles(t, map[string]string{
		"internal/leaf/a.go":     "package leaf\nimport _ \"" + fakeMod + "/internal/mid\"\n", // upward
		"internal/mid/a.go":      "package mid\nimport (\n\t\"fmt\"\n\t_ \"" + fakeMod + "/internal/leaf\"\n)\nvar _ = fmt.Sprint\n",
		"internal/mid/b_test.go": "package mid\nimport _ \"" + fakeMod + "/cmd/tool\"\n",       // tests are free
		"cmd/tool/main.go":       "package main\nimport _ \"" + fakeMod + "/internal/leaf\"\n", // skips a level
		"tests/e2e/x.go":         "package e2e\nimport _ \"" + fakeMod + "/cmd/tool\"\n",
		"internal/new/a.go":      "package new\n", // no rule
		"internal/new/b.go":      "package new\n", // reported once
	})
	vs := checkImports(fakeMod, files, rules)
	wantViolations(t, vs,
		"internal/leaf/a.go:"+fakeMod+"/internal/mid",
		"cmd/tool/main.go:"+fakeMod+"/internal/leaf",
		"internal/new")
	for _, v := range vs {
		if v.key == "internal/leaf/a.go:"+fakeMod+"/internal/mid" &&
			(!strings.Contains(v.msg, "internal/leaf/a.go") || !strings.Contains(v.msg, `rule "internal/leaf"`)) {
			t.Errorf("message should name the file and the rule: %s", v)
		}
	}
}

func TestCheckDocsFails(t *testing.T) {
	files := fakeFiles(t, map[string]string{
		"good/doc.go":         "// Package good is fine.\npackage good\n",
		"good/a.go":           "package good\n",
		"nodoc/a.go":          "// Package nodoc has its comment in the wrong file.\npackage nodoc\n",
		"nocomment/doc.go":    "package nocomment\n",
		"wrongname/doc.go":    "// Package other is misnamed.\npackage wrongname\n",
		"cmd/x/doc.go":        "// Command x does things.\npackage main\n",
		"onlytests/a_test.go": "package onlytests\n",
	})
	wantViolations(t, checkDocs(files), "nodoc", "nocomment", "wrongname")
}

func TestCheckLengthFails(t *testing.T) {
	long := "package p\n" + strings.Repeat("// line\n", 10)
	files := fakeFiles(t, map[string]string{
		"p/long.go":      long,
		"p/short.go":     "package p\n",
		"p/long_test.go": long,
	})
	wantViolations(t, checkLength(files, 10), "p/long.go")
}

func TestCheckPrintsFails(t *testing.T) {
	files := fakeFiles(t, map[string]string{
		"internal/p/a.go": `package p
import (
	"fmt"
	stdlog "log"
	"log/slog"
)
func f() {
	fmt.Println("x")
	_ = fmt.Sprintf("ok")
	stdlog.Printf("x")
	slog.Info("ok")
}
func (t *T) g() { println("x") }
type T struct{}
`,
		"internal/p/a_test.go": "package p\nimport \"fmt\"\nfunc h() { fmt.Println() }\n",
		"cmd/tool/main.go":     "package main\nimport \"fmt\"\nfunc main() { fmt.Println() }\n",
	})
	wantViolations(t, checkPrints(files), "internal/p/a.go:f", "internal/p/a.go:f", "internal/p/a.go:T.g")
}

func TestCheckSleepsFails(t *testing.T) {
	files := fakeFiles(t, map[string]string{
		"internal/p/a_test.go": `package p
import (
	"testing"
	"time"
)
func TestX(t *testing.T) { time.Sleep(time.Second) }
func poll() {
	go func() { time.Sleep(1) }()
}
`,
		"internal/p/a.go":           "package p\nimport \"time\"\nfunc backoff() { time.Sleep(1) }\n",
		"internal/testcluster/p.go": "package testcluster\nimport t \"time\"\ntype P struct{}\nfunc (p *P) wait() { t.Sleep(1) }\n",
		"tests/e2e/helper.go":       "package e2e\nimport \"time\"\nfunc wait() { time.Sleep(1) }\n",
	})
	vs := checkSleeps(files)
	wantViolations(t, vs, "internal/p/a_test.go:TestX", "internal/p/a_test.go:poll",
		"internal/testcluster/p.go:P.wait", "tests/e2e/helper.go:wait")
}

func TestFilterAllowedReportsStaleEntries(t *testing.T) {
	vs := []violation{
		{pos: "a.go:1", key: "a.go:f", msg: "allowed"},
		{pos: "a.go:2", key: "a.go:g", msg: "not allowed"},
	}
	got := filterAllowed(vs, map[string]string{"a.go:f": "ok", "b.go:h": "stale"})
	want := []string{
		"a.go:2: not allowed",
		`allow-list entry "b.go:h" matches nothing any more: remove it from internal/lint/lint_test.go`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
