package refundflow

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/platform"
)

// allViews is every kind of platform view for a platform: none, absent,
// inconclusive, each known status, an unknown status, another refund, and a
// status with a deadline.
func allViews(p Platform) []*PlatformView {
	vs := []*PlatformView{nil, {Found: false}, {Inconclusive: true}}
	if p == PlatformTaobao {
		for _, st := range []string{tbWaitSellerAgree, tbWaitBuyerReturn,
			tbWaitSellerReceive, tbSellerRefused, tbClosed,
			tbSuccess, "SOMETHING_NEW", ""} {
			vs = append(vs, tbView(st))
		}
		other := tbView(tbClosed)
		other.RefundID = "R-other"
		withDeadline := tbView(tbWaitSellerAgree)
		withDeadline.Deadline = now.Add(10 * time.Minute)
		shipped := tbView(tbWaitBuyerReturn)
		shipped.ReturnWaybill = shipment.Waybill
		// A refund no case owns; one a callback named that the list did
		// not show, on the case's order or filed under another.
		unattributed := &PlatformView{Inconclusive: true, Unattributed: []string{"R-unowned"}}
		hinted := &PlatformView{Inconclusive: true, CallbackRefund: "R-hinted"}
		elsewhere := &PlatformView{Inconclusive: true, Unattributed: []string{"R-hinted"}, CallbackRefund: "R-hinted",
			OrderElsewhere: &OrderElsewhere{SubOrderID: "201", CaseOrder: "200", PlatformOrder: "300", RefundID: "R-hinted"}}
		// Refunds read for an adoption: the case's sub-order's, open, and
		// another sub-order's.
		adoptOpen := adoptable(p, "R1", tbWaitSellerAgree, AdoptFacts{ForCase: true, Under: "201"})
		adoptElsewhere := adoptable(p, "R1", tbWaitSellerAgree, AdoptFacts{Under: "777"})
		return append(vs, other, withDeadline, shipped, received(tbView(tbWaitSellerReceive), "OT9000000001"),
			received(tbView(tbWaitSellerReceive), "w-1"), unattributed, hinted, elsewhere, adoptOpen, adoptElsewhere)
	}
	for _, st := range []string{abWaitSellerAgree, abSellerRefused,
		abWaitBuyerReturn, abWaitSellerReceive, abSuccess,
		abClosed, "somethingnew"} {
		vs = append(vs, alView(st))
	}
	other := alView(abClosed)
	other.RefundID = "R-other"
	return append(vs, other, received(alView(abWaitSellerReceive), "OT9000000001"), received(alView(abWaitSellerReceive), "w-1"),
		adoptable(p, "R1", abWaitSellerAgree, AdoptFacts{ForCase: true, Under: "200"}))
}

// received is v holding the return under waybill w: another than the
// fixtures' (W1), or theirs spelled otherwise.
func received(v *PlatformView, w string) *PlatformView {
	v.ReturnWaybill = w
	return v
}

