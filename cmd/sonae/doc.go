// Command sonae is the admin CLI of sonae: it talks to any node over the
// client port (memcached protocol plus ROMA-style admin commands), shows a
// cluster's state (members, routing, keyinfo), and generates load with
// `sonae bench`, against one node, spread over several, or through the
// routing-aware cluster client.
package main
