package main

import (
	"syscall"
	"unsafe"
)

// monotonicNow is CLOCK_MONOTONIC in nanoseconds, the clock of
// `perf record -k CLOCK_MONOTONIC`, so that -slicelog lines can be matched
// with perf samples (0 if the call fails).
func monotonicNow() int64 {
	var ts syscall.Timespec
	const clockMonotonic = 1
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0
	}
	return ts.Nano()
}
