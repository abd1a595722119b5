// Package casestore is the worker's durable record: refund cases, every step
// attempt, a timeline per case, the inbox of consumed messages and dead
// letters, in one SQLite file shared by the worker processes of a host, or
// in a PostgreSQL database shared by workers on several hosts (DB_URL; see
// dialect.go and postgres.go for what differs, and docs/postgres.md).
//
// Writes go through Store.Update, which runs a closure in a BEGIN IMMEDIATE
// transaction on a single writer connection; across processes the write lock
// and busy_timeout serialise writers. Reads that need no transaction use a
// separate read pool (WAL readers never block the writer).
//
// The intent protocol that keeps platform side effects at most once lives in
// Tx.BeginStep and Tx.FinishStep: the intent row is committed before the
// platform is called, and its presence without a result tells a later attempt
// to ask the platform before calling again.
package casestore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/mattn/go-sqlite3" // the SQLite driver

	"github.com/refundhub/refundhub"
	"github.com/refundhub/refundhub/internal/excerpt"
)

// Schema returns the SQLite schema text: schema.sql at the repository root.
func Schema() string { return refundhub.Schema }

// Sentinel errors. Callers test them with errors.Is.
var (
	// ErrNotFound: no row matched.
	ErrNotFound = errors.New("casestore: not found")
	// ErrVersionConflict: the case changed since it was read (optimistic
	// concurrency); reload and decide again.
	ErrVersionConflict = errors.New("casestore: version conflict")
	// ErrOpenCaseExists: the order (or sub-order) already has an open case.
	ErrOpenCaseExists = errors.New("casestore: an open case exists for this order")
	// ErrKeyConflict: an idempotency key is already used by another case or step.
	ErrKeyConflict = errors.New("casestore: idempotency key belongs to another step")
	// ErrCheckpointBusy: a checkpoint could not complete because readers or a
	// writer were active; try again later.
	ErrCheckpointBusy = errors.New("casestore: checkpoint blocked")
)

// terminalStates are the case states after which a case is closed for good.
// This is their one definition in Go (refundflow's State.Terminal reads it);
// SQL cannot refer to it, so the newest migration's open-case indexes spell
// the same states out, and TestOpenCaseIndexesNameTheTerminalStates pins them.
// closed_locally: an operator closed the case without touching the platform.
var terminalStates = []string{"succeeded", "closed", "cancelled", "closed_locally"}

// TerminalStates returns the states the schema treats as finished.
func TerminalStates() []string { return append([]string(nil), terminalStates...) }

// Pragmas, set through mattn/go-sqlite3 DSN keys so every new connection of a
// pool gets them:
//
//   - _journal_mode=WAL: readers do not block the writer and the writer does
//     not block readers; all processes must be on one host (WAL uses shared memory).
//   - _synchronous=FULL: fsync at every commit, so an intent or done row survives
//     an OS crash or power loss; with NORMAL a committed "submitted" row could
//     vanish and the refund be submitted again after a reboot.
//   - _busy_timeout=5000: a writer from another process waits up to 5 s for the
//     lock instead of failing at once with SQLITE_BUSY.
//   - _foreign_keys=1: SQLite leaves them off by default; steps and timeline
//     rows must belong to a case.
//   - _txlock=immediate (writer): BEGIN IMMEDIATE takes the write lock up front,
//     so busy_timeout applies; a deferred read-then-write transaction fails with
//     SQLITE_BUSY when another process wrote in between, whatever the timeout.
//   - _txlock=deferred, _query_only=1 (readers): plain WAL snapshots, and the
//     read pool can never write by mistake.
//   - _stmt_cache_size=64: each connection keeps the statements it ran last
//     prepared, keyed by SQL text (texts of several statements never are).
const (
	writerParams = "_journal_mode=WAL&_synchronous=FULL&_busy_timeout=5000&_foreign_keys=1&_txlock=immediate&_stmt_cache_size=64"
	readerParams = "_journal_mode=WAL&_synchronous=FULL&_busy_timeout=5000&_foreign_keys=1&_txlock=deferred&_query_only=1&_stmt_cache_size=64"
	readerConns  = 4
)

