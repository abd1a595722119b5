package refundhub_test

import (
	"os"
	"testing"

	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// TestMain stops the PostgreSQL cluster TestSeveralHosts starts (pgtest
// starts one per test binary, at the first database asked for).
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
