package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
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
