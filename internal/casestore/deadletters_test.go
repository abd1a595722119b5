package casestore

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func insertDead(t *testing.T, s *Store, d DeadLetter) int64 {
	t.Helper()
	var id int64
	err := s.Update(context.Background(), func(tx *Tx) error {
		var err error
		id, _, err = tx.InsertDeadLetter(context.Background(), d)
		return err
	})
	if err != nil {
		t.Fatalf("InsertDeadLetter(%s): %v", d.MsgID, err)
	}
	return id
}

func deadIDs(t *testing.T, s *Store, f DeadLetterFilter) []int64 {
	t.Helper()
	dls, err := s.DeadLetters(context.Background(), f)
	if err != nil {
		t.Fatalf("DeadLetters(%+v): %v", f, err)
	}
	var ids []int64
	for _, d := range dls {
		ids = append(ids, d.ID)
	}
	return ids
}

// TestDiscardDeadLetter: a discard keeps the row with when, by whom and why;
// a second discard, a discard of a retried dead letter and one of a missing
// id each fail with their own error and change nothing; the filters tell
// discarded from pending.
func TestDiscardDeadLetter(t *testing.T) { eachBackend(t, testDiscardDeadLetter) }

func testDiscardDeadLetter(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	at := time.Date(2026, 5, 20, 8, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return at }
	kept := insertDead(t, s, DeadLetter{MsgID: "m1", Subject: "commands.taobao.cancel", Reason: "invalid_command"})
	gone := insertDead(t, s, DeadLetter{MsgID: "m2", Subject: "commands.taobao.cancel", Reason: "permanent_error"})
	sent := insertDead(t, s, DeadLetter{MsgID: "m3", Subject: "callbacks.1688.ORDER_CREATE", Reason: "max_deliveries"})
	discard := func(id int64, by, note string) error {
		return s.Update(ctx, func(tx *Tx) error { return tx.DiscardDeadLetter(ctx, id, by, note) })
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.MarkDeadLetterRetried(ctx, sent) }); err != nil {
		t.Fatal(err)
	}

	at = at.Add(time.Hour)
	if err := discard(gone, "alice", "a test command, never meant to run"); err != nil {
		t.Fatalf("DiscardDeadLetter(%d): %v", gone, err)
	}
	want := func() {
		t.Helper()
		d, err := s.DeadLetter(ctx, gone)
		if err != nil {
			t.Fatal(err)
		}
		if !d.DiscardedAt.Equal(time.Date(2026, 5, 20, 9, 0, 0, 0, time.UTC)) || d.DiscardedBy != "alice" ||
			d.DiscardNote != "a test command, never meant to run" || !d.RetriedAt.IsZero() {
			t.Errorf("dead letter %d = discarded %v by %q (%q), retried %v; want 09:00 by alice with the note, not retried",
				gone, d.DiscardedAt, d.DiscardedBy, d.DiscardNote, d.RetriedAt)
		}
	}
	want()

	at = at.Add(time.Hour)
	for _, tc := range []struct {
		id   int64
		want error
	}{
		{gone, ErrDeadLetterDiscarded},
		{sent, ErrDeadLetterRetried},
		{99, ErrNotFound},
	} {
		if err := discard(tc.id, "bob", "again"); !errors.Is(err, tc.want) {
			t.Errorf("DiscardDeadLetter(%d) = %v; want %v", tc.id, err, tc.want)
		}
	}
	want() // the first discard's record stands
	if d, _ := s.DeadLetter(ctx, sent); !d.DiscardedAt.IsZero() || d.DiscardedBy != "" {
		t.Errorf("retried dead letter %d after a refused discard = %+v; want not discarded", sent, d)
	}

	for _, tc := range []struct {
		f    DeadLetterFilter
		want []int64
	}{
		{DeadLetterFilter{}, []int64{kept, gone, sent}},
		{DeadLetterFilter{Discarded: DiscardedNot}, []int64{kept, sent}},
		{DeadLetterFilter{Discarded: DiscardedOnly}, []int64{gone}},
		{DeadLetterFilter{PendingOnly: true}, []int64{kept}},
		{DeadLetterFilter{Discarded: DiscardedOnly, Reasons: []string{"invalid_command"}}, nil},
	} {
		if got := deadIDs(t, s, tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("DeadLetters(%+v) = %v; want %v", tc.f, got, tc.want)
		}
	}

	// The same message dying again while its discarded row stands is not
	// recorded twice.
	var again int64
	var inserted bool
	err := s.Update(ctx, func(tx *Tx) error {
		var err error
		again, inserted, err = tx.InsertDeadLetter(ctx, DeadLetter{MsgID: "m2", Subject: "commands.taobao.cancel", Reason: "permanent_error"})
		return err
	})
	if err != nil || inserted || again != gone {
		t.Errorf("InsertDeadLetter(m2) after its discard = %d, inserted %v, %v; want %d, not inserted", again, inserted, err, gone)
	}
}

