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
// stored under its id; Same ignores only the time it was issued.
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
	other = retry
	other.Operator = "mallory"
	if Same(got, other) {
		t.Errorf("Same(first, another operator) = true; want false")
	}
}
