package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestCallbacksRecordedWhileOthersAreVerified: with one handling slot and
// the platform answering refund reads only after 4 s, the seller agrees to
// two refunds, and their two callbacks reach the worker. Both are on their
// cases' timelines while the first one's verification still waits for its
// read: a recorded callback hands its message slot over to a verification
// slot, so the next one is recorded at once instead of queueing behind a
// platform call. Both are then verified and their cases succeed.
func TestCallbacksRecordedWhileOthersAreVerified(t *testing.T) {
	s := newStack(t, sandbox.Faults{}, sandbox.SellerPolicy{Decision: sandbox.DecisionManual}, 1, map[string]string{
		"WORKER_CONCURRENCY": "1", "UPSTREAM_TIMEOUT": "20s", "WORKER_STEP_TIMEOUT": "30s", "WORKER_LEASE_TTL": "1m", "WORKER_ACK_WAIT": "30s",
		"WORKER_RECONCILE_INTERVAL": "1h", "WORKER_TIMER_INTERVAL": "1s"})
	w := s.start()
	_ = w
	var ids []int64
	for range 2 {
		o, so := s.order(sandbox.PlatformTaobao, nil)
		s.publish(refundflow.Command{Kind: refundflow.InputRequestRefund, Platform: refundflow.PlatformTaobao, OrderID: o, SubOrderID: so,
			Request: &refundflow.Request{GoodsStatus: "1", ReasonID: 1001, Description: "不想要了"}})
		ids = append(ids, s.caseFor(refundflow.PlatformTaobao, o, so))
	}
	for _, id := range ids {
		s.waitState(id, refundflow.StateWaitingSeller, 20*time.Second)
	}
	// The submissions' own callbacks are handled first.
	callbacks, err := s.js.Consumer(context.Background(), events.DefaultStreamName, s.env["WORKER_CONSUMER"])
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the submissions' callbacks handled", func() bool {
		info, err := callbacks.Info(context.Background())
		n, _ := s.store.CountDeferred(context.Background())
		return err == nil && s.sb.Stats().Callbacks.Pending == 0 && info.NumPending == 0 && info.NumAckPending == 0 && n == 0
	})
	entries := func(id int64, kind, contains string) int {
		tl, err := s.store.Timeline(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range tl {
			if string(e.Kind) == kind && strings.Contains(e.Summary+string(e.Detail), contains) {
				n++
			}
		}
		return n
	}
	before := map[int64][2]int{}
	for _, id := range ids {
		before[id] = [2]int{entries(id, "callback", "callback "), entries(id, "decision", `"input":"callback"`)}
	}

	s.sb.SetFaults(sandbox.Faults{LatencyMin: 4 * time.Second, LatencyMax: 4 * time.Second, Endpoints: []string{"taobao_query"}})
	for _, id := range ids {
		c, err := s.store.GetCase(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(sandbox.RefundAction{Action: "agree"})
		resp, err := http.Post(s.sbURL+"/_sandbox/refunds/"+c.RefundID+"/actions", "application/json", bytes.NewReader(b))
		if err != nil || resp.StatusCode/100 != 2 {
			t.Fatalf("agree: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	waitFor(t, 20*time.Second, "both callbacks recorded", func() bool {
		return entries(ids[0], "callback", "callback ") > before[ids[0]][0] && entries(ids[1], "callback", "callback ") > before[ids[1]][0]
	})
	verified := 0
	for _, id := range ids {
		verified += entries(id, "decision", `"input":"callback"`) - before[id][1]
	}
	if verified != 0 {
		t.Fatalf("%d callback verified by the time both were recorded; want none (each read takes 4 s, and the second was recorded behind the first's read)", verified)
	}
	s.sb.SetFaults(sandbox.Faults{})
	for _, id := range ids {
		s.waitState(id, refundflow.StateSucceeded, 30*time.Second)
	}
	s.noDuplicates()
}

// TestCommandNotHeldBehindAWaitingCallback: a callback kept for a case
// that waits an hour (its verification backed off, say after rate limits)
// does not hold up a command kept for the same case behind it: commands
// keep their order among themselves only, so the worker's timer takes the
// due command up and the case is cancelled; the callback keeps waiting.
func TestCommandNotHeldBehindAWaitingCallback(t *testing.T) {
	s := newStack(t, sandbox.Faults{}, sandbox.SellerPolicy{Decision: sandbox.DecisionManual}, 1, nil)
	s.start()
	o, so := s.order(sandbox.PlatformTaobao, nil)
	s.publish(refundflow.Command{Kind: refundflow.InputRequestRefund, Platform: refundflow.PlatformTaobao, OrderID: o, SubOrderID: so,
		Request: &refundflow.Request{GoodsStatus: "1", ReasonID: 1001, Description: "不想要了"}})
	id := s.caseFor(refundflow.PlatformTaobao, o, so)
	s.waitState(id, refundflow.StateWaitingSeller, 20*time.Second)

	cancel := refundflow.Command{ID: "held-cancel-1", Kind: refundflow.InputCancel, Platform: refundflow.PlatformTaobao,
		OrderID: o, SubOrderID: so, Operator: "tester", IssuedAt: time.Now().UTC()}
	payload, _ := json.Marshal(cancel)
	if err := s.store.Update(context.Background(), func(tx *casestore.Tx) error {
		if err := tx.Defer(context.Background(), casestore.DeferredInput{CaseID: id, MsgID: "waiting-callback-1",
			Source: casestore.SourceCallbacks, Payload: []byte(`{}`), NotBefore: time.Now().Add(time.Hour),
			Reason: "fetch_failed: rate limited", Attempts: 1}); err != nil {
			return err
		}
		return tx.Defer(context.Background(), casestore.DeferredInput{CaseID: id, MsgID: cancel.ID,
			Source: casestore.SourceCommands, Payload: payload, NotBefore: time.Now(), Reason: "leased: another worker process holds the case"})
	}); err != nil {
		t.Fatal(err)
	}
	s.waitState(id, refundflow.StateCancelled, 20*time.Second)
	// The cancel makes the platform push a callback, recorded and kept
	// while it is verified: wait for that to end, then only the waiting
	// callback is left.
	var kept []casestore.DeferredInput
	var err error
	waitFor(t, 20*time.Second, "the cancel's own callback verified", func() bool {
		kept, err = s.store.DeferredInputs(context.Background(), id)
		for _, k := range kept {
			if k.MsgID != "waiting-callback-1" {
				return false
			}
		}
		return err == nil
	})
	if err != nil || len(kept) != 1 || kept[0].MsgID != "waiting-callback-1" {
		t.Errorf("kept inputs after the cancel: %+v, %v; want the callback still waiting", kept, err)
	}
}

// TestDeadLetteredCallbackTakesItsKeptCopy: a recorded callback whose
// verification keeps failing (every update of its case fails: a trigger
// stands in for a store fault) is dead-lettered after WORKER_MAX_DELIVER
// deliveries, and its kept copy goes with it. Left behind, the copy would
// be taken up by the timer and the callback applied after all, while an
// operator sees it dead-lettered.
func TestDeadLetteredCallbackTakesItsKeptCopy(t *testing.T) {
	s := newStack(t, sandbox.Faults{}, sandbox.SellerPolicy{Decision: sandbox.DecisionManual}, 1,
		map[string]string{"WORKER_MAX_DELIVER": "2", "WORKER_RECONCILE_INTERVAL": "1h"})
	s.start()
	o, so := s.order(sandbox.PlatformTaobao, nil)
	s.publish(refundflow.Command{Kind: refundflow.InputRequestRefund, Platform: refundflow.PlatformTaobao, OrderID: o, SubOrderID: so,
		Request: &refundflow.Request{GoodsStatus: "1", ReasonID: 1001, Description: "不想要了"}})
	id := s.caseFor(refundflow.PlatformTaobao, o, so)
	c := s.waitState(id, refundflow.StateWaitingSeller, 20*time.Second)
	waitFor(t, 20*time.Second, "the submission's callbacks handled", func() bool {
		n, err := s.store.CountDeferred(context.Background())
		return err == nil && n == 0 && s.sb.Stats().Callbacks.Pending == 0
	})

	db, err := sqlx.Open("sqlite3", "file:"+s.dbPath+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER fail_case_updates BEFORE UPDATE ON cases BEGIN SELECT RAISE(ABORT, 'injected store fault'); END`); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(sandbox.RefundAction{Action: "agree"})
	resp, err := http.Post(s.sbURL+"/_sandbox/refunds/"+c.RefundID+"/actions", "application/json", bytes.NewReader(b))
	if err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("agree: %v %v", resp, err)
	}
	resp.Body.Close()
	var dls []casestore.DeadLetter
	waitFor(t, 30*time.Second, "the callback dead-lettered", func() bool {
		dls, err = s.store.DeadLetters(context.Background(), casestore.DeadLetterFilter{})
		return err == nil && len(dls) > 0
	})
	if dls[0].Reason != string(events.DeadMaxDeliveries) || !strings.Contains(dls[0].Error, "injected store fault") {
		t.Errorf("dead letter %+v; want max_deliveries naming the fault", dls[0])
	}
	if kept, err := s.store.DeferredInputs(context.Background(), id); err != nil || len(kept) != 0 {
		t.Errorf("kept inputs after the dead letter: %+v, %v; want none (the copy goes with the dead letter)", kept, err)
	}
	if _, err := db.Exec(`DROP TRIGGER fail_case_updates`); err != nil {
		t.Fatal(err)
	}
}
