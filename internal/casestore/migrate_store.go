package casestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/refundhub/refundhub"
)

// Moving a store from SQLite to PostgreSQL (refundctl migrate-store;
// docs/postgres.md, "Moving from SQLite"). The copy is generic: the tables
// and columns are read from the two databases' catalogs, which must agree,
// so a migration added to both schema files is copied without a change
// here.

// ErrMigrateRefused: MigrateStore refused to copy (workers hold leases, the
// target holds rows, the schemas differ); nothing was written. Returned
// wrapped in a *MigrateRefusal.
var ErrMigrateRefused = errors.New("casestore: migrate-store refused")

// MigrateRefusal says why MigrateStore would not copy; it wraps
// ErrMigrateRefused.
type MigrateRefusal struct{ Reason string }

func (e *MigrateRefusal) Error() string { return e.Reason }

func (e *MigrateRefusal) Unwrap() error { return ErrMigrateRefused }

func refuse(format string, args ...any) error {
	return &MigrateRefusal{Reason: fmt.Sprintf(format, args...)}
}

// MigrateOptions shape MigrateStore.
type MigrateOptions struct {
	// DryRun runs every check and counts the rows, writing nothing: the
	// target's missing migrations are applied in a transaction that is
	// rolled back, so its tables are compared with the source's all the same.
	DryRun bool
	// Now is the clock leases are compared with (default time.Now).
	Now func() time.Time
}

// MigrateTable is one table's row counts.
type MigrateTable struct {
	Table string `json:"table"`
	// Source is the rows in the SQLite store; Target the rows in the
	// PostgreSQL store after the copy, counted again once it committed
	// (before it, in a dry run: 0, or the refusal says otherwise).
	Source int64 `json:"source"`
	Target int64 `json:"target"`
	// NextID is the id the target gives the table's next row (0: the table
	// has no identity column); a dry run leaves it 0.
	NextID int64 `json:"nextId,omitempty"`
}

// Match reports whether the target holds as many rows as the source.
func (t MigrateTable) Match() bool { return t.Source == t.Target }

// MigrateReport is what MigrateStore did or, in a dry run, would do.
type MigrateReport struct {
	From          string         `json:"from"` // the SQLite file
	To            string         `json:"to"`   // the PostgreSQL URL, redacted
	DryRun        bool           `json:"dryRun"`
	SchemaVersion int            `json:"schemaVersion"`
	Tables        []MigrateTable `json:"tables"` // in copy order (parents before children)
	Rows          int64          `json:"rows"`   // source rows, all tables
	Elapsed       time.Duration  `json:"-"`
}

// Match reports whether every table's counts agree (a dry run: always, as
// nothing was copied).
func (r MigrateReport) Match() bool {
	if r.DryRun {
		return true
	}
	for _, t := range r.Tables {
		if !t.Match() {
			return false
		}
	}
	return true
}

// migrationsTable is the schema's bookkeeping: each store records its own
// migrations (Open does on the target), so it is compared, not copied.
const migrationsTable = "schema_migrations"

// column is one column of a table as a catalog describes it.
type column struct {
	name     string
	pgType   string // information_schema data_type on the target (bigint, text, bytea, …)
	identity bool
}

type table struct {
	name string
	cols []column
}

