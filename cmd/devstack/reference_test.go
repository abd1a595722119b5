package main

import (
	"io"
	"testing"

	"github.com/refundhub/refundhub/internal/envconfig/envconfigtest"
)

// TestConfigReference: the variables parseConfig reads, envVars (the -h) and
// the variable table of docs/operations.md (devstack's section) name the
// same variables.
func TestConfigReference(t *testing.T) {
	envconfigtest.CheckReference(t, envVars, func(getenv func(string) string) {
		_, _ = parseConfig([]string{"devstack"}, getenv, io.Discard)
	}, "../../docs/operations.md")
}
