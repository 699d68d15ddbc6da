// Package lint holds no code: its tests check the whole module's layout and
// hygiene, as pebble's internal/lint does. They parse every Go file of the
// module with go/parser (no build, no network) and enforce:
//
//   - import rules: each package may import only the internal packages its
//     entry in importRules lists, so dependencies point downward; a package
//     without an entry fails, so every new package gets a rule;
//   - a doc.go with a package comment in every package directory;
//   - no non-test file longer than maxFileLines lines;
//   - no fmt.Print*, log.Print* (or log.Fatal*, log.Panic*, print, println)
//     outside cmd/ and tests: libraries log through an injected slog.Logger;
//   - no time.Sleep in test code (tests poll a condition instead), except in
//     the functions listed in sleepAllowed.
//
// Each checker is a function over parsed files, and each has a unit test
// that feeds it a small violating input, so a checker that silently stops
// finding anything fails too. internal/zzprof (a local, untracked profiling
// helper) is excluded from every check.
package lint
