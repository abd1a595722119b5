package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// The bare loop is issue 17 §4's yardstick for the worker's throughput:
// the store alone carrying the transactions the engine commits for the
// same refund requests, with the same concurrency, but with no platform
// calls (zero latency), no JetStream and no engine. The worker's steps per
// second set beside the loop's "steps per second equivalent" (the steps the
// store alone could carry at the same transactions per step) tells how
// much of the store's capacity the worker uses.
//
// One Taobao refund request, as the engine commits it (refundflow's open,
// then persistTx for each decision; the render runs ahead of its decision,
// so that decision and the next share one transaction):
//
//  1. open: CreateCase with its lease, AppendTimeline (opened), PreviousCase.
//  2. the command's decision and the render's result: UpdateCaseLeased
//     (lease kept), AppendTimeline (note, decision), RecordCommandOutcome;
//     UpdateCaseLeased, RecordStep (render), AppendTimeline (step,
//     decision), BeginStep (the submit's intent).
//  3. the submit's result: UpdateCaseLeased (lease let go), FinishStep,
//     AppendTimeline (step, decision), InboxAdd.
//
// A callback decided on a case is one more: UpdateCaseLeased (the platform
// check, lease let go), InboxAbsent, AppendTimeline (callback, decision),
// InboxAdd. Any other callback (one about no case; an order message,
// whose order_events row the loop leaves out) is a transaction with only
// its InboxAdd.
type bareLoop struct {
	requests    int // refund requests: three transactions each
	callbacks   int // callbacks decided on a case: one transaction each
	inboxOnly   int // callbacks only recorded in the inbox: one transaction each
	concurrency int
}

// bareResult is what a bare loop measured.
type bareResult struct {
	txs     int
	elapsed time.Duration
	ops     *opTimes
}

func (r bareResult) txPerSec() float64 { return float64(r.txs) / r.elapsed.Seconds() }

// opTimes sums the wall time of each kind of store call the loop makes,
// over all goroutines.
type opTimes struct {
	mu sync.Mutex
	d  map[string]time.Duration
	n  map[string]int
}

func newOpTimes() *opTimes {
	return &opTimes{d: map[string]time.Duration{}, n: map[string]int{}}
}

// time runs f and adds its wall time to name's.
func (o *opTimes) time(name string, f func() error) error {
	start := time.Now()
	err := f()
	d := time.Since(start)
	o.mu.Lock()
	o.d[name] += d
	o.n[name]++
	o.mu.Unlock()
	return err
}

// String lists the calls by total time, each with its mean.
func (o *opTimes) String() string {
	names := make([]string, 0, len(o.d))
	var total time.Duration
	for k, d := range o.d {
		names = append(names, k)
		total += d
	}
	sort.Slice(names, func(i, j int) bool { return o.d[names[i]] > o.d[names[j]] })
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, "\n\t%-22s %6d calls, mean %8.3f ms, %5.1f%% of the calls' time", k, o.n[k],
			float64(o.d[k].Microseconds())/1000/float64(o.n[k]), 100*float64(o.d[k])/float64(total))
	}
	return b.String()
}

// run carries out the loop's transactions on st, b.concurrency at a time.
func (b bareLoop) run(t *testing.T, st *casestore.Store) bareResult {
	t.Helper()
	return b.runOn(t, []*casestore.Store{st})
}

// runOn is run with the goroutines spread evenly over stores (several
// stores on one database: a larger writer pool).
func (b bareLoop) runOn(t *testing.T, stores []*casestore.Store) bareResult {
	t.Helper()
	ctx := context.Background()
	ops := newOpTimes()
	cases := make([]casestore.Case, b.requests)
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	start := time.Now()
	for g := range b.concurrency {
		st := stores[g%len(stores)]
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1)) - 1
				var err error
				switch {
				case i < b.requests:
					cases[i], err = bareRequest(ctx, st, ops, i)
				case i < b.requests+b.callbacks:
					// The callbacks come after the requests, as the
					// worker's do (on the cases the sandbox calls back for).
					err = bareCallback(ctx, st, ops, cases[(i-b.requests)%b.requests], i)
				case i < b.requests+b.callbacks+b.inboxOnly:
					err = bareUpdate(ctx, st, ops, func(tx *casestore.Tx) error {
						return bareInbox(ctx, tx, ops, fmt.Sprintf("bare-cb-%d", i), i)
					})
				default:
					return
				}
				if err != nil {
					t.Errorf("bare loop, job %d: %v", i, err)
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	return bareResult{txs: 3*b.requests + b.callbacks + b.inboxOnly, elapsed: time.Since(start), ops: ops}
}

