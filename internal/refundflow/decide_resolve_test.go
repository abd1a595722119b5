package refundflow

import (
	"strings"
	"testing"
	"time"
)

// parkedCase is a case of platform p stopped at state at for reason code.
func parkedCase(p Platform, at State, code string) CaseView {
	c := fixture(p, at)
	c.State, c.Parked, c.AttentionCode, c.AttentionMessage = StateNeedsAttention, at, code, "why it stopped"
	c.WakeAt = time.Time{}
	return c
}

func resolveInput(a ResolveAction, note string) Input {
	return Input{Kind: InputResolve, Now: now, ID: "cmd-resolve-1", Resolve: &Resolve{Action: a, Note: note}}
}

// TestResolveEveryAttentionReason: for each way a case stops, what a retry
// does (with the platform's view where it needs one), and that closing
// always ends it locally without a step.
func TestResolveEveryAttentionReason(t *testing.T) {
	absent := &PlatformView{Found: false}
	for _, tc := range []struct {
		name string
		c    CaseView
		v    *PlatformView
		want string // the retry's cell
		in   string // a word the retry's reason must contain
	}{
		{"form: reason not offered, read again", parkedCase(PlatformTaobao, StateRendering, AttnReasonNotOffered), nil, "act:rendering+render", "retried by the operator"},
		{"form: fee out of bounds", parkedCase(PlatformTaobao, StateRendering, AttnFeeOutOfBounds), nil, "act:rendering+render", "fee_out_of_bounds"},
		{"1688 reasons: voucher required", parkedCase(Platform1688, StateRendering, AttnVoucherRequired), nil, "act:rendering+reasons", "voucher_required"},
		{"1688 voucher upload returned nothing", parkedCase(Platform1688, StateUploadingVouchers, AttnBadStepResult), nil, "act:uploading_vouchers+upload_vouchers", ""},
		{"carriers read again", parkedCase(PlatformTaobao, StateReturnRendering, AttnCompanyRejected), nil, "act:return_rendering+return_render", ""},
		{"stored request invalid: no use", parkedCase(PlatformTaobao, StateRendering, CodeInvalidRequest), nil, "reject/cannot_retry", "request again"},
		{"submit refused: ask first", parkedCase(PlatformTaobao, StateSubmitting, AttnPlatformError), nil, "fetch/verify", ""},
		{"submit refused, nothing there: submit again", parkedCase(PlatformTaobao, StateSubmitting, AttnPlatformError), absent, "act:submitting+submit", ""},
		{"1688 create refused, nothing there", parkedCase(Platform1688, StateSubmitting, AttnPlatformError), absent, "act:submitting+submit", ""},
		{"submit refused, a refund there after all: follow it", parkedCase(PlatformTaobao, StateSubmitting, AttnPlatformError), tbView(tbWaitSellerAgree), "act:waiting_seller", ""},
		{"platform cannot tell", parkedCase(Platform1688, StateSubmitting, AttnPlatformError), &PlatformView{Inconclusive: true}, "reject/cannot_retry", "cannot tell"},
		{"cancel refused, refund still open: cancel again", parkedCase(PlatformTaobao, StateCancelling, AttnPlatformError), tbView(tbWaitSellerAgree), "act:cancelling+cancel", ""},
		{"return refused, none on the platform: send again", parkedCase(PlatformTaobao, StateReturnSubmitting, AttnPlatformError), tbView(tbWaitBuyerReturn), "act:return_submitting+return_submit", ""},
		{"seller still refuses (Taobao)", parkedCase(PlatformTaobao, StateWaitingSeller, AttnSellerRefused), tbView(tbSellerRefused), "reject/cannot_retry", "--close"},
		{"seller still refuses (1688)", parkedCase(Platform1688, StateWaitingSeller, AttnSellerRefused), alView(abSellerRefused), "reject/cannot_retry", "--close"},
		{"seller now agrees to a return", parkedCase(PlatformTaobao, StateWaitingSeller, AttnSellerRefused), tbView(tbWaitBuyerReturn), "act:waiting_return_shipment", ""},
		{"refund still missing", parkedCase(PlatformTaobao, StateWaitingSeller, AttnRefundMissing), absent, "reject/cannot_retry", "no refund for this case"},
		{"refund back", parkedCase(PlatformTaobao, StateWaitingSeller, AttnRefundMissing), tbView(tbWaitSellerReceive), "act:waiting_seller_receive", ""},
		{"status now known", parkedCase(Platform1688, StateWaitingSeller, AttnUnknownStatus), alView(abSuccess), "act:succeeded", ""},
		{"status still unknown", parkedCase(Platform1688, StateWaitingSeller, AttnUnknownStatus), alView("somethingnew"), "reject/cannot_retry", "somethingnew"},
		{"another refund open: read the form again", parkedCase(PlatformTaobao, StateSubmitting, AttnRefundExists), nil, "act:rendering+render", "refund_exists"},
		{"1688: another refund open: read the reasons again", parkedCase(Platform1688, StateSubmitting, AttnRefundExists), nil, "act:rendering+reasons", "refund_exists"},
	} {
		got := decider.Decide(tc.c, tc.v, resolveInput(ResolveRetry, "seller called"))
		if cell(got) != tc.want {
			t.Errorf("%s: retry = %s (%s); want %s", tc.name, cell(got), got.Reason, tc.want)
		}
		if !strings.Contains(got.Reason, tc.in) {
			t.Errorf("%s: retry's reason %q does not say %q", tc.name, got.Reason, tc.in)
		}
		if got.Outcome == OutcomeAct && (got.Code != "retried" || !strings.Contains(got.Reason, "seller called")) {
			t.Errorf("%s: retry recorded as %s %q; want code retried with the note", tc.name, got.Code, got.Reason)
		}
		if s := got.Step; s != nil && s.Name.SideEffect() && s.Key == "" {
			t.Errorf("%s: side effect without a key", tc.name)
		}
		closed := decider.Decide(tc.c, tc.v, resolveInput(ResolveClose, "refunded by bank transfer"))
		if cell(closed) != "act:closed_locally" || closed.Resolve != nil || !strings.Contains(closed.Reason, "refunded by bank transfer") ||
			!strings.Contains(closed.Reason, tc.c.AttentionCode) {
			t.Errorf("%s: close = %s %q; want act:closed_locally, its reason with the note and the attention", tc.name, cell(closed), closed.Reason)
		}
	}
}

