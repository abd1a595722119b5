package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// TestBenchWorkerRSS measures the worker binary itself (go build of this
// package, run as its own process) holding and sweeping 10,000 open cases:
//
//	WORKER_BENCH=1 go test -run TestBenchWorkerRSS -v -count=1 ./cmd/worker/
//
// The sandbox holds 10,000 Taobao refunds waiting for the seller (and pushes
// their callbacks through the receiver into the stream); the database holds
// one open case for each, all due. The worker starts, sweeps every case
// (timer: fetch the refund, record the check) and handles the callbacks;
// the test then reads the worker process's peak RSS (VmHWM) from /proc.
func TestBenchWorkerRSS(t *testing.T) {
	if os.Getenv("WORKER_BENCH") == "" {
		t.Skip("set WORKER_BENCH=1 to run the worker benchmarks")
	}
	const n = 10000
	s := newStack(t, sandbox.Faults{}, sandbox.SellerPolicy{Decision: sandbox.DecisionManual}, 1, map[string]string{
		"WORKER_CONCURRENCY": "32", "UPSTREAM_RATE_LIMIT": "100000", "UPSTREAM_RATE_BURST": "1000",
		"WORKER_TIMER_INTERVAL": "200ms", "WORKER_RECONCILE_INTERVAL": "1h", "WORKER_RECHECK": "6h",
		"WORKER_ACK_WAIT": "30s", "WORKER_SHUTDOWN_TIMEOUT": "10s"})
	ctx := context.Background()

	// 10,000 refunds on the platform, submitted directly (not by a worker).
	client, err := apiclient.New(apiclient.Config{BaseURL: s.sbURL, AccessKey: e2eKey, AccessSecret: e2eSecret,
		UserID: "e2e-user", RateLimit: rate.Inf, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	type refund struct{ order, sub, id string }
	refunds := make([]refund, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || t.Failed() {
					return
				}
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
	// One open case per refund, all due now.
	for lo := 0; lo < n; lo += 1000 {
		err := s.store.Update(ctx, func(tx *casestore.Tx) error {
			for _, r := range refunds[lo:min(lo+1000, n)] {
				c, err := tx.CreateCase(ctx, casestore.NewCase{Platform: refundflow.PlatformTaobao, OrderID: r.order,
					SubOrderID: r.sub, State: string(refundflow.StateWaitingSeller), NextWakeAt: time.Now()})
				if err != nil {
					return err
				}
				c.RefundID = r.id
				if _, err := tx.UpdateCase(ctx, c); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("setup: %d refunds and open cases in %s", n, time.Since(start).Round(time.Millisecond))

	w := s.startBinary()
	swept := time.Now()
	done, cmd, errs := w.done, w.cmd, w.errs

	db, err := sqlx.Open("sqlite3", "file:"+s.dbPath+"?_query_only=1&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var checked int
	waitFor(t, 5*time.Minute, "every case checked on the platform", func() bool {
		select {
		case <-done:
			t.Fatalf("worker exited: %v\n%s", w.err, errs.String())
		default:
		}
		if err := db.Get(&checked, `SELECT count(*) FROM cases WHERE last_platform_check_at IS NOT NULL`); err != nil {
			return false
		}
		return checked >= n
	})
	elapsed := time.Since(swept)
	hwm, rss := procMem(t, cmd.Process.Pid)
	var open int
	if err := db.Get(&open, `SELECT count(*) FROM cases WHERE state = ?`, string(refundflow.StateWaitingSeller)); err != nil {
		t.Fatal(err)
	}
	if open != n {
		t.Fatalf("%d cases still waiting for the seller; want %d (the sweep must not change them)", open, n)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		if w.err != nil {
			t.Fatalf("worker exit after SIGTERM: %v\n%s", w.err, errs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not exit within 30s of SIGTERM")
	}
	t.Logf("worker binary: %d open cases, all swept (fetched and recorded) in %s (from process start, concurrency 32); peak RSS (VmHWM) %s, RSS at the end %s",
		n, elapsed.Round(time.Millisecond), hwm, rss)
}

// procMem reads a process's peak and current resident set size.
func procMem(t *testing.T, pid int) (hwm, rss string) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read /proc/%d/status: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "VmHWM":
			hwm = v
		case "VmRSS":
			rss = v
		}
	}
	if hwm == "" {
		t.Fatalf("no VmHWM in /proc/%d/status", pid)
	}
	if kb, err := strconv.Atoi(strings.TrimSuffix(hwm, " kB")); err == nil {
		hwm = fmt.Sprintf("%.1f MB", float64(kb)/1024)
	}
	if kb, err := strconv.Atoi(strings.TrimSuffix(rss, " kB")); err == nil {
		rss = fmt.Sprintf("%.1f MB", float64(kb)/1024)
	}
	return hwm, rss
}

// binProc is the worker binary running as its own process.
type binProc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	errs *syncBuffer
	done chan struct{}
	err  error // cmd.Wait's result, set before done closes
}

// startBinary builds this package and runs it with the stack's environment
// (killed at the end of the test if still running). It does not wait for
// readiness: the callers measure from the start.
func (s *stack) startBinary() *binProc {
	s.t.Helper()
	bin := filepath.Join(s.t.TempDir(), "worker")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		s.t.Fatalf("go build: %v\n%s", err, out)
	}
	w := &binProc{cmd: exec.Command(bin), out: &syncBuffer{}, errs: &syncBuffer{}, done: make(chan struct{})}
	w.cmd.Env = os.Environ()
	for k, v := range s.env {
		w.cmd.Env = append(w.cmd.Env, k+"="+v)
	}
	w.cmd.Stdout, w.cmd.Stderr = w.out, w.errs
	if err := w.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() { w.err = w.cmd.Wait(); close(w.done) }()
	s.t.Cleanup(func() {
		_ = w.cmd.Process.Kill()
		<-w.done
	})
	return w
}

// benchRequests are n Taobao refund requests, each for an order of its
// own the sandbox holds, as the benchmarks file them.
func (s *stack) benchRequests(n int) []refundflow.Command {
	cmds := make([]refundflow.Command, n)
	for i := range cmds {
		o, so := s.order(sandbox.PlatformTaobao, nil)
		cmds[i] = refundflow.Command{Kind: refundflow.InputRequestRefund, Platform: refundflow.PlatformTaobao,
			OrderID: o, SubOrderID: so, Operator: "bench",
			Request: &refundflow.Request{GoodsStatus: "1", ReasonID: 1001, Amount: 0, Description: "不想要了"}}
	}
	return cmds
}

// startBinaryReady is startBinary, returning once the worker serves its
// metrics (it is up: consumers made, store open).
func (s *stack) startBinaryReady() *binProc {
	s.t.Helper()
	w := s.startBinary()
	waitFor(s.t, 30*time.Second, "worker ready", func() bool {
		select {
		case <-w.done:
			s.t.Fatalf("worker exited: %v\n%s", w.err, w.errs.String())
		default:
		}
		return metricsLine.MatchString(w.errs.String())
	})
	return w
}

// publishAll publishes cmds from goroutines publishers at once.
func (s *stack) publishAll(cmds []refundflow.Command, publishers int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(cmds) {
					return
				}
				s.publish(cmds[i])
			}
		})
	}
	wg.Wait()
}

// TestBenchWorkerThousandCases runs 1,000 Taobao refund requests through
// the whole product path (commands stream, worker binary, SQLite, sandbox
// with 100 ms latency on every call):
//
//	WORKER_BENCH=1 go test -run TestBenchWorkerThousandCases -v -count=1 ./cmd/worker/
//
// Each case is two platform steps (render, submit). The clock runs from the
// first command published (worker already up) until every case waits for
// the seller, beside the bound steps x latency / WORKER_CONCURRENCY. A second
// run lets the sandbox push its callbacks (through the receiver into the
// stream): each is a hint the worker verifies with one more platform call,
// so that run is set beside the bound of all the platform calls made.
func TestBenchWorkerThousandCases(t *testing.T) {
	if os.Getenv("WORKER_BENCH") == "" {
		t.Skip("set WORKER_BENCH=1 to run the worker benchmarks")
	}
	for _, callbacks := range []bool{false, true} {
		name := "no callbacks"
		if callbacks {
			name = "with callbacks"
		}
		t.Run(name, func(t *testing.T) { benchThousand(t, callbacks) })
	}
}

func benchThousand(t *testing.T, callbacks bool) {
	const n, concurrency = 1000, 100
	const latency = 100 * time.Millisecond
	faults := sandbox.Faults{LatencyMin: latency, LatencyMax: latency, DropPushRate: 1}
	if callbacks {
		faults.DropPushRate = 0
	}
	env := map[string]string{"WORKER_CONCURRENCY": strconv.Itoa(concurrency), "UPSTREAM_RATE_LIMIT": "100000",
		"UPSTREAM_RATE_BURST": "1000", "UPSTREAM_TIMEOUT": "5s", "WORKER_LEASE_TTL": "1m", "WORKER_ACK_WAIT": "30s",
		"WORKER_TIMER_INTERVAL": "1s", "WORKER_RECONCILE_INTERVAL": "1h", "WORKER_STEP_TIMEOUT": "1m",
		"WORKER_SHUTDOWN_TIMEOUT": "10s"}
	bs := newBenchStore(t)
	bs.setEnv(t, env)
	s := newStack(t, faults, sandbox.SellerPolicy{Decision: sandbox.DecisionManual}, 1, env)
	cmds := s.benchRequests(n)
	s.startBinaryReady()
	db, err := bs.openCases(s)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	before := s.httpStats()
	calls0 := totalCalls(before)

	cpu := machineCPU(t)
	start := time.Now()
	s.publishAll(cmds, 16)
	published := time.Since(start)
	var waiting int
	waitFor(t, 2*time.Minute, "every case waiting for the seller", func() bool {
		// The sandbox's count first, in this process: a count of the
		// cases every 20 ms is a statement the measured store runs
		// (docs/benchmarks.md), so only the run's last moments ask it.
		if len(s.sb.Stats().RefundSubmissions) < n {
			return false
		}
		if err := db.Get(&waiting, db.Rebind(`SELECT count(*) FROM cases WHERE state = ?`), string(refundflow.StateWaitingSeller)); err != nil {
			return false
		}
		return waiting >= n
	})
	elapsed := time.Since(start)
	busy := cpu(n, "request") // the steadier figure on a machine the run saturates
	st := s.httpStats()
	if st.DuplicateSubmissions != 0 || len(st.RefundSubmissions) != n {
		t.Fatalf("sandbox: %d refunds, %d duplicate submissions; want %d and 0", len(st.RefundSubmissions), st.DuplicateSubmissions, n)
	}
	calls := totalCalls(st) - calls0
	bound := time.Duration(2*n/concurrency) * latency
	callBound := time.Duration(float64(calls)/concurrency) * latency
	// Issue 17's target is against the platform calls' bound (every call,
	// the list and the queries too, is on a case's critical path), within
	// 1.10 on SQLite and 1.25 on PostgreSQL; the steps' bound is the older
	// figure, printed for comparison with earlier sections.
	target := 1.10
	if bs.pg != nil {
		target = 1.25
	}
	t.Logf("worker binary through JetStream, callbacks %v: %d cases (2 steps each), concurrency %d, sandbox latency %s: %s (commands published in %s); %d platform calls, bound (calls x latency / concurrency) %s: ratio %.2f (target <= %.2f); bound of the 2 steps alone %s: ratio %.2f",
		callbacks, n, concurrency, latency, elapsed.Round(time.Millisecond), published.Round(time.Millisecond),
		calls, callBound, elapsed.Seconds()/callBound.Seconds(), target, bound, elapsed.Seconds()/bound.Seconds())
	t.Logf("CPU over that run (callbacks %v): %s", callbacks, busy)
	t.Logf("the same per platform call (what runs with different callbacks compare by): %s", cpu(int(calls), "platform call"))
	t.Logf("platform calls by endpoint: %s", callsByEndpoint(before, st))
	bs.printStatements(t, db)
	compareBareLoop(t, bs, db, elapsed, concurrency)
}

// benchStore is where the throughput benchmark keeps its cases: the
// stack's SQLite file, or with WORKER_BENCH_STORE=postgres a PostgreSQL
// database of a durable throwaway cluster (fsync and synchronous_commit
// on), as in production. The bare loop (bareloop_test.go) gets a fresh
// store of the same kind and settings from it.
type benchStore struct {
	pg         *pgtest.Cluster // nil: SQLite
	url        string          // the worker's database on pg
	statements bool            // WORKER_BENCH_STATEMENTS: print what the server ran
}

func newBenchStore(t *testing.T) benchStore {
	t.Helper()
	if os.Getenv("WORKER_BENCH_STORE") != "postgres" {
		return benchStore{}
	}
	statements := os.Getenv("WORKER_BENCH_STATEMENTS") != ""
	pg := pgtest.Start(t, pgtest.Options{Durable: true, Statements: statements})
	bs := benchStore{pg: pg, url: pg.NewDatabase(t), statements: statements}
	if statements {
		db, err := bs.open(bs.url)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`CREATE EXTENSION pg_stat_statements`); err != nil {
			t.Fatal(err)
		}
	}
	return bs
}