// bareOwner is the bare loop's lease owner.
const bareOwner = "bare-loop"

// bareUpdate is one Store.Update, its time and each call's in ops.
func bareUpdate(ctx context.Context, st *casestore.Store, ops *opTimes, fn func(tx *casestore.Tx) error) error {
	var began, ended time.Time
	start := time.Now()
	err := st.Update(ctx, func(tx *casestore.Tx) error {
		began = time.Now()
		defer func() { ended = time.Now() }()
		return fn(tx)
	})
	end := time.Now()
	// What Update takes beyond the calls. Before them: on PostgreSQL the
	// wait for one of the writer pool's connections and BEGIN; on SQLite
	// the wait for the group committer (and the batch's BEGIN and the
	// updates before this one). After them: COMMIT with its WAL flush (on
	// SQLite the batch's rest and its commit).
	ops.mu.Lock()
	ops.d["Update: to fn"] += began.Sub(start)
	ops.d["Update: after fn"] += end.Sub(ended)
	ops.n["Update: to fn"]++
	ops.n["Update: after fn"]++
	ops.mu.Unlock()
	return err
}

// bareRequest commits what the engine commits for the i-th refund request.
func bareRequest(ctx context.Context, st *casestore.Store, ops *opTimes, i int) (casestore.Case, error) {
	cmdID := fmt.Sprintf("bare-%d", i)
	order, sub := strconv.Itoa(7_000_000_000+i), strconv.Itoa(8_000_000_000+i)
	var c casestore.Case
	err := bareUpdate(ctx, st, ops, func(tx *casestore.Tx) error {
		err := ops.time("CreateCase", func() (err error) {
			c, err = tx.CreateCase(ctx, casestore.NewCase{Platform: refundflow.PlatformTaobao, OrderID: order, SubOrderID: sub,
				State: string(refundflow.StateRequested), OpenedBy: cmdID, NextWakeAt: tx.Now().Add(time.Minute),
				Request:    []byte(`{"goodsStatus":"1","reasonId":1001,"amount":0,"description":"不想要了"}`),
				LeaseOwner: bareOwner, LeaseTTL: time.Minute})
			return err
		})
		if err != nil {
			return err
		}
		if err := ops.time("AppendTimeline", func() error {
			return tx.AppendTimeline(ctx, casestore.TimelineEntry{CaseID: c.ID, Kind: casestore.KindCommand,
				Summary: "case opened by command " + cmdID})
		}); err != nil {
			return err
		}
		return ops.time("PreviousCase", func() error {
			if _, err := tx.PreviousCase(ctx, c); !errors.Is(err, casestore.ErrNotFound) {
				return fmt.Errorf("previous case: %v", err)
			}
			return nil
		})
	})
	if err != nil {
		return c, fmt.Errorf("open: %w", err)
	}
	key := "submit-" + cmdID
	err = bareUpdate(ctx, st, ops, func(tx *casestore.Tx) error {
		rendering := c
		rendering.State, rendering.NextWakeAt = string(refundflow.StateRendering), tx.Now().Add(time.Minute)
		next, err := bareDecision(ctx, tx, ops, c, rendering, time.Minute, bareStep("", ""), bareNote("command request_refund "+cmdID+" by bench"))
		if err != nil {
			return err
		}
		if err := ops.time("RecordCommandOutcome", func() error {
			return tx.RecordCommandOutcome(ctx, casestore.CommandOutcome{CommandID: cmdID, Verdict: casestore.VerdictApplied,
				CaseID: c.ID, Code: "render"})
		}); err != nil {
			return err
		}
		submitting := next
		submitting.State = string(refundflow.StateSubmitting)
		submitting.Plan = []byte(`{"refundFee":10000,"reasonId":1001,"goodsStatus":1}`)
		if err := ops.time("RecordStep", func() error {
			return tx.RecordStep(ctx, c.ID, "taobao_render", `{"subOrderId":"`+sub+`"}`,
				casestore.StepResult{Status: casestore.StepDone, Outcome: `{"reasons":3,"maxFee":10000}`, RequestID: "req-r-" + cmdID})
		}); err != nil {
			return err
		}
		c, err = bareDecision(ctx, tx, ops, next, submitting, time.Minute, bareStep("taobao_render", ""), nil)
		if err != nil {
			return err
		}
		return ops.time("BeginStep", func() error {
			_, prior, err := tx.BeginStep(ctx, c.ID, "taobao_submit", key, "submit refund of sub-order "+sub)
			if err == nil && prior {
				err = errors.New("intent existed")
			}
			return err
		})
	})
	if err != nil {
		return c, fmt.Errorf("render: %w", err)
	}
	err = bareUpdate(ctx, st, ops, func(tx *casestore.Tx) error {
		if err := ops.time("FinishStep", func() error {
			return tx.FinishStep(ctx, key, casestore.StepResult{Status: casestore.StepDone,
				Outcome: `{"refundId":"R` + cmdID + `"}`, RequestID: "req-s-" + cmdID})
		}); err != nil {
			return err
		}
		waiting := c
		waiting.State, waiting.RefundID, waiting.PlatformStatus = string(refundflow.StateWaitingSeller), "R"+cmdID, "WAIT_SELLER_AGREE"
		waiting.NextWakeAt, waiting.LastPlatformCheckAt = tx.Now().Add(6*time.Hour), tx.Now()
		var err error
		if c, err = bareDecision(ctx, tx, ops, c, waiting, 0, bareStep("taobao_submit", key), nil); err != nil {
			return err
		}
		return ops.time("InboxAdd", func() error {
			return tx.InboxAdd(ctx, casestore.InboxEntry{MsgID: cmdID, Stream: "COMMANDS", StreamSeq: uint64(i + 1),
				Subject: "commands.request_refund"})
		})
	})
	if err != nil {
		return c, fmt.Errorf("submit: %w", err)
	}
	return c, nil
}

