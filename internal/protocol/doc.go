// Package protocol owns the memcached text protocol framing: a parser that is
// a state machine over bytes, so a request may arrive split at any byte across
// any number of reads, and the reply strings that must match memcached 1.6
// exactly. It does no I/O and knows nothing about storage: it turns bytes into
// Requests, and the server decides what each one means.
//
// Framing follows memcached 1.6.18:
//   - A command line ends with "\n"; a "\r" just before it is dropped.
//   - Tokens are separated by one or more spaces (not tabs).
//   - The storage commands (set, add, replace, append, prepend, cas) are
//     followed by a data block of exactly <bytes> bytes and "\r\n". The block
//     is always consumed as <bytes>+2 bytes; if those two bytes are not
//     "\r\n" the reply is "CLIENT_ERROR bad data chunk".
//   - A storage command whose line is malformed gets its error and its data
//     block is NOT consumed (memcached reads it as the next command), except
//     when the size alone is the problem (too large), where the block is
//     swallowed.
//   - The meta commands mg, md and ma are checked here up to their flags
//     (Request.Meta); ms also carries a data block, read as set's. An ms
//     whose flags are bad has its block swallowed (see meta.go).
//   - A line longer than the configured limit ends the connection after
//     "CLIENT_ERROR line too long" (memcached closes silently).
package protocol