// allCases is every state of the platform, needs_attention parked at every
// state it can park at (with view-raised and operator-caused codes), and
// every side-effect state with an open intent.
func allCases(p Platform) []CaseView {
	var cs []CaseView
	for _, s := range States() {
		c := fixture(p, s)
		if c.check() != nil {
			continue
		}
		cs = append(cs, c)
		if s.Terminal() || s == StateNeedsAttention {
			continue
		}
		for _, code := range []string{AttnSellerRefused, AttnPlatformError, AttnRefundMissing, AttnRefundExists} {
			na := c
			na.State, na.Parked, na.AttentionCode = StateNeedsAttention, s, code
			if code == AttnRefundExists {
				na.Plan.RefusedForOpen, na.Plan.PriorOpen = true, []string{"R0"}
			}
			if modifyState(s) { // a modification under way or stopped: its filed request kept
				filed := c.Request
				filed.Description = "as filed"
				na.Plan.Filed = &filed
			}
			cs = append(cs, na)
			if st := stepOf(p, s); st.SideEffect() {
				na.Intent = &Intent{Step: st, Key: fmt.Sprintf("case:7:%s:v1", st), Since: now.Add(-time.Minute)}
				cs = append(cs, na)
			}
			if p == PlatformTaobao && c.RefundID != "" {
				na.Intent = &Intent{Step: StepMessage, Key: "case:7:message:refusal"}
				cs = append(cs, na)
			}
		}
		if s == StateSubmitting {
			// A submission the platform cannot confirm, its intent open or
			// settled unverified (the refund found there may be adopted).
			na := c
			na.State, na.Parked, na.AttentionCode = StateNeedsAttention, s, CodeUnverifiable
			cs = append(cs, na)
			na.Intent = &Intent{Step: StepSubmit, Key: "case:7:submit:v1", Since: now.Add(-time.Hour)}
			cs = append(cs, na)
		}
		if st := stepOf(p, s); st.SideEffect() {
			withIntent := c
			withIntent.Intent = &Intent{Step: st, Key: fmt.Sprintf("case:7:%s:v2", st), Since: now.Add(-time.Minute)}
			cs = append(cs, withIntent)
		}
		// Worker processes ended on it: as many as the limit (held by the
		// next input), and held (worker_ended), with and without an
		// open intent; and a parked case they ended on.
		ended := c
		ended.LeasesAbandoned = policy.EndedLimit
		held := c
		held.State, held.Parked, held.AttentionCode = StateNeedsAttention, s, CodeWorkerEnded
		parkedEnded := held
		parkedEnded.AttentionCode, parkedEnded.LeasesAbandoned = AttnPlatformError, policy.EndedLimit+1
		heldParked, heldFlagged := held, held
		heldParked.Held = &Attention{Code: AttnSellerRefused, Message: "the seller refused"}
		heldFlagged.Held = &Attention{Code: AttnWaitingEvidence, Message: "until noon"}
		cs = append(cs, ended, held, parkedEnded, heldParked, heldFlagged)
		if st := stepOf(p, s); st.SideEffect() {
			for _, e := range []CaseView{ended, held} {
				e.Intent = &Intent{Step: st, Key: fmt.Sprintf("case:7:%s:v3", st), Since: now.Add(-time.Minute)}
				cs = append(cs, e)
			}
		}
		if p == PlatformTaobao && s.waiting() {
			msgIntent := c
			msgIntent.Intent = &Intent{Step: StepMessage, Key: "case:7:message:refusal"}
			cs = append(cs, msgIntent)
		}
	}
	// A case flagged because the platform holds its return under another
	// waybill.
	flagged := fixture(p, StateWaitingSellerReceive)
	flagged.AttentionCode, flagged.AttentionMessage = AttnReturnWaybillDiffers, "the platform holds return waybill \"OT9000000001\""
	cs = append(cs, flagged)
	// Every case again with news of its order not yet decided on.
	for _, c := range slices.Clone(cs) {
		if !c.State.Terminal() {
			cs = append(cs, withEvents(c, orderCancelled), withEvents(c, priceCorrected), withEvents(c, orderPaid))
		}
	}
	return cs
}

