// Package server composes a sonaed node: it opens the storage engine and the
// kv store, listens on the client port, and runs one goroutine per connection
// that feeds the protocol parser and dispatches memcached and ROMA admin
// commands. It owns connection limits, idle timeouts, the memory budget for
// values in flight, the counters behind `stats` and `stat`, and graceful
// shutdown.
package server
