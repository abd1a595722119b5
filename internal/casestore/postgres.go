package casestore

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"

	"github.com/refundhub/refundhub"
)

// PostgreSQL (DB_URL=postgres://…). The same tables and queries as on
// SQLite (schema_postgres.sql mirrors schema.sql migration by migration);
// what differs:
//
//   - No group commit. SQLite has one writer, so the committer runs many
//     updates per transaction to share its fsync. PostgreSQL runs
//     transactions side by side and already shares a WAL flush among the
//     commits waiting for it, so each Update is its own transaction on a
//     pool of pgWriterConns (docs/benchmarks.md has the comparison).
//   - Transactions run at READ COMMITTED beside each other, within a
//     process and across hosts: where SQLite's write lock made a
//     read-then-write safe, the statements here are conditional (version
//     and lease checks in the UPDATE), ON CONFLICT, or lock the rows they
//     read (Tx.forUpdate), and an order's events and cases are serialised
//     with an advisory lock (Tx.lockOrder).
//   - Migrations run under an advisory lock (Store.migrate).
//   - Read-only stores set default_transaction_read_only on every
//     connection; Checkpoint does nothing.
//   - A callback's record (KeepCallback) goes through a pool of its own,
//     pgRecordConns connections with synchronous_commit off: it does not
//     wait behind decisions for a writer connection, nor for a WAL flush of
//     its own. Losing it in a server crash loses nothing: the callback's
//     message is acknowledged only after a later synchronous commit for it
//     (its verified decision with the inbox row, or its wait), which
//     flushes the WAL up to itself and so the record too; until then
//     JetStream keeps the message and delivers it again.
const (
	pgWriterConns = 8
	pgReaderConns = 4
	pgRecordConns = 2
)

// pgMode is what a pool's connections are for.
type pgMode int

const (
	pgWrite  pgMode = iota
	pgRead          // every transaction read-only
	pgRecord        // synchronous_commit off: KeepCallback only
)

// pgConfig parses target; readOnly makes every transaction of its
// connections read-only. Errors name the URL redacted.
func pgConfig(target string, readOnly bool) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(target)
	if err != nil {
		// pgconn's parse errors redact the password themselves; the URL is
		// named here redacted all the same.
		return nil, fmt.Errorf("open store %s: %w", Redact(target), err)
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if readOnly {
		cfg.RuntimeParams["default_transaction_read_only"] = "on"
		if cfg.ValidateConnect != nil && reflect.ValueOf(cfg.ValidateConnect).Pointer() ==
			reflect.ValueOf(pgconn.ValidateConnectTargetSessionAttrsReadWrite).Pointer() {
			// target_session_attrs=read-write (a URL naming a primary and
			// its standbys) asks for the server that takes writes; a
			// read-only session there calls itself read-only, so these
			// connections ask for the same server as the primary instead.
			cfg.ValidateConnect = pgconn.ValidateConnectTargetSessionAttrsPrimary
		}
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "refundhub"
	}
	// Every connection limits its unacknowledged data (a pool's own dial
	// follows its store's bound: openPostgresPool).
	cfg.DialFunc = dialWithin(func() time.Duration { return pgUnacked })
	return cfg, nil
}

// openPostgresPool opens a pool on target for mode and checks that it
// answers.
func openPostgresPool(ctx context.Context, target string, mode pgMode, conns int) (*pool, error) {
	cfg, err := pgConfig(target, mode == pgRead)
	if err != nil {
		return nil, err
	}
	if mode == pgRecord {
		cfg.RuntimeParams["synchronous_commit"] = "off"
	}
	p := &pool{pg: true, rerunsReads: mode == pgRead, born: time.Now()}
	p.unacked.Store(int64(pgUnacked))
	cfg.DialFunc = p.dial
	cfg.Tracer = roundTrips{n: &p.trips, stmts: &p.stmts}
	db := sqlx.NewDb(stdlib.OpenDB(*cfg, stdlib.OptionShouldPing(p.shouldPing)), "pgx")
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", Redact(target), err)
	}
	p.DB = db
	return p, nil
}

// roundTrips is a pgx tracer that counts a pool's round trips: one per
// statement, one per batch (however many statements it carries); and the
// statements, those of a batch one by one. Counting in the driver sees
// every path: the pipelined transactions, the reads, the ones a future
// change adds (what it leaves out: Store.RoundTrips).
type roundTrips struct{ n, stmts *atomic.Int64 }

func (t roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	t.n.Add(1)
	t.stmts.Add(1)
	return ctx
}

func (roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (t roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	t.n.Add(1)
	return ctx
}

func (t roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	t.stmts.Add(1)
}

func (roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// openPostgres is open for a PostgreSQL URL: it migrates up to upTo.
func openPostgres(ctx context.Context, target string, logger *slog.Logger, upTo int) (*Store, error) {
	w, err := openPostgresPool(ctx, target, pgWrite, pgWriterConns)
	if err != nil {
		return nil, err
	}
	s := newStore(w, nil, logger)
	s.start()
	if err := s.migrate(ctx, parseMigrations(refundhub.SchemaPostgres), upTo); err != nil {
		s.stop()
		_ = w.Close()
		return nil, err
	}
	r, err := openPostgresPool(ctx, target, pgRead, pgReaderConns)
	if err != nil {
		s.stop()
		_ = w.Close()
		return nil, err
	}
	s.r = r
	if s.records, err = openPostgresPool(ctx, target, pgRecord, pgRecordConns); err != nil {
		s.stop()
		_ = w.Close()
		_ = r.Close()
		return nil, err
	}
	return s, nil
}

// openPostgresReader opens a read-only pool on target, whose schema must not
// be older than this build's.
func openPostgresReader(ctx context.Context, target string) (*pool, error) {
	r, err := openPostgresPool(ctx, target, pgRead, pgReaderConns)
	if err != nil {
		return nil, err
	}
	if err := checkSchema(ctx, r, Redact(target)); err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}

// openPostgresExisting is OpenExisting for a PostgreSQL URL.
func openPostgresExisting(ctx context.Context, target string, logger *slog.Logger) (*Store, error) {
	r, err := openPostgresReader(ctx, target)
	if err != nil {
		return nil, err
	}
	w, err := openPostgresPool(ctx, target, pgWrite, pgWriterConns)
	if err != nil {
		_ = r.Close()
		return nil, err
	}
	s := newStore(w, r, logger)
	s.start()
	return s, nil
}

// lockOrder serialises, on PostgreSQL, the transactions that open a case on
// an order and those that record the order's events: without it a case
// opened beside an event's transaction could neither see the event
// (order_events_latest) nor be told of it. SQLite's write lock does this
// already.
func (tx *Tx) lockOrder(ctx context.Context, plat, orderID string) error {
	if !tx.tx.pg {
		return nil
	}
	// Queued (pipeline.go): the lock is taken before the statements that
	// follow it, in the same round trip.
	return tx.later(ctx, fmt.Sprintf("lock order %s %s", plat, orderID),
		`SELECT pg_advisory_xact_lock(hashtextextended(?::text || '/' || ?::text, 0))`, plat, orderID)
}
