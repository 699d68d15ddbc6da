//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package client

import "net"

// connDead cannot peek without blocking here: a dead idle connection is
// found by the request itself.
func connDead(net.Conn) bool { return false }