func allInputs(c CaseView) []Input {
	var ins []Input
	for _, col := range columns {
		ins = append(ins, matrixInput(c, col))
	}
	// Another shipment than the case's (one replacing an open return
	// submission the platform shows absent).
	ins = append(ins, Input{Kind: InputReportShipment, Now: now, ID: "cmd-ship-other", Shipment: &Shipment{Company: "YTO", Waybill: "YT1000000001"}})
	// A modification (one replacing an open modification the platform
	// shows absent, the refund still refused).
	amount := int64(100)
	ins = append(ins, Input{Kind: InputModify, Now: now, ID: "cmd-modify", Modify: &Modification{Amount: &amount}})
	ins = append(ins, Input{Kind: InputResolve, Now: now, ID: "cmd-resolve-retry", Resolve: &Resolve{Action: ResolveRetry}},
		Input{Kind: InputResolve, Now: now, ID: "cmd-resolve-close", Resolve: &Resolve{Action: ResolveClose, Note: "refunded by phone"}},
		Input{Kind: InputResolve, Now: now, ID: "cmd-resolve-adopt", Resolve: &Resolve{Action: ResolveAdopt, Refund: "R1"}})
	for _, st := range []StepName{StepRender, StepReasons, StepUploadVouchers, StepSubmit, StepReturnRender, StepReturnSubmit, StepCancel, StepMessage} {
		r := okResult(st)
		if c.Intent != nil && c.Intent.Step == st {
			r.Key = c.Intent.Key
		}
		ins = append(ins, Input{Kind: InputStepResult, Now: now, Result: r})
	}
	return ins
}

// TestDecideProperties checks the invariants over every platform × case ×
// view × input.
func TestDecideProperties(t *testing.T) {
	n := 0
	patient := Decider{Policy: policy}
	patient.Policy.IntentGrace = time.Hour
	for _, p := range []Platform{PlatformTaobao, Platform1688} {
		for _, c := range allCases(p) {
			for _, v := range allViews(p) {
				for _, in := range allInputs(c) {
					for _, d := range []Decider{decider, patient} {
						n++
						got := d.Decide(c, v, in)
						where := fmt.Sprintf("%s %s/%s intent=%v × view %+v × %s (grace %v)", p, c.State, c.Parked, c.Intent != nil, v, in.Kind, d.Policy.IntentGrace)
						checkDecision(t, where, c, v, in, got)
						// The flag is only ever on a case waiting for the seller to
						// receive, and never raised while the platform holds the
						// case's waybill (a flag kept over a decision that did not
						// read the view is keepWaybillFlag's, checked below).
						if got.Attention != nil && got.Attention.Code == AttnReturnWaybillDiffers && (got.State != StateWaitingSellerReceive ||
							(c.AttentionCode != AttnReturnWaybillDiffers && v != nil && sameWaybill(v.ReturnWaybill, shipment.Waybill))) {
							t.Errorf("%s: %s flags return_waybill_differs outside waiting_seller_receive, or with the platform holding the case's waybill", where, cell(got))
						}
						if c.AttentionCode == AttnReturnWaybillDiffers && c.State == StateWaitingSellerReceive && got.State == StateWaitingSellerReceive &&
							(got.Outcome == OutcomeAct || got.Outcome == OutcomeNoOp) && got.Code != codeWaybillAgrees && got.Attention == nil {
							t.Errorf("%s: %s drops the return_waybill_differs flag without the waybills agreeing", where, cell(got))
						}
						checkFollowUps(t, d, where, c, v, in, got)
						if again := d.Decide(c, v, in); !reflect.DeepEqual(again, got) {
							t.Errorf("%s: not deterministic: %+v then %+v", where, got, again)
						}
					}
				}
			}
		}
	}
	// With an attempt that may still be in flight, nothing is ever sent again.
	wary := Decider{Policy: policy}
	wary.Policy.InFlight = time.Hour
	for _, p := range []Platform{PlatformTaobao, Platform1688} {
		for _, c := range allCases(p) {
			if c.Intent == nil {
				continue
			}
			it := *c.Intent
			it.LastAttempt = now.Add(-time.Second)
			c.Intent = &it
			for _, v := range allViews(p) {
				for _, in := range allInputs(c) {
					n++
					got := wary.Decide(c, v, in)
					where := fmt.Sprintf("%s %s/%s intent %s in flight × view %+v × %s", p, c.State, c.Parked, it.Step, v, in.Kind)
					checkDecision(t, where, c, v, in, got)
					resultOfIntent := in.Kind == InputStepResult && in.Result != nil && in.Result.Key == it.Key
					if !resultOfIntent && got.Step != nil && got.Step.Name == it.Step {
						t.Errorf("%s: sent %s again (resume %v) while the last attempt may be in flight", where, got.Step.Name, got.Step.Resume)
					}
				}
			}
		}
	}
	t.Logf("%d combinations checked", n)
	if n < 5000 {
		t.Fatalf("only %d combinations checked", n)
	}
}

