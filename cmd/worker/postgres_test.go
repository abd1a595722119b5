package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// TestMain stops the PostgreSQL cluster TestEndToEndOnPostgres started.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestEndToEndOnPostgres is TestEndToEnd's run with DB_URL set: two worker
// processes share one PostgreSQL database (and one consumer), both
// platforms and every flow, callbacks stored three times and pushed out of
// order; every case ends where the sandbox says, with no side effect twice,
// and DB_PATH (set too) is never created.
func TestEndToEndOnPostgres(t *testing.T) {
	s := newStack(t, sandbox.Faults{ReorderPushRate: 0.5, DuplicatePushRate: 0.3}, quickSeller, 3,
		map[string]string{"DB_URL": pgtest.NewDatabase(t)})
	s.start()
	s.start()
	s.runScenarios(60 * time.Second)
	s.noDuplicates()
	if _, err := os.Stat(s.dbPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("DB_PATH %s: %v; want no SQLite file (DB_URL wins)", s.dbPath, err)
	}
}

// TestWorkerRidesOutAPostgreSQLCrash: the database crashes mid-run (an
// immediate shutdown, as a crash or a failover does) and comes back. Each
// delivery a store outage fails used to count toward WORKER_MAX_DELIVER, so
// an outage longer than the messages' backoff dead-lettered them (or, with
// the store still down for the dead letter, left them past the consumer's
// MaxDeliver, never delivered again). Now the worker holds what it has,
// takes nothing new, says once that the store is unreachable and once that
// it is back, and then finishes every case: none dead-lettered, nothing
// submitted twice, the process never restarted (rideOutAStoreOutage).
func TestWorkerRidesOutAPostgreSQLCrash(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{Durable: true}) // synchronous commits: a crash keeps what the server acknowledged
	s := newStack(t, sandbox.Faults{LatencyMin: 20 * time.Millisecond, LatencyMax: 20 * time.Millisecond},
		sandbox.SellerPolicy{Decision: sandbox.DecisionManual}, 1, outageEnv(map[string]string{"DB_URL": pg.NewDatabase(t)}))
	w := s.start()
	rideOutAStoreOutage(t, s, w, "pg-crash", func() { pg.Crash(t) }, func() { pg.Restart(t) })
	if got := strings.Count(w.logs(), "case store unreachable"); got != 1 {
		t.Errorf("%d 'case store unreachable' lines; want 1 for the one outage\n%s", got, w.logs())
	}
}

// TestWorkerOnPostgreSQLRidesOutAFullDisk: the disk under the database's
// tables fills up mid-run (a tmpfs tablespace of 32 MiB, every byte taken)
// and has room again 4 s later; the server answers throughout, and its WAL
// has room. Every write that must grow a table fails with disk_full: the
// worker holds its messages uncounted, as through an outage, until its
// probe can grow a table again (rideOutAStoreOutage), and says why.
func TestWorkerOnPostgreSQLRidesOutAFullDisk(t *testing.T) {
	dbURL, disk := pgtest.NewDatabaseOnSmallDisk(t, 32<<20)
	s := newStack(t, sandbox.Faults{LatencyMin: 20 * time.Millisecond, LatencyMax: 20 * time.Millisecond},
		sandbox.SellerPolicy{Decision: sandbox.DecisionManual}, 1, outageEnv(map[string]string{"DB_URL": dbURL}))
	w := s.start()
	// Writes fail once the disk is full: the 20 requests that come then
	// write about as much as the 20 before, more than the pages those
	// left partly empty can hold (timeline rows, case versions).
	rideOutAStoreOutage(t, s, w, "pg-disk-full", func() { disk.Fill(t) }, func() { disk.Free(t) })
	if logs := w.logs(); !strings.Contains(logs, "No space left on device") {
		t.Errorf("the worker's log does not say what the store's error was:\n%s", logs)
	}
}

// taobaoRequests creates n Taobao orders on the sandbox and returns a
// refund request for each, with ids prefix-00, prefix-01, ….
func taobaoRequests(s *stack, prefix string, n int) []refundflow.Command {
	cmds := make([]refundflow.Command, n)
	for i := range cmds {
		o, so := s.order(sandbox.PlatformTaobao, nil)
		cmds[i] = refundflow.Command{ID: fmt.Sprintf("%s-%02d", prefix, i), Kind: refundflow.InputRequestRefund,
			Platform: refundflow.PlatformTaobao, OrderID: o, SubOrderID: so, Operator: "t",
			Request: &refundflow.Request{GoodsStatus: "1", ReasonID: 1001, Description: "不想要了"}}
	}
	return cmds
}

