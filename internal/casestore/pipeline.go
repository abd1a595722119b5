package casestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
)

// Pipelined write transactions on PostgreSQL.
//
// Every statement sent on its own is a round trip, and on PostgreSQL the
// round trips, not the WAL flush, are what a write transaction costs: the
// CPU of the client and of the server backend on each side of each one
// (docs/benchmarks.md, "where PostgreSQL's time goes": 1.1–1.6 ms of CPU a
// transaction, halved by sending its statements in one batch). So on
// PostgreSQL a transaction queues each write whose result nothing in the
// transaction reads (the case update with its lease, timeline rows, the
// inbox row, a command's verdict, a step's result) and sends the queue in
// one pipelined batch together with the next statement whose
// result is needed (a read, an INSERT … RETURNING), or with COMMIT. BEGIN
// goes with the first batch. A decision's transaction is then two or three
// round trips instead of ten.
//
// What this asks of the code above it: a queued write's outcome is known
// only when its batch comes back. Each queued statement carries how its
// outcome maps to its caller's error (a lease held elsewhere, a version
// conflict, a unique index); the first statement that fails, in statement
// order, is the transaction's error: from then on every call of the Tx
// returns it, and Update rolls back and returns it whatever fn returned,
// just as fn would have returned it had the statement run alone. So a Tx
// method whose statement is queued returns nil, and its error comes out of
// a later call or out of Update. Callers must not branch on the error of a
// call inside the transaction and carry on (none does: on PostgreSQL a
// failed statement ends the transaction anyway). The statements after a
// failing one in the same batch have run, and are rolled back with it.
//
// COMMIT goes in the last batch when no queued statement can fail without
// a server error (a server error skips the rest of the batch, COMMIT with
// it); after a statement whose row count decides (the lease and version
// of a case update, an intent, an inbox check) it waits for the batch's
// answer, a round trip of its own.

// errRecheck is what a queued statement's done returns when its outcome
// alone (no row changed) does not say what went wrong: its why reads the
// reason once the batch is back.
var errRecheck = errors.New("casestore: recheck")

// pgStmt is a statement of a pipelined transaction.
type pgStmt struct {
	sql  string // with $n placeholders
	args []any
	// checked: the statement can fail on its row count (laterChecked),
	// so COMMIT must wait for its answer; otherwise only a server error
	// fails it, which skips the rest of the batch, COMMIT with it.
	checked bool
	// done maps the statement's outcome (rows affected, error) to the
	// caller's error; errRecheck hands over to why.
	done func(n int64, err error) error
	// why reads what went wrong, in the transaction when it is still
	// usable, otherwise on the read pool (committed state).
	why func(ctx context.Context, q sqlx.QueryerContext) error
	// scan, for a read, takes its rows.
	scan func(rows pgx.Rows) error
	// caseWrite, for a case's UPDATE, is what it writes, so that a second
	// write of the case in the same transaction can fold into it while it
	// waits here (mergeCaseWrite).
	caseWrite *caseWrite
}

// pgPipe is one pipelined transaction on one connection of the writer
// pool.
type pgPipe struct {
	conn    *sqlx.Conn
	pending []pgStmt
	begun   bool  // BEGIN is sent
	checked bool  // a pending statement's outcome can fail without a server error
	err     error // the transaction's first failure; it ends the transaction
	diag    *pool // the read pool, for why when the transaction is aborted
	// ctx, when set, is what every round trip runs under, whatever the
	// statement was given: the Update's, bounded by the store's
	// SetUpdateTimeout and free of its caller's cancellation.
	ctx context.Context
}

// later queues a write. On SQLite (no pipe) it runs at once: see Tx.later.
func (p *pgPipe) later(s pgStmt) {
	if p.err != nil {
		return
	}
	if s.checked {
		p.checked = true
	}
	p.pending = append(p.pending, s)
}

// mergeCaseWrite folds cw into the queued UPDATE of the same case when
// that one is still waiting to be sent and cw writes the version it
// leaves (caseWrite.then), and reports whether it did: cw then needs no
// statement of its own. Statements queued between the two stay where they
// are: none reads the case row's columns (a read is not queued, it sends
// the queue), and the row's key, which their foreign keys check, does not
// change. Another write of the case table queued between them (one not
// made by updateCase, such as an order event's wake, which bumps the
// version) stops the fold: cw must meet the row as that write leaves it.
func (p *pgPipe) mergeCaseWrite(cw caseWrite) bool {
	if p.err != nil {
		return false
	}
	for i := len(p.pending) - 1; i >= 0; i-- {
		q := p.pending[i].caseWrite
		if q == nil && strings.HasPrefix(p.pending[i].sql, "UPDATE cases ") {
			return false
		}
		if q == nil || q.id != cw.id {
			continue
		}
		both, ok := q.then(cw)
		if !ok {
			return false
		}
		query, args := both.statement()
		done, why := both.checks()
		p.pending[i] = pgStmt{sql: bind(true, query, args), args: args, checked: true, done: done, why: why, caseWrite: &both}
		return true
	}
	return false
}

