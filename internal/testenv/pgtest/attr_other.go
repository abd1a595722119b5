//go:build !linux

package pgtest

import "syscall"

// serverAttr runs the server as cred's user. Without Linux's parent-death
// signal, a test binary killed outright leaves its server running; Main
// stops it in every other case.
func serverAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
