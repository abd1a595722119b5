// Package docs_test checks the documentation pages against the code where a
// command's own test cannot: refundctl's variables (see TestRefundctlReference).
package docs_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/envconfig/envconfigtest"
)

// TestRefundctlReference: the variables refundctl's --help lists under
// "Environment" (printed from its envVars table, which its applyEnv reads)
// are the variables docs/refundctl.md documents.
//
// refundctl does not read its environment through internal/envconfig yet,
// so unlike the other commands it has no table this test could import and
// no loading it could run with a recording getenv; its --help is the only
// view of its table from outside its package. Once refundctl moves to
// envconfig, a TestConfigReference in cmd/refundctl (envconfigtest.CheckReference)
// replaces this test.
func TestRefundctlReference(t *testing.T) {
	if testing.Short() {
		t.Skip("builds refundctl; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "run", "../cmd/refundctl", "--help")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go run ../cmd/refundctl --help: %v\n%s", err, stderr.String())
	}
	read := helpEnvironment(t, stdout.String())
	page, err := os.ReadFile("refundctl.md")
	if err != nil {
		t.Fatal(err)
	}
	documented, err := envconfigtest.Documented(string(page))
	if err != nil {
		t.Fatalf("refundctl.md: %v", err)
	}
	envconfigtest.Compare(t, read, documented, "docs/refundctl.md")
}

// helpEnvironment returns the first word of each indented line of the
// "Environment" section of refundctl's --help.
func helpEnvironment(t *testing.T, help string) []string {
	t.Helper()
	var names []string
	in := false
	sc := bufio.NewScanner(strings.NewReader(help))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "Environment"):
			in = true
		case in && strings.HasPrefix(line, "  "):
			names = append(names, strings.Fields(line)[0])
		case in:
			in = false
		}
	}
	if len(names) == 0 {
		t.Fatalf("refundctl --help has no Environment section:\n%s", help)
	}
	return names
}
