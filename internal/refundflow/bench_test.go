package refundflow_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// The benchmarks are long runs, off by default:
//
//	REFUNDFLOW_BENCH=1 go test -run 'TestBench' -v -count=1 ./internal/refundflow/
//
// They print steps per second beside a bare SQLite loop, the 1,000-case run
// against a 100 ms sandbox beside its critical-path bound, and the peak RSS
// with 10,000 open cases.
func benchOn(t *testing.T) {
	if os.Getenv("REFUNDFLOW_BENCH") == "" {
		t.Skip("set REFUNDFLOW_BENCH=1 to run the benchmarks")
	}
}

type benchEnv struct {
	sb    *sandbox.Sandbox
	url   string
	store *casestore.Store
	eng   *refundflow.Engine
	r     *rig
}

func newBench(t *testing.T, latency time.Duration) *benchEnv {
	t.Helper()
	sb, err := sandbox.New(sandbox.Config{AccessKey: testKey, AccessSecret: testSecret,
		Seller: sandbox.SellerPolicy{Decision: sandbox.DecisionManual}, Seed: 7,
		Faults: sandbox.Faults{LatencyMin: latency, LatencyMax: latency}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = sb.Run(ctx) })
	store, err := casestore.Open(ctx, filepath.Join(t.TempDir(), "bench.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	client := newClient(t, srv.URL)
	eng, err := refundflow.NewEngine(refundflow.EngineConfig{Store: store, Client: client, Policy: testPolicy, Owner: "bench"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); wg.Wait(); srv.Close(); _ = store.Close() })
	r := &rig{t: t, sb: sb, url: srv.URL, store: store, client: client}
	r.setEngine(eng)
	return &benchEnv{sb: sb, url: srv.URL, store: store, eng: eng, r: r}
}

// runCases opens n Taobao refund-only cases (render + submit: 2 steps each)
// with the given concurrency and returns the elapsed time.
func (b *benchEnv) runCases(t *testing.T, n, concurrency int) (time.Duration, int64) {
	t.Helper()
	type job struct{ o, so string }
	jobs := make([]job, n)
	for i := range jobs {
		jobs[i].o, jobs[i].so = b.r.order(sandbox.PlatformTaobao, nil)
	}
	var next atomic.Int64
	var steps atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				cmd := b.r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, jobs[i].o, jobs[i].so)
				cmd.Request = taobaoRequest(false)
				h, err := b.eng.HandleCommand(context.Background(), cmd, &refundflow.Message{ID: cmd.ID})
				if err != nil || h.State != refundflow.StateWaitingSeller {
					t.Errorf("case %d: %+v %v", i, h, err)
					return
				}
				steps.Add(int64(h.Steps))
			}
		})
	}
	wg.Wait()
	return time.Since(start), steps.Load()
}

func TestBenchStepsPerSecond(t *testing.T) {
	benchOn(t)
	for _, conc := range []int{1, 8, 32} {
		t.Run(fmt.Sprintf("concurrency %d", conc), func(t *testing.T) { benchSteps(t, conc) })
	}
}