// bareCallback commits what the engine commits for a refund callback that
// changes nothing but the case's platform check.
func bareCallback(ctx context.Context, st *casestore.Store, ops *opTimes, c casestore.Case, i int) error {
	msgID := fmt.Sprintf("bare-cb-%d", i)
	var cur casestore.Case
	if err := ops.time("GetCase (read pool)", func() (err error) { cur, err = st.GetCase(ctx, c.ID); return err }); err != nil {
		return err // the engine reads the case before deciding, outside the transaction
	}
	return bareUpdate(ctx, st, ops, func(tx *casestore.Tx) error {
		checked := cur
		checked.LastPlatformCheckAt = tx.Now()
		if _, err := bareDecision(ctx, tx, ops, cur, checked, 0, nil,
			bareNote("callback taobao_RefundBuyerModifyAgreement refund "+cur.RefundID)); err != nil {
			return err
		}
		if err := ops.time("InboxAbsent", func() error { return tx.InboxAbsent(ctx, msgID) }); err != nil {
			return err
		}
		return bareInbox(ctx, tx, ops, msgID, i)
	})
}

// bareInbox records the i-th callback in the inbox.
func bareInbox(ctx context.Context, tx *casestore.Tx, ops *opTimes, msgID string, i int) error {
	return ops.time("InboxAdd", func() error {
		return tx.InboxAdd(ctx, casestore.InboxEntry{MsgID: msgID, Stream: "CALLBACKS", StreamSeq: uint64(i + 1),
			Subject: "callbacks.taobao"})
	})
}

// bareDecision updates the case from prev to next with the loop's lease
// (kept for keep, or let go when keep is 0) and appends the decision's
// timeline entries after those given (a step's, a note).
func bareDecision(ctx context.Context, tx *casestore.Tx, ops *opTimes, prev, next casestore.Case, keep time.Duration,
	before ...[]casestore.TimelineEntry) (casestore.Case, error) {
	var updated casestore.Case
	if err := ops.time("UpdateCaseLeased", func() (err error) {
		updated, err = tx.UpdateCaseLeased(ctx, prev, next, bareOwner, keep)
		return err
	}); err != nil {
		return updated, err
	}
	var entries []casestore.TimelineEntry
	for _, e := range before {
		for _, x := range e {
			x.CaseID = prev.ID
			entries = append(entries, x)
		}
	}
	entries = append(entries, casestore.TimelineEntry{CaseID: prev.ID, Kind: casestore.KindDecision,
		Summary: "act " + next.State + ": the case moves on",
		Detail: []byte(`{"input":"step_result","outcome":"act","code":"` + next.State + `","from":"` + prev.State +
			`","to":"` + next.State + `","step":"taobao_submit","key":"k"}`)})
	return updated, ops.time("AppendTimeline", func() error { return tx.AppendTimeline(ctx, entries...) })
}

// bareStep is the timeline entry of a step that ran (none for "").
func bareStep(name, key string) []casestore.TimelineEntry {
	if name == "" {
		return nil
	}
	return []casestore.TimelineEntry{{Kind: casestore.KindStep, Summary: name + " ok requestId=0b1c2d3e4f",
		Detail: []byte(`{"step":"` + name + `","key":"` + key + `","requestId":"0b1c2d3e4f","ms":100}`)}}
}

