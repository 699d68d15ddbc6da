// Package testutil holds the helpers every package's tests share: a logger
// that writes to t.Log, and a poller that waits for a condition instead of
// sleeping for a guessed time. It imports only the standard library, so any
// package's internal tests can use it without an import cycle. Only tests
// (and the test harness in internal/testcluster) import it.
package testutil