func benchSteps(t *testing.T, concurrency int) {
	const n = 300
	b := newBench(t, 0)
	before, txBefore := b.store.Commits(), b.store.Transactions()
	elapsed, steps := b.runCases(t, n, concurrency)
	commits := b.store.Commits() - before
	txs := b.store.Transactions() - txBefore

	// The bare loop: as many transactions as the engine's updates, one
	// after the other, on a database with the same pragmas (the writer DSN
	// of casestore), each BEGIN IMMEDIATE + an UPDATE of a case + an INSERT
	// into the timeline + COMMIT, as most engine updates are.
	bareFile := filepath.Join(t.TempDir(), "bare.db")
	bareStore, err := casestore.Open(context.Background(), bareFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	var c casestore.Case
	err = bareStore.Update(context.Background(), func(tx *casestore.Tx) error {
		c, err = tx.CreateCase(context.Background(), casestore.NewCase{Platform: "taobao", OrderID: "1", SubOrderID: "1", State: "requested"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = bareStore.Close()
	db, err := sql.Open("sqlite3", "file:"+bareFile+"?_journal_mode=WAL&_synchronous=FULL&_busy_timeout=5000&_foreign_keys=1&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	start := time.Now()
	for i := int64(0); i < commits; i++ {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(`UPDATE cases SET next_wake_at = ?, version = version + 1 WHERE id = ?`, time.Now().UnixMilli(), c.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(`INSERT INTO timeline (case_id, at, kind, summary, detail) VALUES (?, ?, 'decision', ?, '{}')`,
			c.ID, time.Now().UnixMilli(), "bare "+strconv.FormatInt(i, 10)); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	bareElapsed := time.Since(start)
	stepsPerSec := float64(steps) / elapsed.Seconds()
	bareStepsPerSec := float64(steps) / bareElapsed.Seconds()
	t.Logf("engine (concurrency %d): %d cases, %d steps, %d updates (%.1f per step) in %d SQLite transactions (group commit), %s: %.0f steps/s",
		concurrency, n, steps, commits, float64(commits)/float64(steps), txs, elapsed.Round(time.Millisecond), stepsPerSec)
	t.Logf("bare SQLite loop: %d sequential transactions in %s: %.0f tx/s, i.e. %.0f steps/s at the same updates per step", commits,
		bareElapsed.Round(time.Millisecond), float64(commits)/bareElapsed.Seconds(), bareStepsPerSec)
	t.Logf("ratio engine/bare: %.2f (1.00 = the engine costs only its transactions)", stepsPerSec/bareStepsPerSec)
}

func TestBenchThousandCasesAt100ms(t *testing.T) {
	benchOn(t)
	const n, concurrency = 1000, 100
	const latency = 100 * time.Millisecond
	// Without lookahead first (every decision commits before its step),
	// for comparison; then the engine as it runs.
	for _, noAhead := range []bool{true, false} {
		b := newBench(t, latency)
		if noAhead {
			eng, err := refundflow.NewEngine(refundflow.EngineConfig{Store: b.store, Client: b.r.client, Policy: testPolicy,
				Owner: "bench", NoLookahead: true})
			if err != nil {
				t.Fatal(err)
			}
			b.eng = eng
		}
		before, txBefore := b.store.Commits(), b.store.Transactions()
		calls0 := totalCalls(b.sb.Stats())
		cpu0 := cpuTime(t)
		elapsed, steps := b.runCases(t, n, concurrency)
		cpu := cpuTime(t) - cpu0
		calls := totalCalls(b.sb.Stats()) - calls0
		// Each case is render then submit, one after the other (the render
		// step lists the sub-order's refunds beside the form: a second call,
		// in parallel); the rate limit is off, so the bound is the steps
		// each worker slot runs in a row.
		bound := time.Duration(float64(steps)/float64(concurrency)) * latency
		name := "engine"
		if noAhead {
			name = "engine without lookahead"
		}
		t.Logf("%s: %d cases, %d steps (%d platform calls), %d updates in %d transactions, concurrency %d, sandbox latency %s: %s; critical-path bound (steps x latency / concurrency) %s; ratio %.2f (target <= 1.25); CPU %s (%.0f µs per case, engine and sandbox)",
			name, n, steps, calls, b.store.Commits()-before, b.store.Transactions()-txBefore, concurrency, latency,
			elapsed.Round(time.Millisecond), bound, elapsed.Seconds()/bound.Seconds(), cpu.Round(time.Millisecond),
			float64(cpu.Microseconds())/n)
	}
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestBenchRSSTenThousandOpenCases(t *testing.T) {
	benchOn(t)
	const n = 10000
	b := newBench(t, 0)
	ctx := context.Background()
	var ids []int64
	err := b.store.Update(ctx, func(tx *casestore.Tx) error {
		for i := range n {
			c, err := tx.CreateCase(ctx, casestore.NewCase{Platform: "taobao", OrderID: strconv.Itoa(100000 + i),
				SubOrderID: strconv.Itoa(500000 + i), State: string(refundflow.StateWaitingSeller), NextWakeAt: time.Now()})
			if err != nil {
				return err
			}
			c.RefundID = fmt.Sprintf("R%d", i)
			if _, err := tx.UpdateCase(ctx, c); err != nil {
				return err
			}
			ids = append(ids, c.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Every open case is due: sweep them all through the engine as the
	// timer loop does (each fetches its refund and records the result).
	start := time.Now()
	due, err := b.store.DueCases(ctx, time.Now(), 1000)
	if err != nil || len(due) == 0 {
		t.Fatalf("due cases: %d %v", len(due), err)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, _ = b.eng.Wake(ctx, id, refundflow.InputTimer)
		})
	}
	wg.Wait()
	runtime.GC()
	t.Logf("%d open cases swept in %s; peak RSS of the test process (engine + sandbox + SQLite) %s", n,
		time.Since(start).Round(time.Millisecond), peakRSS())
}

func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:"))
		}
	}
	return "unknown"
}

// totalCalls is the number of API calls the sandbox answered.
func totalCalls(st sandbox.Stats) int64 {
	var n int64
	for _, c := range st.APICalls {
		n += c
	}
	return n
}
