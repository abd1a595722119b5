package main

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestWorkerRidesOutAFullDisk: the disk under the SQLite store stops
// taking writes mid-run, and takes them again 4 s later. (The worker
// process's RLIMIT_FSIZE is lowered to a few bytes: every write of its
// files past them fails, with EFBIG, which SQLite reports as "disk I/O
// error"; a full file system's ENOSPC is "database or disk is full", the
// same to the worker, and TestAFullSQLiteFileIsUnavailable's.) SQLite's
// errors were not told apart from errors about the work: each delivery
// they failed counted, the dead letter could not be written either, and
// the messages ended past the consumer's MaxDeliver, never delivered
// again. Now the worker holds them as through a database outage
// (rideOutAStoreOutage) and finishes every case once its writes go through
// again.
func TestWorkerRidesOutAFullDisk(t *testing.T) {
	s := newStack(t, sandbox.Faults{LatencyMin: 20 * time.Millisecond, LatencyMax: 20 * time.Millisecond},
		sandbox.SellerPolicy{Decision: sandbox.DecisionManual}, 1, outageEnv(nil))
	p := s.startProcess() // a process of its own: the limit must not reach this one's NATS store
	var was unix.Rlimit
	if err := unix.Prlimit(p.cmd.Process.Pid, unix.RLIMIT_FSIZE, nil, &was); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	limit := func(size uint64) {
		t.Helper()
		if err := unix.Prlimit(p.cmd.Process.Pid, unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: size, Max: was.Max}, nil); err != nil {
			t.Fatalf("prlimit: %v", err)
		}
	}
	// 32 bytes: every write of the database and its WAL fails, whatever
	// their sizes and wherever the WAL writes next.
	rideOutAStoreOutage(t, s, p, "disk-full", func() { limit(32) }, func() { limit(was.Cur) })
	if logs := p.logs(); !strings.Contains(logs, "disk I/O error") && !strings.Contains(logs, "disk is full") {
		t.Errorf("the worker's log does not say what the store's error was:\n%s", logs)
	}
}
