package pgtest

import "syscall"

// serverAttr runs the server as cred's user with a parent-death signal:
// SIGQUIT, PostgreSQL's immediate shutdown, which ends its backends too.
func serverAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
}