func bareNote(s string) []casestore.TimelineEntry {
	return []casestore.TimelineEntry{{Kind: casestore.KindCommand, Summary: s}}
}

// storeRows counts the rows of the tables a refund request writes.
func storeRows(t *testing.T, db *sqlx.DB) string {
	t.Helper()
	var out []string
	for _, table := range []string{"cases", "step_attempts", "timeline", "inbox", "command_outcomes", "order_events"} {
		var n int
		if err := db.Get(&n, `SELECT count(*) FROM `+table); err != nil {
			t.Fatalf("count %s: %v", table, err)
		}
		out = append(out, fmt.Sprintf("%s %d", table, n))
	}
	return strings.Join(out, ", ")
}

// compareBareLoop runs the bare loop after a worker run (worker: a read
// handle on its store, elapsed its wall time) with the same requests and
// callbacks, on a fresh store of the same kind, and prints the worker's
// steps per second beside the loop's.
func compareBareLoop(t *testing.T, bs benchStore, worker *sqlx.DB, elapsed time.Duration, concurrency int) {
	t.Helper()
	var steps, requests, callbacks, decided int
	if err := worker.Get(&steps, `SELECT count(*) FROM step_attempts`); err != nil {
		t.Fatal(err)
	}
	if err := worker.Get(&requests, `SELECT count(*) FROM cases`); err != nil {
		t.Fatal(err)
	}
	if err := worker.Get(&callbacks, `SELECT count(*) FROM inbox WHERE subject NOT LIKE 'commands.%'`); err != nil {
		t.Fatal(err)
	}
	if err := worker.Get(&decided, `SELECT count(*) FROM timeline WHERE kind = 'callback'`); err != nil {
		t.Fatal(err)
	}
	workerRows := storeRows(t, worker)
	loop := bareLoop{requests: requests, callbacks: decided, inboxOnly: callbacks - decided, concurrency: concurrency}
	target := bs.fresh(t)
	st, err := casestore.Open(context.Background(), target, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res := loop.run(t, st)
	bare, err := bs.open(target)
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()

	workerSteps := float64(steps) / elapsed.Seconds()
	bareSteps := float64(steps) / res.elapsed.Seconds() // same transactions per step
	t.Logf("load average: %s", loadAvg())
	t.Logf("worker on %s: %d platform steps in %s: %.0f steps/s (%d requests, %d callbacks recorded, %d of them decided on a case: %d transactions, %.2f per step)",
		bs.name(), steps, elapsed.Round(time.Millisecond), workerSteps, requests, callbacks, decided, res.txs, float64(res.txs)/float64(steps))
	t.Logf("bare %s loop, the same %d transactions through casestore, concurrency %d, no platform, no JetStream: %s: %.0f tx/s, %.0f steps/s equivalent; worker/bare %.3f",
		bs.name(), res.txs, loop.concurrency, res.elapsed.Round(time.Millisecond), res.txPerSec(), bareSteps, workerSteps/bareSteps)
	t.Logf("rows written: worker %s; bare loop %s", workerRows, storeRows(t, bare))
	t.Logf("bare loop, wall time per store call (summed over goroutines):%s", res.ops)
}

// loadAvg is the machine's load average (/proc/loadavg), for the log.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// TestBenchBareLoop runs the bare loop alone, for finding where the store's
// time goes (docs/benchmarks.md):
//
//	WORKER_BENCH=1 go test -run TestBenchBareLoop -v -count=1 ./cmd/worker/
//	WORKER_BENCH=1 WORKER_BENCH_STORE=postgres go test -run TestBenchBareLoop -v -count=1 ./cmd/worker/
//
// 1,000 requests' transactions at concurrency 1 (each call's own latency)
// and 100 (the worker's); on PostgreSQL also with settings a deployment
// could change, given as connection parameters, and with the goroutines
// spread over two and four stores (casestore's writer pool is fixed, so
// more stores stand in for a larger pool). Each variant prints the
// cluster's WAL statistics over its run.
func TestBenchBareLoop(t *testing.T) {
	if os.Getenv("WORKER_BENCH") == "" {
		t.Skip("set WORKER_BENCH=1 to run the worker benchmarks")
	}
	bs := newBenchStore(t)
	type variant struct {
		name        string
		params      string // PostgreSQL connection parameters
		stores      int
		concurrency int
	}
	variants := []variant{{"concurrency 1", "", 1, 1}, {"concurrency 100", "", 1, 100}}
	if bs.pg != nil {
		variants = append(variants,
			variant{"synchronous_commit=off", "synchronous_commit=off", 1, 100},
			variant{"commit_delay=200us, commit_siblings=2", "commit_delay=200&commit_siblings=2", 1, 100},
			variant{"2 stores (16 writer connections)", "", 2, 100},
			variant{"4 stores (32 writer connections)", "", 4, 100})
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			target := bs.fresh(t)
			if v.params != "" {
				target += "&" + v.params
			}
			stores := make([]*casestore.Store, v.stores)
			for i := range stores {
				st, err := casestore.Open(context.Background(), target, nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = st.Close() })
				stores[i] = st
			}
			var dbTxs int64 // the database transactions that carry the loop's (not the migrations')
			for _, st := range stores {
				dbTxs -= st.Transactions()
			}
			wal := bs.walStats(t)
			cpu := machineCPU(t)
			res := bareLoop{requests: 1000, concurrency: v.concurrency}.runOn(t, stores)
			busy := cpu(res.txs, "transaction")
			for _, st := range stores {
				dbTxs += st.Transactions()
			}
			for _, st := range stores {
				if err := st.Close(); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("load average %s; bare %s loop, %s: %d transactions (carried by %d database transactions) in %s: %.0f tx/s, %.2f ms per transaction per goroutine; %s%s%s",
				loadAvg(), bs.name(), v.name, res.txs, dbTxs, res.elapsed.Round(time.Millisecond), res.txPerSec(),
				float64(res.elapsed.Microseconds())/1000*float64(v.concurrency)/float64(res.txs), busy, wal(res.txs), res.ops)
		})
	}
}

