package deadletters_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/deadletters"
	"github.com/refundhub/refundhub/internal/events"
)

// BenchmarkGroups groups a full scan (deadletters.MaxScan pending dead
// commands, in 20 groups, each naming a case): what one /dead-letters page
// costs at its bound (docs/benchmarks.md).
func BenchmarkGroups(b *testing.B) {
	ctx := context.Background()
	st, err := casestore.Open(ctx, filepath.Join(b.TempDir(), "refunds.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2026, 5, 20, 8, 0, 0, 0, time.UTC)
	err = st.Update(ctx, func(tx *casestore.Tx) error {
		for i := range deadletters.MaxScan {
			d := deadCommand(fmt.Sprintf("cmd-%d", i), int64(i%500+1), events.DeadMaxDeliveries,
				fmt.Sprintf(`refund.apply: platform error code %d "busy"`, 4000+i%20), t0.Add(time.Duration(i)*time.Second))
			if _, _, err := tx.InsertDeadLetter(ctx, d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		gs, truncated, err := deadletters.Groups(ctx, st, deadletters.Filter{State: deadletters.StatePending})
		if err != nil || truncated || len(gs) != 20 {
			b.Fatalf("Groups = %d groups, truncated %v, %v", len(gs), truncated, err)
		}
	}
}
