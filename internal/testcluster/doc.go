// Package testcluster runs real sonaed processes for tests: it builds the
// binary once per test process, starts nodes on loopback ports with their own
// data directories, waits for readiness by polling, and injects faults
// (kill -9, SIGSTOP/SIGCONT, graceful stop, restart on the same data). Only
// tests import it.
package testcluster