func checkDecision(t *testing.T, where string, c CaseView, v *PlatformView, in Input, got Decision) {
	t.Helper()
	if r0, r1 := Rank(c.State, c.Parked), Rank(got.State, got.Parked); r1 < r0 {
		t.Errorf("%s: rank %d (%s/%s) → %d (%s/%s): moved backwards", where, r0, c.State, c.Parked, r1, got.State, got.Parked)
	}
	if c.State.Terminal() && (got.Outcome != OutcomeNoOp && got.Outcome != OutcomeReject || got.State != c.State || got.Step != nil) {
		t.Errorf("%s: terminal case got %s → %s", where, got.Outcome, got.State)
	}
	if got.Outcome != OutcomeAct && (got.State != c.State || got.Parked != c.Parked || got.Step != nil || got.Resolve != nil) {
		t.Errorf("%s: %s must change nothing, got state %s/%s step %v", where, got.Outcome, got.State, got.Parked, got.Step)
	}
	// Only an act's documents and refund id are stored (commit's caseRow):
	// one carried by another outcome would be lost without a word.
	if got.Outcome != OutcomeAct && (got.Plan != nil || got.Request != nil || got.Shipment != nil || got.RefundID != "") {
		t.Errorf("%s: %s carries documents or a refund id, which are not stored: %+v", where, got.Outcome, got)
	}
	if in.Kind == InputTimer && c.State == StateNeedsAttention && got.Outcome == OutcomeNoOp && !got.WakeAt.IsZero() && !got.WakeAt.After(in.Now) {
		t.Errorf("%s: a stopped case's timer changed nothing and left its timer due (%v): it would wake every tick", where, got.WakeAt)
	}
	if got.State == StateNeedsAttention {
		if got.Attention == nil || got.Attention.Code == "" || !got.Parked.Valid() || got.Parked.Terminal() || got.Parked == StateNeedsAttention {
			if got.Outcome == OutcomeAct {
				t.Errorf("%s: needs_attention without a reason or a valid parked state: %+v", where, got)
			}
		}
	} else if got.Parked != "" {
		t.Errorf("%s: state %s with parked %s", where, got.State, got.Parked)
	}
	if s := got.Step; s != nil {
		if s.Name.SideEffect() && s.Key == "" {
			t.Errorf("%s: side effect %s without an idempotency key", where, s.Name)
		}
		if (s.Name == StepReturnSubmit || s.Name == StepCancel || s.Name == StepMessage) && s.RefundID == "" {
			t.Errorf("%s: %s without a refund id", where, s.Name)
		}
	}
	// A case held because worker processes ended on it makes no platform
	// call but for an operator's resolve; one they ended on as many times
	// as the limit is held by any input but a step's result.
	isHeld := c.State == StateNeedsAttention && c.AttentionCode == CodeWorkerEnded
	released := isHeld && in.Kind == InputResolve && in.Resolve.Action == ResolveRetry
	held := isHeld && in.Kind != InputResolve && in.Kind != InputStepResult
	holds := !c.State.Terminal() && !isHeld && c.LeasesAbandoned >= policy.EndedLimit && in.Kind != InputStepResult && in.Kind != InputResolve
	switch {
	case c.State.Terminal():
	case released:
		// The hold comes off, and nothing is sent: a parked case stops
		// again for its own reason, any other is taken up now.
		wasParked := c.Held != nil && c.Held.Code != "" && !slices.Contains(FlagCodes(), c.Held.Code)
		ok := got.Outcome == OutcomeAct && got.Step == nil && got.Resolve == nil && !got.Reapply && got.Code == "retried"
		ok = ok && got.WakeAt.Equal(in.Now)
		if wasParked {
			ok = ok && got.State == StateNeedsAttention && got.Parked == c.Parked && got.Attention != nil && *got.Attention == *c.Held
		} else {
			ok = ok && got.State == c.Parked &&
				((c.Held == nil && got.Attention == nil) || (c.Held != nil && got.Attention != nil && *got.Attention == *c.Held))
		}
		if !ok {
			t.Errorf("%s: retry of a held case (held from %+v): %s at %s/%s attention %+v wake %v; want the hold off, the case as it was",
				where, c.Held, cell(got), got.State, got.Parked, got.Attention, got.WakeAt)
		}
		return
	case held:
		if want := map[bool]Outcome{true: OutcomeReject, false: OutcomeNoOp}[isCommand(in.Kind)]; got.Outcome != want ||
			got.Code != CodeWorkerEnded || got.Step != nil || !got.WakeAt.IsZero() {
			t.Errorf("%s: held case got %s (wake %v); want %s/%s, no step, no timer", where, cell(got), got.WakeAt, want, CodeWorkerEnded)
		}
	case holds:
		keeps := Attention{Code: c.AttentionCode, Message: c.AttentionMessage}
		if got.Outcome != OutcomeAct || got.State != StateNeedsAttention || got.Parked != c.effective() || got.Attention == nil ||
			got.Attention.Code != CodeWorkerEnded || !got.Reapply || got.Step != nil || got.Resolve != nil || !got.WakeAt.IsZero() ||
			got.Held == nil || *got.Held != keeps {
			t.Errorf("%s: %d processes ended on the case: got %s parked %s reapply %v; want it held at %s, decided again",
				where, c.LeasesAbandoned, cell(got), got.Parked, got.Reapply, c.effective())
		}
		return
	}
	if held {
		return
	}
	if in.Kind == InputResolve && !c.State.Terminal() {
		checkResolve(t, where, c, v, in, got)
	}
	if c.Intent != nil && !c.State.Terminal() {
		resultOfIntent := in.Kind == InputStepResult && in.Result != nil && in.Result.Key == c.Intent.Key
		// Closing a parked case touches nothing on the platform, and a
		// resolve of a case that is not parked is refused, as is an
		// adoption with a side effect in question: none asks.
		asks := !resultOfIntent && !(in.Kind == InputResolve && (in.Resolve.Action == ResolveClose || in.Resolve.Action == ResolveAdopt ||
			c.State != StateNeedsAttention))
		if v == nil && asks && got.Outcome != OutcomeFetch {
			t.Errorf("%s: open intent without a view: got %s; want fetch", where, got.Outcome)
		}
		if !resultOfIntent && got.Step != nil && got.Step.Name == c.Intent.Step && (!got.Step.Resume || got.Step.Key != c.Intent.Key) {
			t.Errorf("%s: re-sent %s without settling the intent (resume %v key %q)", where, got.Step.Name, got.Step.Resume, got.Step.Key)
		}
		if !resultOfIntent && got.Step != nil && got.Step.Name == c.Intent.Step && got.Step.Name == StepMessage {
			t.Errorf("%s: a message of unknown fate was sent again", where)
		}
	}
	if ended := slices.ContainsFunc(c.OrderEvents, func(e OrderEvent) bool { return e.Ended }); ended && c.beforeSubmit() &&
		got.Step != nil && got.Step.Name == StepSubmit {
		t.Errorf("%s: the order ended before submission, yet it submits", where)
	}
	if len(c.OrderEvents) > 0 && got.Outcome == OutcomeAct && got.OrderEventsSeen == 0 && !c.State.Terminal() && got.State != StateClosedLocally &&
		c.Intent == nil && !(in.Kind == InputStepResult && in.Result != nil && in.Result.Step.SideEffect()) {
		t.Errorf("%s: acted (%s) without noting the order's news", where, cell(got))
	}
	if c.Intent == nil && in.Kind == InputCallback && v == nil && !c.State.Terminal() && got.Outcome != OutcomeFetch {
		t.Errorf("%s: callback without a view: got %s; want fetch", where, got.Outcome)
	}
}

