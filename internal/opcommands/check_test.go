package opcommands

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// TestCheck: the worker's validation, plus a Taobao modification's
// description checked as a request's; 1688 modifications go to the worker.
func TestCheck(t *testing.T) {
	long := strings.Repeat("长", 501)
	mod := func(p refundflow.Platform) refundflow.Command {
		return refundflow.Command{ID: "cmd-check-0001", Kind: refundflow.InputModify, Platform: p, CaseID: 1,
			Modify: &refundflow.Modification{Description: &long}}
	}
	if err := Check(mod(refundflow.PlatformTaobao)); err == nil || !strings.Contains(err.Error(), "description: at most 500") {
		t.Errorf("Check(Taobao modify, long description) = %v; want the description's limit", err)
	}
	if err := Check(mod(refundflow.Platform1688)); err != nil {
		t.Errorf("Check(1688 modify) = %v; want nil (the worker answers not_supported)", err)
	}
	if err := Check(refundflow.Command{ID: "x", Kind: refundflow.InputCancel, Platform: refundflow.PlatformTaobao}); err == nil ||
		!strings.Contains(err.Error(), "id: 8 to 64") || !strings.Contains(err.Error(), "subOrderId") {
		t.Errorf("Check(bad cancel) = %v; want the id and subOrderId problems", err)
	}
}

