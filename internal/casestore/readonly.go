package casestore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/refundhub/refundhub"
)

// Only the worker migrates (Open). Tools that share the worker's file, such
// as refundctl, open it with OpenReadOnly or OpenExisting, which never
// create, migrate or rebuild anything: a newer tool must not run a
// migration's table copy under the write lock of a production file, nor
// create an empty store where a path was mistyped.

var (
	// ErrSchemaOlder: the database lacks migrations this build needs. Only a
	// worker of this build (Open) upgrades it. Returned wrapped in a
	// *SchemaError.
	ErrSchemaOlder = errors.New("casestore: database schema is older than this build")
	// ErrReadOnly: Update on a store opened with OpenReadOnly.
	ErrReadOnly = errors.New("casestore: store opened read-only")
)

// SchemaVersions is a database's schema version beside this build's.
type SchemaVersions struct {
	File  int // newest migration recorded in the database (0: none)
	Build int // BuildSchemaVersion
}

// Older reports whether the file lacks migrations this build needs: its
// queries may name columns or rely on constraints the file does not have.
func (v SchemaVersions) Older() bool { return v.File < v.Build }

// Newer reports whether a newer build migrated the file. This build still
// works on it: migrations only add tables, columns and indexes, or rebuild a
// table with the same columns (schema.sql's header); what they add is
// invisible here.
func (v SchemaVersions) Newer() bool { return v.File > v.Build }

// SchemaError is a database whose schema is older than this build's; it
// wraps ErrSchemaOlder. Callers name both versions to the operator.
type SchemaError struct {
	Path string
	SchemaVersions
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("case store %s has schema version %d; this build needs %d", e.Path, e.File, e.Build)
}

func (e *SchemaError) Unwrap() error { return ErrSchemaOlder }

// BuildSchemaVersion is the newest migration in this build's schema.sql: the
// version a database must have for this build to read or write it.
func BuildSchemaVersion() int { return len(parseMigrations(refundhub.Schema)) }

// OpenAtVersion is Open applying migrations only up to version: the file as
// a build whose schema ended there left it. Tests of upgrades, and of
// readers meeting an older file, build their databases with it; production
// code calls Open.
func OpenAtVersion(ctx context.Context, path string, logger *slog.Logger, version int) (*Store, error) {
	if version < 1 || version > BuildSchemaVersion() {
		return nil, fmt.Errorf("open store at schema version %d: want 1 to %d", version, BuildSchemaVersion())
	}
	return open(ctx, path, logger, version)
}

// OpenReadOnly opens an existing database for reading only: SQLite mode=ro,
// so neither this process nor a bug in it can write the file, and a missing
// file is an error wrapping fs.ErrNotExist rather than a new empty store.
// It never migrates: a file older than this build is a *SchemaError; a
// newer one opens (see SchemaVersions.Newer; Store.SchemaVersions tells).
// Every read method works; Update fails with ErrReadOnly.
//
// A postgres:// URL opens the database with default_transaction_read_only
// set on every connection, PostgreSQL's mode=ro.
func OpenReadOnly(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	if IsURL(path) {
		r, err := openPostgresReader(ctx, path)
		if err != nil {
			return nil, err
		}
		s := newStore(r, r, logger)
		s.batching, s.readOnly = true, true // Update queues, and refuseUpdates answers
		go s.refuseUpdates()
		return s, nil
	}
	uri, err := existingFileURI(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s read-only: %w", path, err)
	}
	r, err := openReadPool(ctx, uri, path)
	if err != nil {
		return nil, err
	}
	// No writer connection: w is the read-only pool (Close closes it twice,
	// which database/sql allows), so a statement that bypasses Update fails
	// in SQLite, and Update is answered by refuseUpdates.
	s := newStore(r, r, logger)
	s.readOnly = true
	go s.refuseUpdates()
	return s, nil
}