// flush sends what is queued, with read (a statement whose rows are
// needed now) last if it is given, in one round trip, and returns the
// transaction's error if a statement failed; otherwise read's own error.
func (p *pgPipe) flush(ctx context.Context, read *pgStmt) error {
	if p.ctx != nil {
		ctx = p.ctx // the why of a failure too (outcome)
	}
	if p.err != nil {
		return p.err
	}
	batch := p.pending
	p.pending, p.checked = nil, false
	if read != nil {
		batch = append(batch, *read)
	}
	if len(batch) == 0 {
		return nil
	}
	outs, aborted, err := p.send(ctx, batch, false)
	if err != nil {
		p.err = err
		return err
	}
	n := len(outs)
	if read != nil {
		n--
	}
	for i := range n {
		if err := p.outcome(ctx, batch[i], outs[i], aborted); err != nil {
			p.err = err
			return err
		}
	}
	if read == nil {
		return nil
	}
	err = outs[n].err
	if isServerError(err) {
		// The transaction is over: every later statement fails.
		p.err = err
	}
	return err
}

// result is one statement's outcome in a batch.
type result struct {
	n   int64
	tag pgconn.CommandTag
	err error
}

// send runs batch in one round trip (BEGIN first if it is not sent yet,
// COMMIT last if commit). aborted: a statement failed on the server, so
// the transaction can only be rolled back. err: the batch itself failed
// (the connection).
func (p *pgPipe) send(ctx context.Context, batch []pgStmt, commit bool) (outs []result, aborted bool, err error) {
	if p.ctx != nil {
		ctx = p.ctx
	}
	begin := !p.begun
	p.begun = true
	outs = make([]result, len(batch), len(batch)+1)
	err = p.conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("pipelined transaction: driver connection is %T", dc)
		}
		b := &pgx.Batch{}
		if begin {
			b.Queue("BEGIN")
		}
		for _, s := range batch {
			b.Queue(s.sql, s.args...)
		}
		if commit {
			b.Queue("COMMIT")
		}
		br := sc.Conn().SendBatch(ctx, b)
		if begin {
			if _, err := br.Exec(); err != nil {
				_ = br.Close()
				return fmt.Errorf("begin: %w", err)
			}
		}
		for i, s := range batch {
			if s.scan != nil {
				rows, err := br.Query()
				if err == nil {
					err = s.scan(rows) // it closes rows
				}
				outs[i].err = err
			} else {
				outs[i].tag, outs[i].err = br.Exec()
				outs[i].n = outs[i].tag.RowsAffected()
			}
			aborted = aborted || isServerError(outs[i].err)
		}
		if commit {
			var r result
			r.tag, r.err = br.Exec()
			outs = append(outs, r)
		}
		if err := br.Close(); err != nil && !aborted {
			return err
		}
		return nil
	})
	return outs, aborted, err
}

// outcome is s's error given its result: its done, then its why.
func (p *pgPipe) outcome(ctx context.Context, s pgStmt, r result, aborted bool) error {
	done := s.done
	if done == nil {
		done = func(_ int64, err error) error { return err }
	}
	err := done(r.n, r.err)
	if !errors.Is(err, errRecheck) {
		return err
	}
	if s.why == nil {
		return fmt.Errorf("%w without a why (a bug)", err)
	}
	if aborted {
		if p.diag == nil {
			return fmt.Errorf("recheck without a read pool: %w", r.err)
		}
		return s.why(ctx, p.diag)
	}
	return s.why(ctx, p.direct())
}

// direct runs statements on the transaction's connection, not queued (for
// why, and for the calls of Tx that read a result the pipe does not
// carry).
func (p *pgPipe) direct() batchTx { return batchTx{db: p.conn, pg: true} }

// commit sends what is queued and COMMIT: in one round trip when nothing
// queued can fail without a server error, else after the queue's answer.
func (p *pgPipe) commit(ctx context.Context) error {
	if p.ctx != nil {
		ctx = p.ctx
	}
	if p.err != nil {
		return p.err
	}
	if !p.begun && len(p.pending) == 0 {
		return nil // nothing ran: nothing to commit
	}
	if p.checked {
		if err := p.flush(ctx, nil); err != nil {
			return err
		}
	}
	batch := p.pending
	p.pending = nil
	outs, aborted, err := p.send(ctx, batch, true)
	if err != nil {
		p.err = err
		return err
	}
	for i, s := range batch {
		if err := p.outcome(ctx, s, outs[i], aborted); err != nil {
			p.err = err
			return err
		}
	}
	c := outs[len(batch)]
	switch {
	case c.err != nil:
		p.err = fmt.Errorf("commit: %w", c.err)
	case c.tag.String() != "COMMIT":
		p.err = fmt.Errorf("commit: the server answered %q", c.tag.String())
	}
	return p.err
}

// sync sends what is queued, and BEGIN if it is not sent yet, so that a
// statement can run on the connection directly, after them.
func (p *pgPipe) sync(ctx context.Context) error {
	if err := p.flush(ctx, nil); err != nil {
		return err
	}
	if !p.begun {
		if _, _, err := p.send(ctx, nil, false); err != nil {
			p.err = err
			return err
		}
	}
	return nil
}