// checkResolve: only a parked case is resolved; closing it ends it locally
// with no step, taking over any open intent unconfirmed; a retry never
// leaves it closed.
func checkResolve(t *testing.T, where string, c CaseView, v *PlatformView, in Input, got Decision) {
	t.Helper()
	switch {
	case c.State != StateNeedsAttention:
		if got.Outcome != OutcomeReject || got.Code != CodeNotParked {
			t.Errorf("%s: resolve of a case that is not parked: %s; want reject/%s", where, cell(got), CodeNotParked)
		}
	case in.Resolve.Action == ResolveClose:
		if got.Outcome != OutcomeAct || got.State != StateClosedLocally || got.Step != nil {
			t.Errorf("%s: close: %s; want act:closed_locally without a step", where, cell(got))
		}
		if c.Intent != nil && (got.Resolve == nil || got.Resolve.Key != c.Intent.Key || got.Resolve.Done) {
			t.Errorf("%s: close with an open intent: resolution %+v; want the intent closed unconfirmed", where, got.Resolve)
		}
	case in.Resolve.Action == ResolveAdopt:
		if v != nil && v.Adopting != nil && got.Outcome == OutcomeAct && got.Code != CodeAdopted && got.RefundID != "" {
			t.Errorf("%s: adopt: %s %s took refund %q without adopting it (a view of the refund to adopt taken for the case's own)", where, cell(got), got.Code, got.RefundID)
		}
		if got.Outcome != OutcomeAct || got.Code != CodeAdopted { // the order's news first, or refused
			return
		}
		if !(c.AttentionCode == AttnRefundExists && c.Intent == nil) && !submissionUnverified(c) || c.RefundID != "" {
			t.Errorf("%s: adopt of a case not blocked by another refund nor unconfirmed at its submission, or with its own: %s; want it refused", where, cell(got))
		}
		if c.Intent != nil && (got.Resolve == nil || got.Resolve.Key != c.Intent.Key || got.Resolve.Done) {
			t.Errorf("%s: adopt with an open intent: resolution %+v; want the intent closed unconfirmed", where, got.Resolve)
		}
		if got.RefundID != in.Resolve.Refund || got.Code != CodeAdopted || got.Plan == nil || got.Plan.Adopted != in.Resolve.Refund ||
			got.State == StateClosedLocally || got.Reapply || got.Step != nil {
			t.Errorf("%s: adopt: %s %s refund %q plan %+v; want the refund taken, followed, nothing of the case's sent", where, cell(got), got.Code, got.RefundID, got.Plan)
		}
	default:
		// (With the order's news pending, the news is decided first and the
		// retry after it: Reapply.)
		if got.State == StateClosedLocally || (got.Reapply && len(c.OrderEvents) == 0) {
			t.Errorf("%s: retry: %s (reapply %v); want neither closed nor decided again", where, cell(got), got.Reapply)
		}
	}
}