// MigrateStore copies every row of the SQLite store at from into the
// PostgreSQL store at to, preserving ids and every column, in one
// PostgreSQL transaction, and then counts every table on both sides.
//
// It refuses (a *MigrateRefusal, nothing written) when the source's schema
// is not this build's, when any case's lease in the source has not expired
// (workers are running: stop them first), when the target holds any row, or
// when the two stores' tables or columns differ. The target is checked in
// a transaction it rolls back (with this build's migrations applied in it,
// so that a new database's tables can be compared); only then is its
// schema created, by Open, which migrates it as a worker would.
//
// The source is read in one SQLite transaction: BEGIN IMMEDIATE, so no
// worker started meanwhile can write a row the copy would miss (its writes
// wait, then fail, until the copy ends); a dry run only reads. Rows stream
// from SQLite into PostgreSQL's COPY table by table, so memory stays bounded
// whatever the store's size. Identities are then set past the highest
// copied id. A count that differs inside the transaction rolls it back; the
// report's target counts are read again after the commit.
func MigrateStore(ctx context.Context, from, to string, opt MigrateOptions) (MigrateReport, error) {
	start := time.Now()
	rep := MigrateReport{From: from, To: Redact(to), DryRun: opt.DryRun}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if IsURL(from) {
		return rep, fmt.Errorf("migrate store: the source must be a SQLite file, not %s", Redact(from))
	}
	if !IsURL(to) {
		return rep, errors.New("migrate store: the target must be a postgres:// URL") // not quoted: it may hold a password
	}
	src, err := openMigrateSource(ctx, from, opt.DryRun)
	if err != nil {
		return rep, err
	}
	defer src.close()
	version, tables, err := src.check(ctx, opt.Now())
	if err != nil {
		return rep, err
	}
	rep.SchemaVersion = version

	cfg, err := pgConfig(to, false)
	if err != nil {
		return rep, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return rep, fmt.Errorf("open store %s: %w", rep.To, err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	// Every check of the target first, in a transaction rolled back, so
	// that a refusal leaves it as it was, its schema included.
	order, err := checkTarget(ctx, conn, tables)
	if err != nil {
		return rep, err
	}
	for _, t := range order {
		n, err := src.count(ctx, t.name)
		if err != nil {
			return rep, err
		}
		rep.Tables = append(rep.Tables, MigrateTable{Table: t.name, Source: n})
		rep.Rows += n
	}
	if opt.DryRun {
		rep.Elapsed = time.Since(start)
		return rep, nil
	}

	// Open migrates the target as a worker would, under the migrations'
	// lock.
	st, err := Open(ctx, to, nil)
	if err != nil {
		return rep, err
	}
	if err := st.Close(); err != nil {
		return rep, err
	}
	if err := src.copyInto(ctx, conn, tables, order, rep.Tables); err != nil {
		return rep, err
	}
	// Verified again outside the transaction: what the workers will read.
	for i, mt := range rep.Tables {
		if rep.Tables[i].Target, err = countPG(ctx, conn, mt.Table); err != nil {
			return rep, err
		}
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// migrateSource is the SQLite store being read, in one transaction.
type migrateSource struct {
	db *sql.DB
	tx *sql.Tx
}

// openMigrateSource opens the file (which must exist) and begins the
// transaction the whole copy reads in: BEGIN IMMEDIATE holds the file's
// write lock so nothing changes under the copy; a dry run reads a snapshot
// read-only.
func openMigrateSource(ctx context.Context, path string, dryRun bool) (*migrateSource, error) {
	uri, err := existingFileURI(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	params := "mode=rw&_busy_timeout=5000&_txlock=immediate"
	if dryRun {
		params = readOnlyParams
	}
	db, err := sql.Open("sqlite3", uri+"?"+params)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: dryRun})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &migrateSource{db: db, tx: tx}, nil
}

func (s *migrateSource) close() {
	_ = s.tx.Rollback() // it wrote nothing
	_ = s.db.Close()
}

// check refuses a source at another schema version or with unexpired
// leases, and returns its version and tables (schema_migrations left out).
func (s *migrateSource) check(ctx context.Context, now time.Time) (int, []table, error) {
	var hasMigrations int
	if err := s.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, migrationsTable).Scan(&hasMigrations); err != nil {
		return 0, nil, fmt.Errorf("migrate store: read the source: %w", err)
	}
	version := 0
	if hasMigrations > 0 {
		if err := s.tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&version); err != nil {
			return 0, nil, fmt.Errorf("migrate store: source schema version: %w", err)
		}
	}
	build := BuildSchemaVersion()
	switch {
	case version == 0:
		return 0, nil, refuse("the source is not a case store (no schema_migrations)")
	case version < build:
		return version, nil, refuse("the source has schema version %d; this build needs %d: run a worker of this version on it first (it upgrades the file), stop it, then migrate", version, build)
	case version > build:
		return version, nil, refuse("the source has schema version %d, newer than this build's %d: use the refundctl of the version that migrated it", version, build)
	}
	var held int
	var until sql.NullInt64
	nowMS := ms64(now)
	if err := s.tx.QueryRowContext(ctx, `SELECT COUNT(*), MAX(lease_until) FROM cases WHERE lease_owner <> '' AND lease_until > ?`, nowMS).Scan(&held, &until); err != nil {
		return 0, nil, fmt.Errorf("migrate store: read leases: %w", err)
	}
	if held > 0 {
		var owners []string
		rows, err := s.tx.QueryContext(ctx, `SELECT DISTINCT lease_owner FROM cases WHERE lease_owner <> '' AND lease_until > ? ORDER BY lease_owner LIMIT 5`, nowMS)
		if err != nil {
			return 0, nil, fmt.Errorf("migrate store: read leases: %w", err)
		}
		for rows.Next() {
			var o string
			if err := rows.Scan(&o); err != nil {
				_ = rows.Close()
				return 0, nil, err
			}
			owners = append(owners, o)
		}
		_ = rows.Close()
		return 0, nil, refuse("workers hold leases on %d case(s) of the source, until %s at the latest (held by %s): stop the workers first, then migrate",
			held, fromMS(until).Format(time.RFC3339), strings.Join(owners, ", "))
	}
	tables, err := s.tables(ctx)
	return version, tables, err
}

// tables reads the source's tables and columns from its catalog, in name
// order.
func (s *migrateSource) tables(ctx context.Context) ([]table, error) {
	rows, err := s.tx.QueryContext(ctx, `SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> ? ORDER BY m.name, p.cid`, migrationsTable)
	if err != nil {
		return nil, fmt.Errorf("migrate store: read the source's tables: %w", err)
	}
	defer rows.Close()
	var out []table
	for rows.Next() {
		var tn, cn string
		if err := rows.Scan(&tn, &cn); err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].name != tn {
			out = append(out, table{name: tn})
		}
		out[len(out)-1].cols = append(out[len(out)-1].cols, column{name: cn})
	}
	return out, rows.Err()
}

