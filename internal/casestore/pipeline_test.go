package casestore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// The tests of pipelined transactions (pipeline.go). The failure tests run
// on both stores: on SQLite every statement runs at once, and the errors
// Update returns must be the same.

// TestPipelinedTransactionsTakeFewRoundTrips counts the round trips of the
// engine's transactions on PostgreSQL: the writes go in one batch with the
// next read, or with COMMIT.
func TestPipelinedTransactionsTakeFewRoundTrips(t *testing.T) {
	s := openTest(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	trips := func(name string, want int64, fn func(tx *Tx) error) {
		t.Helper()
		before := s.RoundTrips()
		if err := s.Update(ctx, fn); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := s.RoundTrips() - before; got != want {
			t.Errorf("%s: %d round trips; want %d", name, got, want)
		}
	}
	var c Case
	// The open: BEGIN, the order's lock and the INSERT … RETURNING (which
	// says that no case of the order came before); the timeline row with
	// COMMIT.
	trips("open", 2, func(tx *Tx) error {
		var err error
		c, err = tx.CreateCase(ctx, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "requested",
			LeaseOwner: "w1", LeaseTTL: time.Minute})
		if err != nil {
			return err
		}
		if err := tx.AppendTimeline(ctx, TimelineEntry{CaseID: c.ID, Kind: KindCommand, Summary: "opened"}); err != nil {
			return err
		}
		if _, err := tx.PreviousCase(ctx, c); !errors.Is(err, ErrNotFound) {
			t.Errorf("PreviousCase: %v; want ErrNotFound", err)
		}
		return nil
	})
	// A decision that begins a step: its writes go with BeginStep's
	// INSERT … RETURNING, then COMMIT.
	trips("decision with an intent", 2, func(tx *Tx) error {
		next := c
		next.State = "submitting"
		var err error
		if c, err = tx.UpdateCaseLeased(ctx, c, next, "w1", time.Minute); err != nil {
			return err
		}
		if err := tx.AppendTimeline(ctx, TimelineEntry{CaseID: c.ID, Kind: KindDecision, Summary: "submit"},
			TimelineEntry{CaseID: c.ID, Kind: KindDecision, Summary: "again"}); err != nil {
			return err
		}
		if err := tx.RecordCommandOutcome(ctx, CommandOutcome{CommandID: "cmd-1", Verdict: VerdictApplied, CaseID: c.ID}); err != nil {
			return err
		}
		_, prior, err := tx.BeginStep(ctx, c.ID, "create", "case:1:create", `{}`)
		if prior {
			t.Errorf("BeginStep: prior; want a new intent")
		}
		return err
	})
	// The result's decision, the input's last: everything in one batch,
	// then COMMIT on its own, since the lease and the version decide it.
	trips("last decision", 2, func(tx *Tx) error {
		next := c
		next.State = "submitted"
		var err error
		if c, err = tx.UpdateCaseLeased(ctx, c, next, "w1", 0); err != nil {
			return err
		}
		if err := tx.FinishStep(ctx, "case:1:create", StepResult{Status: StepDone, Outcome: `{}`}); err != nil {
			return err
		}
		if err := tx.AppendTimeline(ctx, TimelineEntry{CaseID: c.ID, Kind: KindStep, Summary: "created"}); err != nil {
			return err
		}
		return tx.InboxAdd(ctx, InboxEntry{MsgID: "m1", Stream: "COMMANDS", StreamSeq: 1, Subject: "commands.x"})
	})
	// Writes nothing reads, none of which can fail but on the server:
	// COMMIT goes with them.
	trips("a note", 1, func(tx *Tx) error {
		return tx.AppendTimeline(ctx, TimelineEntry{CaseID: c.ID, Kind: KindNote, Summary: "note"})
	})
	trips("nothing", 0, func(tx *Tx) error { return nil })

	// What they wrote is there.
	got, err := s.GetCase(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != "submitted" || got.LeaseOwner != "" || got.Version != c.Version {
		t.Errorf("case after the transactions: state %q, lease %q, version %d; want submitted, free, %d",
			got.State, got.LeaseOwner, got.Version, c.Version)
	}
	steps, err := s.Steps(ctx, c.ID)
	if err != nil || len(steps) != 1 || steps[0].Status != StepDone {
		t.Errorf("steps: %+v, %v; want the one create, done", steps, err)
	}
	tl, err := s.Timeline(ctx, c.ID)
	if err != nil || len(tl) != 5 {
		t.Errorf("timeline: %d entries, %v; want 5", len(tl), err)
	}
	if seen, err := s.InboxSeen(ctx, "m1"); err != nil || !seen {
		t.Errorf("inbox m1: %v, %v; want recorded", seen, err)
	}
	if o, err := s.CommandOutcome(ctx, "cmd-1"); err != nil || o.CaseID != c.ID {
		t.Errorf("command outcome: %+v, %v", o, err)
	}
}

// TestQueuedFailureIsTheTransactionsError: a write whose statement waits
// in the queue fails the transaction as it would have failed at once: the
// error Update returns is the first failing statement's, with its
// sentinel, and nothing of the transaction is kept.
func TestQueuedFailureIsTheTransactionsError(t *testing.T) {
	eachBackend(t, testQueuedFailureIsTheTransactionsError)
}

func testQueuedFailureIsTheTransactionsError(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	c := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "requested"})
	held, err := s.ClaimLease(ctx, c.ID, "other", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	submitting := c
	submitting.State = "submitting"
	nothingWritten := func(t *testing.T) {
		t.Helper()
		got, err := s.GetCase(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != c.Version || got.State != c.State || got.LeaseOwner != "other" {
			t.Errorf("case: version %d, state %q, lease %q; want it unchanged (%d, %q, other)",
				got.Version, got.State, got.LeaseOwner, c.Version, c.State)
		}
		if tl, err := s.Timeline(ctx, c.ID); err != nil || len(tl) != 0 {
			t.Errorf("timeline: %d entries, %v; want none", len(tl), err)
		}
		if seen, _ := s.InboxSeen(ctx, "m1"); seen {
			t.Errorf("inbox has m1; want nothing committed")
		}
	}

	t.Run("lease held elsewhere", func(t *testing.T) {
		err := s.Update(ctx, func(tx *Tx) error {
			if _, err := tx.UpdateCaseLeased(ctx, c, submitting, "me", time.Minute); err != nil {
				return err
			}
			if err := tx.AppendTimeline(ctx, TimelineEntry{CaseID: c.ID, Kind: KindNote, Summary: "mine"}); err != nil {
				return err
			}
			return tx.InboxAdd(ctx, InboxEntry{MsgID: "m1", Stream: "S", StreamSeq: 1})
		})
		var le *LeasedError
		if !errors.As(err, &le) || !errors.Is(err, ErrLeased) || le.CaseID != c.ID || !le.Until.Equal(held) {
			t.Fatalf("Update: %v; want a LeasedError for case %d until %v", err, c.ID, held)
		}
		nothingWritten(t)
	})

	t.Run("version conflict", func(t *testing.T) {
		stale := c
		stale.Version--
		next := stale
		next.State = "submitting"
		err := s.Update(ctx, func(tx *Tx) error {
			if err := tx.AppendTimeline(ctx, TimelineEntry{CaseID: c.ID, Kind: KindNote, Summary: "before"}); err != nil {
				return err
			}
			if _, err := tx.UpdateCaseFrom(ctx, stale, next); err != nil {
				return err
			}
			return tx.InboxAdd(ctx, InboxEntry{MsgID: "m1", Stream: "S", StreamSeq: 1})
		})
		if !errors.Is(err, ErrVersionConflict) {
			t.Fatalf("Update: %v; want ErrVersionConflict", err)
		}
		nothingWritten(t)
	})

	t.Run("the first failure wins", func(t *testing.T) {
		// The lease fails first (no row changed); a timeline row for a
		// case that does not exist fails after it on the server, which
		// aborts the transaction: the lease's reason is read from the
		// committed state, and it is the error.
		err := s.Update(ctx, func(tx *Tx) error {
			if _, err := tx.UpdateCaseLeased(ctx, c, submitting, "me", time.Minute); err != nil {
				return err
			}
			if err := tx.AppendTimeline(ctx, TimelineEntry{CaseID: c.ID + 1000, Kind: KindNote, Summary: "nowhere"}); err != nil {
				return err
			}
			_, err := tx.GetCase(ctx, c.ID)
			return err
		})
		var le *LeasedError
		if !errors.As(err, &le) || !le.Until.Equal(held) {
			t.Fatalf("Update: %v; want the LeasedError until %v", err, held)
		}
		nothingWritten(t)
	})

	t.Run("a queued check before the closure's own error", func(t *testing.T) {
		// fn fails on its own (a detail that is not JSON) after a lease
		// refused in the queue: the refusal came first, as on SQLite.
		err := s.Update(ctx, func(tx *Tx) error {
			if _, err := tx.UpdateCaseLeased(ctx, c, submitting, "me", time.Minute); err != nil {
				return err
			}
			return tx.AppendTimeline(ctx, TimelineEntry{CaseID: c.ID, Kind: KindNote, Summary: "x", Detail: []byte("{not json")})
		})
		if !errors.Is(err, ErrLeased) {
			t.Fatalf("Update: %v; want the lease's refusal", err)
		}
		nothingWritten(t)
	})

	t.Run("a server error", func(t *testing.T) {
		// A queued statement the server refuses: every later call of the
		// transaction and Update return its error, named for it.
		// (On SQLite the call itself fails.)
		var call error
		err := s.Update(ctx, func(tx *Tx) error {
			if call = tx.AppendTimeline(ctx, TimelineEntry{CaseID: c.ID + 1000, Kind: KindNote, Summary: "nowhere"}); call != nil {
				return call
			}
			_, _, call = tx.BeginStep(ctx, c.ID, "create", "case:1:create", `{}`)
			return call
		})
		want := fmt.Sprintf("append timeline of case %d", c.ID+1000)
		if err == nil || !strings.Contains(err.Error(), want) || call == nil || !strings.Contains(call.Error(), want) {
			t.Fatalf("Update: %v; the failing call: %v; want both to name %q", err, call, want)
		}
		if steps, err := s.Steps(ctx, c.ID); err != nil || len(steps) != 0 {
			t.Errorf("steps after the failed transaction: %+v, %v; want none", steps, err)
		}
		nothingWritten(t)
	})
}
