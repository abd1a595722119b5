//go:build !linux

package casestore

import (
	"errors"
	"syscall"
	"time"
)

// unackedLimit sets nothing here: TCP_USER_TIMEOUT is Linux's. A
// connection whose packets are dropped waits for TCP to give up.
func unackedLimit(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}

func unackedLimitOf(syscall.RawConn) (time.Duration, error) {
	return 0, errors.New("TCP_USER_TIMEOUT is Linux's")
}

func keepIdleOf(syscall.RawConn) (time.Duration, error) {
	return 0, errors.New("TCP_KEEPIDLE is read here on Linux only")
}
