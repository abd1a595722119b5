package casestore

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestReadsTheWorkerAndConsoleUse: the store's reads that the packages
// above test only on SQLite (lookups by command, refund and order; counts
// for metrics and the overview; deferred inputs; lease owners; recent step
// errors) answer the same on both stores.
func TestReadsTheWorkerAndConsoleUse(t *testing.T) { eachBackend(t, testReadsTheWorkerAndConsoleUse) }

func testReadsTheWorkerAndConsoleUse(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	a := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "waiting_seller", OpenedBy: "cmd-a",
		LeaseOwner: "worker-1", LeaseTTL: time.Minute})
	b := newCase(t, s, NewCase{Platform: "1688", OrderID: "o2", State: "needs_attention"})
	err := s.Update(ctx, func(tx *Tx) error {
		a.RefundID = "rf-1"
		if _, err := tx.UpdateCase(ctx, a); err != nil {
			return err
		}
		b.AttentionCode = "seller_refused"
		if _, err := tx.UpdateCase(ctx, b); err != nil {
			return err
		}
		if err := tx.RecordStep(ctx, b.ID, "create", `{}`, StepResult{Status: StepFailed, ErrorCode: "E42"}); err != nil {
			return err
		}
		for i, id := range []string{"m1", "m2"} {
			if err := tx.Defer(ctx, DeferredInput{CaseID: b.ID, MsgID: id, Source: SourceCommands, Payload: []byte("{}"),
				NotBefore: tx.Now().Add(time.Duration(i) * time.Minute), Reason: "wait"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := s.CaseOpenedBy(ctx, "cmd-a"); err != nil || c.ID != a.ID {
		t.Errorf("CaseOpenedBy(cmd-a) = %d, %v; want %d", c.ID, err, a.ID)
	}
	if _, err := s.CaseOpenedBy(ctx, "cmd-none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("CaseOpenedBy(cmd-none) = %v; want ErrNotFound", err)
	}
	if owners, err := s.RefundOwners(ctx, PlatformTaobao, []string{"rf-1", "rf-none", ""}); err != nil || len(owners) != 1 || owners["rf-1"] != a.ID {
		t.Errorf("RefundOwners = %v, %v; want rf-1 → %d", owners, err, a.ID)
	}
	if c, err := s.LatestCase(ctx, "1688", "o2", ""); err != nil || c.ID != b.ID {
		t.Errorf("LatestCase(1688 o2) = %d, %v; want %d", c.ID, err, b.ID)
	}
	if c, err := s.LatestCase(ctx, "taobao", "", "s1"); err != nil || c.ID != a.ID {
		t.Errorf("LatestCase(taobao s1) = %d, %v; want %d", c.ID, err, a.ID)
	}
	if n, err := s.CountOpenByAttention(ctx); err != nil || len(n) != 1 || n["seller_refused"] != 1 {
		t.Errorf("CountOpenByAttention = %v, %v; want seller_refused: 1", n, err)
	}
	if n, err := s.CountOpenByPlatformState(ctx); err != nil || n["taobao"]["waiting_seller"] != 1 || n["1688"]["needs_attention"] != 1 {
		t.Errorf("CountOpenByPlatformState = %v, %v; want one case each", n, err)
	}
	if errs, err := s.RecentStepErrors(ctx, 10); err != nil || len(errs) != 1 || errs[0].ErrorCode != "E42" {
		t.Errorf("RecentStepErrors = %+v, %v; want the E42 step", errs, err)
	}
	if n, err := s.CountDeferred(ctx); err != nil || n != 2 {
		t.Errorf("CountDeferred = %d, %v; want 2", n, err)
	}
	if d, err := s.DeferredInputs(ctx, b.ID); err != nil || len(d) != 2 || d[0].MsgID != "m1" || string(d[1].Payload) != "{}" {
		t.Errorf("DeferredInputs = %+v, %v; want m1, m2", d, err)
	}
	if d, err := s.FirstDeferredCommand(ctx, b.ID); err != nil || d.MsgID != "m1" {
		t.Errorf("FirstDeferredCommand = %+v, %v; want m1", d, err)
	}
	if owners, err := s.LeaseOwners(ctx); err != nil || len(owners) != 1 || owners[0] != "worker-1" {
		t.Errorf("LeaseOwners = %v, %v; want worker-1", owners, err)
	}
	if n, err := s.ReleaseLeasesOf(ctx, "worker-1"); err != nil || n != 1 {
		t.Errorf("ReleaseLeasesOf = %d, %v; want 1", n, err)
	}
	if owners, err := s.LeaseOwners(ctx); err != nil || len(owners) != 0 {
		t.Errorf("LeaseOwners after release = %v, %v; want none", owners, err)
	}
}

// TestARefundTwoCasesRecordedGoesToTheOneThatFollowsIt: a case closed
// locally left its refund open, and a later case of the sub-order adopted
// it. The refund's callbacks go to the case that follows it, whichever
// case is newer, and a case about to adopt it learns which open case
// follows it (OpenCaseFollowing), on both stores.
func TestARefundTwoCasesRecordedGoesToTheOneThatFollowsIt(t *testing.T) {
	eachBackend(t, testARefundTwoCasesRecordedGoesToTheOneThatFollowsIt)
}

func testARefundTwoCasesRecordedGoesToTheOneThatFollowsIt(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	following := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "waiting_seller"})
	left := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1-dup", State: "closed_locally"})
	err := s.Update(ctx, func(tx *Tx) error {
		for _, c := range []*Case{&following, &left} {
			c.RefundID = "rf-9"
			if _, err := tx.UpdateCase(ctx, *c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := s.CaseByRefundID(ctx, PlatformTaobao, "rf-9"); err != nil || c.ID != following.ID {
		t.Errorf("CaseByRefundID(rf-9) = %d, %v; want %d, the open case, not the newer one closed locally (%d)", c.ID, err, following.ID, left.ID)
	}
	// The callback's own path (one statement on PostgreSQL) agrees.
	if c, _, err := s.KeepRefundCallback(ctx, PlatformTaobao, "rf-9", DeferredInput{MsgID: "cb-rf-9", Source: SourceCallbacks, Payload: []byte(`{}`)},
		TimelineEntry{Kind: KindCallback, Summary: "callback refund rf-9"}); err != nil || c.ID != following.ID {
		t.Errorf("KeepRefundCallback(rf-9) = case %d, %v; want %d, the open case", c.ID, err, following.ID)
	}
	err = s.Update(ctx, func(tx *Tx) error {
		for _, tc := range []struct{ except, want int64 }{{left.ID, following.ID}, {following.ID, 0}} {
			if got, err := tx.OpenCaseFollowing(ctx, PlatformTaobao, "rf-9", tc.except); err != nil || got != tc.want {
				t.Errorf("OpenCaseFollowing(rf-9, except %d) = %d, %v; want %d", tc.except, got, err, tc.want)
			}
		}
		if got, err := tx.OpenCaseFollowing(ctx, Platform1688, "rf-9", 0); err != nil || got != 0 {
			t.Errorf("OpenCaseFollowing(1688 rf-9) = %d, %v; want 0: another platform's refund", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
