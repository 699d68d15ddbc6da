// Command sonaed runs one sonae node: a memcached-compatible server with ROMA
// admin commands on one port. With no arguments it runs with the embedded
// defaults (127.0.0.1:11211, pebble in ./sonae-data).
package main