// Store is the worker's case store. It is safe for concurrent use.
type Store struct {
	w *pool // writer: one connection on SQLite (see batching)
	r *pool // read pool
	// records: on PostgreSQL opened by Open (the worker), the pool of
	// KeepCallback (see postgres.go); nil otherwise (the writer then).
	records *pool
	log     *slog.Logger
	now     func() time.Time
	// commits counts committed Update calls, txs the transactions that
	// carried them (SQLite's group commit: several calls per transaction).
	commits atomic.Int64
	txs     atomic.Int64

	queue   chan *pendingUpdate
	quit    chan struct{}
	stopped chan struct{}
	closing sync.Once

	// batching: Update goes through the group committer (one writer, many
	// updates per transaction). Off (PostgreSQL), each Update is its own
	// transaction on the writer pool; direct holds off Close while one runs.
	batching bool
	// readOnly: opened by OpenReadOnly; PingWrite does not write.
	readOnly bool
	direct   sync.RWMutex
	// updateTimeout bounds each PostgreSQL Update (SetUpdateTimeout); 0:
	// unbounded.
	updateTimeout atomic.Int64
}

// ErrStoreTimeout: a PostgreSQL Update did not finish within the store's
// bound (SetUpdateTimeout): the server stopped answering (a network that
// drops packets, a hung server), or is far too slow. Whether it committed
// is not known, as for any connection lost during a commit; Unavailable
// is true for it.
var ErrStoreTimeout = errors.New("casestore: the database did not answer in time")

// unbounded marks an Update's context as not bounded by SetUpdateTimeout:
// housekeeping whose one statement may take long after a backlog (pruning
// the inbox), which nothing waits on.
type unboundedKey struct{}

func unbounded(ctx context.Context) context.Context {
	return context.WithValue(ctx, unboundedKey{}, true)
}

// bound is ctx bounded by the store's SetUpdateTimeout, and done, to call
// once with the operation's error: it releases the bound and marks a
// failure the bound caused with ErrStoreTimeout.
func (s *Store) bound(ctx context.Context) (bounded context.Context, done func(error) error) {
	d := time.Duration(s.updateTimeout.Load())
	if d <= 0 || ctx.Value(unboundedKey{}) != nil {
		return ctx, func(err error) error { return err }
	}
	bounded, cancel := context.WithTimeoutCause(ctx, d, fmt.Errorf("%w (within %s)", ErrStoreTimeout, d))
	return bounded, func(err error) error {
		defer cancel()
		if cause := context.Cause(bounded); err != nil && !errors.Is(err, ErrStoreTimeout) && errors.Is(cause, ErrStoreTimeout) {
			return fmt.Errorf("%w: %w", cause, err)
		}
		return err
	}
}

// SetUpdateTimeout bounds each Update on PostgreSQL, from taking a
// connection to its commit (d <= 0: no bound, the default). Without it, a
// server that stops answering holds the update, and the work waiting on
// it, for as long as TCP takes to give up on the connection: about a
// quarter of an hour with a write outstanding (tcp_retries2), more to
// connect. KeepCallback's write is bounded the same way. Set it once,
// after Open. SQLite's updates, on a local file, are not bounded.
//
// It is also, from then on, how long data sent on a PostgreSQL connection
// may go unacknowledged before the kernel gives the connection up
// (pgUnacked until then): connections dialed after it (pool.dial), and
// those dialed before at their next reuse (pool.keepLimit). A network
// that drops packets then fails reads within it too, which no context
// bounds.
func (s *Store) SetUpdateTimeout(d time.Duration) {
	s.updateTimeout.Store(int64(max(d, 0)))
	if d <= 0 {
		return
	}
	for _, p := range []*pool{s.w, s.r, s.records} {
		if p != nil && p.pg {
			p.unacked.Store(int64(d))
		}
	}
}

// Commits returns how many Update calls this Store committed.
func (s *Store) Commits() int64 { return s.commits.Load() }

// Transactions returns how many transactions carried them.
func (s *Store) Transactions() int64 { return s.txs.Load() }

