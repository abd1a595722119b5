package casestore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// TestGroupCommitIsolatesFailures: many concurrent updates share
// transactions, and one that fails rolls back only its own changes.
func TestGroupCommitIsolatesFailures(t *testing.T) { eachBackend(t, testGroupCommitIsolatesFailures) }

func testGroupCommitIsolatesFailures(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	const n = 200
	commits0, txs0 := s.Commits(), s.Transactions()
	errBoom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.Update(ctx, func(tx *Tx) error {
				if _, err := tx.CreateCase(ctx, NewCase{Platform: "1688", OrderID: fmt.Sprint(1000 + i), State: "requested"}); err != nil {
					return err
				}
				if i%7 == 0 {
					return errBoom // after a write: it must be undone
				}
				return nil
			})
		})
	}
	wg.Wait()
	want := 0
	for i, err := range errs {
		if i%7 == 0 {
			if !errors.Is(err, errBoom) {
				t.Errorf("update %d: %v; want boom", i, err)
			}
			continue
		}
		want++
		if err != nil {
			t.Errorf("update %d: %v", i, err)
		}
	}
	counts, err := s.CountByState(ctx)
	if err != nil || counts["requested"] != want {
		t.Fatalf("cases = %v, %v; want %d requested", counts, err, want)
	}
	commits, txs := s.Commits()-commits0, s.Transactions()-txs0
	if commits != int64(want) || txs > commits {
		t.Fatalf("commits %d transactions %d; want %d commits in at most as many transactions", commits, txs, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(*Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Update after Close: %v; want ErrClosed", err)
	}
}

func TestLease(t *testing.T) { eachBackend(t, testLease) }

func testLease(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	c := newCase(t, s, NewCase{Platform: "taobao", OrderID: "1", SubOrderID: "2", State: "requested"})
	if _, err := s.ClaimLease(ctx, c.ID, "a", time.Minute); err != nil {
		t.Fatalf("claim by a: %v", err)
	}
	if _, err := s.ClaimLease(ctx, c.ID, "a", time.Minute); err != nil {
		t.Fatalf("re-claim by a: %v", err)
	}
	until, err := s.ClaimLease(ctx, c.ID, "b", time.Minute)
	if !errors.Is(err, ErrLeased) || until.Before(time.Now()) {
		t.Fatalf("claim by b while a holds it: %v until %v; want ErrLeased and a future end", err, until)
	}
	if err := s.RenewLease(ctx, c.ID, "b", time.Minute); !errors.Is(err, ErrLeased) {
		t.Fatalf("renew by b: %v; want ErrLeased", err)
	}
	if err := s.ReleaseLease(ctx, c.ID, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimLease(ctx, c.ID, "b", time.Millisecond); err != nil {
		t.Fatalf("claim by b after release: %v", err)
	}
	// An expired lease can be taken over (a crashed holder).
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := s.ClaimLease(ctx, c.ID, "a", time.Minute); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("claim after expiry: %v", err)
		}
		<-time.After(5 * time.Millisecond)
	}
	// The lease is not part of the case's version.
	got, err := s.GetCase(ctx, c.ID)
	if err != nil || got.Version != c.Version {
		t.Fatalf("version after leases = %d, %v; want %d", got.Version, err, c.Version)
	}
}

// TestCreateCaseTakesTheLease: a case can be created already leased (the
// engine opens a case and holds it before any platform call), and another
// owner cannot take it until the lease ends.
func TestCreateCaseTakesTheLease(t *testing.T) { eachBackend(t, testCreateCaseTakesTheLease) }

