package casestore

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"
)

// Unavailable reports whether err looks like the store could not be
// reached, went away while it was being used, or could not write: PostgreSQL
// down, restarting, recovering after a crash, failed over, out of
// connections or disk, or the network between cut; SQLite's file on a full
// disk ("database or disk is full") or one that fails to write ("disk I/O
// error", WriteRefused). Such a failure says nothing about the work that
// met it, which succeeds unchanged once the store answers again:
// a caller holds that work and tries it again then, rather than count the
// failure against it. Every error about the work itself is false:
// constraint violations, ErrVersionConflict, ErrNotFound, a cancelled
// context. (At a start, Misconfigured tells the connection errors that
// waiting is unlikely to cure.)
//
// It is a first look at the error alone, and a broken connection looks the
// same whoever's it was: an error that wraps a platform call's network
// failure is true too. A caller confirms with Ping, which fails only when
// the store itself does not answer, unless WriteRefused says the store
// refused the write itself (a full disk passes Ping).
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, ErrStoreTimeout) {
		return true // the database did not answer within the store's bound
	}
	var liteErr sqlite3.Error
	if errors.As(err, &liteErr) {
		// A full disk or a write that failed (WriteRefused): the same
		// write goes through once there is room or the device writes
		// again. Not a read that failed (a bad sector under some case's
		// pages: the work's, as a corrupt row would be), nor a locked
		// database (SQLITE_BUSY: the store's busy timeout waits for the
		// lock, and past it the failure is the work's, as any other
		// contention is).
		return WriteRefused(err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"): // connection exception
			return true
		case strings.HasPrefix(pgErr.Code, "53"): // insufficient resources: too many connections, out of memory, disk full
			return true
		}
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", "57P05": // admin_shutdown, crash_shutdown, cannot_connect_now (starting, recovering), idle_session_timeout
			return true
		case "25006": // read_only_sql_transaction: a standby answers for the primary (a failover under way)
			return true
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	var netErr *net.OpError
	return errors.As(err, &connectErr) || errors.As(err, &netErr) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err)
}

// Misconfigured reports whether a connection failed, at a process's
// start, for a reason waiting is unlikely to cure: a host name that does
// not exist, a certificate that does not verify, SQLite's file giving an
// I/O error other than a refused write. (A wrong password is a
// PgError of class 28, which Unavailable is false for.) A connection that
// timed out is not among them: a host that drops packets, mid-failover or
// cut off, is an outage. The driver joins the errors of every address it
// tried: all must be misconfigured, since one host of a failover pair that
// no longer resolves says nothing of the other, which may be recovering.
//
// Only for a start: once running, a host name that stops resolving (a
// restarting pod's, a service with no healthy node during a failover) is
// an outage like any other, which Unavailable and Ping see.
func Misconfigured(err error) bool { return misconfigured(err) }

func misconfigured(err error) bool {
	switch e := err.(type) {
	case interface{ Unwrap() []error }:
		errs := e.Unwrap()
		for _, one := range errs {
			if !misconfigured(one) {
				return false
			}
		}
		return len(errs) > 0
	case *net.DNSError:
		return e.IsNotFound
	case *tls.CertificateVerificationError, x509.UnknownAuthorityError, x509.HostnameError, x509.CertificateInvalidError:
		return true
	case sqlite3.Error:
		// An I/O error opening SQLite's file other than a write refused:
		// a file system it cannot use (locks or shared memory on a network
		// mount) or a device failing reads. A full disk, a write that
		// failed (WriteRefused) is waited for.
		return e.Code == sqlite3.ErrIoErr && !WriteRefused(e)
	}
	if next := errors.Unwrap(err); next != nil {
		return misconfigured(next)
	}
	return false
}

// errStandby: Ping reached a PostgreSQL server in recovery, a standby,
// which takes no writes: after a failover, the old address until it
// follows the new primary.
var errStandby = errors.New("the database is a standby (in recovery): it takes no writes")

// Ping checks that the store answers on the connections its writes use,
// and on PostgreSQL that it takes writes (not a standby): the cheap first
// look after an error Unavailable recognises, which tells the store's
// outage from a platform call's broken connection. Broken connections left
// from before are dropped on the way (the driver checks a pooled connection
// idle over a second before reuse).
func (s *Store) Ping(ctx context.Context) error {
	if !s.w.pg {
		return s.w.PingContext(ctx)
	}
	var standby bool
	if err := s.w.QueryRowxContext(ctx, `SELECT pg_is_in_recovery()`).Scan(&standby); err != nil {
		return err
	}
	if standby {
		return errStandby
	}
	return nil
}

