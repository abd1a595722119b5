// Package docs_test checks that the documentation covers what the code
// can produce.
package docs_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/refundflow"
)

// TestRunbookCoversEveryStateAndReason: the operator's runbook has a row for
// every case state and every attention reason the code can produce, and no
// row for one it cannot.
func TestRunbookCoversEveryStateAndReason(t *testing.T) {
	b, err := os.ReadFile("runbook.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := func(section string) []string {
		m := regexp.MustCompile("(?s)## " + section + "\n(.*?)(\n## |$)").FindSubmatch(b)
		if m == nil {
			t.Fatalf("runbook.md has no %q section", section)
		}
		var out []string
		for _, r := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|").FindAllSubmatch(m[1], -1) {
			out = append(out, string(r[1]))
		}
		slices.Sort(out)
		return out
	}
	var states []string
	for _, s := range refundflow.States() {
		states = append(states, string(s))
	}
	slices.Sort(states)
	if got := rows("States"); !slices.Equal(got, states) {
		t.Errorf("runbook states %v; the code has %v", got, states)
	}
	reasons := slices.Clone(refundflow.AttentionCodes())
	slices.Sort(reasons)
	if got := rows("Attention reasons"); !slices.Equal(got, reasons) {
		t.Errorf("runbook attention reasons %v; the code has %v", got, reasons)
	}
	// Every stop has a way out the product offers: a command to run.
	attention := regexp.MustCompile("(?s)## Attention reasons\n(.*?)(\n## |$)").FindSubmatch(b)[1]
	for _, r := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|.*\\|(.*)\\|$").FindAllSubmatch(attention, -1) {
		action := string(r[2])
		if strings.Contains(action, "no way out") || !strings.ContainsAny(action, "`") {
			t.Errorf("runbook row %s: %q names no command to run", r[1], strings.TrimSpace(action))
		}
	}
}