// confirmsAbsent is the test's own oracle: does view v positively show that
// side effect s of case c did not take effect? Only then may it be sent again.
func confirmsAbsent(c CaseView, v *PlatformView, s StepName) bool {
	if v == nil || v.Inconclusive {
		return false
	}
	sameRefund := c.RefundID == "" || v.RefundID == "" || v.RefundID == c.RefundID
	open := c.Platform == PlatformTaobao && (v.Phase == platform.PhaseWaitSellerAgree ||
		v.Phase == platform.PhaseWaitBuyerReturn || v.Phase == platform.PhaseWaitSellerReceive ||
		v.Phase == platform.PhaseSellerRefused)
	waitReturn := v.Phase == platform.PhaseWaitBuyerReturn
	switch s {
	case StepSubmit:
		return !v.Found
	case StepReturnSubmit:
		return v.Found && sameRefund && waitReturn && v.ReturnWaybill == ""
	case StepCancel:
		return v.Found && sameRefund && open
	case StepModify:
		return v.Found && sameRefund && v.Phase == platform.PhaseSellerRefused // still refused: not modified
	}
	return false // messages cannot be checked
}

// checkFollowUps: with an open intent, a side effect is sent (at all) only
// under the intent's key and only if the view positively shows it absent;
// and once Decide settles the intent without that proof or a confirmation,
// no later non-command input (callback, timer, reconcile, step result), with
// any view, ever sends that side effect under a new key. (Commands are the
// operator's own decision and are excluded.)
func checkFollowUps(t *testing.T, d Decider, where string, c CaseView, v *PlatformView, in Input, got Decision) {
	t.Helper()
	if c.Intent == nil || c.State.Terminal() || got.Outcome != OutcomeAct {
		return
	}
	it := *c.Intent
	if in.Kind == InputStepResult && in.Result != nil && in.Result.Key == it.Key {
		return
	}
	if s := got.Step; s != nil && s.Name == it.Step {
		if !s.Resume || s.Key != it.Key || !confirmsAbsent(c, v, it.Step) {
			t.Errorf("%s: re-sent %s (resume %v key %q) on a view that does not show it absent", where, s.Name, s.Resume, s.Key)
		}
		return
	}
	if got.Resolve == nil || got.Resolve.Done {
		return
	}
	c2 := apply(c, got)
	steps := []Decision{}
	if got.Reapply && in.Kind != InputSendMessage { // a new message is the operator's own new effect
		d2 := d.Decide(c2, v, in)
		steps = append(steps, d2)
		c2 = apply(c2, d2)
	}
	for _, v2 := range allViews(c.Platform) {
		for _, in2 := range allInputs(c2) {
			if isCommand(in2.Kind) {
				continue
			}
			in2.Now = in2.Now.Add(time.Hour)
			steps = append(steps, d.Decide(c2, v2, in2))
		}
	}
	if ((got.Resolve.Code == CodeShipmentReplaced && in.Kind == InputReportShipment) ||
		(got.Resolve.Code == CodeModificationReplaced && in.Kind == InputModify)) && confirmsAbsent(c, v, it.Step) {
		// The one exception: a return or a modification the platform
		// positively shows absent, past the in-flight window, replaced by
		// the operator's correction; a resend on that evidence would be
		// as new to the platform, which takes no idempotency key.
		return
	}
	for _, d2 := range steps {
		if s := d2.Step; s != nil && s.Name == it.Step && s.Key != it.Key {
			t.Errorf("%s: intent %s settled unconfirmed (%s), then sent again under a new key %q (%s)", where, it.Key, got.Resolve.Code, s.Key, cell(d2))
			return
		}
	}
}