// TestResolveRetryNeverRepeatsASideEffectThatMayHaveHappened: where the
// platform shows the effect, or cannot rule it out, the step is not sent.
func TestResolveRetryNeverRepeatsASideEffectThatMayHaveHappened(t *testing.T) {
	shipped := tbView(tbWaitBuyerReturn)
	shipped.ReturnWaybill = shipment.Waybill
	for _, tc := range []struct {
		name string
		c    CaseView
		v    *PlatformView
	}{
		{"return: our waybill is there", parkedCase(PlatformTaobao, StateReturnSubmitting, AttnBadStepResult), shipped},
		{"return: the platform shows a refused refund", parkedCase(PlatformTaobao, StateReturnSubmitting, AttnBadStepResult), tbView(tbSellerRefused)},
		{"cancel: an unknown status", parkedCase(PlatformTaobao, StateCancelling, AttnBadStepResult), tbView("SOMETHING_NEW")},
	} {
		got := decider.Decide(tc.c, tc.v, resolveInput(ResolveRetry, ""))
		if got.Step != nil && got.Step.Name.SideEffect() {
			t.Errorf("%s: retry sent %s (%s)", tc.name, got.Step.Name, cell(got))
		}
	}
}

// TestResolveWithAnOpenIntent: a retry is the settling of the intent (asked
// first, sent again only when the platform shows it absent, and not decided
// again afterwards); a close takes the intent over unconfirmed, unasked.
func TestResolveWithAnOpenIntent(t *testing.T) {
	c := parkedCase(Platform1688, StateSubmitting, CodeUnverifiable)
	c.RefundID = ""
	c.Intent = &Intent{Step: StepSubmit, Key: "case:7:submit:v2", Since: now.Add(-2 * time.Hour), LastAttempt: now.Add(-2 * time.Hour)}

	mustCell(t, "retry without a view", decider.Decide(c, nil, resolveInput(ResolveRetry, "")), "fetch/intent_unsettled")
	got := decider.Decide(c, &PlatformView{Inconclusive: true}, resolveInput(ResolveRetry, ""))
	mustCell(t, "retry, the platform still cannot tell", got, "reject/intent_unverifiable")
	if !strings.Contains(got.Reason, "resolve 7 --close") {
		t.Errorf("the refusal %q does not give the way out", got.Reason)
	}
	got = decider.Decide(c, &PlatformView{Found: false}, resolveInput(ResolveRetry, ""))
	if got.Step == nil || got.Step.Key != c.Intent.Key || !got.Step.Resume || got.Reapply || got.Code != "retried" {
		t.Errorf("retry, the platform shows no refund: %s step %+v reapply %v; want the create sent again under its key, once", cell(got), got.Step, got.Reapply)
	}
	got = decider.Decide(c, alView(abWaitSellerAgree), resolveInput(ResolveRetry, ""))
	if got.State != StateWaitingSeller || got.Resolve == nil || !got.Resolve.Done || got.Reapply {
		t.Errorf("retry, the platform has the refund: %s resolution %+v; want waiting_seller, the intent confirmed", cell(got), got.Resolve)
	}

	got = decider.Decide(c, nil, resolveInput(ResolveClose, "no refund in the back office"))
	mustCell(t, "close without a view", got, "act:closed_locally")
	if got.Resolve == nil || got.Resolve.Key != c.Intent.Key || got.Resolve.Done || got.Resolve.Code != "closed_locally" {
		t.Errorf("close: resolution %+v; want the intent closed unconfirmed", got.Resolve)
	}
}