// TestWorkerWaitsForPostgreSQLAtStart: a worker started while its database
// does not answer (every host rebooted at once, a failover under way) used
// to exit with the connection error, to be restarted by its supervisor
// until the database was there. It now says once that it waits, waits, and
// starts when the database answers.
func TestWorkerWaitsForPostgreSQLAtStart(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{Durable: true})
	s := newStack(t, sandbox.Faults{}, sandbox.SellerPolicy{Decision: sandbox.DecisionManual}, 1,
		map[string]string{"DB_URL": pg.NewDatabase(t)})
	pg.Crash(t)
	w := s.launch(nil)
	awaitsItsStore(t, w, "with the store down")
	pg.Restart(t)
	w.waitReady(t)
	if got := strings.Count(w.errs.String(), "case store not reachable yet"); got != 1 {
		t.Errorf("%d 'not reachable yet' lines; want 1\n%s", got, w.errs.String())
	}
	u, err := url.Parse(s.env["DB_URL"])
	if err != nil {
		t.Fatal(err)
	}
	if pw, _ := u.User.Password(); pw == "" || strings.Contains(w.errs.String(), pw) {
		t.Errorf("the log shows the database password (or the URL has none):\n%s", w.errs.String())
	}
	o, so := s.order(sandbox.PlatformTaobao, nil)
	s.publish(refundflow.Command{ID: "after-the-wait", Kind: refundflow.InputRequestRefund, Platform: refundflow.PlatformTaobao,
		OrderID: o, SubOrderID: so, Operator: "t", Request: &refundflow.Request{GoodsStatus: "1", ReasonID: 1001, Description: "不想要了"}})
	s.waitState(s.caseFor(refundflow.PlatformTaobao, o, so), refundflow.StateWaitingSeller, 20*time.Second)
}

// TestAWorkerStoppedDuringAnOutageHandsItsMessagesBack: told to stop while
// it holds messages for the store, the worker hands them back at once
// (nothing of theirs is in flight) instead of holding them until its
// shutdown timeout abandons them; the worker started after the database
// is back finishes every request, none dead-lettered, none submitted twice.
func TestAWorkerStoppedDuringAnOutageHandsItsMessagesBack(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{Durable: true})
	const n = 12
	s := newStack(t, sandbox.Faults{LatencyMin: 20 * time.Millisecond, LatencyMax: 20 * time.Millisecond},
		sandbox.SellerPolicy{Decision: sandbox.DecisionManual}, 1, map[string]string{
			"DB_URL": pg.NewDatabase(t), "WORKER_CONCURRENCY": "4",
			"WORKER_MAX_DELIVER": "3", "WORKER_RETRY_BASE": "50ms", "WORKER_RETRY_MAX": "100ms", "WORKER_ACK_WAIT": "1s"})
	w := s.start()
	cmds := taobaoRequests(s, "pg-stop", n)
	for _, c := range cmds[:n/2] {
		s.publish(c)
	}
	waitFor(t, 30*time.Second, "a refund submitted", func() bool { return len(s.sb.Stats().RefundSubmissions) >= 1 })
	pg.Crash(t)
	for _, c := range cmds[n/2:] { // these meet the outage whatever the first half did
		s.publish(c)
	}
	waitFor(t, 30*time.Second, "the worker to hold messages for the store", func() bool {
		return strings.Contains(w.errs.String(), "case store unreachable")
	})
	w.stop()
	if logs := w.errs.String(); !strings.Contains(logs, "handed back") || strings.Contains(logs, "shutdown timeout") {
		t.Errorf("stopped during the outage: want its held messages handed back, not abandoned at the shutdown timeout:\n%s", logs)
	}

	pg.Restart(t)
	s.start()
	ctx := context.Background()
	for _, cmd := range cmds {
		waitFor(t, 60*time.Second, "request "+cmd.ID+" waiting for the seller", func() bool {
			c, err := s.store.CaseOpenedBy(ctx, cmd.ID)
			return err == nil && c.State == string(refundflow.StateWaitingSeller)
		})
	}
	s.noDuplicates()
	if dl, err := s.store.DeadLetters(ctx, casestore.DeadLetterFilter{}); err != nil || len(dl) != 0 {
		t.Errorf("dead letters %+v, %v; want none", dl, err)
	}
}

