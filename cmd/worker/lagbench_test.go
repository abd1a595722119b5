package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// TestBenchCallbackLag measures callback lag (Cb-Received to the commit
// that applied the callback, which for a refund callback is the one that
// recorded it on its case: refundhub_worker_callback_lag_seconds and the
// lagMs of each callback's timeline entry) and the time to its verified
// decision under a steady push rate:
//
//	WORKER_BENCH=1 go test -run TestBenchCallbackLag -v -count=1 ./cmd/worker/
//
// 2,000 Taobao refunds wait for the seller on the sandbox, each with its
// open case in SQLite. The sandbox records their refund callbacks without
// pushing them; once the worker (run, in process, concurrency 64, or
// LAGBENCH_CONCURRENCY) is up and
// the sandbox answers every call after 50 ms, the test posts those recorded
// callbacks to the real receiver at 500 per second, as the platform would,
// and reads every callback's lag back from the timeline. Each callback is
// recorded first, then costs the worker one platform read before its
// decision commits (a callback is a hint: the worker verifies it), so the
// 50 ms latency is a floor of every verification but not of the lag; the
// test prints both. It asserts nothing about time: the figures go to
// docs/benchmarks.md.
//
// With LAGBENCH_STORE=postgres the cases are kept in PostgreSQL (a
// durable throwaway cluster) instead of SQLite.
//
// With LAGBENCH_SPANS=1 the receiver and the worker trace every callback
// into an in-memory exporter (tracing costs time of its own), and the test
// also prints where the lag went: receive to the worker's span (publish,
// delivery, a free slot), the decision (the platform read inside it) and
// the commit.
func TestBenchCallbackLag(t *testing.T) {
	if os.Getenv("WORKER_BENCH") == "" {
		t.Skip("set WORKER_BENCH=1 to run the worker benchmarks")
	}
	const (
		n       = 2000
		perSec  = 500
		latency = 50 * time.Millisecond
	)
	var exp *tracetest.InMemoryExporter
	var rcvTracer trace.Tracer
	if os.Getenv("LAGBENCH_SPANS") != "" {
		exp = tracetest.NewInMemoryExporter()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		rcvTracer = tp.Tracer("receiver")
	}
	concurrency := cmp.Or(os.Getenv("LAGBENCH_CONCURRENCY"), "64") // 32 and 128 measured worse on PostgreSQL
	env := map[string]string{
		"WORKER_CONCURRENCY": concurrency, "UPSTREAM_RATE_LIMIT": "100000", "UPSTREAM_RATE_BURST": "1000",
		"UPSTREAM_TIMEOUT": "5s", "WORKER_LEASE_TTL": "1m", "WORKER_ACK_WAIT": "30s", "WORKER_TIMER_INTERVAL": "1s",
		"WORKER_RECONCILE_INTERVAL": "1h", "WORKER_RECHECK": "6h", "WORKER_STEP_TIMEOUT": "1m",
		"WORKER_SHUTDOWN_TIMEOUT": "10s"}
	// LAGBENCH_STORE=postgres: the cases in a PostgreSQL database of a
	// cluster of the test's own, durable as in production (fsync and
	// synchronous_commit on), instead of the SQLite file.
	timelineDB := func(s *stack) (*sqlx.DB, error) {
		return sqlx.Open("sqlite3", "file:"+s.dbPath+"?_query_only=1&_busy_timeout=5000")
	}
	if os.Getenv("LAGBENCH_STORE") == "postgres" {
		url := pgtest.Start(t, pgtest.Options{Durable: true}).NewDatabase(t)
		env["DB_URL"] = url
		timelineDB = func(*stack) (*sqlx.DB, error) { return sqlx.Open("pgx", url) }
	}
	s := newStackTraced(t, rcvTracer, sandbox.Faults{}, sandbox.SellerPolicy{Decision: sandbox.DecisionManual}, 1, env,
		func(c *sandbox.Config) { c.CallbackURL = "" }) // record the callbacks, push none
	ctx := context.Background()

	client, err := apiclient.New(apiclient.Config{BaseURL: s.sbURL, AccessKey: e2eKey, AccessSecret: e2eSecret,
		UserID: "e2e-user", RateLimit: rate.Inf, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	type refund struct{ order, sub, id string }
	refunds := make([]refund, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n && !t.Failed(); i = int(next.Add(1)) - 1 {
				o, so := s.order(sandbox.PlatformTaobao, nil)
				r, err := client.TaobaoSubmit(ctx, apiclient.SubmitRefundRequest{SubOrderID: so, RefundType: 1, GoodsStatus: 1,
					ReasonID: 1001, RefundFee: 10000, RefundDesc: "bench"})
				if err != nil {
					t.Errorf("submit %d: %v", i, err)
					return
				}
				refunds[i] = refund{o, so, r.Data.RefundID.String()}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	err = s.store.Update(ctx, func(tx *casestore.Tx) error {
		for _, r := range refunds {
			c, err := tx.CreateCase(ctx, casestore.NewCase{Platform: refundflow.PlatformTaobao, OrderID: r.order,
				SubOrderID: r.sub, State: string(refundflow.StateWaitingSeller), NextWakeAt: time.Now().Add(time.Hour)})
			if err != nil {
				return err
			}
			c.RefundID, c.LastPlatformCheckAt = r.id, time.Now()
			if _, err := tx.UpdateCase(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// The refund callbacks the sandbox recorded, one per refund.
	resp, err := http.Get(s.sbURL + "/_sandbox/callbacks")
	if err != nil {
		t.Fatal(err)
	}
	var recorded struct {
		Callbacks []sandbox.CallbackRecord `json:"callbacks"`
	}
	err = json.NewDecoder(resp.Body).Decode(&recorded)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var bodies [][]byte
	seen := map[string]bool{}
	for _, r := range recorded.Callbacks {
		if r.Kind != "refund" || seen[r.Subject] {
			continue
		}
		seen[r.Subject] = true
		b, _ := json.Marshal(r.Envelope)
		bodies = append(bodies, b)
	}
	if len(bodies) != n {
		t.Fatalf("%d refund callbacks recorded; want %d, one per refund", len(bodies), n)
	}

	var w *workerProc
	if exp != nil {
		w = s.startTraced(exp)
	} else {
		w = s.start()
	}
	s.sb.SetFaults(sandbox.Faults{LatencyMin: latency, LatencyMax: latency})
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 5 * time.Second}
	var refused atomic.Int64
	// Paced by schedule, not by a ticker (which drops ticks on a busy
	// machine): callback i goes out at start + i/perSec, at once if late.
	start := time.Now()
	for i, b := range bodies {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / perSec)))
		wg.Go(func() {
			resp, err := hc.Post(s.rcvURL, "application/json", bytes.NewReader(b))
			if err != nil || resp.StatusCode != http.StatusOK {
				refused.Add(1)
				return
			}
			resp.Body.Close()
		})
	}
	wg.Wait()
	fed := time.Since(start)
	if refused.Load() > 0 {
		t.Fatalf("%d callbacks not answered 200", refused.Load())
	}

	db, err := timelineDB(s)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var details []string
	waitFor(t, 2*time.Minute, "every callback on its case's timeline", func() bool {
		details = details[:0]
		err := db.Select(&details, `SELECT detail FROM timeline WHERE kind = 'callback' AND summary LIKE 'callback %'`)
		return err == nil && len(details) >= n
	})
	applied := time.Since(start)
	waitFor(t, 2*time.Minute, "every callback verified", func() bool {
		var kept int
		return db.Get(&kept, `SELECT COUNT(*) FROM deferred_inputs`) == nil && kept == 0
	})
	verifiedAll := time.Since(start)
	lags := make([]time.Duration, 0, n)
	received := map[int64]int64{} // case → its callback's receive time (ms)
	var entries []struct {
		CaseID int64  `db:"case_id"`
		At     int64  `db:"at"`
		Kind   string `db:"kind"`
		Detail string `db:"detail"`
	}
	if err := db.Select(&entries, `SELECT case_id, at, kind, detail FROM timeline
		WHERE (kind = 'callback' AND summary LIKE 'callback %') OR (kind = 'decision' AND detail LIKE '%"input":"callback"%')
		ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	var verified []time.Duration
	for _, e := range entries {
		var v struct {
			LagMs *int64 `json:"lagMs"`
		}
		switch {
		case e.Kind == "callback" && json.Unmarshal([]byte(e.Detail), &v) == nil && v.LagMs != nil:
			lags = append(lags, time.Duration(*v.LagMs)*time.Millisecond)
			received[e.CaseID] = e.At - *v.LagMs
		case e.Kind == "decision":
			if at, ok := received[e.CaseID]; ok {
				verified = append(verified, time.Duration(e.At-at)*time.Millisecond)
				delete(received, e.CaseID)
			}
		}
	}
	slices.Sort(lags)
	slices.Sort(verified)
	quantiles := func(d []time.Duration) string {
		if len(d) == 0 {
			return "none"
		}
		q := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
		return fmt.Sprintf("p50 %s, p99 %s, max %s", q(0.50), q(0.99), d[len(d)-1])
	}
	series := `{outcome="applied",platform="taobao"}`
	count := metricValue(t, w.metricsURL(), `refundhub_worker_callback_lag_seconds_count`+series)
	under50 := metricValue(t, w.metricsURL(), `refundhub_worker_callback_lag_seconds_bucket{outcome="applied",platform="taobao",le="0.05"}`)
	sum, _ := strconv.ParseFloat(metricValue(t, w.metricsURL(), `refundhub_worker_callback_lag_seconds_sum`+series), 64)
	cnt, _ := strconv.ParseFloat(count, 64)
	below, _ := strconv.ParseFloat(under50, 64)
	st := s.httpStats()
	t.Logf("%d callbacks posted at %d/s in %s (all 200), all recorded %s and all verified %s after the first; sandbox latency %s, platform calls %v",
		n, perSec, fed.Round(time.Millisecond), applied.Round(time.Millisecond), verifiedAll.Round(time.Millisecond), latency, st.APICalls)
	t.Logf("lag, receive to the commit that recorded the callback (timeline lagMs, %d callbacks): %s", len(lags), quantiles(lags))
	if cnt > 0 {
		t.Logf("lag histogram (to just after that commit): %s applied, mean %s, %.2f%% under 50 ms", count,
			time.Duration(sum/cnt*float64(time.Second)).Round(time.Millisecond), 100*below/cnt)
	}
	t.Logf("verified, receive to the commit of the decision on the platform's view (timeline, %d callbacks; includes the %s read): %s",
		len(verified), latency, quantiles(verified))
	if exp != nil {
		logLagParts(t, exp.GetSpans())
	}
}

// logLagParts prints p50/p99 of the parts of each traced callback's lag:
// from the receiver's span to the worker's (publish, delivery, waiting for
// a slot), the worker's decision (with its platform read) and its commits.
func logLagParts(t *testing.T, spans tracetest.SpanStubs) {
	t.Helper()
	receive := map[trace.TraceID]time.Time{}
	for _, sp := range spans {
		if sp.Name == "receive callback" {
			receive[sp.SpanContext.TraceID()] = sp.StartTime
		}
	}
	parts := map[string][]time.Duration{}
	for _, sp := range spans {
		switch sp.Name {
		case "handle callbacks":
			if at, ok := receive[sp.SpanContext.TraceID()]; ok {
				parts["receive to worker"] = append(parts["receive to worker"], sp.StartTime.Sub(at))
			}
		case "decide", "commit", "inbox check", "record callback":
			if _, ok := receive[sp.SpanContext.TraceID()]; ok {
				parts[sp.Name] = append(parts[sp.Name], sp.EndTime.Sub(sp.StartTime))
			}
		}
	}
	for _, name := range []string{"receive to worker", "inbox check", "record callback", "decide", "commit"} {
		d := parts[name]
		if len(d) == 0 {
			continue
		}
		slices.Sort(d)
		ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond / 10) }
		t.Logf("%s (%d spans): p50 %s, p99 %s, max %s", name, len(d), ms(d[len(d)/2]), ms(d[min(len(d)-1, len(d)*99/100)]), ms(d[len(d)-1]))
	}
}
