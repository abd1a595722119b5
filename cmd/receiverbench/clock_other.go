//go:build !linux

package main

// monotonicNow is 0 where CLOCK_MONOTONIC is not read (perf is Linux only).
func monotonicNow() int64 { return 0 }
