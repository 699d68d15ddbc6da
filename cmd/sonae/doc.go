// Command sonae is the admin CLI of sonae: it talks to any node over the
// client port (memcached protocol plus ROMA-style admin commands), and
// generates load with `sonae bench`.
package main
