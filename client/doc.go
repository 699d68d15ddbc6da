// Package client is sonae's Go client: one connection speaking the memcached
// text protocol and sonae's ROMA-style admin commands. It is what the sonae
// CLI and the benchmark use. A Conn is not safe for concurrent use; open one
// per goroutine.
package client
