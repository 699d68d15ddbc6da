// Package clustertest holds the black-box tests of sonae clusters: real
// sonaed processes started by internal/testcluster on 127.0.0.x addresses,
// driven over the memcached text protocol. They check the seed-001
// walk-through, forwarding of every command, namespaces across nodes, the
// Raft store across restarts, and linearizability (porcupine) while a
// secondary is killed and restarted. SONAE_SOAK scales the fault runs.
package clustertest
