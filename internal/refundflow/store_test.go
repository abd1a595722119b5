package refundflow

import (
	"slices"
	"testing"

	"github.com/refundhub/refundhub/internal/casestore"
)

// TestTerminalStatesAreStates: the store's final states are states of the
// workflow, and exactly the last four of States.
func TestTerminalStatesAreStates(t *testing.T) {
	all := States()
	if got, want := TerminalStates(), all[len(all)-4:]; !slices.Equal(got, want) {
		t.Fatalf("terminal states %v; want %v", got, want)
	}
	for _, s := range all {
		if s.Terminal() != slices.Contains(casestore.TerminalStates(), string(s)) {
			t.Errorf("%s.Terminal() = %v", s, s.Terminal())
		}
	}
}
