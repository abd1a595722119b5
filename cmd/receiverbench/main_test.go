package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestBenchSmoke runs a tiny load to keep the command working; the real
// measurement is run by hand (see the package doc).
func TestBenchSmoke(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-duration", "400ms", "-slice", "200ms", "-conns", "4", "-warmup", "0"}, &out, io.Discard)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, want := range []string{"ratio receiver/baseline: throughput", "stored: receiver stream"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if regexp.MustCompile(`errors=[1-9]`).MatchString(out.String()) {
		t.Errorf("errors under a tiny load:\n%s", out.String())
	}
}

// -cpuprofile writes one profile per measured slice and target.
func TestBenchProfilesEachSlice(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "p")
	var out bytes.Buffer
	err := run(context.Background(), []string{"-duration", "400ms", "-slice", "200ms", "-conns", "2", "-warmup", "0", "-cpuprofile", prefix}, &out, io.Discard)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, target := range []string{"baseline", "receiver"} {
		for slice := range 2 {
			name := fmt.Sprintf("%s-%s-%03d.prof", prefix, target, slice)
			if st, err := os.Stat(name); err != nil || st.Size() == 0 {
				t.Errorf("profile %s: %v (want a non-empty file)", name, err)
			}
		}
	}
	if !strings.Contains(out.String(), "syscalls/req") {
		t.Errorf("output lacks syscalls/req:\n%s", out.String())
	}
}

// -slicelog writes one line per measured slice that perf samples can be
// matched against, and the output has the paired-slice ratios.
func TestBenchSliceLog(t *testing.T) {
	log := filepath.Join(t.TempDir(), "slices.tsv")
	var out bytes.Buffer
	err := run(context.Background(), []string{"-duration", "400ms", "-slice", "200ms", "-conns", "2", "-warmup", "0", "-slicelog", log}, &out, io.Discard)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 4 {
		t.Fatalf("slice log has %d lines; want 4 (2 slices × 2 targets):\n%s", len(lines), b)
	}
	seen := map[string]int{}
	for _, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) != 7 {
			t.Fatalf("slice log line %q has %d fields; want 7", l, len(f))
		}
		seen[f[0]]++
		var start, end int64
		if _, err := fmt.Sscan(f[2], &start); err != nil {
			t.Fatalf("slice log line %q: start: %v", l, err)
		}
		if _, err := fmt.Sscan(f[3], &end); err != nil {
			t.Fatalf("slice log line %q: end: %v", l, err)
		}
		if runtime.GOOS == "linux" && end <= start {
			t.Errorf("slice log line %q: end %d not after start %d", l, end, start)
		}
	}
	if seen["baseline"] != 2 || seen["receiver"] != 2 {
		t.Errorf("slice log targets = %v; want 2 baseline and 2 receiver", seen)
	}
	if !strings.Contains(out.String(), "paired slices (2 pairs") {
		t.Errorf("output lacks the paired-slice ratios:\n%s", out.String())
	}
}
