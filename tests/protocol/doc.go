// Package protocoltest holds byte-exact request/reply transcripts recorded
// from a real memcached 1.6.18 (testdata/*.txt) and the runner that replays
// them against any server: TestMemcachedReference keeps them true to
// memcached, and internal/server replays them against sonae. README.md
// documents the script format; BEHAVIOUR.md what was learned by probing.
package protocoltest