func (s *migrateSource) count(ctx context.Context, name string) (int64, error) {
	var n int64
	if err := s.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+quoteIdent(name)).Scan(&n); err != nil {
		return 0, fmt.Errorf("migrate store: count %s in the source: %w", name, err)
	}
	return n, nil
}

// copyInto copies every table in order into the target in one transaction,
// sets each identity past the copied ids (into counts' NextID), and commits
// only when every table holds as many rows as counts says the source does.
func (s *migrateSource) copyInto(ctx context.Context, conn *pgx.Conn, source, order []table, counts []MigrateTable) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate store: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// Checked again, now under the tables' lock: another run (or a worker
	// started too early) may have written since checkTarget.
	if _, err := targetTables(ctx, tx, source); err != nil {
		return err
	}
	if err := checkTargetEmpty(ctx, tx, order); err != nil {
		return err
	}
	for i, t := range order {
		n, err := s.copyTable(ctx, tx, t)
		if err != nil {
			return err
		}
		if n != counts[i].Source {
			return fmt.Errorf("migrate store: %s: copied %d rows of %d; nothing was committed", t.name, n, counts[i].Source)
		}
		if counts[i].NextID, err = setIdentity(ctx, tx, t); err != nil {
			return err
		}
	}
	for _, c := range counts {
		n, err := countPG(ctx, tx, c.Table)
		if err != nil {
			return err
		}
		if n != c.Source {
			return fmt.Errorf("migrate store: %s: %d rows in the target after the copy, %d in the source; nothing was committed", c.Table, n, c.Source)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate store: commit: %w", err)
	}
	return nil
}

// copyTable streams t's rows into the target with COPY and returns how
// many it copied.
func (s *migrateSource) copyTable(ctx context.Context, tx pgx.Tx, t table) (int64, error) {
	names := make([]string, len(t.cols))
	quoted := make([]string, len(t.cols))
	for i, c := range t.cols {
		names[i], quoted[i] = c.name, quoteIdent(c.name)
	}
	rows, err := s.tx.QueryContext(ctx, `SELECT `+strings.Join(quoted, ", ")+` FROM `+quoteIdent(t.name))
	if err != nil {
		return 0, fmt.Errorf("migrate store: read %s: %w", t.name, err)
	}
	defer rows.Close()
	cs := &copySource{rows: rows, t: t, vals: make([]any, len(t.cols)), ptrs: make([]any, len(t.cols))}
	for i := range cs.vals {
		cs.ptrs[i] = &cs.vals[i]
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{t.name}, names, cs)
	if err == nil {
		err = cs.err
	}
	if err != nil {
		return n, fmt.Errorf("migrate store: copy %s (row %d): %w; nothing was committed", t.name, cs.row, err)
	}
	return n, nil
}

// copySource feeds COPY from the SQLite rows, converting each value to the
// target column's type: SQLite's column types are affinities, so a value
// is converted by what PostgreSQL expects rather than trusted as read.
type copySource struct {
	rows *sql.Rows
	t    table
	vals []any
	ptrs []any
	row  int64
	err  error
}

