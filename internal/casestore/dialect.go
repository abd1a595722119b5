package casestore

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	"github.com/mattn/go-sqlite3"
)

// The store runs on SQLite (a file path) or PostgreSQL (a postgres:// URL).
// What differs between the two is kept here and in postgres.go, so that
// nothing above casestore knows which store it has: the queries are written
// once, with ? placeholders, and the pools and transactions below rebind
// them to PostgreSQL's $n.

// IsURL reports whether target names a PostgreSQL database (a postgres://
// or postgresql:// URL) rather than a SQLite file.
func IsURL(target string) bool {
	return strings.HasPrefix(target, "postgres://") || strings.HasPrefix(target, "postgresql://")
}

// Redact returns target fit to print: a URL with its password replaced by
// "xxxxx" (also when it is given as a password= query parameter), a file
// path as it is. Every message that names a store goes through it: DB_URL
// may carry a password.
func Redact(target string) string {
	if !IsURL(target) {
		return target
	}
	u, err := url.Parse(target)
	if err != nil {
		// An unparsable URL may still hold a password: show only the scheme.
		scheme, _, _ := strings.Cut(target, "://")
		return scheme + "://(unparsable URL)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// pool is a connection pool whose queries take ? placeholders on either
// engine. It overrides the sqlx methods the package (and its tests) use.
type pool struct {
	*sqlx.DB
	pg bool
	// trips counts what the pool has sent PostgreSQL, each one round
	// trip: a statement, or a batch (pipeline.go). See Store.RoundTrips.
	trips atomic.Int64
	// stmts counts the statements in them, BEGIN and COMMIT included. See
	// Store.Statements.
	stmts atomic.Int64
	// rerunsReads: every session of the pool is read-only (PostgreSQL's
	// read pool), so a read that met a session the server had ended runs
	// again on another connection (rerun).
	rerunsReads bool
	// endedAt is when the pool last saw a session the server had ended, as
	// the time since born (monotonic: a wall clock stepped back must not
	// skip a ping); 0: never. See ended and shouldPing.
	endedAt atomic.Int64
	born    time.Time
	// unacked is the limit, in nanoseconds, on how long data sent on the
	// pool's connections may go unacknowledged: those dialed from now
	// (dial) and, at their next reuse, those dialed before (keepLimit).
	unacked atomic.Int64
}

// pgUnacked is the limit on unacknowledged data of a PostgreSQL
// connection (dial) until the store's bound says otherwise
// (Store.SetUpdateTimeout): what refundctl, the console, migrate-store
// and a worker before its bound is set have.
const pgUnacked = 30 * time.Second

// pgKeepAlive is the most a PostgreSQL connection idles, or waits between
// probes, before TCP probes it; a third of the unacknowledged-data limit
// when that is shorter (keepAliveFor).
const pgKeepAlive = 15 * time.Second

// keepAliveFor is the keepalive of a connection whose unacknowledged data
// is limited to limit: a connection waiting for an answer has nothing
// unacknowledged once its query was acknowledged, and only the probes,
// every third of the limit (at most pgKeepAlive), find that its peer is
// gone (a host or network gone; a live server's kernel answers them, so a
// hung server is not found this way). On Linux the limit, not Count, ends
// the probing: the connection is given up once probes have gone
// unanswered for it.
func keepAliveFor(limit time.Duration) net.KeepAliveConfig {
	every := min(pgKeepAlive, max(limit/3, time.Second))
	return net.KeepAliveConfig{Enable: true, Idle: every, Interval: every, Count: 3}
}

// dialWithin is a PostgreSQL dialer: TCP with keepalive (keepAliveFor),
// and the limit on unacknowledged data (unackedLimit, on Linux). Without
// them a network that drops packets holds every statement on the
// connection, reads included (only writes have a context bound:
// Store.bound), for as long as TCP retransmits, about a quarter of an
// hour, or for good while it waits for an answer.
func dialWithin(limit func() time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		if strings.HasPrefix(network, "tcp") {
			l := limit()
			d.KeepAliveConfig = keepAliveFor(l)
			if set := unackedLimit(l); set != nil {
				// A kernel that refuses the option costs the bound,
				// not the connection: the store stays usable.
				d.Control = func(network, address string, c syscall.RawConn) error {
					_ = set(network, address, c)
					return nil
				}
			}
		}
		return d.DialContext(ctx, network, addr)
	}
}

// dial is a PostgreSQL pool's dialer (dialWithin), at the pool's limit.
func (p *pool) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialWithin(func() time.Duration { return time.Duration(p.unacked.Load()) })(ctx, network, addr)
}

