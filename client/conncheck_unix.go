//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package client

import (
	"errors"
	"net"
	"syscall"
)

// connDead peeks at the socket without blocking: end of stream, unsolicited
// bytes or an error mean the connection must not carry a request. (A read
// with an expired deadline cannot tell: Go fails it before any syscall.)
func connDead(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	dead := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		// n == 0 without error is the end of the stream, n > 0 unsolicited
		// data; EAGAIN means nothing to read: alive.
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		dead = !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR)
		return true // never wait for readiness
	})
	return dead || err != nil
}