// machineCPU reads the machine's CPU time (/proc/stat), this process's
// (getrusage) and its child processes' and theirs (the test's PostgreSQL
// cluster: the postmaster and its backends; the worker binary); the
// function it returns formats their use since, in cores over the wall time
// and per unit of work (n of them: transactions, requests). The interval
// ends at its first call: later calls divide the same use by other units.
func machineCPU(t *testing.T) func(n int, unit string) string {
	t.Helper()
	read := func() (busy, all int64, self, kids time.Duration) {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			t.Fatal(err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		for i, f := range strings.Fields(line)[1:] {
			v, _ := strconv.ParseInt(f, 10, 64)
			all += v
			if i != 3 && i != 4 { // idle, iowait
				busy += v
			}
		}
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return busy, all, time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), descendantsCPU(os.Getpid())
	}
	b0, a0, s0, k0 := read()
	start := time.Now()
	var b1, a1 int64
	var s1, k1 time.Duration
	var wall time.Duration
	return func(units int, unit string) string {
		if wall == 0 { // the interval ends at the first call; later ones divide it by other units
			b1, a1, s1, k1 = read()
			wall = time.Since(start)
		}
		n := float64(units)
		// /proc/stat counts in clock ticks, 100 per second.
		busyMS := float64(b1-b0) * 10
		return fmt.Sprintf("machine CPU busy %.0f%% of its cores (%.2f ms per %s); this process %.2f cores (%.3f ms per %s), its child processes %.2f cores (%.3f ms per %s)",
			100*float64(b1-b0)/float64(max(a1-a0, 1)), busyMS/n, unit,
			(s1-s0).Seconds()/wall.Seconds(), float64((s1-s0).Microseconds())/1000/n, unit,
			(k1-k0).Seconds()/wall.Seconds(), float64((k1-k0).Microseconds())/1000/n, unit)
	}
}

// descendantsCPU sums the CPU time (user and system) of pid's descendant
// processes that are running now, from /proc. Children are listed by the
// thread that started them (pgtest starts the server from a locked one).
func descendantsCPU(pid int) time.Duration {
	var total time.Duration
	var kids []string
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, task := range tasks {
		b, _ := os.ReadFile(task)
		kids = append(kids, strings.Fields(string(b))...)
	}
	for _, f := range kids {
		kid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", kid)); err == nil {
			// Fields after the command name (in parentheses): utime and
			// stime are the 12th and 13th, in clock ticks (100 per second).
			if _, rest, ok := strings.Cut(string(stat), ") "); ok {
				if f := strings.Fields(rest); len(f) > 12 {
					u, _ := strconv.ParseInt(f[11], 10, 64)
					s, _ := strconv.ParseInt(f[12], 10, 64)
					total += time.Duration(u+s) * 10 * time.Millisecond
				}
			}
		}
		total += descendantsCPU(kid)
	}
	return total
}
