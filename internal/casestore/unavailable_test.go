package casestore

import (
	"context"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"

	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// TestAPostgreSQLCrashIsUnavailableUntilTheServerIsBack: while the server
// is down every write and read fails with an error Unavailable recognises
// and Ping fails; errors about the work itself never count as that; once
// the server is back (crash recovery done) Ping answers, the same Store
// writes again on new connections, and what it committed before the crash
// is there.
func TestAPostgreSQLCrashIsUnavailableUntilTheServerIsBack(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{Durable: true})
	ctx := context.Background()
	s, err := Open(ctx, pg.NewDatabase(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	create := func(order string) (int64, error) { return createCase(ctx, s, order) }
	id, err := create("o1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := create("o1"); err == nil || Unavailable(err) {
		t.Errorf("a second open case of the order: %v; want a constraint error, not Unavailable", err)
	}
	dial := func(err error) error { return &net.OpError{Op: "dial", Net: "tcp", Err: err} }
	noSuchHost := &net.DNSError{Err: "no such host", Name: "db.invalid", IsNotFound: true}
	for _, err := range []error{nil, context.Canceled, context.DeadlineExceeded, fmt.Errorf("update: %w", ErrVersionConflict), ErrNotFound,
		errors.New("connection refused, in words only")} {
		if Unavailable(err) {
			t.Errorf("Unavailable(%v) = true; want false", err)
		}
	}
	// At a start, waiting is unlikely to cure a host name that does not
	// exist or a certificate that does not verify; one host of a failover
	// pair that does not resolve, beside one that refuses, is an outage.
	for err, want := range map[error]bool{
		fmt.Errorf("open store: %w", dial(noSuchHost)):                                          true,
		fmt.Errorf("open store: %w", x509.UnknownAuthorityError{}):                              true,
		fmt.Errorf("open store: %w", errors.Join(dial(noSuchHost), dial(noSuchHost))):           true,
		fmt.Errorf("open store: %w", errors.Join(dial(noSuchHost), dial(syscall.ECONNREFUSED))): false,
		fmt.Errorf("ping: %w", dial(timeoutError{})):                                            false,
	} {
		if got := Misconfigured(err); got != want {
			t.Errorf("Misconfigured(%v) = %v; want %v", err, got, want)
		}
	}
	// A connection that timed out (a host dropping packets, mid-failover)
	// is an outage. So, at a first look, is a platform call's broken
	// connection: the worker's gate tells them apart by pinging the store.
	for _, err := range []error{fmt.Errorf("ping: %w", dial(timeoutError{})),
		// Once running, a host name that stops resolving is an outage (a
		// restarting pod's, a service with no healthy node mid-failover).
		fmt.Errorf("ping: %w", dial(noSuchHost)),
		// A failover pair: one host no longer resolves, the other refuses
		// while it recovers.
		fmt.Errorf("open store: %w", errors.Join(dial(noSuchHost), dial(syscall.ECONNREFUSED))),
		&url.Error{Op: "Post", URL: "https://platform.example/api", Err: dial(syscall.ECONNREFUSED)}} {
		if !Unavailable(err) {
			t.Errorf("Unavailable(%v) = false; want true", err)
		}
	}

	pg.Crash(t)
	if _, err := create("o2"); !Unavailable(err) {
		t.Errorf("a write with the server down: %v; want an error Unavailable recognises", err)
	}
	if _, err := s.GetCase(ctx, id); !Unavailable(err) {
		t.Errorf("a read with the server down: %v; want an error Unavailable recognises", err)
	}
	if err := s.Ping(ctx); !Unavailable(err) {
		t.Errorf("Ping with the server down: %v; want an error Unavailable recognises", err)
	}

	pg.Restart(t)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping with the server back: %v", err)
	}
	if _, err := create("o2"); err != nil {
		t.Errorf("a write with the server back: %v", err)
	}
	if c, err := s.GetCase(ctx, id); err != nil || c.OrderID != "o1" {
		t.Errorf("the case committed before the crash: %+v, %v", c, err)
	}
}

// TestAFailoverIsWaitedOutAndTheStoreGoesOnOnThePromotedStandby: the store
// is opened on a URL naming the primary and its standby
// (target_session_attrs=read-write, as docs/production.md advises). The
// primary crashes: until the standby is promoted the store is unavailable
// (the standby takes no writes) and Ping says so; once it is promoted the
// same Store writes there, and a case the primary committed before the
// crash (replicated) is there.
func TestAFailoverIsWaitedOutAndTheStoreGoesOnOnThePromotedStandby(t *testing.T) {
	primary := pgtest.Start(t, pgtest.Options{Durable: true})
	dbURL := primary.NewDatabase(t)
	ctx := context.Background()
	first, err := Open(ctx, dbURL, nil) // migrated on the primary, before the standby copies it
	if err != nil {
		t.Fatal(err)
	}
	_ = first.Close()
	standby := primary.StartStandby(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	both := *u
	both.Host = primary.Addr() + "," + standby.Addr()
	q := both.Query()
	q.Set("target_session_attrs", "read-write")
	both.RawQuery = q.Encode()
	s, err := Open(ctx, both.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	create := func(order string) (int64, error) { return createCase(ctx, s, order) }
	id, err := create("before")
	if err != nil {
		t.Fatal(err)
	}
	onStandby := *u
	onStandby.Host = standby.Addr()
	replica, err := OpenReadOnly(ctx, onStandby.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	for deadline := time.Now().Add(30 * time.Second); ; <-time.After(20 * time.Millisecond) {
		if _, err := replica.GetCase(ctx, id); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("case %d not on the standby after 30 s: %v", id, err)
		}
	}

	if err := replica.Ping(ctx); err == nil || !strings.Contains(err.Error(), "standby") {
		t.Errorf("Ping of a store on the standby: %v; want it to say it is a standby (it takes no writes)", err)
	}
	primary.Crash(t)
	if _, err := create("during"); !Unavailable(err) {
		t.Errorf("a write with the primary down and the standby not promoted: %v; want an error Unavailable recognises", err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping with the primary down and the standby not promoted: nil; want an error")
	}
	standby.Promote(t)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping with the standby promoted: %v", err)
	}
	if _, err := create("after"); err != nil {
		t.Errorf("a write on the promoted standby: %v", err)
	}
	if err := replica.Ping(ctx); err != nil {
		t.Errorf("Ping of the store on the promoted standby: %v", err)
	}
	if c, err := s.GetCase(ctx, id); err != nil || c.OrderID != "before" {
		t.Errorf("the case the primary committed before the crash: %+v, %v", c, err)
	}
	// The old primary back, for the database's cleanup: a server nobody's
	// URL reaches first any more would be split-brain in production.
	_ = s.Close()
	primary.Restart(t)
}

// timeoutError is a network timeout, as net reports one.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// createCase opens a Taobao case for order in a transaction of its own.
func createCase(ctx context.Context, s *Store, order string) (int64, error) {
	var id int64
	err := s.Update(ctx, func(tx *Tx) error {
		c, err := tx.CreateCase(ctx, NewCase{Platform: "taobao", OrderID: order, SubOrderID: order + "-1", State: "requested"})
		id = c.ID
		return err
	})
	return id, err
}

// TestAFullSQLiteFileIsUnavailable: SQLite's "database or disk is full"
// (here the file held to its size with max_page_count on the writer's
// connection) says nothing about the work that met it, which used to count
// it: Unavailable and WriteRefused now recognise it, beside a constraint
// error they do not. Ping still answers, as a full disk does; PingWrite,
// whose write needs pages too, fails while the file cannot grow, and once
// it can, PingWrite commits and the same Store writes again.
func TestAFullSQLiteFileIsUnavailable(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "full.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := createCase(ctx, s, "o0"); err != nil {
		t.Fatal(err)
	}
	if _, err := createCase(ctx, s, "o0"); err == nil || Unavailable(err) {
		t.Errorf("a second open case of the order: %v; want a constraint error, not Unavailable", err)
	}
	var pages int
	if err := s.w.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if err := s.w.QueryRowContext(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	var full error
	for i := 1; full == nil && i < 1000; i++ {
		_, full = createCase(ctx, s, fmt.Sprintf("o%d", i))
	}
	if !Unavailable(full) || !WriteRefused(full) || !strings.Contains(full.Error(), "full") {
		t.Fatalf("a write with the file full: %v; want the full disk, recognised by Unavailable and WriteRefused", full)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping with the file full: %v; want nil (the store answers: why a refused write needs PingWrite)", err)
	}
	if err := s.PingWrite(ctx); err == nil {
		t.Error("PingWrite with the file full: nil; want its write to fail")
	}
	if err := s.w.QueryRowContext(ctx, `PRAGMA max_page_count = 1073741823`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	before := time.Now().UnixMilli()
	if err := s.PingWrite(ctx); err != nil {
		t.Fatalf("PingWrite with room again: %v", err)
	}
	var at int64
	var pad []byte
	if err := s.r.QueryRowContext(ctx, `SELECT at, pad FROM store_probe WHERE id = 1`).Scan(&at, &pad); err != nil || at < before || len(pad) != probeBytesSQLite {
		t.Errorf("store_probe after PingWrite: at %d (it began at %d), %d bytes, %v; want its write committed", at, before, len(pad), err)
	}
	if _, err := createCase(ctx, s, "after"); err != nil {
		t.Errorf("a write with room again: %v", err)
	}
}

// TestAFullPostgreSQLDiskIsUnavailable: the disk under a PostgreSQL
// database's tables fills up (a tmpfs tablespace, pgtest.SmallDisk). A
// write that must grow a table fails with disk_full, which Unavailable and
// WriteRefused see; the server answers Ping; PingWrite fails until there is
// room again. It used to pass as soon as vacuum had freed pages in its own
// table: its upsert reused them, and the held work was tried again at the
// probe's pace for as long as the disk stayed full.
func TestAFullPostgreSQLDiskIsUnavailable(t *testing.T) {
	ctx := context.Background()
	url, disk := pgtest.NewDatabaseOnSmallDisk(t, 32<<20)
	s, err := Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Pages the probe's table has free: a probe done, its row rewritten,
	// and vacuum run, as after an earlier outage.
	for range 2 {
		if err := s.PingWrite(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.w.ExecContext(ctx, `VACUUM store_probe`); err != nil {
		t.Fatal(err)
	}
	disk.Fill(t)
	var full error
	for i := 0; full == nil && i < 10000; i++ {
		_, full = createCase(ctx, s, fmt.Sprintf("o%d", i))
	}
	if !Unavailable(full) || !WriteRefused(full) || !strings.Contains(full.Error(), "No space left on device") {
		t.Fatalf("a write with the disk full: %v; want the full disk, recognised by Unavailable and WriteRefused", full)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping with the disk full: %v; want nil (the server answers: why a refused write needs PingWrite)", err)
	}
	if err := s.PingWrite(ctx); !WriteRefused(err) {
		t.Errorf("PingWrite with the disk full: %v; want its write refused for want of room", err)
	}
	disk.Free(t)
	before := time.Now().UnixMilli()
	if err := s.PingWrite(ctx); err != nil {
		t.Fatalf("PingWrite with room again: %v", err)
	}
	var at int64
	var left int
	if err := s.r.QueryRowContext(ctx, `SELECT at, (SELECT count(*) FROM pg_class WHERE relname ~ '^store_probe_[0-9a-f]{16}$') FROM store_probe WHERE id = 1`).Scan(&at, &left); err != nil || at < before || left != 0 {
		t.Errorf("store_probe after PingWrite: at %d (it began at %d), %d probe tables left, %v; want its time, no table left", at, before, left, err)
	}
	if _, err := createCase(ctx, s, "after"); err != nil {
		t.Errorf("a write with room again: %v", err)
	}

	// A pg_dump holds every table's ACCESS SHARE lock while it runs: the
	// probe takes no lock that waits for it.
	dump, err := s.w.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = dump.Rollback() }()
	if _, err := dump.ExecContext(ctx, `LOCK TABLE store_probe, cases IN ACCESS SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	quick, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.PingWrite(quick); err != nil {
		t.Errorf("PingWrite beside a dump's locks: %v; want it through", err)
	}
}

// TestABatchLostToAFullDiskSaysWhy: SQLite abandons the whole transaction
// after a full disk or an I/O error, so the group commit cannot roll back
// to the failed update's savepoint; the other updates of the batch used
// to fail with "no such savepoint" alone, which neither named the full disk
// nor let Unavailable see it, so the worker counted it against their
// messages. Another update's error about its own work is not passed on as
// theirs.
func TestABatchLostToAFullDiskSaysWhy(t *testing.T) {
	noSavepoint := errors.New("no such savepoint: upd")
	full := fmt.Errorf("append timeline of case 14: %w", sqlite3.Error{Code: sqlite3.ErrFull})
	if err := batchLost(full, noSavepoint); !Unavailable(err) || !strings.Contains(err.Error(), "full") {
		t.Errorf("batchLost after a full disk: %v; want the full disk, recognised by Unavailable", err)
	}
	conflict := fmt.Errorf("update case 3: %w", ErrVersionConflict)
	if err := batchLost(conflict, noSavepoint); errors.Is(err, ErrVersionConflict) || Unavailable(err) || !strings.Contains(err.Error(), "case 3") {
		t.Errorf("batchLost after another update's version conflict: %v; want neither its conflict nor an outage, but its text", err)
	}
}

// TestWriteRefusedIsTheStoresOwnRefusal: only a write the store itself
// refused for want of room or of a working device is held without a ping
// and without a count; a store gone away (which Ping sees) and a platform
// call's broken connection are not.
func TestWriteRefusedIsTheStoresOwnRefusal(t *testing.T) {
	for err, want := range map[error]bool{
		fmt.Errorf("commit: %w", sqlite3.Error{Code: sqlite3.ErrFull}):                                       true,
		fmt.Errorf("commit: %w", sqlite3.Error{Code: sqlite3.ErrIoErr, ExtendedCode: sqlite3.ErrIoErrWrite}): true,
		fmt.Errorf("commit: %w", sqlite3.Error{Code: sqlite3.ErrIoErr, ExtendedCode: sqlite3.ErrIoErrFsync}): true,
		// A read that failed (a bad sector under one case's pages) is the
		// work's: a probe's write would pass, and the message be held for
		// ever. So are lock errors (a network mount without locks).
		fmt.Errorf("select: %w", sqlite3.Error{Code: sqlite3.ErrIoErr, ExtendedCode: sqlite3.ErrIoErrRead}): false,
		fmt.Errorf("begin: %w", sqlite3.Error{Code: sqlite3.ErrIoErr, ExtendedCode: sqlite3.ErrIoErrLock}):  false,
		fmt.Errorf("insert: %w", &pgconn.PgError{Code: "53100", Message: "could not extend file"}):          true,
		fmt.Errorf("insert: %w", &pgconn.PgError{Code: "53300", Message: "too many connections"}):           false,
		fmt.Errorf("insert: %w", &pgconn.PgError{Code: "57P01", Message: "terminating connection"}):         false,
		fmt.Errorf("insert: %w", sqlite3.Error{Code: sqlite3.ErrConstraint}):                                false,
		fmt.Errorf("insert: %w", sqlite3.Error{Code: sqlite3.ErrBusy}):                                      false,
		&url.Error{Op: "Post", URL: "https://platform.example/api", Err: errors.New("disk I/O error")}:      false,
		nil: false,
	} {
		if got := WriteRefused(err); got != want {
			t.Errorf("WriteRefused(%v) = %v; want %v", err, got, want)
		}
		if want && !Unavailable(err) {
			t.Errorf("Unavailable(%v) = false; want true for a refused write", err)
		}
	}
	// At a start: a full disk or a write that failed is waited for; an I/O
	// error of another kind (no locks on a network mount, a device failing
	// reads) ends the start, as waiting is unlikely to cure it.
	for err, want := range map[error]bool{
		fmt.Errorf("open: %w", sqlite3.Error{Code: sqlite3.ErrFull}):                                        false,
		fmt.Errorf("open: %w", sqlite3.Error{Code: sqlite3.ErrIoErr, ExtendedCode: sqlite3.ErrIoErrWrite}):  false,
		fmt.Errorf("open: %w", sqlite3.Error{Code: sqlite3.ErrIoErr, ExtendedCode: sqlite3.ErrIoErrSHMMap}): true,
		fmt.Errorf("open: %w", sqlite3.Error{Code: sqlite3.ErrIoErr, ExtendedCode: sqlite3.ErrIoErrRead}):   true,
	} {
		if got := Misconfigured(err); got != want {
			t.Errorf("Misconfigured(%v) = %v; want %v", err, got, want)
		}
	}
}

// TestReadsAnswerAtOnceAfterTheServerEndedThePoolsSessions: the server ends
// every session (a restart, an administrator's pg_terminate_backend, a
// pooler or failover cutting connections) while the store's connections
// sit idle. The driver pings a connection before reuse only when over a
// second has passed since it was last taken from the pool, so each read
// within that second met a dead session and failed as if the database
// were away: the console answered an operator 503 once per pooled
// connection after a database restart. A read-only session's statement
// changed nothing, so a read that meets a session the server ended now
// runs again on another connection, and the idle ones are pinged before
// their reuse. A write
// is not run again: it fails as any write on a lost connection does,
// saying the store was away, and did nothing.
func TestReadsAnswerAtOnceAfterTheServerEndedThePoolsSessions(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{})
	ctx := context.Background()
	target := pg.NewDatabase(t)
	s, err := Open(ctx, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id, err := createCase(ctx, s, "o1")
	if err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(ctx, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()

	// busyReads has every read connection of st busy at once, twice, so
	// that the pool keeps them all idle, each taken within the last second
	// (the driver pings one before its first reuse).
	busyReads := func(name string, st *Store) {
		for range 2 {
			var wg sync.WaitGroup
			for range pgReaderConns {
				wg.Go(func() {
					var slept string
					if err := st.r.GetContext(ctx, &slept, `SELECT pg_sleep(0.05)::text`); err != nil {
						t.Errorf("%s: a read before the server ended its sessions: %v", name, err)
					}
				})
			}
			wg.Wait()
		}
	}
	// readsAtOnce reads the case from as many callers as the pool has
	// connections and one more, at once.
	readsAtOnce := func(name string, st *Store) {
		var wg sync.WaitGroup
		for i := range pgReaderConns + 1 {
			wg.Go(func() {
				if c, err := st.GetCase(ctx, id); err != nil || c.OrderID != "o1" {
					t.Errorf("%s: read %d after the server ended its sessions: %q, %v; want the case", name, i+1, c.OrderID, err)
				}
			})
		}
		wg.Wait()
		if cases, err := st.ListCases(ctx, CaseFilter{}); err != nil || len(cases) == 0 {
			t.Errorf("%s: a list after them: %d cases, %v", name, len(cases), err)
		}
	}

	busyReads("a worker's store", s)
	busyReads("a read-only store", ro)
	if _, err := createCase(ctx, s, "o2"); err != nil { // the writer's connection taken just now too
		t.Fatal(err)
	}
	if ended := pg.EndSessions(t); ended < 2*pgReaderConns+1 {
		t.Fatalf("%d sessions ended; want at least the %d idle read connections and the writer's", ended, 2*pgReaderConns+1)
	}
	readsAtOnce("a worker's store", s)
	readsAtOnce("the console's and refundctl's read-only store", ro)

	// The writer's connection met the ended session too (unless over a
	// second passed, when the driver pinged it first): the write fails,
	// saying the store was away, and is not run again.
	before, err := s.ListCases(ctx, CaseFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := createCase(ctx, s, "o3"); err != nil && !Unavailable(err) {
		t.Errorf("a write after the server ended its sessions: %v; want it through, or an error Unavailable recognises", err)
	}
	after, err := s.ListCases(ctx, CaseFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(after) > len(before)+1 {
		t.Errorf("one write after the server ended its sessions left %d cases more; want at most one", len(after)-len(before))
	}
	if _, err := createCase(ctx, s, "o4"); err != nil {
		t.Errorf("the next write: %v", err)
	}
}

// TestSessionEndedIsTheServersEndOfASession: what runs a read again is an
// error that ended the connection's session, a FATAL one or a connection
// found closed; not an ERROR-level one (08P01 comes at ERROR for a
// malformed message too), not a new connection that failed (the server is
// away), not a cancelled statement.
func TestSessionEndedIsTheServersEndOfASession(t *testing.T) {
	for err, want := range map[error]bool{
		fmt.Errorf("get case: %w", &pgconn.PgError{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "57P01"}): true,
		&pgconn.PgError{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "57P05"}:                             true,
		&pgconn.PgError{Severity: "PANIC", Code: "XX000"}:                                                           true,
		&pgconn.PgError{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "08P01"}:                             false,
		&pgconn.PgError{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "57014"}:                             false,
		fmt.Errorf("list: %w", io.ErrUnexpectedEOF):                                                                 true,
		&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}:                                               true,
		context.Canceled:         false,
		context.DeadlineExceeded: false,
		nil:                      false,
	} {
		if got := sessionEnded(err); got != want {
			t.Errorf("sessionEnded(%v) = %v; want %v", err, got, want)
		}
	}
}

// TestAReadTheServerEndsTwiceIsTheCallersError: a read the server ends
// while it runs (an administrator ending a runaway query) runs once more,
// as a read on a session that had ended does; ended again, it is the
// caller's error, not run until the administrator gives up.
func TestAReadTheServerEndsTwiceIsTheCallersError(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{})
	ctx := context.Background()
	ro, err := OpenReadOnly(ctx, func() string {
		target := pg.NewDatabase(t)
		s, err := Open(ctx, target, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		return target
	}(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	read := make(chan error, 1)
	go func() {
		var slept string
		read <- ro.r.GetContext(ctx, &slept, `SELECT pg_sleep(30)::text`)
	}()
	for run := 1; run <= 2; run++ {
		eventstest.WaitFor(t, 10*time.Second, fmt.Sprintf("run %d of the read under way", run), func() bool {
			var n int
			err := ro.r.GetContext(ctx, &n, `SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pg_sleep(30)%'`)
			return err == nil && n == 1
		})
		// Only the read's session is ended: the poll keeps another. It
		// polls until it ends one: a look that found the read under
		// way and an end that found no session (bool_and of no rows,
		// NULL) came one after the other once in CI (ci85), the read's
		// session between two states.
		eventstest.WaitFor(t, 10*time.Second, fmt.Sprintf("run %d of the read ended", run), func() bool {
			var ended sql.NullBool
			err := ro.r.GetContext(ctx, &ended, `SELECT bool_and(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity
				WHERE state = 'active' AND query LIKE 'SELECT pg_sleep(30)%'`)
			return err == nil && ended.Valid && ended.Bool
		})
		if run == 1 {
			select {
			case err := <-read:
				t.Fatalf("the read after one end: %v; want it run again", err)
			default:
			}
		}
	}
	select {
	case err := <-read:
		if !sessionEnded(err) {
			t.Errorf("the read after two ends: %v; want the server's end of its session", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the read runs on after two ends")
	}
}

// TestDroppingIdleConnectionsWhileOthersComeBack: the pools' idle
// connections are given up (after a probe goes through, or a session the
// server ended), twice at once, while other goroutines take connections
// and bring them back: every read goes through. database/sql's
// SetMaxIdleConns, which gave them up before, closes the connections it
// took off the idle list after letting go of the pool's lock, from an
// array that a connection coming back is appended into once a second call
// has raised the idle limit again: the race detector caught it once in CI
// (TestWorkerRidesOutAPostgreSQLCrash, 2026-12-05). This test runs that
// path under -race, as CI does; it did not reproduce the race here in six
// runs of the old code, its window being one connection's close.
func TestDroppingIdleConnectionsWhileOthersComeBack(t *testing.T) {
	s := openTest(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	read := func() {
		if _, err := s.CountDeferred(ctx); err != nil {
			t.Errorf("a read while the idle connections go: %v", err)
		}
	}
	for range 300 {
		// Connections in use, then idle: what there is to drop.
		var fill sync.WaitGroup
		for range 6 {
			fill.Go(read)
		}
		fill.Wait()
		// Dropped twice at once (two statements meeting the ended
		// session, or a probe beside one) while others are taken and
		// come back.
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(read)
		}
		for range 2 {
			wg.Go(func() {
				for _, p := range []*pool{s.w, s.r, s.records} {
					p.dropIdle()
				}
			})
		}
		wg.Wait()
	}
}
