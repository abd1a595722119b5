package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeGo writes a stand-in for the go command: each "go build -o OUT PKG"
// waits until the test releases it through the fifo, then creates OUT. It
// only honours go build's documented arguments, so a build that hangs on a
// cold cache is one the test holds open for as long as it likes.
func fakeGo(t *testing.T) (goCmd, fifo string) {
	t.Helper()
	dir := t.TempDir()
	fifo = filepath.Join(dir, "release")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	goCmd = filepath.Join(dir, "go")
	script := "#!/bin/sh\n[ \"$1 $2\" = \"build -o\" ] || { echo \"fake go: unexpected args $*\" >&2; exit 2; }\n" +
		"cat \"$FAKE_GO_RELEASE\" >/dev/null\n: > \"$3\"\n"
	if err := os.WriteFile(goCmd, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return goCmd, fifo
}

// release lets the one go build waiting on fifo finish: opening the fifo
// for writing blocks until the build has opened it for reading.
func release(t *testing.T, fifo string) {
	t.Helper()
	f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("release build: %v", err)
	}
	f.Close()
}

// TestFirstBuildShowsProgress: on a cold module cache go build is silent for
// minutes. devstack says which binary it is building, that it is still
// building while it is, and when each is built.
func TestFirstBuildShowsProgress(t *testing.T) {
	goCmd, fifo := fakeGo(t)
	binDir := t.TempDir()
	var stdout, stderr lockedBuffer
	tick := make(chan time.Time)
	b := builder{goCmd: goCmd, root: t.TempDir(), binDir: binDir, environ: []string{"FAKE_GO_RELEASE=" + fifo},
		stdout: &stdout, stderr: &stderr,
		newTicker: func() (<-chan time.Time, func()) { return tick, func() {} }}
	comps := []string{"sandbox", "refundctl"}
	errc := make(chan error, 1)
	go func() { errc <- b.build(context.Background(), comps) }()

	for i, c := range comps {
		waitUntil(t, 10*time.Second, "the line naming "+c, func() bool {
			return strings.Contains(stdout.String(), "devstack: building "+c+" (")
		})
		// The send returns only once the build's progress loop took the
		// tick, so the line follows without any sleep.
		sendTick(t, tick)
		sendTick(t, tick)
		waitUntil(t, 10*time.Second, "two still-building lines for "+c, func() bool {
			return strings.Count(stdout.String(), "devstack: still building "+c+" (") == 2
		})
		release(t, fifo)
		waitUntil(t, 10*time.Second, "the built line for "+c, func() bool {
			return strings.Contains(stdout.String(), "devstack: built "+c+" in ")
		})
		if _, err := os.Stat(filepath.Join(binDir, c)); err != nil {
			t.Errorf("binary %d %s not written: %v", i, c, err)
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("build(%q) = %v (stderr %q); want nil", comps, err, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"devstack: building sandbox, refundctl into " + binDir + " (a cold module cache takes a few minutes",
		"devstack: building sandbox (1/2)\n",
		"devstack: building refundctl (2/2)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("build output lacks %q:\n%s", want, out)
		}
	}
	// Each binary's lines come in order: building, still building, built.
	for _, c := range comps {
		start, still, done := strings.Index(out, "building "+c+" ("), strings.Index(out, "still building "+c), strings.Index(out, "built "+c)
		if !(start < still && still < done) {
			t.Errorf("lines for %s out of order (building at %d, still building at %d, built at %d):\n%s", c, start, still, done, out)
		}
	}
}

// sendTick hands the build's progress loop a tick; it fails rather than
// hangs if no build is running to take it.
func sendTick(t *testing.T, tick chan<- time.Time) {
	t.Helper()
	select {
	case tick <- time.Now():
	case <-time.After(10 * time.Second):
		t.Fatal("no build took the progress tick within 10s")
	}
}

// TestBuildFailureNamesTheBinary: a failing go build stops devstack with an
// error naming the binary, and builds nothing after it.
func TestBuildFailureNamesTheBinary(t *testing.T) {
	dir := t.TempDir()
	goCmd := filepath.Join(dir, "go")
	if err := os.WriteFile(goCmd, []byte("#!/bin/sh\necho 'cmd/worker: undefined: x' >&2\nexit 1\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr lockedBuffer
	b := builder{goCmd: goCmd, root: dir, binDir: t.TempDir(), stdout: &stdout, stderr: &stderr}
	err := b.build(context.Background(), []string{"worker", "refundctl"})
	if err == nil || !strings.Contains(err.Error(), "build worker") {
		t.Fatalf("build with a failing go = %v; want an error naming worker", err)
	}
	if !strings.Contains(stderr.String(), "undefined: x") {
		t.Errorf("go build's own error not passed on; stderr %q", stderr.String())
	}
	if strings.Contains(stdout.String(), "building refundctl") {
		t.Errorf("went on to refundctl after worker failed:\n%s", stdout.String())
	}
}