// printStatements logs, with WORKER_BENCH_STATEMENTS set, the statements
// PostgreSQL ran for the worker, most frequent first (pg_stat_statements),
// and starts the count again: where a run's round trips went.
func (b benchStore) printStatements(t *testing.T, db *sqlx.DB) {
	t.Helper()
	if !b.statements {
		return
	}
	var rows []struct {
		Calls int64   `db:"calls"`
		Ms    float64 `db:"ms"`
		Query string  `db:"query"`
	}
	if err := db.Select(&rows, `SELECT calls, total_exec_time AS ms, left(regexp_replace(query, '\s+', ' ', 'g'), 140) AS query
		FROM pg_stat_statements WHERE calls >= 100 AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		ORDER BY calls DESC`); err != nil {
		t.Fatalf("pg_stat_statements: %v", err)
	}
	var b2 strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b2, "\n\t%7d %9.1f ms  %s", r.Calls, r.Ms, r.Query)
	}
	t.Logf("statements PostgreSQL ran for the worker (100 calls or more): calls, time, statement%s", b2.String())
	// Heap-only updates add no index entry: what an update of a column no
	// index holds costs, when the row's page has room for the new version.
	var tables []struct {
		Name    string `db:"relname"`
		Ins     int64  `db:"n_tup_ins"`
		Upd     int64  `db:"n_tup_upd"`
		HOT     int64  `db:"n_tup_hot_upd"`
		Indexes int64  `db:"indexes"`
	}
	if err := db.Select(&tables, `SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd,
			(SELECT count(*) FROM pg_index i WHERE i.indrelid = t.relid) AS indexes
		FROM pg_stat_user_tables t WHERE n_tup_ins + n_tup_upd > 0 ORDER BY relname`); err != nil {
		t.Fatalf("pg_stat_user_tables: %v", err)
	}
	b2.Reset()
	for _, r := range tables {
		fmt.Fprintf(&b2, "\n\t%-18s %2d indexes  %6d inserts  %6d updates, %6d of them heap-only", r.Name, r.Indexes, r.Ins, r.Upd, r.HOT)
	}
	t.Logf("rows PostgreSQL wrote (statistics as the server's backends last reported them):%s", b2.String())
	if _, err := db.Exec(`SELECT pg_stat_statements_reset()`); err != nil {
		t.Fatal(err)
	}
}