func (c *copySource) Next() bool {
	if c.err != nil || !c.rows.Next() {
		return false
	}
	c.row++
	if err := c.rows.Scan(c.ptrs...); err != nil {
		c.err = err
		return false
	}
	for i, col := range c.t.cols {
		v, err := convertValue(c.vals[i], col.pgType)
		if err != nil {
			c.err = fmt.Errorf("column %s: %w", col.name, err)
			return false
		}
		c.vals[i] = v
	}
	return true
}

func (c *copySource) Values() ([]any, error) { return c.vals, c.err }

func (c *copySource) Err() error {
	if c.err != nil {
		return c.err
	}
	return c.rows.Err()
}

// convertValue is a SQLite value as a PostgreSQL column of type pgType
// takes it.
func convertValue(v any, pgType string) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch pgType {
	case "bytea":
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	case "text", "character varying":
		switch x := v.(type) {
		case string:
			return x, nil
		case []byte:
			return string(x), nil
		case int64:
			return strconv.FormatInt(x, 10), nil
		}
	case "bigint", "integer", "smallint":
		switch x := v.(type) {
		case int64:
			return x, nil
		case float64:
			if x == math.Trunc(x) && math.Abs(x) < 1<<62 {
				return int64(x), nil
			}
		case string:
			if n, err := strconv.ParseInt(x, 10, 64); err == nil {
				return n, nil
			}
		}
	default:
		return nil, fmt.Errorf("target type %s is not one migrate-store copies", pgType)
	}
	return nil, fmt.Errorf("a %T value for a %s column", v, pgType)
}

// pgQuerier is a connection or a transaction.
type pgQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// applyMigrations applies, inside tx, the migrations of this build the
// target lacks (checkTarget rolls them back). A newer target is left as it
// is: targetTables refuses it. It is Store.migrate's loop in one
// transaction: Store.migrate commits each migration, which a check must
// not do.
func applyMigrations(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '', applied_at BIGINT NOT NULL)`); err != nil {
		return err
	}
	var have int
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return err
	}
	for _, m := range parseMigrations(refundhub.SchemaPostgres) {
		if m.version <= have {
			continue
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return fmt.Errorf("schema migration %d (%s): %w", m.version, m.name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
			m.version, m.name, ms64(time.Now())); err != nil {
			return err
		}
	}
	return nil
}

// checkTarget runs the target's checks in a transaction it rolls back:
// this build's migrations the target lacks are applied in it (Store.migrate
// commits each, which a check must not), then its tables are compared with
// the source's and counted. It returns the tables in copy order.
func checkTarget(ctx context.Context, conn *pgx.Conn, source []table) ([]table, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate store: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := applyMigrations(ctx, tx); err != nil {
		return nil, fmt.Errorf("migrate store: the target's schema: %w", err)
	}
	order, err := targetTables(ctx, tx, source)
	if err != nil {
		return nil, err
	}
	return order, checkTargetEmpty(ctx, tx, order)
}

// targetTables reads the target's schema version, tables, columns and
// foreign keys, requires them to be the source's, and returns the tables
// with the target's column types, parents before the tables that refer to
// them.
func targetTables(ctx context.Context, q pgQuerier, source []table) ([]table, error) {
	var version int
	if err := q.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&version); err != nil {
		return nil, fmt.Errorf("migrate store: target schema version: %w", err)
	}
	if build := BuildSchemaVersion(); version != build {
		return nil, refuse("the target has schema version %d; this build's is %d: use the refundctl of the version that migrated it", version, build)
	}
	rows, err := q.Query(ctx, `SELECT c.table_name, c.column_name, c.data_type, c.is_identity = 'YES'
		FROM information_schema.columns c JOIN information_schema.tables t
		  ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
		WHERE c.table_schema = current_schema() AND c.table_name <> $1
		ORDER BY c.table_name, c.ordinal_position`, migrationsTable)
	if err != nil {
		return nil, fmt.Errorf("migrate store: read the target's tables: %w", err)
	}
	target := map[string]map[string]column{}
	var targetNames []string
	for rows.Next() {
		var tn string
		var c column
		if err := rows.Scan(&tn, &c.name, &c.pgType, &c.identity); err != nil {
			rows.Close()
			return nil, err
		}
		if target[tn] == nil {
			target[tn] = map[string]column{}
			targetNames = append(targetNames, tn)
		}
		target[tn][c.name] = c
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrate store: read the target's tables: %w", err)
	}
	var diffs []string
	var out []table
	seen := map[string]bool{}
	for _, st := range source {
		seen[st.name] = true
		tc, ok := target[st.name]
		if !ok {
			diffs = append(diffs, "table "+st.name+" only in the source")
			continue
		}
		t := table{name: st.name}
		for _, c := range st.cols {
			pc, ok := tc[c.name]
			if !ok {
				diffs = append(diffs, "column "+st.name+"."+c.name+" only in the source")
				continue
			}
			t.cols = append(t.cols, pc)
			delete(tc, c.name)
		}
		for name := range tc {
			diffs = append(diffs, "column "+st.name+"."+name+" only in the target")
		}
		out = append(out, t)
	}
	for _, tn := range targetNames {
		if !seen[tn] {
			diffs = append(diffs, "table "+tn+" only in the target")
		}
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		return nil, refuse("the source's and the target's tables differ (%s): both must be this build's schema", strings.Join(diffs, "; "))
	}
	return orderByForeignKeys(ctx, q, out)
}

// orderByForeignKeys sorts tables so that every table comes after those its
// foreign keys refer to (the constraints are checked row by row).
func orderByForeignKeys(ctx context.Context, q pgQuerier, tables []table) ([]table, error) {
	rows, err := q.Query(ctx, `SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c
		JOIN pg_namespace n ON n.oid = c.connamespace
		WHERE c.contype = 'f' AND n.nspname = current_schema()`)
	if err != nil {
		return nil, fmt.Errorf("migrate store: read the target's foreign keys: %w", err)
	}
	parents := map[string][]string{}
	for rows.Next() {
		var child, parent string
		if err := rows.Scan(&child, &parent); err != nil {
			rows.Close()
			return nil, err
		}
		child, parent = strings.Trim(child, `"`), strings.Trim(parent, `"`)
		if child != parent {
			parents[child] = append(parents[child], parent)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []table
	placed := map[string]bool{}
	for len(out) < len(tables) {
		progress := false
		for _, t := range tables {
			if placed[t.name] {
				continue
			}
			ready := true
			for _, p := range parents[t.name] {
				if !placed[p] && slices.ContainsFunc(tables, func(x table) bool { return x.name == p }) {
					ready = false
				}
			}
			if ready {
				out, placed[t.name], progress = append(out, t), true, true
			}
		}
		if !progress {
			return nil, errors.New("migrate store: the target's foreign keys form a cycle")
		}
	}
	return out, nil
}

// checkTargetEmpty locks the target's tables against writers until the
// copy's transaction ends, then refuses a target holding any row.
func checkTargetEmpty(ctx context.Context, tx pgx.Tx, tables []table) error {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = quoteIdent(t.name)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE `+strings.Join(names, ", ")+` IN EXCLUSIVE MODE`); err != nil {
		return fmt.Errorf("migrate store: lock the target's tables: %w", err)
	}
	var held []string
	for _, t := range tables {
		n, err := countPG(ctx, tx, t.name)
		if err != nil {
			return err
		}
		if n > 0 {
			held = append(held, fmt.Sprintf("%s: %d", t.name, n))
		}
	}
	if len(held) > 0 {
		return refuse("the target is not empty (%s): migrate-store only copies into a new database", strings.Join(held, ", "))
	}
	return nil
}

