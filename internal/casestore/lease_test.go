package casestore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