// PingWrite is Ping, then a committed write: after an outage it is how a
// caller learns that the store takes its work again. A full disk leaves the
// store answering Ping, so PingWrite writes its own row (store_probe) with
// random bytes:
//   - on SQLite 1 MiB, more than a group commit of the worker's writes:
//     each commit appends to the WAL, and while the file system has no room
//     the append fails; a WAL reused from its start after a checkpoint has
//     room for the probe where it has room for the next batches, about;
//   - on PostgreSQL, about 72 KiB of rows into a table created for it,
//     whose file they must grow, as the worker's inserts grow their
//     tables: it fails with disk_full while the disk has no room for them
//     (probePostgres). A write into the pages a table has passes on a full
//     disk: the probe's row alone did once vacuum had freed some.
//
// Not on a store opened read-only, which is only asked to answer. Each call
// costs a commit of those bytes: callers probe while an outage lasts, not
// after every error. Once a PostgreSQL probe goes through, the pools'
// idle connections are given up: the server may have restarted under them,
// and the work that resumes must not meet them (pool.dropIdle: each is
// pinged before its reuse).
func (s *Store) PingWrite(ctx context.Context) error {
	if err := s.Ping(ctx); err != nil || s.readOnly {
		return err
	}
	if s.w.pg {
		if err := s.probePostgres(ctx); err != nil {
			return err
		}
		for _, p := range []*pool{s.w, s.r, s.records} {
			p.dropIdle()
		}
		return nil
	}
	pad := make([]byte, probeBytesSQLite)
	_, _ = rand.Read(pad)
	if _, err := s.w.ExecContext(ctx, `INSERT INTO store_probe (id, at, pad) VALUES (1, ?, ?)
		ON CONFLICT (id) DO UPDATE SET at = excluded.at, pad = excluded.pad`, ms64(s.now()), pad); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// probePostgres is PingWrite's write on PostgreSQL, in one statement
// string (one round trip, one implicit transaction): a table of its own
// created, filled with probeRowsPostgres rows, and dropped, then the time
// in store_probe. Created and dropped in one transaction, the table is
// never seen by another session (a pg_dump, a standby's reader), and its
// locks are on nothing else: probes of several workers run side by side.
// A worker that goes away meanwhile leaves no transaction open: the server
// runs the string to its end.
func (s *Store) probePostgres(ctx context.Context) error {
	var b [8]byte
	_, _ = rand.Read(b[:])
	table := "store_probe_" + hex.EncodeToString(b[:])
	// No arguments: pgx sends the string with the simple protocol, which
	// runs several statements.
	q := fmt.Sprintf(`CREATE TABLE %[1]s (n integer);
INSERT INTO %[1]s SELECT generate_series(1, %[2]d);
DROP TABLE %[1]s;
INSERT INTO store_probe (id, at, pad) VALUES (1, %[3]d, '')
	ON CONFLICT (id) DO UPDATE SET at = excluded.at, pad = excluded.pad`, table, probeRowsPostgres, ms64(s.now()))
	if _, err := s.w.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// What PingWrite writes (see there): random bytes on SQLite, rows of an
// integer (36 bytes each with their headers, about 9 pages of 8 KiB) on
// PostgreSQL.
const (
	probeBytesSQLite  = 1 << 20
	probeRowsPostgres = 2000
)

// WriteRefused reports whether err is the store refusing a write for want
// of room or of a device that writes: SQLite's "database or disk is full"
// and its "disk I/O error" from a write, a sync or a file's growth (not
// from a read, not about locks), PostgreSQL's disk_full. Such an error can
// only be the store's own (never a platform call's), and no message's
// statement causes it: a caller holds its work until PingWrite goes
// through, however many times, without confirming with Ping first (which
// a full disk passes) and without counting it as the message's.
func WriteRefused(err error) bool {
	var liteErr sqlite3.Error
	if errors.As(err, &liteErr) {
		if liteErr.Code == sqlite3.ErrFull {
			return true
		}
		switch liteErr.ExtendedCode {
		case sqlite3.ErrNoExtended(sqlite3.ErrIoErr), sqlite3.ErrIoErrWrite, sqlite3.ErrIoErrFsync, sqlite3.ErrIoErrDirFsync,
			sqlite3.ErrIoErrTruncate, sqlite3.ErrIoErrSHMSize:
			return liteErr.Code == sqlite3.ErrIoErr
		}
		return false
	}
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "53100" // disk_full
}