// keepLimit brings a connection the pool reuses to the pool's limit on
// unacknowledged data and its keepalive, when the limit changed since the
// connection was dialed or last brought to it (Store.SetUpdateTimeout
// after the first connections): the connection's own record of the limit
// it has is in its CustomData. A connection whose socket cannot be
// reached keeps what it has.
func (p *pool) keepLimit(c *pgx.Conn) {
	if c == nil {
		return
	}
	want := p.unacked.Load()
	data := c.PgConn().CustomData()
	if got, ok := data[unackedKey].(int64); ok && got == want {
		return
	}
	nc := c.PgConn().Conn()
	if t, ok := nc.(interface{ NetConn() net.Conn }); ok { // TLS
		nc = t.NetConn()
	}
	tcp, ok := nc.(*net.TCPConn)
	if !ok {
		data[unackedKey] = want // a unix socket: nothing to bound
		return
	}
	// Each setting on its own, and recorded either way: a kernel that
	// refuses one is not asked again at every checkout.
	_ = tcp.SetKeepAliveConfig(keepAliveFor(time.Duration(want)))
	if raw, err := tcp.SyscallConn(); err == nil {
		if set := unackedLimit(time.Duration(want)); set != nil {
			_ = set("", "", raw)
		}
	}
	data[unackedKey] = want
}

// unackedKey is where a connection's CustomData records the limit on
// unacknowledged data it has (keepLimit).
const unackedKey = "refundhub.unacked"

// ended is the pool's look at a statement's error err: when it says that
// the server had ended the connection's session (sessionEnded: a restart,
// an administrator's pg_terminate_backend, a pooler or a failover cutting
// connections, idle_session_timeout), the pool's other connections may
// have gone with it. The driver pings a connection before reuse only when
// over a second has passed since it was last taken from the pool, so each
// would fail its next statement the same way, read as the database being
// away (the console answered 503 once per pooled connection): from now on
// any connection last taken before this moment is pinged before its reuse
// (dropIdle, shouldPing), the idle ones and those in use now that come
// back to the pool later.
func (p *pool) ended(err error) bool {
	if !p.pg || !sessionEnded(err) {
		return false
	}
	p.dropIdle()
	return true
}

// shouldPing is the driver's question before it reuses a connection idle
// for idle: ping it first when idle over a second (the driver's own rule),
// or when it was last taken from the pool before the pool last saw a
// session the server ended (ended).
func (p *pool) shouldPing(_ context.Context, sp stdlib.ShouldPingParams) bool {
	p.keepLimit(sp.Conn) // asked at every reuse: the one hook on a connection taken again
	if sp.IdleDuration > time.Second {
		return true
	}
	at := p.endedAt.Load()
	return at != 0 && int64(time.Since(p.born)-sp.IdleDuration) <= at
}

// rerun reports whether a read that failed with err runs again: on a read
// pool, whose every session is read-only, after ended. The statement
// changed nothing, and runs once more, on a connection that is new or
// pinged (shouldPing): one end of a session is the pool's, a second the
// caller's (an administrator ending a runaway query ends its second run
// too). Writes are never run again: their caller cannot know whether they
// committed, as for any lost connection (Exec only marks the pool).
func (p *pool) rerun(ctx context.Context, err error) bool {
	return p.rerunsReads && ctx.Err() == nil && p.ended(err)
}

// sessionEnded reports whether err says that the connection's session had
// ended, or ended while the statement ran: a FATAL (or PANIC) error from
// the server, which ends the session it is sent on, or the connection
// found closed. Not an ERROR-level one, which leaves the session as it
// was, nor a new connection that failed (a ConnectError: the server is
// away, and a second try now fails the same; dial errors come wrapped in
// one).
func sessionEnded(err error) bool {
	if err == nil {
		return false
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.SeverityUnlocalized == "FATAL" || pgErr.SeverityUnlocalized == "PANIC" ||
			(pgErr.SeverityUnlocalized == "" && (pgErr.Severity == "FATAL" || pgErr.Severity == "PANIC"))
	}
	var netErr *net.OpError
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &netErr)
}