// TestResolveOnlyAParkedCase: every other case is refused, saying why.
func TestResolveOnlyAParkedCase(t *testing.T) {
	for _, p := range []Platform{PlatformTaobao, Platform1688} {
		for _, s := range States() {
			c := fixture(p, s)
			if c.check() != nil || s == StateNeedsAttention {
				continue
			}
			for _, a := range []ResolveAction{ResolveRetry, ResolveClose} {
				got := decider.Decide(c, nil, resolveInput(a, "note"))
				want := "reject/" + CodeNotParked
				if s.Terminal() {
					want = "reject/" + CodeCaseFinished
				}
				if cell(got) != want || got.Reason == "" {
					t.Errorf("%s %s × %s: %s (%q); want %s with a reason", p, s, a, cell(got), got.Reason, want)
				}
			}
		}
	}
	c := fixture(PlatformTaobao, StateSubmitting)
	c.AttentionCode, c.AttentionMessage = AttnWaitingEvidence, "waiting for evidence until 2026-05-20T09:00:00Z"
	if got := decider.Decide(c, nil, resolveInput(ResolveClose, "x")); !strings.Contains(got.Reason, "2026-05-20T09:00:00Z") {
		t.Errorf("waiting for evidence: %q; want the deadline named", got.Reason)
	}
}

