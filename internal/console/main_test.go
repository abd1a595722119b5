package console

import (
	"os"
	"testing"

	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// TestMain stops the throwaway PostgreSQL cluster the benchmarks start on
// PostgreSQL.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