// dropIdle gives up the pool's idle connections. After a PostgreSQL server
// restarted or ended its sessions, an idle connection is to a session that
// went: the first statement on each would fail (FATAL 57P01 or 57P02,
// "unexpected EOF") as if the store were away again. So every connection
// last taken from the pool before now is pinged before its reuse
// (shouldPing): one whose session went fails the ping, and database/sql
// drops it and takes another, or a new one, with no error to the caller.
//
// It used to close them with SetMaxIdleConns(0) and back: database/sql
// closes the connections it took off the idle list after letting go of the
// pool's lock, reading them from an array that a connection coming back
// meanwhile is appended into once another call raised the limit again (two
// statements meeting the ended session at once). The race detector caught
// it in CI (TestWorkerRidesOutAPostgreSQLCrash), and the connection closed
// could be one that had just come back, while the one taken off stayed
// open, holding a slot of the pool for good.
func (p *pool) dropIdle() {
	if p == nil || !p.pg {
		return
	}
	now := int64(time.Since(p.born)) + 1
	for at := p.endedAt.Load(); at < now && !p.endedAt.CompareAndSwap(at, now); at = p.endedAt.Load() {
		// another drop stored its moment meanwhile: keep the later one
	}
}

func (p *pool) q(query string, args []any) string { return bind(p.pg, query, args) }

func (p *pool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := p.DB.ExecContext(ctx, p.q(query, args), args...)
	if err != nil {
		p.ended(err)
	}
	return res, err
}

func (p *pool) Exec(query string, args ...any) (sql.Result, error) {
	return p.ExecContext(context.Background(), query, args...)
}

func (p *pool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := p.DB.QueryContext(ctx, p.q(query, args), args...)
	if err != nil && p.rerun(ctx, err) {
		rows, err = p.DB.QueryContext(ctx, p.q(query, args), args...)
	}
	return rows, err
}

func (p *pool) QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error) {
	rows, err := p.DB.QueryxContext(ctx, p.q(query, args), args...)
	if err != nil && p.rerun(ctx, err) {
		rows, err = p.DB.QueryxContext(ctx, p.q(query, args), args...)
	}
	return rows, err
}

// QueryRowxContext: the driver reads a statement's first row before it
// returns, so an ended session's error is the row's Err already.
func (p *pool) QueryRowxContext(ctx context.Context, query string, args ...any) *sqlx.Row {
	row := p.DB.QueryRowxContext(ctx, p.q(query, args), args...)
	if err := row.Err(); err != nil && p.rerun(ctx, err) {
		row = p.DB.QueryRowxContext(ctx, p.q(query, args), args...)
	}
	return row
}

func (p *pool) GetContext(ctx context.Context, dest any, query string, args ...any) error {
	return sqlx.GetContext(ctx, p, dest, query, args...)
}

func (p *pool) Get(dest any, query string, args ...any) error {
	return p.GetContext(context.Background(), dest, query, args...)
}

func (p *pool) SelectContext(ctx context.Context, dest any, query string, args ...any) error {
	return sqlx.SelectContext(ctx, p, dest, query, args...)
}

func (p *pool) Select(dest any, query string, args ...any) error {
	return p.SelectContext(context.Background(), dest, query, args...)
}

// bind is query as the engine takes it: on PostgreSQL with $n for its ?
// placeholders. A query without arguments has none (and may be a
// migration's several statements), so it is left as it is.
func bind(pg bool, query string, args []any) string {
	if !pg || len(args) == 0 {
		return query
	}
	return rebind(query)
}

// rebinds caches the $n form of each query text: the texts are few and
// built once, the calls many.
var rebinds sync.Map

func rebind(query string) string {
	if v, ok := rebinds.Load(query); ok {
		return v.(string)
	}
	out := sqlx.Rebind(sqlx.DOLLAR, query)
	rebinds.Store(query, out)
	return out
}

// isUnique reports whether err is a unique constraint violation, on either
// engine.
func isUnique(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintUnique
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" // unique_violation
}

// insert runs an INSERT (which may end in ON CONFLICT … DO NOTHING) and
// returns the new row's id, or inserted == false when a conflict skipped
// it. PostgreSQL has no last insert id: it reads the id with RETURNING.
// SQLite keeps LastInsertId, because RETURNING costs it several times the
// insert (it runs as a trigger filling a temporary table).
func (tx *Tx) insert(ctx context.Context, query string, args ...any) (id int64, inserted bool, err error) {
	if tx.tx.pg {
		id, err := getOne[int64](ctx, tx, query+` RETURNING id`, args...)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, false, nil
		}
		return id, err == nil, err
	}
	res, err := tx.tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return 0, false, err
	}
	id, err = res.LastInsertId()
	return id, err == nil, err
}

// forUpdate is the clause that locks the rows a read in a write transaction
// returns until the transaction ends, where the read decides the write. On
// SQLite the transaction holds the database's one write lock already; on
// PostgreSQL other transactions run beside it, and without the row lock two
// of them could both act on what they read.
func (tx *Tx) forUpdate() string {
	if tx.tx.pg {
		return ` FOR UPDATE`
	}
	return ``
}
