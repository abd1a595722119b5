package main

import (
	"os"
	"path/filepath"
	"strconv"
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
	// 32 bytes: every write of the database and its WAL fails, whatever
	// their sizes and wherever the WAL writes next.
	var was uint64
	rideOutAStoreOutage(t, s, p, "disk-full", func() { was = setFileLimit(t, p, 32) }, func() { setFileLimit(t, p, was) })
	if logs := p.logs(); !strings.Contains(logs, "disk I/O error") && !strings.Contains(logs, "disk is full") {
		t.Errorf("the worker's log does not say what the store's error was:\n%s", logs)
	}
}

// fileLimitEnv, set for a worker child process (launchProcess), is the
// RLIMIT_FSIZE it starts under, in bytes: every write of its files past it
// fails, as on a disk that takes none.
const fileLimitEnv = "REFUNDHUB_TEST_FILE_LIMIT"

// limitFiles sets the child's RLIMIT_FSIZE from fileLimitEnv, if set.
func limitFiles(t *testing.T) {
	v := os.Getenv(fileLimitEnv)
	if v == "" {
		return
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", fileLimitEnv, err)
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = n
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
}

// setFileLimit sets a running child's RLIMIT_FSIZE to size, keeping its
// hard limit; it returns the limit it had.
func setFileLimit(t *testing.T, p *osProc, size uint64) uint64 {
	t.Helper()
	var was unix.Rlimit
	if err := unix.Prlimit(p.cmd.Process.Pid, unix.RLIMIT_FSIZE, nil, &was); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	if err := unix.Prlimit(p.cmd.Process.Pid, unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: size, Max: was.Max}, nil); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	return was.Cur
}

// TestWorkerWaitsForItsDiskAtStart: a worker started on a disk that takes
// no write (full, or failing to write) while it must write to start (a
// new database, or migrations to apply) waits for it, saying so, rather
// than exiting into its supervisor's restart loop, and starts once its
// writes go through: the same as a database that does not answer yet.
func TestWorkerWaitsForItsDiskAtStart(t *testing.T) {
	s := newStack(t, sandbox.Faults{}, sandbox.SellerPolicy{Decision: sandbox.DecisionManual}, 1, nil)
	dbPath := filepath.Join(t.TempDir(), "refunds.db") // a database the worker creates
	p := s.launchProcess(map[string]string{fileLimitEnv: "32", "DB_PATH": dbPath})
	waitFor(t, 30*time.Second, "the worker to say it waits for the store", func() bool {
		if err, gone := p.exited(); gone {
			t.Fatalf("the worker exited with its disk taking no write: %v\n%s", err, p.logs())
		}
		return strings.Contains(p.logs(), "case store not reachable yet, or not writable: waiting for it")
	})
	setFileLimit(t, p, unix.RLIM_INFINITY)
	p.waitReady(t)
	if !strings.Contains(p.logs(), "case store reachable: starting") {
		t.Errorf("the worker did not say it found its store:\n%s", p.logs())
	}
	aRequestWaitsForTheSeller(t, s, "after-the-disk", dbPath)
}
