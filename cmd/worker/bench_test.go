package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
				c, err := tx.CreateCase(ctx, casestore.NewCase{Platform: string(refundflow.PlatformTaobao), OrderID: r.order,
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

	// The worker binary.
	bin := filepath.Join(t.TempDir(), "worker")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Env = os.Environ()
	for k, v := range s.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, errs := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, errs
	swept := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})

	db, err := sqlx.Open("sqlite3", "file:"+s.dbPath+"?_query_only=1&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var checked int
	waitFor(t, 5*time.Minute, "every case checked on the platform", func() bool {
		select {
		case <-done:
			t.Fatalf("worker exited: %v\n%s", waitErr, errs.String())
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
		if waitErr != nil {
			t.Fatalf("worker exit after SIGTERM: %v\n%s", waitErr, errs.String())
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
