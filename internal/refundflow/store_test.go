package refundflow

import (
	"slices"
	"testing"

	"github.com/refundhub/refundhub/internal/casestore"
)

func TestTerminalStatesMatchStore(t *testing.T) {
	var flow []string
	for _, s := range TerminalStates() {
		flow = append(flow, string(s))
	}
	if !slices.Equal(flow, casestore.TerminalStates()) {
		t.Fatalf("refundflow terminal states %v; store %v", flow, casestore.TerminalStates())
	}
}