// TestWorkerStartedOnAStandbyWaitsForItsPromotion: a worker whose DB_URL
// reaches a standby (a failover under way, the address not yet moved) cannot
// migrate or write there: it waits, saying so, and starts once the standby
// is promoted, rather than exiting.
func TestWorkerStartedOnAStandbyWaitsForItsPromotion(t *testing.T) {
	primary := pgtest.Start(t, pgtest.Options{Durable: true})
	dbURL := primary.NewDatabase(t)
	standby := primary.StartStandby(t) // the migrations the stack runs on the primary reach it; its own attempt is refused (25006)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = standby.Addr()
	s := newStack(t, sandbox.Faults{}, sandbox.SellerPolicy{Decision: sandbox.DecisionManual}, 1,
		map[string]string{"DB_URL": dbURL})
	s.env["DB_URL"] = u.String() // the workers reach the standby; the stack's own store stays on the primary
	w := s.launch(nil)
	awaitsItsStore(t, w, "on a standby")
	primary.Crash(t)
	standby.Promote(t)
	w.waitReady(t)
	aRequestWaitsForTheSeller(t, s, "after-the-promotion", u.String())
	primary.Restart(t) // for the database's cleanup (split-brain in production; thrown away here)
}

// TestAWorkerWhoseDatabaseAddressMovesToAStandbyWaitsForItsPromotion: the
// database fails over under load behind one address (a virtual IP or a
// proxy, which production.md offers beside multi-host URLs): the primary
// crashes and the address moves to its standby, dropping every connection,
// before the standby is promoted (an answer to Ping that does not say
// "standby" would let every write's "read-only transaction" count). The worker's new connections then reach
// a server that takes no writes: it holds its messages (/readyz 503, one
// line each way) rather than failing them on "read-only transaction", and
// finishes every case on the promoted standby, with synchronous
// replication (as production.md asks) nothing submitted twice
// (rideOutAStoreOutage).
func TestAWorkerWhoseDatabaseAddressMovesToAStandbyWaitsForItsPromotion(t *testing.T) {
	primary := pgtest.Start(t, pgtest.Options{Durable: true})
	direct, err := url.Parse(primary.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	address := newMovingAddress(t, primary.Addr())
	viaAddress := *direct
	viaAddress.Host = address.addr()
	s := newStack(t, sandbox.Faults{LatencyMin: 20 * time.Millisecond, LatencyMax: 20 * time.Millisecond},
		sandbox.SellerPolicy{Decision: sandbox.DecisionManual}, 1, outageEnv(map[string]string{"DB_URL": viaAddress.String()}))
	standby := primary.StartStandby(t) // a copy of the migrated database
	synchronousReplication(t, direct.String())
	crashed := false
	t.Cleanup(func() { // the old primary back, alone, for synchronousReplication's and the database's cleanups
		if crashed {
			primary.Restart(t)
		}
	})
	w := s.start()
	rideOutAStoreOutage(t, s, w, "pg-move", func() {
		// The address first: the worker's first look after its
		// connections drop finds a server that answers, and only its
		// being a standby tells the outage.
		address.move(standby.Addr())
		primary.Crash(t)
		crashed = true
	}, func() { standby.Promote(t) })
}

// synchronousReplication makes the primary at dbURL wait for its standby
// to have each commit before acknowledging it, and waits until it does.
// It is undone when t ends (a primary left without its standby would wait
// for ever on the database's cleanup): by a cleanup registered first, which
// runs after those registered later (the restart of a crashed primary).
func synchronousReplication(t *testing.T, dbURL string) {
	t.Helper()
	set := func(q string) error {
		db, err := sql.Open("pgx", dbURL)
		if err != nil {
			return err
		}
		defer db.Close()
		for _, q := range []string{q, `SELECT pg_reload_conf()`} {
			if _, err := db.Exec(q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	}
	t.Cleanup(func() {
		if err := set(`ALTER SYSTEM RESET synchronous_standby_names`); err != nil {
			t.Errorf("synchronous replication off: %v", err)
		}
	})
	if err := set(`ALTER SYSTEM SET synchronous_standby_names = '*'`); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	waitFor(t, 30*time.Second, "the standby to replicate synchronously", func() bool {
		var n int
		err := db.QueryRow(`SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'`).Scan(&n)
		return err == nil && n == 1
	})
}

// movingAddress is one address in front of a database server, as a
// virtual IP or a proxy is: it forwards each connection to the server it
// points at, and moving it drops the connections it carries, as a virtual
// IP moving to another host does.
type movingAddress struct {
	ln     net.Listener
	mu     sync.Mutex
	target string
	conns  map[net.Conn]struct{}
	// refuse, when set (setRefuse), is asked at each new connection and
	// before each write towards the server: true closes the connection,
	// as a server not taking connections yet, or gone, does.
	refuse func() bool
}

// setRefuse sets the address's refuse.
func (a *movingAddress) setRefuse(f func() bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refuse = f
}

// refusing reports whether the address carries nothing now.
func (a *movingAddress) refusing() bool {
	a.mu.Lock()
	f := a.refuse
	a.mu.Unlock()
	return f != nil && f()
}

func newMovingAddress(t *testing.T, target string) *movingAddress {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &movingAddress{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go a.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		a.drop()
	})
	return a
}

func (a *movingAddress) addr() string { return a.ln.Addr().String() }

// move points the address at target and drops every connection it carries.
func (a *movingAddress) move(target string) {
	a.mu.Lock()
	a.target = target
	a.mu.Unlock()
	a.drop()
}

func (a *movingAddress) drop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for c := range a.conns {
		_ = c.Close()
		delete(a.conns, c)
	}
}

func (a *movingAddress) serve() {
	for {
		in, err := a.ln.Accept()
		if err != nil {
			return
		}
		a.mu.Lock()
		target := a.target
		a.mu.Unlock()
		if a.refusing() {
			_ = in.Close()
			continue
		}
		out, err := net.Dial("tcp", target)
		if err != nil {
			_ = in.Close()
			continue
		}
		a.mu.Lock()
		a.conns[in], a.conns[out] = struct{}{}, struct{}{}
		a.mu.Unlock()
		go func() { _, _ = io.Copy(out, refusingReader{in, a}); _ = out.Close(); _ = in.Close() }()
		go func() { _, _ = io.Copy(in, out); _ = in.Close() }()
	}
}

// refusingReader reads from a client's connection while its address
// carries it: a connection already open then fails as a new one would.
type refusingReader struct {
	r io.Reader
	a *movingAddress
}

func (f refusingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if f.a.refusing() {
		return 0, io.EOF
	}
	return n, err
}

// TestACommandWhoseStatementCrashesTheDatabaseRunsOutOfDeliveries: a
// message whose own statement brings the database down (here a trigger that
// kills its server process, after which PostgreSQL ends every session and
// recovers, as after a server bug or an out-of-memory kill) must not be
// held through outages for ever, crashing it again at each try: it is held
// through at most three outages in one delivery (maxHeldOutages), then
// counted, and once out of deliveries it is a dead letter, which the
// database takes. The worker goes on with the next request. The worker
// reaches the database through an address that carries nothing for 0.7 s
// after the trigger fired (a flag file the trigger touches before the
// kill): the gate's confirming ping after each crash fails, on a new
// connection or a pooled one, whatever the postmaster's pace in noticing
// the kill, so that every crash is an
// outage the gate holds, and only the bound ends them. Without it, the
// message is held for ever, and the test times out. It also found that
// the retry after the gate reopened met the pools' idle connections to
// the server that had crashed, "unexpected EOF", which the ping (on a new
// connection) then counted as the message's own failure: since the probe,
// they are pinged before their reuse (casestore's PingWrite, dropIdle).
func TestACommandWhoseStatementCrashesTheDatabaseRunsOutOfDeliveries(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{Durable: true})
	dbURL := pg.NewDatabase(t)
	flagDir, err := os.MkdirTemp("", "poison-flag-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(flagDir) })
	if err := os.Chmod(flagDir, 0o777); err != nil { // the server's user (nobody under root) touches the flag
		t.Fatal(err)
	}
	flag := filepath.Join(flagDir, "crashed")
	address := newMovingAddress(t, pg.Addr())
	address.setRefuse(func() bool {
		fi, err := os.Stat(flag)
		return err == nil && time.Since(fi.ModTime()) < 700*time.Millisecond
	})
	viaAddress, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	viaAddress.Host = address.addr()
	s := newStack(t, sandbox.Faults{}, sandbox.SellerPolicy{Decision: sandbox.DecisionManual}, 1,
		outageEnv(map[string]string{"DB_URL": viaAddress.String(), "WORKER_MAX_DELIVER": "1"}))
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The poison: a case for this order touches the flag and kills the
	// server process that inserts it (a shell's touch and kill, as the
	// server's own user, through COPY TO PROGRAM: superuser only, this
	// test's).
	poison, poisonSub := s.order(sandbox.PlatformTaobao, nil)
	if _, err := db.Exec(fmt.Sprintf(`CREATE FUNCTION crash_the_server() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			EXECUTE format('COPY (SELECT 1) TO PROGRAM %%L', 'touch %s && kill -9 ' || pg_backend_pid());
			RETURN NEW;
		END $$`, flag)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf(`CREATE TRIGGER poison BEFORE INSERT ON cases FOR EACH ROW WHEN (NEW.order_id = '%s')
		EXECUTE FUNCTION crash_the_server()`, poison)); err != nil { // digits: the sandbox's order id
		t.Fatal(err)
	}
	w := s.start()
	s.publish(refundflow.Command{ID: "poison-request", Kind: refundflow.InputRequestRefund, Platform: refundflow.PlatformTaobao,
		OrderID: poison, SubOrderID: poisonSub, Operator: "t",
		Request: &refundflow.Request{GoodsStatus: "1", ReasonID: 1001, Description: "不想要了"}})
	ctx := context.Background()
	var dl []casestore.DeadLetter
	waitFor(t, 120*time.Second, "the poison command dead-lettered", func() bool {
		dl, err = s.store.DeadLetters(ctx, casestore.DeadLetterFilter{})
		return err == nil && len(dl) > 0
	})
	if len(dl) != 1 || dl[0].MsgID != "poison-request" || dl[0].Reason != string(events.DeadMaxDeliveries) || dl[0].Deliveries != 1 {
		for _, d := range dl {
			t.Errorf("dead letter %s: %s after %d deliveries: %s", d.MsgID, d.Reason, d.Deliveries, d.Error)
		}
		t.Errorf("want one dead letter: poison-request, %s, after its 1 delivery", events.DeadMaxDeliveries)
	}
	// The delivery was held through the bound's three outages before its
	// failure counted (and the dead letter's first write may meet the
	// fourth crash's). One delivery: the gate's probes back off further at
	// each outage that follows the last within 10 s, and a second
	// delivery's three would add 20 s.
	if held := strings.Count(w.logs(), "case store unreachable"); held < 3 {
		t.Errorf("%d outages held; want the bound's 3\n%s", held, w.logs())
	}
	o, so := s.order(sandbox.PlatformTaobao, nil)
	s.publish(refundflow.Command{ID: "after-the-poison", Kind: refundflow.InputRequestRefund, Platform: refundflow.PlatformTaobao,
		OrderID: o, SubOrderID: so, Operator: "t", Request: &refundflow.Request{GoodsStatus: "1", ReasonID: 1001, Description: "不想要了"}})
	s.waitState(s.caseFor(refundflow.PlatformTaobao, o, so), refundflow.StateWaitingSeller, 30*time.Second)
	if err, gone := w.exited(); gone {
		t.Fatalf("the worker exited: %v", err)
	}
}

// awaitsItsStore waits until worker w, started where its store cannot take
// its work (where), says it waits for it; exiting instead fails the test.
func awaitsItsStore(t *testing.T, w *workerProc, where string) {
	t.Helper()
	waitFor(t, 20*time.Second, "the worker to say it waits for the store", func() bool {
		select {
		case err := <-w.done:
			w.done <- err
			t.Fatalf("the worker exited %s: %v\n%s", where, err, w.errs.String())
		default:
		}
		return strings.Contains(w.errs.String(), "case store not reachable yet")
	})
}
