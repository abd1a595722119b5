package casestore

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// BenchmarkDecisionUpdates measures concurrent updates shaped like the
// worker's decisions (an inbox row, a case update, two timeline entries),
// each goroutine on its own case, on SQLite and on a durable PostgreSQL
// (fsync and synchronous_commit on), with and without group commit: whether
// batching still pays on PostgreSQL. docs/benchmarks.md has the figures.
//
//	go test -run '^$' -bench DecisionUpdates -benchtime 3s ./internal/casestore/
func BenchmarkDecisionUpdates(b *testing.B) {
	b.Run("sqlite/batching", func(b *testing.B) {
		benchDecisions(b, openBench(b, filepath.Join(b.TempDir(), "bench.db")))
	})
	cluster := pgtest.Start(b, pgtest.Options{Durable: true})
	for _, batching := range []bool{false, true} {
		b.Run(fmt.Sprintf("postgres/batching=%v", batching), func(b *testing.B) {
			s := openBench(b, cluster.NewDatabase(b))
			if batching {
				// The same pools behind the group committer.
				g := newStore(s.w, s.r, nil)
				g.batching = true
				g.start()
				b.Cleanup(g.stop)
				s = g
			}
			benchDecisions(b, s)
		})
	}
}

func openBench(b *testing.B, target string) *Store {
	b.Helper()
	s, err := Open(context.Background(), target, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

func benchDecisions(b *testing.B, s *Store) {
	ctx := context.Background()
	var next, msgs atomic.Int64
	b.SetParallelism(16) // 32 goroutines on 2 CPUs: the worker's concurrency range
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var c Case
		order := fmt.Sprint(next.Add(1))
		if err := s.Update(ctx, func(tx *Tx) error {
			var err error
			c, err = tx.CreateCase(ctx, NewCase{Platform: Platform1688, OrderID: order, State: "requested"})
			return err
		}); err != nil {
			b.Error(err)
			return
		}
		states := []string{"rendering", "submitting", "waiting_seller"}
		for i := 0; pb.Next(); i++ {
			err := s.Update(ctx, func(tx *Tx) error {
				if _, err := tx.InboxRecord(ctx, InboxEntry{MsgID: fmt.Sprint("m", msgs.Add(1))}); err != nil {
					return err
				}
				n := c
				n.State = states[i%len(states)]
				u, err := tx.UpdateCaseFrom(ctx, c, n)
				if err != nil {
					return err
				}
				c = u
				return tx.AppendTimeline(ctx, TimelineEntry{CaseID: c.ID, Kind: KindDecision, Summary: "decided"},
					TimelineEntry{CaseID: c.ID, Kind: KindStep, Summary: "stepped"})
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(s.Commits())/float64(max(s.Transactions(), 1)), "updates/tx")
}