func TestDecideRejectsBadInput(t *testing.T) {
	good := fixture(PlatformTaobao, StateWaitingSeller)
	for _, tc := range []struct {
		name string
		c    CaseView
		in   Input
		code string
	}{
		{"no time", good, Input{Kind: InputTimer}, CodeInvalidInput},
		{"unknown kind", good, Input{Kind: "poke", Now: now}, CodeInvalidInput},
		{"unknown platform", CaseView{Platform: "ebay", State: StateRequested}, Input{Kind: InputTimer, Now: now}, CodeInvalidCase},
		{"unknown state", CaseView{Platform: PlatformTaobao, State: "limbo"}, Input{Kind: InputTimer, Now: now}, CodeInvalidCase},
		{"parked nowhere", CaseView{Platform: PlatformTaobao, State: StateNeedsAttention}, Input{Kind: InputTimer, Now: now}, CodeInvalidCase},
		{"parked at terminal", CaseView{Platform: PlatformTaobao, State: StateNeedsAttention, Parked: StateClosed}, Input{Kind: InputTimer, Now: now}, CodeInvalidCase},
		{"parked outside attention", CaseView{Platform: PlatformTaobao, State: StateWaitingSeller, Parked: StateRequested}, Input{Kind: InputTimer, Now: now}, CodeInvalidCase},
		{"intent of a read", CaseView{Platform: PlatformTaobao, State: StateRendering, Intent: &Intent{Step: StepRender, Key: "k"}}, Input{Kind: InputTimer, Now: now}, CodeInvalidCase},
		{"request missing", fixture(PlatformTaobao, StateRequested), Input{Kind: InputRequestRefund, Now: now}, CodeInvalidInput},
		{"request invalid", fixture(PlatformTaobao, StateRequested), Input{Kind: InputRequestRefund, Now: now, Request: &Request{GoodsStatus: "9"}}, CodeInvalidInput},
		{"shipment missing", fixture(PlatformTaobao, StateWaitingReturnShipment), Input{Kind: InputReportShipment, Now: now}, CodeInvalidInput},
		{"shipment invalid", fixture(PlatformTaobao, StateWaitingReturnShipment), Input{Kind: InputReportShipment, Now: now, Shipment: &Shipment{Company: "SF", Waybill: "a\x00b"}}, CodeInvalidInput},
		{"empty message", good, Input{Kind: InputSendMessage, Now: now, Message: "  "}, CodeInvalidInput},
		{"control characters", good, Input{Kind: InputSendMessage, Now: now, Message: "hi\x1b[2J"}, CodeInvalidInput},
		{"result missing", fixture(PlatformTaobao, StateRendering), Input{Kind: InputStepResult, Now: now}, CodeInvalidInput},
	} {
		got := decider.Decide(tc.c, nil, tc.in)
		if got.Outcome != OutcomeReject || got.Code != tc.code || got.State != tc.c.State {
			t.Errorf("%s: Decide = %s/%s state %s (%s); want reject/%s, state unchanged", tc.name, got.Outcome, got.Code, got.State, got.Reason, tc.code)
		}
	}
}

func TestRequestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Platform
		r    Request
		ok   bool
	}{
		{"taobao ok", PlatformTaobao, taobaoRequest(), true},
		{"taobao reason by text, full amount", PlatformTaobao, Request{GoodsStatus: "1", Reason: "damaged"}, true},
		{"taobao goods status", PlatformTaobao, Request{GoodsStatus: "4", ReasonID: 1}, false},
		{"taobao no reason", PlatformTaobao, Request{GoodsStatus: "1"}, false},
		{"taobao negative amount", PlatformTaobao, Request{GoodsStatus: "1", ReasonID: 1, Amount: -1}, false},
		{"taobao carriage", PlatformTaobao, Request{GoodsStatus: "1", ReasonID: 1, Carriage: 5}, false},
		{"1688 ok", Platform1688, alibabaRequest(), true},
		{"1688 amount required", Platform1688, Request{GoodsStatus: "aftersaleBuyerReceived", ReasonID: 1, Description: "ok ok"}, false},
		{"1688 goods status", Platform1688, Request{GoodsStatus: "2", ReasonID: 1, Amount: 1, Description: "ok ok"}, false},
		{"1688 return before receipt", Platform1688, Request{ReturnGoods: true, GoodsStatus: "refundWaitSellerSend", ReasonID: 1, Amount: 1, Description: "ok ok"}, false},
		{"1688 short description", Platform1688, Request{GoodsStatus: "refundWaitSellerSend", ReasonID: 1, Amount: 1, Description: "x"}, false},
		{"1688 too many vouchers", Platform1688, Request{GoodsStatus: "refundWaitSellerSend", ReasonID: 1, Amount: 1, Description: "ok ok", Vouchers: []string{"a", "b", "c", "d", "e", "f"}}, false},
		{"unknown platform", "ebay", taobaoRequest(), false},
	} {
		err := tc.r.Validate(tc.p)
		if (err == nil) != tc.ok {
			t.Errorf("%s: Validate = %v; want ok %v", tc.name, err, tc.ok)
		}
	}
}
