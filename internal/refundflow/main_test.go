package refundflow_test

import (
	"os"
	"testing"

	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// TestMain stops the PostgreSQL cluster the engine tests over both stores
// started (casestoretest), if any.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