// name is the store's kind, for the log.
func (b benchStore) name() string {
	if b.pg != nil {
		return "PostgreSQL"
	}
	return "SQLite"
}

// setEnv points the worker at the store (the stack's SQLite file needs
// nothing).
func (b benchStore) setEnv(t *testing.T, env map[string]string) {
	t.Helper()
	if b.pg != nil {
		env["DB_URL"] = b.url
	}
}

// openCases opens a read handle on the worker's store.
func (b benchStore) openCases(s *stack) (*sqlx.DB, error) {
	if b.pg != nil {
		return b.open(b.url)
	}
	return b.open(s.dbPath)
}

// open opens a read handle on the store at target (a SQLite path or a
// PostgreSQL URL).
func (b benchStore) open(target string) (*sqlx.DB, error) {
	if b.pg != nil {
		return sqlx.Open("pgx", target)
	}
	return sqlx.Open("sqlite3", "file:"+target+"?_query_only=1&_busy_timeout=5000")
}

// fresh is the target (casestore.Open's argument) of a new, empty store of
// the same kind and settings as the worker's.
func (b benchStore) fresh(t *testing.T) string {
	t.Helper()
	if b.pg != nil {
		return b.pg.NewDatabase(t)
	}
	return filepath.Join(t.TempDir(), "bare.db")
}