func TestResolveValidate(t *testing.T) {
	for _, tc := range []struct {
		r    Resolve
		want string // "" valid, else part of the error
	}{
		{Resolve{Action: ResolveRetry}, ""},
		{Resolve{Action: ResolveRetry, Note: "seller called"}, ""},
		{Resolve{Action: ResolveClose, Note: "refunded by phone"}, ""},
		{Resolve{Action: ResolveClose}, "note: required to close"},
		{Resolve{Action: ResolveClose, Note: "   "}, "note: required to close"},
		{Resolve{Action: ResolveClose, Note: strings.Repeat("x", MaxNote+1)}, "at most 500"},
		{Resolve{Action: ResolveRetry, Note: "a\x1b[2Jb"}, "note: at most"},
		{Resolve{Action: "reopen"}, `action "reopen": want retry, close or adopt`},
	} {
		err := tc.r.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v; want valid", tc.r, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: %v; want an error with %q", tc.r, err, tc.want)
		}
	}
	cmd := Command{ID: "cmd-resolve-1", Kind: InputResolve, Platform: PlatformTaobao, SubOrderID: "123", OrderID: "1"}
	if err := cmd.Validate(); err == nil || !strings.Contains(err.Error(), "caseId: required for resolve") || !strings.Contains(err.Error(), "resolve: required") {
		t.Errorf("resolve without a case id or an action: %v", err)
	}
	amount := int64(100)
	if err := (Command{ID: "cmd-modify-1", Kind: InputModify, Platform: PlatformTaobao, SubOrderID: "123", Modify: &Modification{Amount: &amount}}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "caseId: required for modify_refund") {
		t.Errorf("modify without a case id: %v", err)
	}
	cmd = Command{ID: "cmd-resolve-1", Kind: InputResolve, Platform: Platform1688, CaseID: 4, Resolve: &Resolve{Action: ResolveClose, Note: "done"}}
	if err := cmd.Validate(); err != nil {
		t.Errorf("a valid resolve: %v", err)
	}
	if in := cmd.Input(now); in.Resolve == nil || in.Resolve.Note != "done" {
		t.Errorf("Input carries %+v; want the resolve", in.Resolve)
	}
}

// TestMessageKeyIsTheCommands: a message's idempotency key comes from the
// command's id, so a redelivered send_message finds its intent and never
// posts twice; without a command id (none in practice) the case version.
func TestMessageKeyIsTheCommands(t *testing.T) {
	c := fixture(PlatformTaobao, StateWaitingSeller)
	got := decider.Decide(c, nil, Input{Kind: InputSendMessage, Now: now, ID: "cmd-msg-1", Message: "hello"})
	if got.Step == nil || got.Step.Key != "case:7:message:cmd-msg-1" {
		t.Errorf("message step %+v; want key case:7:message:cmd-msg-1", got.Step)
	}
	got = decider.Decide(c, nil, Input{Kind: InputSendMessage, Now: now, Message: "hello"})
	if got.Step == nil || got.Step.Key != "case:7:message:v3" {
		t.Errorf("message step without a command id %+v; want key case:7:message:v3", got.Step)
	}
}

// TestModifyIntentSettledByTheView: a modification whose answer was lost is
// confirmed by a view no longer refused, sent again (same key) only while
// the view still shows the refusal, and neither on a finished refund.
func TestModifyIntentSettledByTheView(t *testing.T) {
	c := fixture(PlatformTaobao, StateModifying)
	c.Intent = &Intent{Step: StepModify, Key: "case:7:modify:v2", Since: now.Add(-time.Hour), LastAttempt: now.Add(-time.Hour)}
	timer := Input{Kind: InputTimer, Now: now}

	got := decider.Decide(c, tbView(tbWaitSellerAgree), timer)
	if got.State != StateWaitingSeller || got.Resolve == nil || !got.Resolve.Done || got.Step != nil {
		t.Errorf("view waiting for the seller: %s resolution %+v; want waiting_seller, the modification confirmed", cell(got), got.Resolve)
	}
	got = decider.Decide(c, tbView(tbSellerRefused), timer)
	if got.Step == nil || got.Step.Name != StepModify || got.Step.Key != c.Intent.Key || !got.Step.Resume {
		t.Errorf("view still refused: %s step %+v; want the modification sent again under its key", cell(got), got.Step)
	}
	for _, st := range []string{tbClosed, tbSuccess} {
		got = decider.Decide(c, tbView(st), timer)
		if got.Step != nil && got.Step.Name == StepModify || got.Resolve == nil || got.Resolve.Done {
			t.Errorf("view %s: %s resolution %+v; want the modification neither confirmed nor sent again", st, cell(got), got.Resolve)
		}
	}
}

