package casestore

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// unackedLimit is control for net.Dialer: it sets TCP_USER_TIMEOUT on the
// socket, so that the kernel gives the connection up once data sent on it
// has gone unacknowledged for limit (a network dropping packets, a host
// gone), rather than after its retransmissions run out, about a quarter
// of an hour (tcp_retries2). The statement waiting on it then fails as the
// store being away, reads included, which no context bounds.
func unackedLimit(limit time.Duration) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(limit.Milliseconds()))
		}); err != nil {
			return err
		}
		return serr
	}
}

// unackedLimitOf is the TCP_USER_TIMEOUT of a connection's socket (for
// tests).
func unackedLimitOf(c syscall.RawConn) (time.Duration, error) {
	ms, err := tcpOption(c, unix.TCP_USER_TIMEOUT)
	return time.Duration(ms) * time.Millisecond, err
}

// keepIdleOf is the TCP_KEEPIDLE of a connection's socket (for tests).
func keepIdleOf(c syscall.RawConn) (time.Duration, error) {
	s, err := tcpOption(c, unix.TCP_KEEPIDLE)
	return time.Duration(s) * time.Second, err
}

// tcpOption reads an integer TCP option of a connection's socket.
func tcpOption(c syscall.RawConn, opt int) (int, error) {
	var v int
	var serr error
	if err := c.Control(func(fd uintptr) {
		v, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, opt)
	}); err != nil {
		return 0, err
	}
	return v, serr
}