// ErrClosed: the store is closed.
var ErrClosed = errors.New("casestore: closed")

// ErrUpdatePanicked: an Update's function panicked (a bug of the caller's
// build). Its transaction is rolled back, on SQLite to its savepoint, so
// that the group committer, and every other update of its batch, goes on;
// the panic's value and stack are logged, and the error says what it was.
var ErrUpdatePanicked = errors.New("casestore: the update's function panicked")

// runFn runs an Update's function in tx, turning a panic in it into
// ErrUpdatePanicked.
func (s *Store) runFn(fn func(tx *Tx) error, tx *Tx) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%w: %s", ErrUpdatePanicked, excerpt.Of(fmt.Sprint(v), 300))
			s.log.Error("an update's function panicked; rolled back", "err", err, "stack", string(debug.Stack()))
		}
	}()
	return fn(tx)
}

// Open opens the store target names and applies any schema migrations it
// does not have yet. A postgres:// (or postgresql://) URL names a
// PostgreSQL database, which must exist; anything else is the path of a
// SQLite file, created with its parent directory if needed.
func Open(ctx context.Context, target string, logger *slog.Logger) (*Store, error) {
	return open(ctx, target, logger, 0)
}

// open is Open applying migrations up to upTo (0 = all); tests build old
// databases with it.
func open(ctx context.Context, path string, logger *slog.Logger, upTo int) (*Store, error) {
	if IsURL(path) {
		return openPostgres(ctx, path, logger, upTo)
	}
	if path == "" {
		return nil, errors.New("open store: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return nil, fmt.Errorf("open store: create directory: %w", err)
	}
	// A file: URI with an escaped path, so '?' or '#' in a directory name
	// cannot be read as parameters.
	uri := "file:" + (&url.URL{Path: abs}).EscapedPath()
	w, err := openWriter(uri + "?" + writerParams)
	if err != nil {
		return nil, err
	}
	s := newStore(w, nil, logger)
	s.start()
	if err := s.migrate(ctx, parseMigrations(refundhub.Schema), upTo); err != nil {
		s.stop()
		_ = w.Close()
		return nil, err
	}
	r, err := sqlx.Open("sqlite3", uri+"?"+readerParams)
	if err != nil {
		s.stop()
		_ = w.Close()
		return nil, fmt.Errorf("open store reader: %w", err)
	}
	r.SetMaxOpenConns(readerConns)
	r.SetMaxIdleConns(readerConns)
	s.r = &pool{DB: r}
	return s, nil
}

// Close stops the committer (pending updates fail with ErrClosed) and
// closes both pools.
func (s *Store) Close() error {
	s.stop()
	err := errors.Join(s.r.Close(), s.w.Close())
	if s.records != nil {
		err = errors.Join(err, s.records.Close())
	}
	return err
}

func (s *Store) stop() {
	s.closing.Do(func() { close(s.quit) })
	<-s.stopped
}

// migration is one numbered block of schema.sql.
type migration struct {
	version int
	name    string
	sql     string
}

const migrationMarker = "-- +migration "

// parseMigrations splits the schema into its numbered migrations, in file order.
func parseMigrations(schema string) []migration {
	var out []migration
	for _, line := range strings.SplitAfter(schema, "\n") {
		if rest, ok := strings.CutPrefix(line, migrationMarker); ok {
			num, name, _ := strings.Cut(strings.TrimSpace(rest), ":")
			v, err := strconv.Atoi(strings.TrimSpace(num))
			if err != nil {
				v = -1 // rejected by checkMigrations
			}
			out = append(out, migration{version: v, name: strings.TrimSpace(name)})
			continue
		}
		if len(out) > 0 {
			out[len(out)-1].sql += line
		}
	}
	return out
}

// checkMigrations requires versions 1, 2, 3, … in order.
func checkMigrations(ms []migration) error {
	if len(ms) == 0 {
		return errors.New("schema has no migrations")
	}
	for i, m := range ms {
		if m.version != i+1 {
			return fmt.Errorf("schema migration %d: numbered %d; want %d", i+1, m.version, i+1)
		}
	}
	return nil
}

// migrationLock is the PostgreSQL advisory lock key under which migrations
// run (any fixed number no other part of the database uses).
const migrationLock = 0x7265_6675_6e64 // "refund"

// migrate applies the migrations newer than the database's version, up to
// upTo (0 = all), each in its own transaction. Several processes may start at
// once: each transaction first takes the store's write lock (SQLite's BEGIN
// IMMEDIATE; on PostgreSQL an advisory lock held until it ends, as nothing
// else serialises them there), then re-reads the version.
func (s *Store) migrate(ctx context.Context, ms []migration, upTo int) error {
	if err := checkMigrations(ms); err != nil {
		return err
	}
	for _, m := range ms {
		if upTo > 0 && m.version > upTo {
			break
		}
		err := s.Update(ctx, func(tx *Tx) error {
			if tx.tx.pg {
				if _, err := tx.tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, int64(migrationLock)); err != nil {
					return err
				}
			}
			// applied_at is BIGINT: PostgreSQL's INTEGER has 32 bits.
			if _, err := tx.tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
				version INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '', applied_at BIGINT NOT NULL)`); err != nil {
				return fmt.Errorf("create schema_migrations: %w", err)
			}
			var have int
			if err := sqlx.GetContext(ctx, tx.tx, &have, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`); err != nil {
				return err
			}
			if have >= m.version {
				return nil
			}
			if _, err := tx.tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, ms64(s.now()))
			if err == nil {
				s.log.InfoContext(ctx, "schema migration applied", "version", m.version, "name", m.name)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("schema migration %d (%s): %w", m.version, m.name, err)
		}
	}
	return nil
}

