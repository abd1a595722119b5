package casestore

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"database/sql/driver"
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
// error"). Such a failure says nothing about the
// work that met it, which succeeds unchanged once the store answers again:
// a caller holds that work and tries it again then, rather than count the
// failure against it. Every error about the work itself is false:
// constraint violations, ErrVersionConflict, ErrNotFound, a cancelled
// context. (At a start, Misconfigured tells the connection errors that
// waiting is unlikely to cure.)
//
// It is a first look at the error alone, and a broken connection looks the
// same whoever's it was: an error that wraps a platform call's network
// failure is true too. A caller confirms with Ping, which fails only when
// the store itself does not answer or take a write.
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var liteErr sqlite3.Error
	if errors.As(err, &liteErr) {
		// SQLite gives up the whole transaction after either, and the
		// same write goes through once there is room or the device
		// writes again. A locked database (SQLITE_BUSY) is not here: the
		// store's busy timeout waits for the lock, and past it the
		// failure is the work's, as any other contention is.
		return liteErr.Code == sqlite3.ErrFull || liteErr.Code == sqlite3.ErrIoErr
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
		case "57P01", "57P02", "57P03": // admin_shutdown, crash_shutdown, cannot_connect_now (starting, recovering)
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
// not exist, a certificate that does not verify. (A wrong password is a
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
// takes writes (on PostgreSQL: is not a standby) and can commit one: after
// an outage (Unavailable) it is how a caller learns that the store is back.
// A full disk leaves the store answering reads, so Ping commits a write of
// its own row (store_probe) with probePad random bytes: on SQLite each
// commit appends to the WAL, which the worker's checkpoints truncate, so it
// fails while the file system has no room; on PostgreSQL the bytes need
// fresh TOAST pages unless vacuum freed some, as the worker's inserts need
// fresh pages of their tables (a full data directory can still pass, when
// the probe's table has room another lacks). Broken connections left from
// before are dropped on the way (the driver checks a pooled connection idle
// over a second before reuse). A store opened read-only is only asked to
// answer.
func (s *Store) Ping(ctx context.Context) error {
	if s.w.pg {
		var standby bool
		if err := s.w.QueryRowxContext(ctx, `SELECT pg_is_in_recovery()`).Scan(&standby); err != nil {
			return err
		}
		if standby {
			return errStandby
		}
	}
	if s.readOnly {
		return s.w.PingContext(ctx)
	}
	pad := make([]byte, probePad)
	_, _ = rand.Read(pad)
	if _, err := s.w.ExecContext(ctx, `INSERT INTO store_probe (id, at, pad) VALUES (1, ?, ?)
		ON CONFLICT (id) DO UPDATE SET at = excluded.at, pad = excluded.pad`, ms64(s.now()), pad); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// probePad is how many random bytes Ping writes: a few of PostgreSQL's
// pages, about what one of the worker's transactions writes.
const probePad = 16 << 10