func testCreateCaseTakesTheLease(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	var c Case
	err := s.Update(ctx, func(tx *Tx) error {
		var err error
		c, err = tx.CreateCase(ctx, NewCase{Platform: PlatformTaobao, OrderID: "1", SubOrderID: "2", State: "requested",
			LeaseOwner: "opener", LeaseTTL: time.Minute})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	owner, until, err := s.LeaseUntil(ctx, c.ID)
	if err != nil || owner != "opener" || !until.Equal(c.LeaseUntil) || time.Until(until) < 50*time.Second {
		t.Fatalf("lease after CreateCase: %q until %v (case says %v), %v; want opener for a minute", owner, until, c.LeaseUntil, err)
	}
	if _, err := s.ClaimLease(ctx, c.ID, "someone-else", time.Minute); !errors.Is(err, ErrLeased) {
		t.Fatalf("another owner claiming the new case: %v; want ErrLeased", err)
	}
}

// TestLeaseAndIntentOnceUnderConcurrency: owners on two stores (two
// processes) claim one case at once, and begin one step's intent at once:
// one lease is granted, the others see it held; one intent is new, the
// others find it as prior.
func TestLeaseAndIntentOnceUnderConcurrency(t *testing.T) {
	eachBackend(t, testLeaseAndIntentOnceUnderConcurrency)
}

func testLeaseAndIntentOnceUnderConcurrency(t *testing.T, be backend) {
	ctx := context.Background()
	target := be.Fresh(t)
	stores := []*Store{openTest(t, target), openTest(t, target)}
	c := newCase(t, stores[0], NewCase{Platform: "1688", OrderID: "o1", State: "submitting"})
	const n = 16
	var wg sync.WaitGroup
	var granted, held, fresh, prior atomic.Int64
	for i := range n {
		s := stores[i%2]
		wg.Go(func() {
			_, err := s.ClaimLease(ctx, c.ID, fmt.Sprint("owner-", i), time.Minute)
			switch {
			case err == nil:
				granted.Add(1)
			case errors.Is(err, ErrLeased):
				held.Add(1)
			default:
				t.Errorf("ClaimLease: %v", err)
			}
			err = s.Update(ctx, func(tx *Tx) error {
				_, p, err := tx.BeginStep(ctx, c.ID, "create", "case:1:create", `{}`)
				if p {
					prior.Add(1)
				} else if err == nil {
					fresh.Add(1)
				}
				return err
			})
			if err != nil {
				t.Errorf("BeginStep: %v", err)
			}
		})
	}
	wg.Wait()
	if granted.Load() != 1 || held.Load() != n-1 {
		t.Errorf("leases granted %d, refused %d; want 1 and %d", granted.Load(), held.Load(), n-1)
	}
	if fresh.Load() != 1 || prior.Load() != n-1 {
		t.Errorf("intents new %d, found prior %d; want 1 and %d", fresh.Load(), prior.Load(), n-1)
	}
	it, err := stores[1].OpenIntent(ctx, c.ID)
	if err != nil || it.Begins != n {
		t.Errorf("intent = %+v, %v; want begun %d times", it, err, n)
	}
}

// TestUpdateCaseLeased: a decision's update carries the case's lease in
// its one statement. The owner takes the lease (or keeps it) and lets it go
// with one new version each; the case it returns is the stored one, lease
// included; another process's unexpired lease refuses the update, with
// when it ends, even when the version is stale too (the holder is what the
// caller must wait for), and writes nothing; an expired one is taken over;
// a stale version on a free case is a version conflict.
func TestUpdateCaseLeased(t *testing.T) { eachBackend(t, testUpdateCaseLeased) }

func testUpdateCaseLeased(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	c := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "requested"})
	update := func(prev Case, state, owner string, keep time.Duration) (Case, error) {
		next := prev
		next.State = state
		var got Case
		err := s.Update(ctx, func(tx *Tx) error {
			var err error
			got, err = tx.UpdateCaseLeased(ctx, prev, next, owner, keep)
			return err
		})
		return got, err
	}
	stored := func() Case {
		t.Helper()
		got, err := s.GetCase(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	sameAsStored := func(what string, got Case) {
		t.Helper()
		if st := stored(); !reflect.DeepEqual(got, st) {
			t.Errorf("%s returned\n%+v\nstored\n%+v", what, got, st)
		}
	}

	taken, err := update(c, "rendering", "me", time.Minute)
	if err != nil {
		t.Fatalf("take with the update: %v", err)
	}
	if taken.LeaseOwner != "me" || time.Until(taken.LeaseUntil) < 50*time.Second || taken.Version != c.Version+1 {
		t.Errorf("after taking: lease %q until %v, version %d; want me for a minute, version %d",
			taken.LeaseOwner, taken.LeaseUntil, taken.Version, c.Version+1)
	}
	sameAsStored("taking", taken)
	if _, err := s.ClaimLease(ctx, c.ID, "other", time.Minute); !errors.Is(err, ErrLeased) {
		t.Errorf("another claim while held: %v; want ErrLeased", err)
	}

	kept, err := update(taken, "submitting", "me", time.Minute)
	if err != nil || kept.LeaseOwner != "me" || kept.Version != taken.Version+1 {
		t.Fatalf("keep with the update: %+v, %v; want held by me, version %d", kept, err, taken.Version+1)
	}
	sameAsStored("keeping", kept)

	let, err := update(kept, "submitted", "me", 0)
	if err != nil || let.LeaseOwner != "" || !let.LeaseUntil.IsZero() || let.Version != kept.Version+1 {
		t.Fatalf("let go with the update: lease %q until %v, version %d, %v; want free, version %d",
			let.LeaseOwner, let.LeaseUntil, let.Version, err, kept.Version+1)
	}
	sameAsStored("letting go", let)

	held, err := s.ClaimLease(ctx, c.ID, "other", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		prev Case
	}{{"current version", stored()}, {"stale version", kept}} {
		_, err := update(tc.prev, "needs_attention", "me", time.Minute)
		var le *LeasedError
		if !errors.As(err, &le) || !errors.Is(err, ErrLeased) || le.CaseID != c.ID || !le.Until.Equal(held) {
			t.Errorf("%s, held by other: %v; want a LeasedError until %v", tc.name, err, held)
		}
		if got := stored(); got.State != "submitted" || got.Version != let.Version || got.LeaseOwner != "other" {
			t.Errorf("%s, held by other: case %q v%d leased to %q; want it untouched", tc.name, got.State, got.Version, got.LeaseOwner)
		}
	}

	// A lease that expired (its holder crashed) is taken over.
	if err := s.ReleaseLease(ctx, c.ID, "other"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimLease(ctx, c.ID, "crashed", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	cur := stored()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := update(cur, "waiting_seller", "me", time.Minute)
		if err == nil {
			if got.LeaseOwner != "me" {
				t.Errorf("after taking over: lease %q; want me", got.LeaseOwner)
			}
			sameAsStored("taking over", got)
			break
		}
		if !errors.Is(err, ErrLeased) || time.Now().After(deadline) {
			t.Fatalf("taking over an expired lease: %v", err)
		}
		<-time.After(5 * time.Millisecond)
	}

	// A free case at a newer version: a version conflict, nothing written.
	if err := s.ReleaseLease(ctx, c.ID, "me"); err != nil {
		t.Fatal(err)
	}
	before := stored()
	if _, err := update(cur, "closed", "me", 0); !errors.Is(err, ErrVersionConflict) || errors.Is(err, ErrLeased) {
		t.Errorf("stale version on a free case: %v; want ErrVersionConflict", err)
	}
	if got := stored(); !reflect.DeepEqual(got, before) {
		t.Errorf("after the conflict: %+v; want unchanged %+v", got, before)
	}

	// Stale, and leased to a process whose lease has expired: only the
	// version refuses it.
	if _, err := s.ClaimLease(ctx, c.ID, "gone", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for { // until that lease has expired, by the store's clock too
		_, until, err := s.LeaseUntil(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(until.Add(time.Millisecond)) {
			break
		}
		<-time.After(time.Millisecond)
	}
	if _, err := update(cur, "closed", "me", 0); !errors.Is(err, ErrVersionConflict) || errors.Is(err, ErrLeased) {
		t.Errorf("stale version, expired lease of another: %v; want ErrVersionConflict", err)
	}

	if _, err := update(stored(), "closed", "", time.Minute); err == nil {
		t.Errorf("an update without a lease owner: no error")
	}
	if _, err := update(stored(), "closed", "me", time.Microsecond); err == nil {
		t.Errorf("a lease shorter than its resolution (1ms): no error")
	}
}

// TestReleasingADeadProcesssLeasesDoesNotDeadlockWithAnOrdersEvent: on
// PostgreSQL, ReleaseLeasesOf locked a dead process's cases in the order
// its UPDATE met them in the table, which updates rearrange, while an
// order event's transaction locks its order's open cases in id order: with
// two cases of one order met in the other order, each waited for the
// other and PostgreSQL aborted one (deadlock detected). It now locks them
// in id order too.
func TestReleasingADeadProcesssLeasesDoesNotDeadlockWithAnOrdersEvent(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, pgtest.NewDatabase(t))
	c1 := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "o1-1", State: "waiting_seller"})
	c2 := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "o1-2", State: "waiting_seller"})
	for _, id := range []int64{c1.ID, c2.ID, c1.ID} { // c1's newest version last in the table: met after c2's
		if _, err := s.w.ExecContext(ctx, `UPDATE cases SET lease_owner = 'gone', lease_until = ? WHERE id = ?`,
			time.Now().Add(time.Hour).UnixMilli(), id); err != nil {
			t.Fatal(err)
		}
	}
	// An order event's transaction, holding the first case.
	conn, err := s.w.DB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `SELECT id FROM cases WHERE id = $1 FOR UPDATE`, c1.ID); err != nil {
		t.Fatal(err)
	}
	released := make(chan error, 1)
	go func() {
		_, err := s.ReleaseLeasesOf(ctx, "gone")
		released <- err
	}()
	eventstest.WaitFor(t, 10*time.Second, "the release waiting for the first case", func() bool {
		var n int
		err := s.r.Get(&n, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%lease_owner%' AND datname = current_database()`)
		return err == nil && n == 1
	})
	// The event's transaction goes on to the second case.
	if _, err := tx.ExecContext(ctx, `SELECT id FROM cases WHERE id = $1 FOR UPDATE`, c2.ID); err != nil {
		t.Errorf("the order event's lock of the second case: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Errorf("the order event's commit: %v", err)
	}
	if err := <-released; err != nil {
		t.Errorf("ReleaseLeasesOf: %v; want the leases released once the event's transaction ended", err)
	}
	for _, id := range []int64{c1.ID, c2.ID} {
		if owner, _, err := s.LeaseUntil(ctx, id); err != nil || owner != "" {
			t.Errorf("case %d after the release: lease owner %q, %v; want none", id, owner, err)
		}
	}
}

// TestAnUpdateThatPanicsFailsAlone: an Update's function that panics (a
// bug of the caller's build) ended the process from SQLite's group
// committer, with every update of its batch and every input in flight.
// It is now that update's error, ErrUpdatePanicked, its writes undone;
// the updates beside it commit and the store goes on.
func TestAnUpdateThatPanicsFailsAlone(t *testing.T) { eachBackend(t, testAnUpdateThatPanicsFailsAlone) }

func testAnUpdateThatPanicsFailsAlone(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	const n = 40
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.Update(ctx, func(tx *Tx) error {
				if _, err := tx.CreateCase(ctx, NewCase{Platform: "1688", OrderID: fmt.Sprint(1000 + i), State: "requested"}); err != nil {
					return err
				}
				if i%5 == 0 {
					var m map[string]int
					m["a bug"]++ // after a write: it must be undone
				}
				return nil
			})
		})
	}
	wg.Wait()
	want := 0
	for i, err := range errs {
		if i%5 == 0 {
			if !errors.Is(err, ErrUpdatePanicked) || !strings.Contains(err.Error(), "nil map") {
				t.Errorf("update %d: %v; want ErrUpdatePanicked saying what", i, err)
			}
			continue
		}
		want++
		if err != nil {
			t.Errorf("update %d: %v", i, err)
		}
	}
	counts, err := s.CountByState(ctx)
	if err != nil || counts["requested"] != want {
		t.Fatalf("cases = %v, %v; want %d requested (the panicking updates' undone)", counts, err, want)
	}
	if _, err := createCase(ctx, s, "after"); err != nil {
		t.Errorf("an update after them: %v", err)
	}
	// A panic after a write whose check fails (on PostgreSQL queued, its
	// answer not yet read): the panic is the error, not the check's.
	c := newCase(t, s, NewCase{Platform: "1688", OrderID: "stale", State: "requested"})
	moved := c
	moved.State = "submitting"
	if err := s.Update(ctx, func(tx *Tx) error { _, err := tx.UpdateCaseFrom(ctx, c, moved); return err }); err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx *Tx) error {
		_, _ = tx.UpdateCaseFrom(ctx, c, moved) // c is stale now
		var m map[string]int
		m["a bug"]++
		return nil
	})
	if !errors.Is(err, ErrUpdatePanicked) {
		t.Errorf("a panic after a stale write: %v; want ErrUpdatePanicked", err)
	}
}