// callsByEndpoint lists the calls each endpoint took between two reads of
// the sandbox's statistics, most first: which reads the callbacks cost.
func callsByEndpoint(before, after sandbox.Stats) string {
	type ep struct {
		name string
		n    int64
	}
	var eps []ep
	for name, n := range after.APICalls {
		if d := n - before.APICalls[name]; d > 0 {
			eps = append(eps, ep{name, d})
		}
	}
	slices.SortFunc(eps, func(a, b ep) int { return cmp.Or(cmp.Compare(b.n, a.n), strings.Compare(a.name, b.name)) })
	parts := make([]string, len(eps))
	for i, e := range eps {
		parts[i] = fmt.Sprintf("%s %d", e.name, e.n)
	}
	return strings.Join(parts, ", ")
}

// totalCalls sums the sandbox's API calls by endpoint.
func totalCalls(st sandbox.Stats) int64 {
	var n int64
	for _, c := range st.APICalls {
		n += c
	}
	return n
}

// walStats reads the cluster's WAL statistics (pg_stat_wal, with
// track_wal_io_timing on) and returns a function that formats their change
// since, per transaction; on SQLite it returns "". Call that function once
// the stores are closed: a backend flushes its statistics as it exits.
func (b benchStore) walStats(t *testing.T) func(txs int) string {
	t.Helper()
	if b.pg == nil {
		return func(int) string { return "" }
	}
	db, err := sqlx.Open("pgx", b.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	for _, q := range []string{`ALTER SYSTEM SET track_wal_io_timing = on`, `SELECT pg_reload_conf()`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	type wal struct {
		Records  int64   `db:"wal_records"`
		Bytes    int64   `db:"wal_bytes"`
		Writes   int64   `db:"wal_write"`
		Syncs    int64   `db:"wal_sync"`
		SyncTime float64 `db:"wal_sync_time"`
	}
	read := func() wal {
		var w wal
		if err := db.Get(&w, `SELECT wal_records, wal_bytes::bigint AS wal_bytes, wal_write, wal_sync, wal_sync_time FROM pg_stat_wal`); err != nil {
			t.Fatalf("pg_stat_wal: %v", err)
		}
		return w
	}
	w0 := read()
	return func(txs int) string {
		waitFor(t, 10*time.Second, "the stores' backends gone", func() bool {
			var n int
			return db.Get(&n, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'refundhub'`) == nil && n == 0
		})
		w := read()
		n := float64(txs)
		return fmt.Sprintf("; WAL per transaction: %.1f records, %.0f bytes, %.2f writes, %.2f flushes (fsync), flush time %.3f ms per flush",
			float64(w.Records-w0.Records)/n, float64(w.Bytes-w0.Bytes)/n, float64(w.Writes-w0.Writes)/n, float64(w.Syncs-w0.Syncs)/n,
			(w.SyncTime-w0.SyncTime)/max(float64(w.Syncs-w0.Syncs), 1))
	}
}
