package main

import (
	"testing"

	"github.com/refundhub/refundhub/internal/envconfig/envconfigtest"
)

// TestConfigReference: the variables loadConfig reads, envVars (the -h) and
// the variable table of docs/console.md name the same variables.
func TestConfigReference(t *testing.T) {
	envconfigtest.CheckReference(t, envVars, func(getenv func(string) string) { _, _ = loadConfig(getenv) }, "../../docs/console.md")
}