// SchemaVersion returns the highest migration applied to the database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := sqlx.GetContext(ctx, s.r, &v, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`); err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}

// Tx is an open write transaction, valid only inside the Update closure.
type Tx struct {
	tx  batchTx
	now time.Time // one clock reading per transaction
	// previousOf holds, for a case created in this transaction on
	// PostgreSQL, the id of the newest earlier case of its order (0: none),
	// read by the INSERT itself, so that PreviousCase need not ask again
	// for a first case, the usual one. PostgreSQL only, and it must stay
	// so: SQLite's group commit runs several callers' closures in one Tx,
	// rolling a failed one back to its savepoint, and SQLite then hands the
	// rolled-back case's id to the next case created, of another order.
	previousOf map[int64]int64
}

// previous notes that case id, created here, follows case prev (0: none).
func (tx *Tx) previous(id, prev int64) {
	if tx.previousOf == nil {
		tx.previousOf = map[int64]int64{}
	}
	tx.previousOf[id] = prev
}

// batchTx is the write transaction as the updates see it. Every
// statement runs with its context's cancellation removed: one caller giving
// up (a shutdown deadline, a client hanging up) must neither lose a result
// that already happened on the platform nor interrupt the shared connection
// and roll back the other updates of the batch. Statements are short; the
// write lock is bounded by busy_timeout, not by callers' contexts.
//
// The driver keeps each SQL text prepared per connection (_stmt_cache_size),
// so the hot path does not parse the same statements again for every update
// (preparing was about a quarter of the committer's time); pgx does the
// same on PostgreSQL. Queries take ? placeholders on both engines (pg:
// rebound to $n, see dialect.go).
type batchTx struct {
	db txQueryer // *sqlx.Tx on SQLite; on PostgreSQL the *sqlx.Conn of a pipelined transaction
	pg bool
	// pipe, on PostgreSQL, queues the transaction's writes (pipeline.go):
	// every statement run here directly goes after what it queued.
	pipe *pgPipe
}

// txQueryer is what batchTx runs its statements on.
type txQueryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error)
	QueryRowxContext(ctx context.Context, query string, args ...any) *sqlx.Row
}

func (b batchTx) q(query string, args []any) string { return bind(b.pg, query, args) }

