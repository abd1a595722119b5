package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/refundhub/refundhub/internal/casestore"
)

// TestBenchPipelinedPostgres measures a proposal for casestore on
// PostgreSQL (docs/benchmarks.md), not code the worker runs: the bare
// loop's three transactions per request with each transaction's statements
// sent in one pipelined batch after BEGIN, the results checked in Go, then
// COMMIT: two round trips per transaction instead of seven to ten.
//
//	WORKER_BENCH=1 WORKER_BENCH_STORE=postgres go test -run TestBenchPipelinedPostgres -v -count=1 ./cmd/worker/
//
// The statements are casestore's (the open's order-events read folded into
// its INSERT, and the timeline row into it by a CTE: the id is not known
// before); the pool has casestore's eight writer connections.
func TestBenchPipelinedPostgres(t *testing.T) {
	if os.Getenv("WORKER_BENCH") == "" || os.Getenv("WORKER_BENCH_STORE") != "postgres" {
		t.Skip("set WORKER_BENCH=1 WORKER_BENCH_STORE=postgres to run it")
	}
	bs := newBenchStore(t)
	for _, conns := range []int32{8, 16} {
		t.Run(fmt.Sprintf("%d connections", conns), func(t *testing.T) {
			url := bs.fresh(t)
			st, err := casestore.Open(context.Background(), url, nil) // the schema
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			cfg, err := pgxpool.ParseConfig(url)
			if err != nil {
				t.Fatal(err)
			}
			cfg.MaxConns, cfg.MinConns = conns, conns
			cfg.ConnConfig.RuntimeParams["application_name"] = "refundhub"
			pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			wal := bs.walStats(t)
			cpu := machineCPU(t)
			const n, concurrency = 1000, 100
			var next atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for range concurrency {
				wg.Go(func() {
					for !t.Failed() {
						i := int(next.Add(1)) - 1
						if i >= n {
							return
						}
						if err := pipelinedRequest(context.Background(), pool, i); err != nil {
							t.Errorf("request %d: %v", i, err)
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			busy := cpu(3*n, "transaction")
			pool.Close()
			t.Logf("load average %s; pipelined PostgreSQL loop, %d connections, concurrency %d: %d transactions in %s: %.0f tx/s; %s%s",
				loadAvg(), conns, concurrency, 3*n, elapsed.Round(time.Millisecond), 3*n/elapsed.Seconds(), busy, wal(3*n))
		})
	}
}

// pipelinedRequest commits the bare loop's three transactions for request i.
func pipelinedRequest(ctx context.Context, pool *pgxpool.Pool, i int) error {
	cmd, key := fmt.Sprintf("pipe-%d", i), fmt.Sprintf("submit-pipe-%d", i)
	order, sub := strconv.Itoa(7_000_000_000+i), strconv.Itoa(8_000_000_000+i)
	now := time.Now().UnixMilli()
	const owner = bareOwner
	var id int64
	open := []pipeStmt{
		{sql: `SELECT pg_advisory_xact_lock(hashtextextended($1::text || '/' || $2::text, 0))`, args: []any{"taobao", order}, rows: -1},
		{sql: `WITH c AS (INSERT INTO cases (platform, order_id, sub_order_id, state, request, next_wake_at, created_at, updated_at,
				opened_by, lease_owner, lease_until, order_events_latest)
			VALUES ($1, $2, $3, 'requested', $4, $5, $6, $6, $7, $8, $9,
				(SELECT COALESCE(MAX(id), 0) FROM order_events WHERE platform = $1 AND order_id = $2))
			ON CONFLICT DO NOTHING RETURNING id),
			t AS (INSERT INTO timeline (case_id, at, kind, summary, detail) SELECT id, $6, 'command', $10, '{}' FROM c)
			SELECT id FROM c`,
			args: []any{"taobao", order, sub, `{"goodsStatus":"1","reasonId":1001,"amount":0,"description":"不想要了"}`, now + 60000, now, cmd,
				owner, now + 60000, "case opened by command " + cmd}, scan: &id},
		{sql: `SELECT count(*) FROM (SELECT id FROM cases WHERE platform = $1 AND order_id = $2 AND sub_order_id = $3 AND opened_by <> $4
			ORDER BY id DESC LIMIT 1) p`, args: []any{"taobao", order, sub, cmd}, rows: -1},
	}
	if err := pipelinedTx(ctx, pool, open); err != nil {
		return fmt.Errorf("open: %w", err)
	}
	lease := pipeStmt{sql: `UPDATE cases SET lease_owner = $1, lease_until = $2
		WHERE id = $3 AND (lease_owner = '' OR lease_owner = $1 OR lease_until < $4)`, args: []any{owner, now + 60000, id, now}, rows: 1}
	timeline2 := `INSERT INTO timeline (case_id, at, kind, summary, detail) VALUES ($1, $2, $3, $4, $5), ($1, $2, 'decision', $6, $7)`
	decision := func(to, from string) []any {
		return []any{"act " + to + ": the case moves on", `{"input":"step_result","outcome":"act","code":"` + to + `","from":"` + from +
			`","to":"` + to + `","step":"taobao_submit","key":"k"}`}
	}
	render := []pipeStmt{lease,
		{sql: `UPDATE cases SET state = $1, next_wake_at = $2, updated_at = $3, version = version + 1 WHERE id = $4 AND version = $5`,
			args: []any{"rendering", now + 60000, now, id, 1}, rows: 1},
		{sql: timeline2, args: append([]any{id, now, "command", "command request_refund " + cmd + " by bench", "{}"},
			decision("rendering", "requested")...), rows: 2},
		{sql: `INSERT INTO command_outcomes (command_id, verdict, case_id, code, reason, dead_letter_id, recorded_at)
			VALUES ($1, 'applied', $2, 'render', '', 0, $3)
			ON CONFLICT (command_id) DO UPDATE SET verdict = excluded.verdict, case_id = excluded.case_id,
				code = excluded.code, reason = excluded.reason, dead_letter_id = excluded.dead_letter_id,
				recorded_at = excluded.recorded_at
			WHERE command_outcomes.dead_letter_id <> 0`, args: []any{cmd, id, now}, rows: 1},
		{sql: `UPDATE cases SET state = $1, plan = $2, updated_at = $3, version = version + 1 WHERE id = $4 AND version = $5`,
			args: []any{"submitting", `{"refundFee":10000,"reasonId":1001,"goodsStatus":1}`, now, id, 2}, rows: 1},
		{sql: `INSERT INTO step_attempts (case_id, step, status, request, outcome, request_id, error_code, error_message, started_at, finished_at)
			VALUES ($1, 'taobao_render', 'done', $2, $3, $4, '', '', $5, $5) RETURNING id`,
			args: []any{id, `{"subOrderId":"` + sub + `"}`, `{"reasons":3,"maxFee":10000}`, "req-r-" + cmd, now}, rows: 1},
		{sql: timeline2, args: append([]any{id, now, "step", "taobao_render ok requestId=0b1c2d3e4f",
			`{"step":"taobao_render","key":"","requestId":"0b1c2d3e4f","ms":100}`}, decision("submitting", "rendering")...), rows: 2},
		{sql: `INSERT INTO step_attempts (case_id, step, idempotency_key, status, request, started_at, last_attempt_at)
			VALUES ($1, 'taobao_submit', $2, 'intent', $3, $4, $4) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id`,
			args: []any{id, key, "submit refund of sub-order " + sub, now}, rows: 1},
	}
	if err := pipelinedTx(ctx, pool, render); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	submit := []pipeStmt{lease,
		{sql: `SELECT id FROM step_attempts WHERE idempotency_key = $1 FOR UPDATE`, args: []any{key}, rows: 1},
		{sql: `UPDATE step_attempts SET status = 'done', outcome = $1, request_id = $2, error_code = '', error_message = '', finished_at = $3
			WHERE idempotency_key = $4 AND status = 'intent'`, args: []any{`{"refundId":"R` + cmd + `"}`, "req-s-" + cmd, now, key}, rows: 1},
		{sql: `UPDATE cases SET refund_id = $1, state = $2, platform_status = $3, last_platform_check_at = $4, next_wake_at = $5,
			updated_at = $4, version = version + 1 WHERE id = $6 AND version = $7`,
			args: []any{"R" + cmd, "waiting_seller", "WAIT_SELLER_AGREE", now, now + 6*3600*1000, id, 3}, rows: 1},
		{sql: timeline2, args: append([]any{id, now, "step", "taobao_submit ok requestId=0b1c2d3e4f",
			`{"step":"taobao_submit","key":"` + key + `","requestId":"0b1c2d3e4f","ms":100}`}, decision("waiting_seller", "submitting")...), rows: 2},
		{sql: `INSERT INTO inbox (msg_id, stream, stream_seq, subject, received_at) VALUES ($1, 'COMMANDS', $2, 'commands.request_refund', $3)
			ON CONFLICT (msg_id) DO NOTHING`, args: []any{cmd, i + 1, now}, rows: 1},
		{sql: `UPDATE cases SET lease_owner = '', lease_until = 0 WHERE id = $1 AND lease_owner = $2`, args: []any{id, owner}, rows: 1},
	}
	if err := pipelinedTx(ctx, pool, submit); err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	return nil
}

// pipeStmt is one statement of a pipelined transaction: rows is the count
// of rows it must affect or return (-1: any), scan where its one value
// goes.
type pipeStmt struct {
	sql  string
	args []any
	rows int64
	scan *int64
}

// pipelinedTx sends BEGIN and stmts in one batch (one round trip), checks
// each result, and commits (a second) or rolls back.
func pipelinedTx(ctx context.Context, pool *pgxpool.Pool, stmts []pipeStmt) (err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	for _, s := range stmts {
		b.Queue(s.sql, s.args...)
	}
	br := conn.SendBatch(ctx, b)
	check := func() error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		for _, s := range stmts {
			if s.scan != nil {
				if err := br.QueryRow().Scan(s.scan); err != nil {
					return fmt.Errorf("%.40s: %w", s.sql, err)
				}
				continue
			}
			tag, err := br.Exec()
			if err != nil {
				return fmt.Errorf("%.40s: %w", s.sql, err)
			}
			if s.rows >= 0 && tag.RowsAffected() != s.rows {
				return fmt.Errorf("%.40s: %d rows; want %d", s.sql, tag.RowsAffected(), s.rows)
			}
		}
		return nil
	}
	err = check()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_, _ = conn.Exec(ctx, "ROLLBACK")
		return err
	}
	_, err = conn.Exec(ctx, "COMMIT")
	return err
}
