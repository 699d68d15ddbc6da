// Package clock owns the notion of time used by sonae: a Clock interface, the
// real wall clock and a manually advanced fake for tests. Every component that
// looks at time (expiry, idle timeouts, HLC versions) takes a Clock in its
// constructor so tests can control it.
package clock
