package casestore

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestCommandOutcome(t *testing.T) { eachBackend(t, testCommandOutcome) }

func testCommandOutcome(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	record := func(o CommandOutcome) {
		t.Helper()
		if err := s.Update(ctx, func(tx *Tx) error { return tx.RecordCommandOutcome(ctx, o) }); err != nil {
			t.Fatalf("RecordCommandOutcome(%+v): %v", o, err)
		}
	}
	get := func(id string) CommandOutcome {
		t.Helper()
		o, err := s.CommandOutcome(ctx, id)
		if err != nil {
			t.Fatalf("CommandOutcome(%q): %v", id, err)
		}
		return o
	}
	if _, err := s.CommandOutcome(ctx, "cmd-pending"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("CommandOutcome of an unknown command: err %v; want ErrNotFound", err)
	}

	// A decision's verdict is final.
	record(CommandOutcome{CommandID: "cmd-a", Verdict: VerdictApplied, CaseID: 3, Code: "requested"})
	record(CommandOutcome{CommandID: "cmd-a", Verdict: VerdictRejected, CaseID: 3, Code: "duplicate"})
	if o := get("cmd-a"); o.Verdict != VerdictApplied || o.Code != "requested" || o.CaseID != 3 || o.RecordedAt.IsZero() {
		t.Errorf("cmd-a after a second decision = %+v; want the first (applied requested, case 3)", o)
	}
	record(CommandOutcome{CommandID: "cmd-a", Verdict: VerdictRejected, Code: "max_deliveries", DeadLetterID: 9})
	if o := get("cmd-a"); o.Verdict != VerdictApplied {
		t.Errorf("cmd-a after a dead letter = %+v; want the decision's verdict kept", o)
	}

	// A dead letter's verdict gives way to a later decision (a retry).
	record(CommandOutcome{CommandID: "cmd-b", Verdict: VerdictRejected, Code: "unknown_case", Reason: "no case", DeadLetterID: 4})
	if o := get("cmd-b"); o.Verdict != VerdictRejected || o.Code != "unknown_case" || o.DeadLetterID != 4 {
		t.Errorf("cmd-b = %+v; want rejected unknown_case, dead letter 4", o)
	}
	record(CommandOutcome{CommandID: "cmd-b", Verdict: VerdictApplied, CaseID: 7, Code: "shipment_reported"})
	if o := get("cmd-b"); o.Verdict != VerdictApplied || o.CaseID != 7 || o.DeadLetterID != 0 {
		t.Errorf("cmd-b after its retry was decided = %+v; want applied to case 7", o)
	}

	if err := s.Update(ctx, func(tx *Tx) error {
		return tx.RecordCommandOutcome(ctx, CommandOutcome{CommandID: "cmd-c", Verdict: "maybe"})
	}); err == nil {
		t.Errorf("RecordCommandOutcome with verdict %q: no error", "maybe")
	}

	// Pruned with the inbox.
	if _, err := s.PruneInbox(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CommandOutcome(ctx, "cmd-a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("CommandOutcome after PruneInbox: err %v; want ErrNotFound", err)
	}
}