// direct readies the connection for a statement run at once: on
// PostgreSQL the queued writes go first. Its error is the transaction's.
func (b batchTx) direct(ctx context.Context) error {
	if b.pipe == nil {
		return nil
	}
	if err := b.pipe.sync(ctx); err != nil {
		return err
	}
	return nil
}

func (b batchTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx = b.stmtCtx(ctx)
	if err := b.direct(ctx); err != nil {
		return nil, err
	}
	return b.db.ExecContext(ctx, b.q(query, args), args...)
}

func (b batchTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = b.stmtCtx(ctx)
	if err := b.direct(ctx); err != nil {
		return nil, err
	}
	return b.db.QueryContext(ctx, b.q(query, args), args...)
}

func (b batchTx) QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error) {
	ctx = b.stmtCtx(ctx)
	if err := b.direct(ctx); err != nil {
		return nil, err
	}
	return b.db.QueryxContext(ctx, b.q(query, args), args...)
}

// QueryRowxContext cannot return the transaction's earlier failure as the
// row's error (sqlx.Row has no constructor for one): the query runs all the
// same, and fails in the aborted transaction or reads a row nobody will
// commit; Update returns the earlier failure, whatever fn makes of this.
func (b batchTx) QueryRowxContext(ctx context.Context, query string, args ...any) *sqlx.Row {
	ctx = b.stmtCtx(ctx)
	_ = b.direct(ctx)
	return b.db.QueryRowxContext(ctx, b.q(query, args), args...)
}

// stmtCtx is what a statement given ctx runs under: the pipe's context on
// PostgreSQL (pgPipe.ctx: bounded, never the caller's cancellation), else
// ctx without its cancellation.
func (b batchTx) stmtCtx(ctx context.Context) context.Context {
	if b.pipe != nil && b.pipe.ctx != nil {
		return b.pipe.ctx
	}
	return context.WithoutCancel(ctx)
}

func (b batchTx) GetContext(ctx context.Context, dest any, query string, args ...any) error {
	return sqlx.GetContext(ctx, b, dest, query, args...)
}

func (b batchTx) SelectContext(ctx context.Context, dest any, query string, args ...any) error {
	return sqlx.SelectContext(ctx, b, dest, query, args...)
}

// Update runs fn in a BEGIN IMMEDIATE transaction on the writer connection and
// commits if fn returns nil (its changes are discarded otherwise). Keep fn
// short and free of network calls: it holds the database's write lock.
//
// Group commit: updates that arrive while one is committing are run together
// in the next transaction, each inside its own SAVEPOINT, so a failing fn
// rolls back only its own changes. One fsync (synchronous=FULL) then covers
// many updates, which is what lets many cases progress at once on one
// SQLite writer. Update returns only after the transaction holding fn's
// changes committed (or failed).
//
// On PostgreSQL (batching off) fn runs in a transaction of its own at READ
// COMMITTED, beside other processes' and this one's: the methods of Tx are
// written so that this gives the same results (conditional updates,
// ON CONFLICT, row locks where a read decides a write; see docs/postgres.md).
// A statement error there ends the transaction: fn must return it.
func (s *Store) Update(ctx context.Context, fn func(tx *Tx) error) error {
	if !s.batching {
		return s.updateDirect(ctx, fn)
	}
	p := &pendingUpdate{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case <-s.quit:
		return ErrClosed
	default:
	}
	select {
	case s.queue <- p:
	case <-s.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-p.done:
		return err
	case <-s.stopped:
		select {
		case err := <-p.done:
			return err
		default:
			return ErrClosed
		}
	}
}

// maxBatch bounds the updates one transaction carries.
const maxBatch = 128

type pendingUpdate struct {
	ctx  context.Context
	fn   func(tx *Tx) error
	done chan error
}

// committer runs queued updates in batches until the store is closed.
func (s *Store) committer() {
	defer close(s.stopped)
	batch := make([]*pendingUpdate, 0, maxBatch)
	for {
		select {
		case <-s.quit:
			s.failQueued()
			return
		case p := <-s.queue:
			batch = append(batch[:0], p)
		fill:
			for len(batch) < maxBatch {
				select {
				case p := <-s.queue:
					batch = append(batch, p)
				default:
					break fill
				}
			}
			s.commitBatch(batch)
		}
	}
}