func TestModificationValidate(t *testing.T) {
	amount, zero, negative, desc := int64(300), int64(0), int64(-1), "new words"
	for _, tc := range []struct {
		m    Modification
		want string // "" valid, else part of the error
	}{
		{Modification{ReasonID: 11}, ""},
		{Modification{Reason: "damaged"}, ""},
		{Modification{Amount: &amount}, ""},
		{Modification{Amount: &zero}, ""},
		{Modification{Description: &desc}, ""},
		{Modification{Vouchers: []string{"https://img/1.png"}}, ""},
		{Modification{}, "nothing to change"},
		{Modification{ReasonID: -2}, "reasonId: must be positive"},
		{Modification{ReasonID: 11, Reason: "damaged"}, "not both"},
		{Modification{Amount: &negative}, "amount: must not be negative"},
		{Modification{Reason: strings.Repeat("x", 2*maxField+1)}, "reason: at most 128 characters"},
		{Modification{Reason: strings.Repeat("x", 2*maxField)}, ""},
		{Modification{Reason: "\xff"}, "reason: at most"},
	} {
		err := tc.m.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v; want valid", tc.m, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: %v; want an error with %q", tc.m, err, tc.want)
		}
	}
	r := Request{GoodsStatus: "1", ReasonID: 5, Amount: 900, Description: "old", Vouchers: []string{"a"}}
	if got := (Modification{Reason: "damaged"}).apply(r); got.ReasonID != 0 || got.Reason != "damaged" || got.Amount != 900 || got.Description != "old" {
		t.Errorf("a reason by text: %+v; want the text instead of the id, the rest as filed", got)
	}
	if got := (Modification{ReasonID: 7, Amount: &zero, Description: &desc, Vouchers: []string{}}).apply(r); got.ReasonID != 7 ||
		got.Amount != 0 || got.Description != desc || len(got.Vouchers) != 0 {
		t.Errorf("every field: %+v; want each replaced", got)
	}
}

// TestOperatorAmountsAndModificationChecks: the one reading of an amount as
// operators write it, and what a modification is checked for before it is
// sent, shared by refundctl and the console.
func TestOperatorAmountsAndModificationChecks(t *testing.T) {
	for _, tc := range []struct {
		p    Platform
		in   string
		want int64
		ok   bool
	}{
		{PlatformTaobao, "max", 0, true}, {PlatformTaobao, "9500", 9500, true}, {Platform1688, "0", 0, true},
		{Platform1688, "max", 0, false}, {PlatformTaobao, "-1", 0, false}, {PlatformTaobao, "9.5", 0, false}, {PlatformTaobao, "", 0, false},
	} {
		got, err := ParseAmount(tc.p, tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseAmount(%s, %q) = %d, %v; want %d, ok %v", tc.p, tc.in, got, err, tc.want, tc.ok)
		}
	}
	long := strings.Repeat("长", maxDescription+1)
	if err := (Modification{Description: &long}).CheckFor(PlatformTaobao); err == nil {
		t.Errorf("a Taobao modification with a %d-character description passed", maxDescription+1)
	}
	if err := (Modification{Description: &long}).CheckFor(Platform1688); err != nil {
		t.Errorf("on 1688 the worker refuses the modification itself; CheckFor said %v", err)
	}
	if err := (Modification{}).CheckFor(PlatformTaobao); err == nil || !strings.Contains(err.Error(), "nothing to change") {
		t.Errorf("an empty modification: %v", err)
	}
}