func countPG(ctx context.Context, q pgQuerier, name string) (int64, error) {
	var n int64
	if err := q.QueryRow(ctx, `SELECT COUNT(*) FROM `+quoteIdent(name)).Scan(&n); err != nil {
		return 0, fmt.Errorf("migrate store: count %s in the target: %w", name, err)
	}
	return n, nil
}

// setIdentity moves t's identity past its highest id, so that the
// workers' new rows do not collide with copied ones, and returns the next
// id (0: t has no identity column).
func setIdentity(ctx context.Context, tx pgx.Tx, t table) (int64, error) {
	for _, c := range t.cols {
		if !c.identity {
			continue
		}
		id := quoteIdent(c.name)
		var highest int64
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(`+id+`), 0) FROM `+quoteIdent(t.name)).Scan(&highest); err != nil {
			return 0, fmt.Errorf("migrate store: highest %s.%s: %w", t.name, c.name, err)
		}
		// setval(seq, max, true) makes max+1 the next value; on an empty
		// table setval(seq, 1, false) leaves 1 next.
		if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence($1, $2), $3, $4)`,
			quoteIdent(t.name), c.name, max(highest, 1), highest > 0); err != nil {
			return 0, fmt.Errorf("migrate store: set %s.%s's identity: %w", t.name, c.name, err)
		}
		return highest + 1, nil
	}
	return 0, nil
}

// quoteIdent quotes a table or column name read from a catalog for SQL
// (both engines take double quotes).
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