// failQueued answers the updates still queued when the store closes.
func (s *Store) failQueued() {
	for {
		select {
		case p := <-s.queue:
			p.done <- ErrClosed
		default:
			return
		}
	}
}

// updateDirect runs fn in a transaction of its own on the writer pool,
// pipelined (pipeline.go).
func (s *Store) updateDirect(ctx context.Context, fn func(tx *Tx) error) (err error) {
	s.direct.RLock()
	defer s.direct.RUnlock()
	select {
	case <-s.quit:
		return ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// As in batchTx, a result must not be lost to a caller giving up; the
	// database not answering is another matter (ErrStoreTimeout).
	bg, bounded := s.bound(context.WithoutCancel(ctx))
	defer func() { err = bounded(err) }()
	conn, err := s.w.Connx(bg)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = conn.Close() }()
	p := &pgPipe{conn: conn, diag: s.r, ctx: bg}
	err = s.runFn(fn, &Tx{tx: batchTx{db: conn, pg: true, pipe: p}, now: s.now()})
	if err == nil {
		err = p.commit(bg)
	} else if !errors.Is(err, ErrUpdatePanicked) { // a panic is the error, whatever was queued
		if p.err == nil && p.checked {
			// A queued check comes before fn's own error in statement
			// order, as on SQLite: ask for its answer.
			_ = p.flush(bg, nil)
		}
		if p.err != nil {
			err = p.err // the first failure, in statement order
		}
	}
	if err != nil {
		if bg.Err() != nil {
			// Past the bound the ROLLBACK cannot be sent under it: give the
			// connection up (its session, if the server still holds it,
			// ends with it) rather than return it to the pool mid-transaction.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		} else {
			p.rollback(bg)
		}
		s.w.ended(err) // the pool's idle connections may have gone with this one's session: pinged before reuse
		if p.err != nil {
			s.w.ended(p.err) // the same, seen by a queued statement under a panic's error
		}
		return err
	}
	s.txs.Add(1)
	s.commits.Add(1)
	return nil
}

// start runs what answers Update: the committer when batching, otherwise
// a goroutine that, once the store closes, waits for the updates under way.
func (s *Store) start() {
	if s.batching {
		go s.committer()
		return
	}
	go func() {
		<-s.quit
		s.direct.Lock()
		close(s.stopped)
		s.direct.Unlock()
	}()
}

// openWriter opens the single-connection writer pool at dsn.
func openWriter(dsn string) (*pool, error) {
	w, err := sqlx.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("open store writer: %w", err)
	}
	// One writer connection per process; across processes BEGIN IMMEDIATE and
	// busy_timeout serialise writers.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	return &pool{DB: w}, nil
}

// commitBatch runs the batch in one BEGIN IMMEDIATE transaction, each fn in
// a savepoint, and reports every fn's outcome.
func (s *Store) commitBatch(batch []*pendingUpdate) {
	results := make([]error, len(batch))
	fail := func(err error) {
		for i, p := range batch {
			if results[i] == nil {
				results[i] = err
			}
			p.done <- results[i]
		}
	}
	ctx := context.Background() // a caller's cancellation must not roll back the others
	sqlTx, err := s.w.BeginTxx(ctx, nil)
	if err != nil {
		fail(fmt.Errorf("begin: %w", err))
		return
	}
	tx := &Tx{tx: batchTx{db: sqlTx, pg: s.w.pg}, now: s.now()}

	ran := 0
	for i, p := range batch {
		if err := p.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		if _, err := tx.tx.ExecContext(ctx, `SAVEPOINT upd`); err != nil {
			_ = sqlTx.Rollback()
			fail(fmt.Errorf("savepoint: %w", err))
			return
		}
		if err := s.runFn(p.fn, tx); err != nil {
			results[i] = err
			if _, rerr := tx.tx.ExecContext(ctx, `ROLLBACK TO upd`); rerr != nil {
				_ = sqlTx.Rollback()
				fail(batchLost(err, rerr))
				return
			}
		} else {
			ran++
		}
		if _, err := tx.tx.ExecContext(ctx, `RELEASE upd`); err != nil {
			_ = sqlTx.Rollback()
			fail(fmt.Errorf("release savepoint: %w", err))
			return
		}
	}
	if ran == 0 {
		_ = sqlTx.Rollback()
	} else if err := sqlTx.Commit(); err != nil {
		fail(fmt.Errorf("commit: %w", err))
		return
	} else {
		s.txs.Add(1)
		s.commits.Add(int64(ran))
	}
	for i, p := range batch {
		p.done <- results[i]
	}
}