// TestALeaseLeftByAProcessThatEndedIsCounted: every way a lease is taken
// over from a holder that never let go of it (a process of this host known
// dead; an expired lease taken by ClaimLease or by a case update that takes
// the lease) counts one more in Case.LeasesAbandoned, and every way a
// holder lets go itself starts the count again, so that refundflow can
// tell a case that keeps ending the worker process (migration 24).
func TestALeaseLeftByAProcessThatEndedIsCounted(t *testing.T) {
	eachBackend(t, testALeaseLeftByAProcessThatEndedIsCounted)
}

func testALeaseLeftByAProcessThatEndedIsCounted(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	c := newCase(t, s, NewCase{Platform: "taobao", OrderID: "1", SubOrderID: "2", State: "requested"})
	step := 0
	want := func(what string, n int) {
		t.Helper()
		step++
		got, err := s.GetCase(ctx, c.ID)
		if err != nil || got.LeasesAbandoned != n {
			t.Fatalf("%d. %s: leases abandoned %d, %v; want %d", step, what, got.LeasesAbandoned, err, n)
		}
	}
	// left is a lease of owner that expired without being let go.
	left := func(owner string) {
		t.Helper()
		if err := s.Update(ctx, func(tx *Tx) error {
			_, err := tx.tx.ExecContext(ctx, `UPDATE cases SET lease_owner = ?, lease_until = 1 WHERE id = ?`, owner, c.ID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	claim := func(owner string) {
		t.Helper()
		if _, err := s.ClaimLease(ctx, c.ID, owner, time.Minute); err != nil {
			t.Fatalf("claim by %s: %v", owner, err)
		}
	}
	// update writes the case with owner's lease (keep 0: let go), twice in
	// one transaction when twice is set (PostgreSQL folds the pair into
	// one statement), and returns the case as the update says it is.
	update := func(owner string, keep time.Duration, twice bool) Case {
		t.Helper()
		var out Case
		err := s.Update(ctx, func(tx *Tx) error {
			prev, err := tx.GetCase(ctx, c.ID)
			if err != nil {
				return err
			}
			next := prev
			next.PlatformStatus += "x"
			if out, err = tx.UpdateCaseLeased(ctx, prev, next, owner, keep); err != nil || !twice {
				return err
			}
			again := out
			again.PlatformStatus += "y"
			out, err = tx.UpdateCaseLeased(ctx, out, again, owner, keep)
			return err
		})
		if err != nil {
			t.Fatalf("update with %s's lease: %v", owner, err)
		}
		return out
	}

	claim("a")
	if err := s.ReleaseLease(ctx, c.ID, "a"); err != nil {
		t.Fatal(err)
	}
	want("a holder that let go", 0)
	claim("a")
	if n, err := s.ReleaseLeasesOf(ctx, "a"); err != nil || n != 1 {
		t.Fatalf("release the leases of a: %d, %v; want 1", n, err)
	}
	want("the lease of a process known dead, released", 1)
	left("dead-1")
	claim("b")
	want("an expired lease claimed", 2)
	claim("b")
	want("claimed again by its holder", 2)
	left("dead-2")
	update("c", time.Minute, false)
	want("an expired lease taken by a case update", 3)
	update("c", time.Minute, false)
	want("a case update by the holder", 3)
	if got := update("c", 0, false); got.LeasesAbandoned != 0 {
		t.Errorf("the case a letting-go update returns says %d leases abandoned; want 0", got.LeasesAbandoned)
	}
	want("a case update that lets go", 0)
	left("dead-3")
	update("d", time.Minute, true)
	want("an expired lease taken by the first of two updates in one transaction", 1)
	left("dead-4")
	update("e", 0, true)
	want("an expired lease taken and let go by two updates in one transaction", 0)
	left("dead-5")
	claim("f")
	if err := s.ReleaseLease(ctx, c.ID, "f"); err != nil {
		t.Fatal(err)
	}
	want("an expired lease claimed, then let go", 0)
}

// TestTwoCasesTakingOneRefundAtOnceAreCheckedOneAfterTheOther: on
// PostgreSQL (read committed), two commits that each record refund rf-7
// for their case and check that no other open case follows it ran their
// checks side by side, neither seeing the other's uncommitted case, and
// both committed. OpenCaseFollowing now takes a lock on the refund first:
// the second waits for the first's commit, and then sees its case.
func TestTwoCasesTakingOneRefundAtOnceAreCheckedOneAfterTheOther(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, pgtest.NewDatabase(t))
	c1 := newCase(t, s, NewCase{Platform: "1688", OrderID: "o7", State: "needs_attention"})
	c2 := newCase(t, s, NewCase{Platform: "1688", OrderID: "o8", State: "needs_attention"})
	take := func(c Case) (other int64, err error) {
		err = s.Update(ctx, func(tx *Tx) error {
			c.RefundID = "rf-7"
			if _, err := tx.UpdateCase(ctx, c); err != nil {
				return err
			}
			other, err = tx.OpenCaseFollowing(ctx, Platform1688, "rf-7", c.ID)
			return err
		})
		return other, err
	}
	checked, release := make(chan int64, 1), make(chan struct{})
	var once sync.Once
	let := func() { once.Do(func() { close(release) }) }
	t.Cleanup(let) // a failed wait lets the first commit, before the store closes
	first := make(chan error, 1)
	go func() {
		first <- s.Update(ctx, func(tx *Tx) error {
			c := c1
			c.RefundID = "rf-7"
			if _, err := tx.UpdateCase(ctx, c); err != nil {
				return err
			}
			other, err := tx.OpenCaseFollowing(ctx, Platform1688, "rf-7", c.ID)
			checked <- other
			<-release // committed only once the second has begun its check
			return err
		})
	}()
	if other := <-checked; other != 0 {
		t.Fatalf("the first check found case %d; want none", other)
	}
	second := make(chan int64, 1)
	go func() {
		other, err := take(c2)
		if err != nil {
			t.Errorf("the second take: %v", err)
		}
		second <- other
	}()
	eventstest.WaitFor(t, 10*time.Second, "the second check waiting for the first's commit", func() bool {
		var n int
		err := s.r.Get(&n, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory' AND datname = current_database()`)
		return err == nil && n == 1
	})
	let()
	if err := <-first; err != nil {
		t.Fatalf("the first take: %v", err)
	}
	if other := <-second; other != c1.ID {
		t.Errorf("the second check found case %d; want %d, which took the refund first", other, c1.ID)
	}
}
