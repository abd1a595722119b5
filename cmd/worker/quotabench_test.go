package main

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/refundhub/refundhub/internal/envconfig/logtest"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestBenchWorkerAboveThePlatformsQuota runs Taobao refund requests through
// the worker binary against a sandbox that rate-limits the account at a
// quota a quarter of the worker's UPSTREAM_RATE_LIMIT (the platform's quota
// is not documented: the configured rate is a guess):
//
//	WORKER_BENCH=1 go test -run TestBenchWorkerAboveThePlatformsQuota -v -count=1 ./cmd/worker/
//
// Twice: with the rate adapting (the default) and held fixed
// (UPSTREAM_RATE_MIN = UPSTREAM_RATE_LIMIT, what the worker did before),
// each on a fresh stack. It prints, for each, the time until every case
// waits for the seller beside the quota's bound (the platform calls the
// cases needed / the quota), the calls the platform refused for the quota,
// and the steps that failed for it; then the adaptive run's ratios to the
// fixed one's.
func TestBenchWorkerAboveThePlatformsQuota(t *testing.T) {
	if os.Getenv("WORKER_BENCH") == "" {
		t.Skip("set WORKER_BENCH=1 to run the worker benchmarks")
	}
	fixed := benchQuota(t, false)
	adaptive := benchQuota(t, true)
	t.Logf("adaptive against fixed: time %.2fx, calls refused for the quota %.3fx (%d against %d)",
		adaptive.elapsed.Seconds()/fixed.elapsed.Seconds(), float64(adaptive.refused)/float64(max(1, fixed.refused)),
		adaptive.refused, fixed.refused)
}

type quotaRun struct {
	elapsed time.Duration
	refused int64
}

func benchQuota(t *testing.T, adaptive bool) quotaRun {
	const n, concurrency, limit = 300, 32, 200
	const quota = limit / 4
	name := "fixed"
	floor := strconv.Itoa(limit)
	if adaptive {
		name, floor = "adaptive", "1"
	}
	var run quotaRun
	t.Run(name, func(t *testing.T) {
		faults := sandbox.Faults{RateQuota: quota, RateQuotaBurst: 10, DropPushRate: 1}
		env := map[string]string{"WORKER_CONCURRENCY": strconv.Itoa(concurrency), "UPSTREAM_RATE_LIMIT": strconv.Itoa(limit),
			"UPSTREAM_RATE_BURST": "10", "UPSTREAM_RATE_MIN": floor, "UPSTREAM_RATE_RECOVERY": "1m", "UPSTREAM_TIMEOUT": "5s",
			"WORKER_LEASE_TTL": "1m", "WORKER_ACK_WAIT": "30s", "WORKER_RETRY_BASE": "200ms", "WORKER_RETRY_MAX": "5s",
			"WORKER_TIMER_INTERVAL": "100ms", "WORKER_RECONCILE_INTERVAL": "1h", "WORKER_STEP_TIMEOUT": "1m",
			"WORKER_SHUTDOWN_TIMEOUT": "10s", "WORKER_MAX_DELIVER": "1000"}
		s := newStack(t, faults, sandbox.SellerPolicy{Decision: sandbox.DecisionManual}, 1, env)
		cmds := s.benchRequests(n)
		w := s.startBinaryReady()
		before := s.httpStats()
		start := time.Now()
		s.publishAll(cmds, 8)
		waitFor(t, 5*time.Minute, "every case waiting for the seller", func() bool {
			if len(s.sb.Stats().RefundSubmissions) < n {
				return false
			}
			counts, err := s.store.CountByState(context.Background())
			return err == nil && counts[string(refundflow.StateWaitingSeller)] >= n
		})
		run.elapsed = time.Since(start)
		cuts, lowest := 0, float64(limit)
		for _, l := range logtest.Parse(t, w.errs.String()) {
			if strings.HasPrefix(l.Msg(), "apiclient: the platform rate-limits") {
				to, _ := l["to_calls_per_second"].(float64)
				cuts, lowest = cuts+1, min(lowest, to)
			}
		}
		if adaptive {
			t.Logf("the rate was cut %d times, to %.1f/s at the lowest", cuts, lowest)
		}
		st := s.httpStats()
		if st.DuplicateSubmissions != 0 || len(st.RefundSubmissions) != n {
			t.Fatalf("sandbox: %d refunds, %d duplicate submissions; want %d and 0", len(st.RefundSubmissions), st.DuplicateSubmissions, n)
		}
		run.refused = st.QuotaRefused - before.QuotaRefused
		calls := totalCalls(st) - totalCalls(before)
		taken := calls - run.refused
		bound := time.Duration(float64(taken) / quota * float64(time.Second))
		db, err := sqlx.Open("sqlite3", s.dbPath)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var failed int
		if err := db.Get(&failed, `SELECT count(*) FROM step_attempts WHERE status = 'failed'`); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s rate (UPSTREAM_RATE_LIMIT %d, UPSTREAM_RATE_MIN %s) against a quota of %d/s: %d cases in %s; %d calls taken, bound (taken / quota) %s: ratio %.2f; %d calls refused for the quota (%.0f%% of all), %d steps failed",
			name, limit, floor, quota, n, run.elapsed.Round(time.Millisecond), taken, bound.Round(time.Millisecond),
			run.elapsed.Seconds()/bound.Seconds(), run.refused, 100*float64(run.refused)/float64(calls), failed)
	})
	return run
}
