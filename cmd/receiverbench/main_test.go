package main

import (
	"bytes"
	"context"
	"io"
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