// rollback ends a transaction that failed (no-op if BEGIN was never
// sent). Its error is not reported: the transaction's own is; a connection
// left in a transaction is discarded by the pool (stdlib's ResetSession).
func (p *pgPipe) rollback(ctx context.Context) {
	if !p.begun {
		return
	}
	_, _ = p.conn.ExecContext(ctx, `ROLLBACK`)
}

// isServerError reports whether err came from the server (so the
// transaction is aborted), not from scanning a result.
func isServerError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe)
}

// later runs a write whose result nothing in the transaction reads before
// it ends, and whose only failure is a server error (a constraint, a lost
// connection): on SQLite at once, on PostgreSQL with the transaction's next
// round trip (see above), where COMMIT may go in the same batch. Its error
// is named what. On PostgreSQL it returns nil, or the transaction's
// earlier failure.
func (tx *Tx) later(ctx context.Context, what, query string, args ...any) error {
	return tx.queue(ctx, query, args, false, func(_ int64, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}, nil, nil)
}

// laterChecked is later for a write whose row count decides (a lease, a
// version, an intent): check maps its outcome (rows affected, error) to
// the caller's error, and when it returns errRecheck, why reads what went
// wrong (why is required). On PostgreSQL COMMIT waits for a checked
// write's answer.
func (tx *Tx) laterChecked(ctx context.Context, query string, args []any, check func(n int64, err error) error,
	why func(ctx context.Context, q sqlx.QueryerContext) error) error {
	return tx.queue(ctx, query, args, true, check, why, nil)
}

// queue is later and laterChecked; cw, for a case's UPDATE, is what it
// writes (pgStmt.caseWrite).
func (tx *Tx) queue(ctx context.Context, query string, args []any, checked bool, done func(n int64, err error) error,
	why func(ctx context.Context, q sqlx.QueryerContext) error, cw *caseWrite) error {
	if p := tx.tx.pipe; p != nil {
		if p.err != nil {
			return p.err
		}
		p.later(pgStmt{sql: bind(true, query, args), args: args, checked: checked, done: done, why: why, caseWrite: cw})
		return nil
	}
	res, err := tx.tx.ExecContext(ctx, query, args...)
	var n int64
	if err == nil && checked {
		n, err = res.RowsAffected()
	}
	if err := done(n, err); !errors.Is(err, errRecheck) || why == nil {
		return err
	}
	return why(ctx, tx.tx)
}

// getAll reads every row of query into Ts (structs by their db tags, or
// single values), as sqlx.SelectContext does: on PostgreSQL with the
// statements queued before it, in one round trip.
func getAll[T any](ctx context.Context, tx *Tx, query string, args ...any) ([]T, error) {
	var vs []T
	p := tx.tx.pipe
	if p == nil {
		err := sqlx.SelectContext(ctx, tx.tx, &vs, query, args...)
		return vs, err
	}
	to := rowTo[T]()
	err := p.flush(context.WithoutCancel(ctx), &pgStmt{sql: bind(true, query, args), args: args, scan: func(rows pgx.Rows) error {
		var err error
		vs, err = pgx.CollectRows(rows, to)
		return err
	}})
	return vs, err
}

// laterOne queues, on PostgreSQL, a statement whose one row (or none) is
// read into *v when its batch comes back: at the transaction's next read
// or COMMIT, whose caller must not look at *v before. found reports a row.
// On SQLite it runs at once.
func laterOne[T any](ctx context.Context, tx *Tx, v *T, found *bool, query string, args ...any) error {
	p := tx.tx.pipe
	if p == nil {
		err := sqlx.GetContext(ctx, tx.tx, v, query, args...)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		*found = err == nil
		return err
	}
	if p.err != nil {
		return p.err
	}
	to := rowTo[T]()
	p.later(pgStmt{sql: bind(true, query, args), args: args, scan: func(rows pgx.Rows) error {
		r, err := pgx.CollectOneRow(rows, to)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		*v, *found = r, err == nil
		return err
	}})
	return nil
}

// getOne reads the first row of query into a T (a struct by its db tags,
// or one value), as sqlx.GetContext does: on PostgreSQL with the writes
// queued before it, in one round trip. No row is sql.ErrNoRows.
func getOne[T any](ctx context.Context, tx *Tx, query string, args ...any) (T, error) {
	var v T
	p := tx.tx.pipe
	if p == nil {
		err := sqlx.GetContext(ctx, tx.tx, &v, query, args...)
		return v, err
	}
	to := rowTo[T]()
	err := p.flush(context.WithoutCancel(ctx), &pgStmt{sql: bind(true, query, args), args: args, scan: func(rows pgx.Rows) error {
		var err error
		v, err = pgx.CollectOneRow(rows, to)
		return err
	}})
	return v, err
}

// rowTo is how getOne reads a row into a T: by column name into a struct
// (fields without a column are left alone), otherwise its one value.
func rowTo[T any]() pgx.RowToFunc[T] {
	t := reflect.TypeFor[T]()
	if t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(reflect.TypeFor[interface{ Scan(any) error }]()) {
		return pgx.RowToStructByNameLax[T]
	}
	return pgx.RowTo[T]
}
