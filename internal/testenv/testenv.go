// Package testenv holds what tests need from the machine they run on, with
// one rule for a missing part: skip with one line naming it on a
// developer's machine, fail in CI, where .ci/run installs it.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// CIEnv names the variable .ci/run sets: in CI, a test whose installed
// tool is missing fails instead of skipping, so a broken install cannot
// pass as a green run.
const CIEnv = "REFUNDHUB_CI"

// Installed returns the path of a program the test needs from the machine
// (install says how to get it). Missing, the test skips with one line
// naming it, except under CI (CIEnv set), where it fails.
func Installed(t testing.TB, name, install string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	Missing(t, name, install)
	return ""
}

// Missing ends a test that needs the program name, which the caller did not
// find (on PATH or where the program's packages put it): it skips with one
// line naming it, or fails under CI (CIEnv set).
func Missing(t testing.TB, name, install string) {
	t.Helper()
	if os.Getenv(CIEnv) != "" {
		t.Fatalf("%s not found, and %s is set: .ci/run should have installed it (%s)", name, CIEnv, install)
	}
	t.Skipf("%s not found; install it to run this test (%s)", name, install)
}