// TestCompleteTarget: a case named by id gets its platform, order and
// (Taobao) sub-order; a field that contradicts it names the field; an
// unknown case is ErrUnknownCase unless the platform is given; Describe
// adds the case's state to a verdict.
func TestCompleteTarget(t *testing.T) {
	ctx := context.Background()
	st, err := casestore.Open(ctx, filepath.Join(t.TempDir(), "refunds.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var k casestore.Case
	if err := st.Update(ctx, func(tx *casestore.Tx) error {
		k, err = tx.CreateCase(ctx, casestore.NewCase{Platform: casestore.PlatformTaobao, OrderID: "100", SubOrderID: "101",
			State: string(refundflow.StateWaitingSeller), Request: json.RawMessage(`{}`)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c := refundflow.Command{Kind: refundflow.InputCancel, CaseID: k.ID}
	if err := CompleteTarget(ctx, st, &c); err != nil || c.Platform != refundflow.PlatformTaobao || c.OrderID != "100" || c.SubOrderID != "101" {
		t.Errorf("CompleteTarget(case %d) = %v, %+v; want taobao 100/101", k.ID, err, c)
	}
	var te *TargetError
	bad := refundflow.Command{Kind: refundflow.InputCancel, CaseID: k.ID, OrderID: "999"}
	if err := CompleteTarget(ctx, st, &bad); !errors.As(err, &te) || te.Field != "orderId" || te.Is != "100" {
		t.Errorf("CompleteTarget with another order = %v; want a TargetError on orderId (case's 100)", err)
	}
	if err := CompleteTarget(ctx, st, &refundflow.Command{CaseID: 99}); !errors.Is(err, ErrUnknownCase) {
		t.Errorf("CompleteTarget(case 99) = %v; want ErrUnknownCase", err)
	}
	if err := CompleteTarget(ctx, st, &refundflow.Command{CaseID: 99, Platform: refundflow.PlatformTaobao}); err != nil {
		t.Errorf("CompleteTarget(case 99, taobao) = %v; want nil (the worker decides)", err)
	}
	v, err := Describe(ctx, st, casestore.CommandOutcome{Verdict: casestore.VerdictApplied, CaseID: k.ID})
	if err != nil || v.State != string(refundflow.StateWaitingSeller) || v.CaseID != k.ID {
		t.Errorf("Describe = %+v, %v; want the case's state", v, err)
	}
	if v.Attention != "" || v.AttentionMessage != "" {
		t.Errorf("Describe = %+v; want no attention on a case without one", v)
	}
	err = st.Update(ctx, func(tx *casestore.Tx) error {
		k.State, k.ParkedState = string(refundflow.StateNeedsAttention), k.State
		k.AttentionCode, k.AttentionMessage = "reason_not_offered", "requested reason not offered (offered: 1001 拍错)"
		k, err = tx.UpdateCase(ctx, k)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err = Describe(ctx, st, casestore.CommandOutcome{Verdict: casestore.VerdictApplied, CaseID: k.ID})
	if err != nil || v.State != string(refundflow.StateNeedsAttention) || v.Attention != "reason_not_offered" ||
		v.AttentionMessage != "requested reason not offered (offered: 1001 拍错)" {
		t.Errorf("Describe = %+v, %v; want the case's state and its attention, whole", v, err)
	}
	if v, err := Describe(ctx, st, casestore.CommandOutcome{Verdict: casestore.VerdictRejected, CaseID: 99}); err != nil || v.CaseID != 0 {
		t.Errorf("Describe on a missing case = %+v, %v; want caseId 0", v, err)
	}
}

// TestStoredAndSame: a duplicate publish reads back the command first
// stored under its id; Same ignores the time it was issued and who
// issued it.
func TestStoredAndSame(t *testing.T) {
	ns := eventstest.Start(t)
	js := ns.JetStream()
	ctx := context.Background()
	if err := events.EnsureWorkStreams(ctx, js, events.DefaultWorkStreamsConfig()); err != nil {
		t.Fatal(err)
	}
	first := refundflow.Command{ID: "cmd-stored-0001", Kind: refundflow.InputSendMessage, Platform: refundflow.PlatformTaobao,
		CaseID: 3, Message: "hello", Operator: "olga", IssuedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if _, err := Publish(ctx, js, first); err != nil {
		t.Fatal(err)
	}
	retry := first
	retry.IssuedAt = first.IssuedAt.Add(time.Minute)
	ack, err := Publish(ctx, js, retry)
	if err != nil || !ack.Duplicate {
		t.Fatalf("Publish again = %+v, %v; want a duplicate", ack, err)
	}
	got, err := Stored(ctx, js, ack)
	if err != nil || !got.IssuedAt.Equal(first.IssuedAt) || got.Message != "hello" {
		t.Errorf("Stored = %+v, %v; want the first command", got, err)
	}
	if !Same(got, retry) {
		t.Errorf("Same(first, retry) = false; want true (only the time differs)")
	}
	other := retry
	other.Message = "bye"
	if Same(got, other) {
		t.Errorf("Same(first, another message) = true; want false")
	}
	// Who sends it is not what it asks: a batch run again by another
	// operator (its ids derived from the rows) is the same commands, and
	// the console answered 409 conflict, stopping the batch.
	other = retry
	other.Operator = "vera"
	if !Same(got, other) {
		t.Errorf("Same(first, the same command from another operator) = false; want true")
	}
}

// TestLookup: a verdict recorded is the verdict; once pruned, a case the
// command opened and moved on is applied. A case still in its first state
// is not: the worker creates it before it decides the request, which may
// yet be rejected (a dead letter). A command naming an order without a
// case is pending and says so (PendingFor).
func TestLookup(t *testing.T) {
	ctx := context.Background()
	st, err := casestore.Open(ctx, filepath.Join(t.TempDir(), "refunds.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	open := func(sub, state, by string) casestore.Case {
		t.Helper()
		var k casestore.Case
		if err := st.Update(ctx, func(tx *casestore.Tx) error {
			k, err = tx.CreateCase(ctx, casestore.NewCase{Platform: casestore.PlatformTaobao, OrderID: "100", SubOrderID: sub,
				State: state, Request: json.RawMessage(`{}`), OpenedBy: by})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return k
	}
	moved := open("101", string(refundflow.StateWaitingSeller), "cmd-moved-on-1")
	open("102", string(refundflow.StateRequested), "cmd-in-flight-1")
	decided := open("103", string(refundflow.StateRequested), "cmd-decided-1")
	if err := st.Update(ctx, func(tx *casestore.Tx) error {
		return tx.RecordCommandOutcome(ctx, casestore.CommandOutcome{CommandID: "cmd-decided-1", Verdict: casestore.VerdictRejected,
			CaseID: decided.ID, Code: "worker_failed", Reason: "it broke", DeadLetterID: 4})
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id, verdict string
		caseID      int64
	}{
		{"cmd-moved-on-1", casestore.VerdictApplied, moved.ID},
		{"cmd-in-flight-1", VerdictPending, 0},
		{"cmd-decided-1", casestore.VerdictRejected, decided.ID},
		{"cmd-never-1", VerdictPending, 0},
	} {
		v, err := Lookup(ctx, st, tc.id)
		if err != nil || v.Verdict != tc.verdict || v.CaseID != tc.caseID {
			t.Errorf("Lookup(%s) = %+v, %v; want %s on case %d", tc.id, v, err, tc.verdict, tc.caseID)
		}
	}
	if v, _ := Lookup(ctx, st, "cmd-moved-on-1"); v.State != string(refundflow.StateWaitingSeller) {
		t.Errorf("Lookup of a pruned verdict says state %q; want the case's, waiting_seller", v.State)
	}

	for _, tc := range []struct {
		c    refundflow.Command
		code string
	}{
		{refundflow.Command{ID: "cmd-p-1", Kind: refundflow.InputCancel, Platform: refundflow.PlatformTaobao, SubOrderID: "999"}, CodeNoCaseYet},
		{refundflow.Command{ID: "cmd-p-2", Kind: refundflow.InputCancel, Platform: refundflow.PlatformTaobao, SubOrderID: "101"}, ""},
		{refundflow.Command{ID: "cmd-p-3", Kind: refundflow.InputCancel, Platform: refundflow.Platform1688, OrderID: "100"}, CodeNoCaseYet},
		{refundflow.Command{ID: "cmd-p-4", Kind: refundflow.InputCancel, Platform: refundflow.PlatformTaobao, CaseID: 99}, ""},
		{refundflow.Command{ID: "cmd-p-5", Kind: refundflow.InputRequestRefund, Platform: refundflow.PlatformTaobao, SubOrderID: "999"}, ""},
	} {
		v, err := PendingFor(ctx, st, tc.c)
		if err != nil || v.Verdict != VerdictPending || v.Code != tc.code {
			t.Errorf("PendingFor(%+v) = %+v, %v; want pending with code %q", tc.c, v, err, tc.code)
		}
	}
}