// TestAPendingDeadLetterIsOfTheCopyThatDied: PendingDeadLetter finds a
// dead letter by the stream copy that died, not by the message id alone:
// another copy under the id (a replay, a callback pushed again) has none.
// A copy that dies while an older copy's dead letter is pending takes the
// row over: its redelivery finds it, the older copy's does not. Rows from
// before migration 22 (no copy) match no copy.
func TestAPendingDeadLetterIsOfTheCopyThatDied(t *testing.T) {
	eachBackend(t, testAPendingDeadLetterIsOfTheCopyThatDied)
}

func testAPendingDeadLetterIsOfTheCopyThatDied(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	pending := func(msgID string, seq uint64) int64 {
		t.Helper()
		d, err := s.PendingDeadLetter(ctx, msgID, "COMMANDS", seq)
		if errors.Is(err, ErrNotFound) {
			return 0
		}
		if err != nil {
			t.Fatal(err)
		}
		return d.ID
	}
	id := insertDead(t, s, DeadLetter{MsgID: "m1", Subject: "commands.taobao.cancel", Reason: "max_deliveries", Stream: "COMMANDS", StreamSeq: 7})
	if got := pending("m1", 7); got != id {
		t.Errorf("the copy that died (#7): dead letter %d; want %d", got, id)
	}
	if got := pending("m1", 8); got != 0 {
		t.Errorf("another copy (#8): dead letter %d; want none", got)
	}
	if again := insertDead(t, s, DeadLetter{MsgID: "m1", Subject: "commands.taobao.cancel", Reason: "max_deliveries", Stream: "COMMANDS", StreamSeq: 8}); again != id {
		t.Errorf("copy #8 dying too: dead letter %d; want the pending one, %d", again, id)
	}
	if a, b := pending("m1", 7), pending("m1", 8); a != 0 || b != id {
		t.Errorf("after copy #8 died: #7 has %d, #8 has %d; want none and %d", a, b, id)
	}
	insertDead(t, s, DeadLetter{MsgID: "m2", Subject: "commands.taobao.cancel", Reason: "max_deliveries"})
	if got := pending("m2", 0); got != 0 {
		t.Errorf("a dead letter of no copy: found as copy #0's (%d); want none", got)
	}
}

// TestDeadLettered: a message is dead-lettered by a pending dead letter of
// its id (whichever copy died) or by a dead letter of its stream copy
// (under another id; retried or not: the retry is another copy); a new
// copy of a message whose dead letter was retried is not.
func TestDeadLettered(t *testing.T) { eachBackend(t, testDeadLettered) }

func testDeadLettered(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	dead := func(msgID string, seq uint64) bool {
		t.Helper()
		ok, err := s.DeadLettered(ctx, msgID, "COMMANDS", seq)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	insertDead(t, s, DeadLetter{MsgID: "m1", Subject: "commands.taobao.cancel", Reason: "max_deliveries", Stream: "COMMANDS", StreamSeq: 7})
	insertDead(t, s, DeadLetter{MsgID: "COMMANDS:9", Subject: "commands.taobao.cancel", Reason: "invalid_command", Stream: "COMMANDS", StreamSeq: 9})
	insertDead(t, s, DeadLetter{MsgID: "m4", Subject: "commands.taobao.cancel", Reason: "delivery_limit", Stream: "COMMANDS", StreamSeq: 13})
	retried := insertDead(t, s, DeadLetter{MsgID: "m3", Subject: "commands.taobao.cancel", Reason: "max_deliveries", Stream: "COMMANDS", StreamSeq: 11})
	if err := s.Update(ctx, func(tx *Tx) error { return tx.MarkDeadLetterRetried(ctx, retried) }); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		msgID string
		seq   uint64
		want  bool
	}{
		{"m1", 7, true},    // its copy died
		{"m1", 8, true},    // another copy of a message given up
		{"cmd-9", 9, true}, // its copy died under its header's id
		{"m2", 8, false},   // nothing died
		{"m3", 11, true},   // its copy died, retried since
		{"m3", 12, false},  // the retried copy
		{"m4", 13, true},   // its copy was given up by the server
		{"m4", 14, true},   // another copy of a message the server gave up (a poison message, most often)
		{"COMMANDS:9", 10, true},
	} {
		if got := dead(c.msgID, c.seq); got != c.want {
			t.Errorf("DeadLettered(%s, #%d) = %v; want %v", c.msgID, c.seq, got, c.want)
		}
	}
}

