//go:build !linux

package main

import "testing"

// limitFiles is outage_linux_test.go's; the tests that set a file limit
// run on Linux only.
func limitFiles(*testing.T) {}