// OpenExisting opens an existing database for reading and writing without
// creating or migrating it, for tools that write a little (an operator
// marking a dead letter retried) beside the worker. A missing file wraps
// fs.ErrNotExist; a file older than this build is a *SchemaError (its
// writes could miss columns or constraints); a newer one opens.
func OpenExisting(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	if IsURL(path) {
		return openPostgresExisting(ctx, path, logger)
	}
	uri, err := existingFileURI(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	r, err := openReadPool(ctx, uri, path)
	if err != nil {
		return nil, err
	}
	// mode=rw: open for writing, but never create the file.
	w, err := openWriter(uri + "?mode=rw&" + writerParams)
	if err != nil {
		_ = r.Close()
		return nil, err
	}
	s := newStore(w, r, logger)
	s.start()
	return s, nil
}

// SchemaVersions returns the database's schema version beside this build's.
func (s *Store) SchemaVersions(ctx context.Context) (SchemaVersions, error) {
	return schemaVersions(ctx, s.r)
}

// existingFileURI is the SQLite file: URI of path, which must exist. The
// path is escaped so that '?' or '#' in a directory name cannot be read as
// parameters.
func existingFileURI(path string) (string, error) {
	if path == "" {
		return "", errors.New("empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(abs); err != nil {
		return "", err
	}
	return "file:" + (&url.URL{Path: abs}).EscapedPath(), nil
}

// readOnlyParams are the DSN keys of a read pool on a file this process must
// not write (see the pragma list in store.go):
//
//   - mode=ro: SQLite opens the file read-only and never creates it.
//   - no _journal_mode: WAL is recorded in the file by the worker; setting it
//     is a write, which fails on a file not (yet) in WAL mode.
//   - no _synchronous or _foreign_keys: they only govern writes.
//   - _busy_timeout, _txlock=deferred, _query_only=1, _stmt_cache_size as for
//     the worker's read pool.
const readOnlyParams = "mode=ro&_busy_timeout=5000&_txlock=deferred&_query_only=1&_stmt_cache_size=64"

// openReadPool opens the read pool and checks that the schema is not older
// than this build's.
func openReadPool(ctx context.Context, uri, path string) (*pool, error) {
	db, err := sqlx.Open("sqlite3", uri+"?"+readOnlyParams)
	if err != nil {
		return nil, fmt.Errorf("open store reader: %w", err)
	}
	db.SetMaxOpenConns(readerConns)
	db.SetMaxIdleConns(readerConns)
	r := &pool{DB: db}
	if err := checkSchema(ctx, r, path); err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}

// checkSchema fails unless the store's schema is at least this build's; path
// is the store as the error names it (redacted).
func checkSchema(ctx context.Context, r *pool, path string) error {
	v, err := schemaVersions(ctx, r)
	if err != nil {
		return fmt.Errorf("open store %s: %w", path, err)
	}
	if v.Older() {
		return &SchemaError{Path: path, SchemaVersions: v}
	}
	return nil
}

// schemaVersions reads the file's version without creating anything: a
// database no worker initialised has version 0.
func schemaVersions(ctx context.Context, q *pool) (SchemaVersions, error) {
	v := SchemaVersions{Build: BuildSchemaVersion()}
	var tables int
	exists := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`
	if q.pg {
		exists = `SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'schema_migrations'`
	}
	if err := sqlx.GetContext(ctx, q, &tables, exists); err != nil {
		return v, fmt.Errorf("schema version: %w", err)
	}
	if tables == 0 {
		return v, nil
	}
	if err := sqlx.GetContext(ctx, q, &v.File, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`); err != nil {
		return v, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}

// newStore assembles a Store on open pools; the caller starts it (start, or
// refuseUpdates). Group commit is SQLite's: see postgres.go for why
// PostgreSQL does without.
func newStore(w, r *pool, logger *slog.Logger) *Store {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Store{w: w, r: r, log: logger, now: time.Now, queue: make(chan *pendingUpdate, maxBatch),
		quit: make(chan struct{}), stopped: make(chan struct{}), batching: !w.pg}
}

// refuseUpdates is the committer of a read-only store: it answers every
// Update with ErrReadOnly until the store is closed.
func (s *Store) refuseUpdates() {
	defer close(s.stopped)
	for {
		select {
		case <-s.quit:
			s.failQueued()
			return
		case p := <-s.queue:
			p.done <- ErrReadOnly
		}
	}
}