// batchLost is the error of the updates a batch loses when one update's
// failure (err) took the whole transaction with it, so that its savepoint
// could not be rolled back to (rerr): SQLite abandons the transaction itself
// after a full disk or an I/O error. Their cause is err's: "no such
// savepoint" alone would hide it, from the reader and from Unavailable,
// which must see the full disk in every update it failed. Only SQLite's own
// error is wrapped: another update's ErrVersionConflict, say, is not this
// one's.
func batchLost(err, rerr error) error {
	var liteErr sqlite3.Error
	if errors.As(err, &liteErr) {
		return fmt.Errorf("the transaction was lost with another update in it: %w (rollback to savepoint: %v)", liteErr, rerr)
	}
	return fmt.Errorf("rollback to savepoint: %w (after another update's error: %v)", rerr, err)
}

// Now is the clock reading taken when the transaction began; rows written in
// the transaction use it.
func (tx *Tx) Now() time.Time { return tx.now }

// ms64 converts a time to Unix milliseconds.
func ms64(t time.Time) int64 { return t.UnixMilli() }

// nullMS converts a time to Unix milliseconds, the zero time to NULL.
func nullMS(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

// fromMS converts Unix milliseconds (NULL = zero time) to a UTC time.
func fromMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}

// notFound maps sql.ErrNoRows to ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// RoundTrips is how many times the store has waited for PostgreSQL: the
// statements and batches sent on all its pools since it opened (0 on
// SQLite). Tests and benchmarks count a transaction's or an input's cost
// with it: on PostgreSQL the round trips, not the WAL flush, are what the
// worker's throughput is bound by (docs/benchmarks.md). Not counted, so
// that the count is a warm pool's and repeatable: a statement's first run
// on a connection, which prepares it first (pgx's statement cache saves
// that round trip from then on), and database/sql's ping of a connection
// idle for over a second.
func (s *Store) RoundTrips() int64 { return s.sum(func(p *pool) int64 { return p.trips.Load() }) }

// Statements is how many statements the store has had PostgreSQL run, with
// what RoundTrips leaves out (0 on SQLite): BEGIN and COMMIT count, and
// each statement of a batch. Every one costs the server its executor start
// and, for a write of the case table, an entry in each of its indexes, so
// that on PostgreSQL, the one part every worker host shares, statements
// are capacity (docs/benchmarks.md).
func (s *Store) Statements() int64 { return s.sum(func(p *pool) int64 { return p.stmts.Load() }) }

// sum adds up a count over the store's pools, each once.
func (s *Store) sum(count func(*pool) int64) int64 {
	var n int64
	seen := map[*pool]bool{}
	for _, p := range []*pool{s.w, s.r, s.records} {
		if p != nil && !seen[p] {
			seen[p] = true
			n += count(p)
		}
	}
	return n
}

// Checkpoint copies the WAL into the database file and truncates it
// (PRAGMA wal_checkpoint(TRUNCATE)). SQLite checkpoints on its own as the WAL
// grows; call this now and then from one process so that readers holding old
// snapshots cannot let the WAL grow without bound. On PostgreSQL, which
// checkpoints its own WAL, it does nothing.
func (s *Store) Checkpoint(ctx context.Context) error {
	if s.w.pg {
		return nil
	}
	var busy, logFrames, checkpointed int
	if err := s.w.QueryRowxContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &checkpointed); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if busy != 0 {
		return fmt.Errorf("checkpoint: %w", ErrCheckpointBusy)
	}
	return nil
}
