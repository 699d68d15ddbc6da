// Package crash holds crash-recovery tests on real sonaed processes: writes
// and deletes run while the process is killed with SIGKILL, and after a
// restart on the same data directory every acknowledged change must be there.
package crash
