package main

import (
	"testing"

	"github.com/refundhub/refundhub/internal/envconfig/envconfigtest"
)

// TestConfigReference: the variables refundctl reads (loadConfig for every
// command, loadUpstream for doctor), envVars (the Environment section of
// --help) and the variable table of docs/refundctl.md name the same
// variables.
func TestConfigReference(t *testing.T) {
	envconfigtest.CheckReference(t, envVars, func(getenv func(string) string) {
		_, _ = loadConfig(getenv)
		_, _ = loadUpstream(getenv)
	}, "../../docs/refundctl.md")
}
