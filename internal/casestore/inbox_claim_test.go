package casestore

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestInboxClaim: InboxClaim writes a message's inbox row in the
// transaction that applies it, refuses one applied already with
// ErrInInbox (the transaction then writes nothing), and drops the
// message's kept copy with the row, keeping it when refused.
func TestInboxClaim(t *testing.T) { eachBackend(t, testInboxClaim) }

func testInboxClaim(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	c := newCase(t, s, NewCase{Platform: PlatformTaobao, OrderID: "o1", SubOrderID: "s1", State: "waiting_seller"})
	keep := func(msgID string) {
		t.Helper()
		if _, err := s.KeepCallback(ctx, DeferredInput{CaseID: c.ID, MsgID: msgID, Source: SourceCallbacks, Payload: []byte(`{}`),
			NotBefore: time.Now().Add(time.Minute), Reason: "verifying"}, TimelineEntry{CaseID: c.ID, Kind: KindCallback, Summary: msgID}); err != nil {
			t.Fatal(err)
		}
	}
	kept := func() int {
		t.Helper()
		d, err := s.DeferredInputs(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		return len(d)
	}
	seen := func(msgID string) bool {
		t.Helper()
		ok, err := s.InboxSeen(ctx, msgID)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	// claim claims e with a timeline entry beside it, in one transaction.
	claim := func(e InboxEntry) error {
		return s.Update(ctx, func(tx *Tx) error {
			if err := tx.AppendTimeline(ctx, TimelineEntry{CaseID: c.ID, Kind: KindNote, Summary: "with " + e.MsgID}); err != nil {
				return err
			}
			return tx.InboxClaim(ctx, e)
		})
	}
	notes := func() int {
		t.Helper()
		tl, err := s.Timeline(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range tl {
			if e.Kind == KindNote {
				n++
			}
		}
		return n
	}

	keep("cb-1")
	if err := claim(InboxEntry{MsgID: "cb-1", Stream: "CALLBACKS", StreamSeq: 7, Deferred: true}); err != nil {
		t.Fatalf("claim a new message: %v", err)
	}
	if !seen("cb-1") || kept() != 0 || notes() != 1 {
		t.Errorf("after the claim: in the inbox %v, %d kept, %d notes; want in it, the kept copy dropped, the note written", seen("cb-1"), kept(), notes())
	}
	keep("cb-2")
	if err := s.Update(ctx, func(tx *Tx) error { _, err := tx.InboxRecord(ctx, InboxEntry{MsgID: "cb-2"}); return err }); err != nil {
		t.Fatal(err)
	}
	if err := claim(InboxEntry{MsgID: "cb-2", Deferred: true}); !errors.Is(err, ErrInInbox) {
		t.Errorf("claim of a message applied already: %v; want ErrInInbox", err)
	}
	if kept() != 1 || notes() != 1 {
		t.Errorf("after the refused claim: %d kept, %d notes; want the copy kept, no note written", kept(), notes())
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.InboxClaim(ctx, InboxEntry{}) }); err == nil {
		t.Error("claim without a message id: no error")
	}
}
