package refundflow_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/platform"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// Regression tests for the holes a review found in at-most-once, command
// handling and the store (issue 11). Each is named for its scenario and
// failed on the code before the fix.

var manual = sandbox.SellerPolicy{Decision: sandbox.DecisionManual}

// orderWith creates a sandbox Taobao order with n sub-orders and returns
// the order id and the sub-order ids.
func (r *rig) orderWith(n int) (string, []string) {
	r.t.Helper()
	seq := r.seq.Add(1)
	orderID := fmt.Sprintf("%d", 7100000000000000000+seq*100)
	req := sandbox.CreateOrderRequest{Platform: sandbox.PlatformTaobao, OrderID: orderID}
	var subs []string
	for i := range n {
		sub := fmt.Sprintf("%d", 8100000000000000000+seq*100+int64(i))
		subs = append(subs, sub)
		req.SubOrders = append(req.SubOrders, sandbox.SubOrder{SubOrderID: sub, Amount: 10000})
	}
	b, _ := json.Marshal(req)
	resp, err := http.Post(r.url+"/_sandbox/orders", "application/json", bytes.NewReader(b))
	if err != nil {
		r.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		r.t.Fatalf("create order: HTTP %d", resp.StatusCode)
	}
	return orderID, subs
}

// stepsNamed returns the case's attempts of one step.
func (r *rig) stepsNamed(id int64, step refundflow.StepName) []casestore.StepAttempt {
	r.t.Helper()
	all, err := r.store.Steps(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []casestore.StepAttempt
	for _, s := range all {
		if s.Step == string(step) {
			out = append(out, s)
		}
	}
	return out
}

// callbacksApplied waits until every callback the sandbox delivered has
// been handed to the engine and none is pending.
func (r *rig) callbacksApplied() {
	r.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for st := r.sb.Stats(); st.Callbacks.Pending > 0 || r.pumped.Load() < st.Callbacks.Delivered; st = r.sb.Stats() {
		if time.Now().After(deadline) {
			r.t.Fatalf("callbacks still pending: %+v, %d applied", st.Callbacks, r.pumped.Load())
		}
		<-time.After(10 * time.Millisecond)
	}
}

func (r *rig) timelineHas(id int64, text string) bool {
	r.t.Helper()
	tl, err := r.store.Timeline(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, e := range tl {
		if strings.Contains(e.Summary, text) {
			return true
		}
	}
	return false
}

// Issue 11.1: a sub-order already has a CLOSED refund no case owns (the
// buyer tried on the platform's web page). The case's submit fails before
// it reaches the platform: rate limited (not applied), or a 503 from a
// gateway (outcome unknown: the intent stays open). The old refund is never
// taken as the submission's effect: the case submits once, reaches the
// seller's decision, and the sandbox counts exactly one new submission.
func TestOldClosedRefundIsNotTakenForOurSubmit(t *testing.T) {
	for _, kind := range []sandbox.ErrorKind{sandbox.ErrRateLimit, sandbox.ErrHTTP503} {
		t.Run(string(kind), func(t *testing.T) {
			r := newRig(t, manual)
			o, so := r.order(sandbox.PlatformTaobao, nil)
			old, err := r.sb.SeedRefund(sandbox.RefundSeed{Platform: sandbox.PlatformTaobao, SubOrderID: so, Status: "CLOSED",
				CreatedAt: time.Now().Add(-time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			r.sb.SetFaults(sandbox.Faults{ForceErrors: []sandbox.ForcedError{{Endpoint: "taobao_submit", Kind: kind, Count: 1}}})
			cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
			cmd.Request = taobaoRequest(false)
			h := r.handle(cmd)
			c := r.waitState(h.CaseID, refundflow.StateWaitingSeller)
			if c.RefundID == "" || c.RefundID == old.RefundID {
				t.Fatalf("case refund %q; want the new refund, not the old one %s", c.RefundID, old.RefundID)
			}
			if got := r.platformStatus(c.RefundID); got != "WAIT_SELLER_AGREE" {
				t.Fatalf("the case's refund is %s on the platform; want WAIT_SELLER_AGREE (the seller decides)", got)
			}
			st := r.sb.Stats()
			if n := st.RefundSubmissions["taobao:"+so]; n != 1 || st.DuplicateSubmissions != 0 {
				t.Fatalf("submissions %d, duplicates %d; want exactly one new submission", n, st.DuplicateSubmissions)
			}
			if kind == sandbox.ErrHTTP503 && !r.timelineHas(c.ID, old.RefundID+" on the platform predates") {
				t.Errorf("timeline does not record refund %s as someone else's", old.RefundID)
			}
		})
	}
}

// Issue 11.1, the same rule for adoption: a case that has submitted
// nothing yet (parked at its form) gets a callback about the sub-order's old
// closed refund. It is not taken as the case's refund: the case stays where
// it is instead of ending as "closed".
func TestCallbackOfAnOldRefundDoesNotMoveANewCase(t *testing.T) {
	r := newRig(t, manual)
	o, so := r.order(sandbox.PlatformTaobao, nil)
	old, err := r.sb.SeedRefund(sandbox.RefundSeed{Platform: sandbox.PlatformTaobao, SubOrderID: so, Status: "CLOSED",
		CreatedAt: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(false)
	cmd.Request.ReasonID = 999999 // not offered: the case parks at its form
	h := r.handle(cmd)
	c := r.waitState(h.CaseID, refundflow.StateNeedsAttention)
	body, _ := json.Marshal(callback.RefundBody{RefundID: apiclient.FlexString(old.RefundID), OrderID: apiclient.FlexString(o),
		SubOrderID: apiclient.FlexString(so), RefundStatus: "CLOSED"})
	ev := callback.Event{Platform: callback.PlatformTaobao, Type: callback.TypeOrderRefund, Kind: callback.KindRefund,
		Body: string(body), ID: "old-refund-callback-1",
		Refund: &callback.RefundBody{RefundID: apiclient.FlexString(old.RefundID), OrderID: apiclient.FlexString(o), SubOrderID: apiclient.FlexString(so)}}
	if _, err := r.engine().HandleCallback(context.Background(), ev, &refundflow.Message{ID: ev.ID}); err != nil {
		t.Fatal(err)
	}
	got, err := r.store.GetCase(context.Background(), c.ID)
	if err != nil || got.State != string(refundflow.StateNeedsAttention) || got.RefundID != "" {
		t.Fatalf("after the old refund's callback: state %s refund %q, %v; want still needs_attention without a refund", got.State, got.RefundID, err)
	}
}

// Issue 11.1 on 1688: a create whose outcome is unknown (a gateway 503) and
// a callback carrying the order's refund from an hour before. 1688 states
// when a refund was applied for: one that predates the intent (beyond the
// clock-skew margin) is someone else's, so the case keeps waiting for
// evidence of its own create instead of ending as "closed".
func TestOld1688RefundIsNotTakenForALostCreate(t *testing.T) {
	r := newRig(t, manual)
	o, _ := r.order(sandbox.Platform1688, nil)
	old, err := r.sb.SeedRefund(sandbox.RefundSeed{Platform: sandbox.Platform1688, OrderID: o, Status: "refundclose",
		CreatedAt: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	r.sb.SetFaults(sandbox.Faults{DropPushRate: 1, ForceErrors: []sandbox.ForcedError{{Endpoint: "alibaba_create_refund", Kind: sandbox.ErrHTTP503, Count: 1}}})
	cmd := r.command(refundflow.InputRequestRefund, refundflow.Platform1688, o, "")
	cmd.Request = alibabaRequest(false, false)
	h := r.handle(cmd)
	ev := callback.Event{Platform: callback.Platform1688, Type: callback.TypeOrderRefund, Kind: callback.KindRefund,
		Body: `{}`, ID: "old-1688-refund-callback-1",
		Refund: &callback.RefundBody{RefundID: apiclient.FlexString(old.RefundID), OrderID: apiclient.FlexString(o)}}
	if _, err := r.engine().HandleCallback(context.Background(), ev, &refundflow.Message{ID: ev.ID}); err != nil {
		t.Fatal(err)
	}
	c, err := r.store.GetCase(context.Background(), h.CaseID)
	if err != nil || c.State != string(refundflow.StateSubmitting) || c.RefundID != "" || c.AttentionCode != refundflow.AttnWaitingEvidence {
		t.Fatalf("after the old refund's callback: state %s refund %q attention %q, %v; want submitting, no refund, waiting_evidence",
			c.State, c.RefundID, c.AttentionCode, err)
	}
	if !r.timelineHas(c.ID, old.RefundID+" on the platform predates") {
		t.Errorf("timeline does not record refund %s as someone else's", old.RefundID)
	}
}

// Issue 11.2: the order's refund list has more refunds than one page, the
// platform omits the total and/or caps the page size, and the case's own
// refund (its submit took effect, the answer was lost) is on a later page.
// A walk that stopped at page 1 took that as proof of absence and sent the
// submit again (a duplicate on the platform); the walk must find the refund
// or call the list inconclusive.
func TestListWithoutTotalOrWithCappedPagesIsNotProofOfAbsence(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults sandbox.Faults
	}{
		{"no total", sandbox.Faults{TaobaoListOmitTotal: true}},
		{"page size capped", sandbox.Faults{TaobaoListMaxPageSize: 5}},
		{"no total, page size capped", sandbox.Faults{TaobaoListOmitTotal: true, TaobaoListMaxPageSize: 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, manual)
			o, subs := r.orderWith(56)
			for _, sub := range subs[1:] { // 55 closed refunds on the order's other sub-orders: more than a page of 50
				if _, err := r.sb.SeedRefund(sandbox.RefundSeed{Platform: sandbox.PlatformTaobao, SubOrderID: sub, Status: "CLOSED",
					CreatedAt: time.Now().Add(-time.Hour)}); err != nil {
					t.Fatal(err)
				}
			}
			faults := tc.faults
			faults.DropPushRate = 1 // no callback names the refund: only the list can show it
			faults.ForceErrors = []sandbox.ForcedError{{Endpoint: "taobao_submit", Kind: sandbox.ErrHTTP503, Count: 1, AfterEffect: true}}
			r.sb.SetFaults(faults)
			cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, subs[0])
			cmd.Request = taobaoRequest(false)
			h := r.handle(cmd)
			c := r.waitState(h.CaseID, refundflow.StateWaitingSeller)
			st := r.sb.Stats()
			if n := st.RefundSubmissions["taobao:"+subs[0]]; n != 1 || st.DuplicateSubmissions != 0 {
				t.Fatalf("submissions %d, duplicates %d; want one (the refund on a later page is the case's)", n, st.DuplicateSubmissions)
			}
			if c.RefundID == "" {
				t.Fatal("case has no refund id")
			}
			if submits := r.stepsNamed(c.ID, refundflow.StepSubmit); len(submits) != 1 || submits[0].Begins != 1 || submits[0].Status != casestore.StepDone {
				t.Fatalf("submit attempts %+v; want one, begun once, settled done", submits)
			}
		})
	}
}

// Issue 11.3: a 1688 request sent with a sub-order id, then a corrected one
// without it. A 1688 case is one per order: the first is refused as
// invalid (and the CLI refuses it before publishing), so one case opens and
// the platform gets one create.
func TestTwo1688RequestsForOneOrderOpenOneCase(t *testing.T) {
	r := newRig(t, manual)
	o, _ := r.order(sandbox.Platform1688, nil)
	first := r.command(refundflow.InputRequestRefund, refundflow.Platform1688, o, "42")
	first.Request = alibabaRequest(false, false)
	if _, err := r.engine().HandleCommand(context.Background(), first, message(first)); !errors.Is(err, refundflow.ErrPermanent) ||
		!strings.Contains(err.Error(), "a 1688 case is one per order") {
		t.Fatalf("1688 request with a sub-order id: %v; want it refused as invalid", err)
	}
	second := r.command(refundflow.InputRequestRefund, refundflow.Platform1688, o, "")
	second.Request = alibabaRequest(false, false)
	h := r.handle(second)
	r.waitState(h.CaseID, refundflow.StateWaitingSeller)
	cases, err := r.store.ListCases(context.Background(), casestore.CaseFilter{Platform: "1688"})
	if err != nil || len(cases) != 1 {
		t.Fatalf("1688 cases: %d, %v; want one", len(cases), err)
	}
	if st := r.sb.Stats(); st.RefundSubmissions["1688:"+o] != 1 || st.DuplicateSubmissions != 0 {
		t.Fatalf("creates %d, duplicates %d; want one", st.RefundSubmissions["1688:"+o], st.DuplicateSubmissions)
	}
}

// Issue 11.4: a cancel issued 50 ms after a request, while the request is
// still reading its form (300 ms render latency), handled by the same
// process or by another one. It must neither fail as naming no case nor
// overtake the request: the case ends cancelled, and the platform got
// either no refund or a refund and its cancel.
func TestCancelWhileTheCaseIsBeingOpenedIsNotLost(t *testing.T) {
	for _, other := range []bool{false, true} {
		t.Run(map[bool]string{false: "same process", true: "another process"}[other], func(t *testing.T) {
			r := newRig(t, manual)
			r.sb.SetFaults(sandbox.Faults{LatencyMin: 300 * time.Millisecond, LatencyMax: 300 * time.Millisecond, Endpoints: []string{"taobao_render"}})
			o, so := r.order(sandbox.PlatformTaobao, nil)
			req := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
			req.Request = taobaoRequest(false)
			cancel := r.command(refundflow.InputCancel, refundflow.PlatformTaobao, o, so)
			canceller := r.engine()
			if other {
				canceller = r.newEngine("engine-other-process")
			}
			var wg sync.WaitGroup
			wg.Go(func() { r.handle(req) })
			// The cancel arrives while the request's render is on the wire:
			// the case is open and leased, and the request is not done.
			r.waitFor("the request's render call", func() bool { return r.sb.Stats().APICalls["taobao_render"] >= 1 })
			var h refundflow.Handled
			var err error
			for range 100 { // a consumer redelivers what is handed back
				h, err = canceller.HandleCommand(context.Background(), cancel, message(cancel))
				var re *refundflow.RetryError
				if !errors.As(err, &re) {
					break
				}
				<-time.After(20 * time.Millisecond)
			}
			wg.Wait()
			if err != nil {
				t.Fatalf("cancel during the request's render: %v; want it applied to the case being opened", err)
			}
			latest, err := r.store.LatestCase(context.Background(), refundflow.PlatformTaobao, o, so)
			if err != nil {
				t.Fatal(err)
			}
			id := latest.ID
			if h.Deferred {
				r.drive(canceller, id)
			}
			c := r.waitState(id, refundflow.StateCancelled)
			st := r.sb.Stats()
			subs := st.RefundSubmissions["taobao:"+so]
			switch {
			case subs == 0:
			case subs == 1 && c.RefundID != "" && st.Cancels[c.RefundID] == 1:
			default:
				t.Fatalf("submissions %d, refund %q, cancels %v; want none, or one refund and its cancel", subs, c.RefundID, st.Cancels)
			}
		})
	}
}

// Issue 11.5: the retry backoff's count of failed inputs lives in typed
// data (cases.failed_inputs). Rewording the timeline (here: rewriting every
// entry's text between two failures) must not change the backoff; it reset
// it when the count was read back from "retry later: " prose.
func TestRetryBackoffIsNotReadFromTimelineText(t *testing.T) {
	r := newRig(t, manual)
	o, so := r.order(sandbox.PlatformTaobao, nil)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(false)
	h := r.handle(cmd)
	r.waitState(h.CaseID, refundflow.StateWaitingSeller)
	r.callbacksApplied() // during the outage they would fail too (and count as failed inputs)
	const base = time.Second
	eng, err := refundflow.NewEngine(refundflow.EngineConfig{Store: r.store, Client: r.client, Policy: testPolicy,
		Owner: "engine-reworded", RetryDelay: base, RetryMax: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", r.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	r.sb.SetFaults(sandbox.Faults{ErrorRate: 1, ErrorKinds: []sandbox.ErrorKind{sandbox.ErrHTTP500}})
	for i, want := range []time.Duration{base, 2 * base, 4 * base} {
		if _, err := db.Exec(`UPDATE cases SET next_wake_at = 1 WHERE id = ?`, h.CaseID); err != nil {
			t.Fatal(err)
		}
		_, err := eng.Wake(ctx, h.CaseID, refundflow.InputTimer)
		var re *refundflow.RetryError
		if !errors.As(err, &re) || re.After != want {
			t.Fatalf("failed wake %d: %v; want a retry after %s", i+1, err, want)
		}
		if _, err := db.Exec(`UPDATE timeline SET summary = 'reworded by a later build', detail = '{}' WHERE case_id = ?`, h.CaseID); err != nil {
			t.Fatal(err)
		}
	}
	r.sb.SetFaults(sandbox.Faults{})
}

// Issue 11.10: a rejected call is not an unknown outcome. A rate-limited
// Taobao submit and a rate-limited 1688 create prove the platform did not
// apply them: each is sent again with the retry backoff, without the
// in-flight wait (an hour here) or the intent grace (an hour) that an
// unknown outcome needs, and each platform counts one submission.
func TestRateLimitedSubmitIsNotAnUnknownOutcome(t *testing.T) {
	for _, p := range []refundflow.Platform{refundflow.PlatformTaobao, refundflow.Platform1688} {
		t.Run(string(p), func(t *testing.T) {
			r := newRig(t, manual)
			policy := testPolicy
			policy.InFlight, policy.IntentGrace = time.Hour, time.Hour
			eng, err := refundflow.NewEngine(refundflow.EngineConfig{Store: r.store, Client: r.client, Policy: policy,
				Owner: "engine-ratelimit", RetryDelay: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			r.setEngine(eng)
			endpoint, plat := "taobao_submit", sandbox.PlatformTaobao
			if p == refundflow.Platform1688 {
				endpoint, plat = "alibaba_create_refund", sandbox.Platform1688
			}
			r.sb.SetFaults(sandbox.Faults{ForceErrors: []sandbox.ForcedError{{Endpoint: endpoint, Kind: sandbox.ErrRateLimit, Count: 3}}})
			o, so := r.order(plat, nil)
			cmd := r.command(refundflow.InputRequestRefund, p, o, so)
			if p == refundflow.PlatformTaobao {
				cmd.Request = taobaoRequest(false)
			} else {
				cmd.Request = alibabaRequest(false, false)
			}
			h := r.handle(cmd)
			c := r.waitState(h.CaseID, refundflow.StateWaitingSeller)
			key := "taobao:" + so
			if p == refundflow.Platform1688 {
				key = "1688:" + o
			}
			if n := r.sb.Stats().RefundSubmissions[key]; n != 1 {
				t.Fatalf("submissions %d; want 1", n)
			}
			submits := r.stepsNamed(c.ID, refundflow.StepSubmit)
			if len(submits) != 4 {
				t.Fatalf("submit attempts %d; want 4 (3 rate limited, 1 done)", len(submits))
			}
			for i, s := range submits[:3] {
				if s.Status != casestore.StepFailed || s.ErrorCode != fmt.Sprint(platform.Default().Code(platform.ClassRateLimited)) {
					t.Errorf("attempt %d: %s %s; want failed 4290 (closed: not applied)", i+1, s.Status, s.ErrorCode)
				}
			}
			if !r.timelineHas(c.ID, "; not applied") {
				t.Error("timeline does not say the rate-limited attempts were not applied")
			}
		})
	}
}

// Review of issue 11: a command that waited in the store is taken up, its
// decision and message intent commit, and the process dies before the
// call's result is recorded. Taken up again, the intent is settled
// (unverified: a message is never sent twice) and the command finds its
// intent already recorded. It must still be finished: its waiting row
// goes (with the inbox row), and the command behind it is applied, instead
// of both being taken up on every tick for ever.
func TestWaitingCommandWhoseIntentExistsIsFinished(t *testing.T) {
	r := newRig(t, manual)
	ctx := context.Background()
	o, so := r.order(sandbox.PlatformTaobao, nil)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(false)
	h := r.handle(cmd)
	c := r.waitState(h.CaseID, refundflow.StateWaitingSeller)
	r.callbacksApplied()

	first := r.command(refundflow.InputSendMessage, refundflow.PlatformTaobao, "", so)
	first.Message = "first message, cut off by a crash"
	m := message(first)
	key := fmt.Sprintf("case:%d:message:%s", c.ID, first.ID)
	if err := r.store.Update(ctx, func(tx *casestore.Tx) error {
		if err := tx.Defer(ctx, casestore.DeferredInput{CaseID: c.ID, MsgID: m.ID, Source: m.Source, Payload: m.Payload,
			NotBefore: time.Now().Add(-time.Second), Reason: "test"}); err != nil {
			return err
		}
		_, _, err := tx.BeginStep(ctx, c.ID, string(refundflow.StepMessage), key, "{}")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	second := r.command(refundflow.InputSendMessage, refundflow.PlatformTaobao, "", so)
	second.Message = "second message"
	if h, err := r.engine().HandleCommand(ctx, second, message(second)); err != nil || !h.Deferred {
		t.Fatalf("a command behind a waiting one: %+v, %v; want it deferred behind it", h, err)
	}
	r.drive(r.engine(), c.ID)
	if waiting, err := r.store.DeferredInputs(ctx, c.ID); err != nil || len(waiting) != 0 {
		t.Fatalf("waiting inputs after they were taken up: %+v, %v; want none", waiting, err)
	}
	for _, id := range []string{first.ID, second.ID} {
		if seen, err := r.store.InboxSeen(ctx, id); err != nil || !seen {
			t.Errorf("command %s in the inbox: %v, %v; want it recorded as applied", id, seen, err)
		}
	}
	res, err := r.client.TaobaoListMessages(ctx, apiclient.ListMessagesRequest{RefundID: c.RefundID, PageSize: 50})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(res.Data)
	if strings.Count(string(raw), "second message") != 1 || strings.Contains(string(raw), "cut off by a crash") {
		t.Fatalf("messages on the platform %s; want the second once and the first not sent again", raw)
	}
}

// Review of issue 11: the first submit reaches the platform late (it takes
// effect after our call gave up), the list shows nothing yet, so it is sent
// again under the same key, and the platform refuses that with 4092 ("an
// open refund already exists": the late one). The refusal is not applied,
// but it says nothing about the first attempt: the intent stays open, the
// case asks the platform again and finds its refund, instead of closing the
// intent and never seeing its refund (and cancelling blind).
func TestResendRefusedAsDuplicateKeepsTheIntentOpen(t *testing.T) {
	r := newRig(t, manual)
	o, so := r.order(sandbox.PlatformTaobao, nil)
	r.sb.SetFaults(sandbox.Faults{LatencyMin: time.Second, LatencyMax: time.Second, Endpoints: []string{"taobao_submit"},
		TimeoutAfter: 1500 * time.Millisecond,
		ForceErrors:  []sandbox.ForcedError{{Endpoint: "taobao_submit", Kind: sandbox.ErrLate, Count: 1}}})
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(false)
	h := r.handle(cmd)
	c := r.waitState(h.CaseID, refundflow.StateWaitingSeller)
	list, err := r.client.TaobaoList(context.Background(), apiclient.ListRefundsRequest{PurchaseOrderID: o, PageSize: 50})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Data.List) != 1 || list.Data.List[0].RefundOrder.RefundID.String() != c.RefundID {
		t.Fatalf("refunds on the order %+v; want exactly one, the case's %q", list.Data.List, c.RefundID)
	}
	for _, s := range r.stepsNamed(c.ID, refundflow.StepSubmit) {
		if s.Status == casestore.StepFailed {
			t.Errorf("submit intent %s closed as failed (%s); want it kept open and settled by the platform's view", s.IdempotencyKey, s.ErrorCode)
		}
	}
}

// A Taobao case opened by an older build (its plan has no record of the
// sub-order's refunds before its first submission) with its submission's
// outcome open, and a refund on that sub-order no case owns: the list can
// never tell whether it is the case's. The case parks at once, naming the
// refund and the one way out (TestARefundNoCaseCanOwnParksWithTheOneWayOut
// has the decisions).
func TestAnOlderBuildsCaseWithARefundNoCaseOwnsParksSayingSo(t *testing.T) {
	r := newRig(t, manual)
	ctx := context.Background()
	o, so := r.order(sandbox.PlatformTaobao, nil)
	seeded, err := r.sb.SeedRefund(sandbox.RefundSeed{Platform: sandbox.PlatformTaobao, OrderID: o, SubOrderID: so, Status: "wait_seller_agree"})
	if err != nil {
		t.Fatal(err)
	}
	req, err := json.Marshal(taobaoRequest(false))
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := r.store.Update(ctx, func(tx *casestore.Tx) error {
		c, err := tx.CreateCase(ctx, casestore.NewCase{Platform: casestore.PlatformTaobao, OrderID: o, SubOrderID: so,
			State: string(refundflow.StateSubmitting), Request: req, NextWakeAt: time.Now()})
		if err != nil {
			return err
		}
		id = c.ID
		c.Plan = json.RawMessage(`{"reasonId":1001,"fee":10000}`) // as an older build wrote it: no priorListed
		if _, err := tx.UpdateCase(ctx, c); err != nil {
			return err
		}
		_, _, err = tx.BeginStep(ctx, c.ID, string(refundflow.StepSubmit), fmt.Sprintf("case:%d:submit:v1", c.ID), "{}")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.engine().Wake(ctx, id, refundflow.InputTimer); err != nil {
		t.Fatal(err)
	}
	c, err := r.store.GetCase(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.State != string(refundflow.StateNeedsAttention) || c.AttentionCode != refundflow.CodeUnverifiable ||
		!strings.Contains(c.AttentionMessage, seeded.RefundID) || !strings.Contains(c.AttentionMessage, "older build") ||
		!strings.Contains(c.AttentionMessage, "--close") {
		t.Errorf("the older build's case: %s %s %q; want parked %s naming refund %s, the older build and --close",
			c.State, c.AttentionCode, c.AttentionMessage, refundflow.CodeUnverifiable, seeded.RefundID)
	}
	r.noDuplicates()
}