// TestAHandlersDeadLetterSupersedesADeliveryLimitGuess: a delivery_limit
// dead letter is written without the handler (the server stopped
// delivering the message); a handler still holding a copy that then
// dead-letters it for its own reason made the row keep the guess while
// the command's verdict said the handler's reason. The row now becomes
// the handler's, pending again if the worker had discarded it; one an
// operator discarded stays as the operator left it.
func TestAHandlersDeadLetterSupersedesADeliveryLimitGuess(t *testing.T) {
	eachBackend(t, testAHandlersDeadLetterSupersedesADeliveryLimitGuess)
}

func testAHandlersDeadLetterSupersedesADeliveryLimitGuess(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	insert := func(d DeadLetter) (int64, bool) {
		t.Helper()
		var id int64
		var inserted bool
		if err := s.Update(ctx, func(tx *Tx) error {
			var err error
			id, inserted, err = tx.InsertDeadLetter(ctx, d)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return id, inserted
	}
	discard := func(id int64, by string) {
		t.Helper()
		if err := s.Update(ctx, func(tx *Tx) error { return tx.DiscardDeadLetter(ctx, id, by, "settled after all") }); err != nil {
			t.Fatal(err)
		}
	}
	handlers := func(msgID string) DeadLetter {
		return DeadLetter{MsgID: msgID, Subject: "commands.taobao.cancel", Reason: "permanent_error", Error: "no such case",
			Deliveries: 2, Stream: "COMMANDS", StreamSeq: 3, Supersedes: "delivery_limit"}
	}
	guess := func(msgID string) DeadLetter {
		return DeadLetter{MsgID: msgID, Subject: "commands.taobao.cancel", Reason: "delivery_limit", Error: "no verdict", Deliveries: 15,
			Stream: "COMMANDS", StreamSeq: 3}
	}
	for _, tc := range []struct {
		name, discardedBy string
		superseded        bool
	}{{"pending", "", true}, {"discarded by the worker", WorkerDiscards, true}, {"discarded by an operator", "ops", false}} {
		msgID := "m-" + strings.ReplaceAll(tc.name, " ", "-")
		id, _ := insert(guess(msgID))
		if tc.discardedBy != "" {
			discard(id, tc.discardedBy)
		}
		again, inserted := insert(handlers(msgID))
		d, err := s.DeadLetter(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if tc.superseded {
			if again != id || !inserted || d.Reason != "permanent_error" || d.Error != "no such case" || d.Deliveries != 2 || !d.DiscardedAt.IsZero() {
				t.Errorf("%s: row %d (%v) %+v; want row %d become the handler's permanent_error, pending, counted as new", tc.name, again, inserted, d, id)
			}
			continue
		}
		if again != id || inserted || d.Reason != "delivery_limit" || d.DiscardedBy != "ops" {
			t.Errorf("%s: row %d (%v) %+v; want row %d as the operator discarded it", tc.name, again, inserted, d, id)
		}
	}
	// Another reason is never superseded: the first verdict stands.
	id, _ := insert(DeadLetter{MsgID: "m-other", Subject: "commands.taobao.cancel", Reason: "unknown_case", Stream: "COMMANDS", StreamSeq: 4})
	if again, inserted := insert(handlers("m-other")); again != id || inserted {
		t.Errorf("an unknown_case row: %d (%v); want %d kept", again, inserted, id)
	}
	if d, _ := s.DeadLetter(ctx, id); d.Reason != "unknown_case" {
		t.Errorf("an unknown_case row became %s", d.Reason)
	}
}
