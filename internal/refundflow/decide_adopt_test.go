package refundflow

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// blockedCase is a case stopped because the platform refused its
// submission for an open refund it did not file, R9.
func blockedCase(p Platform) CaseView {
	c := parkedCase(p, StateSubmitting, AttnRefundExists)
	c.Plan.RefusedForOpen, c.Plan.PriorRefunds, c.Plan.PriorOpen = true, []string{"R8", "R9"}, []string{"R9"}
	return c
}

func adoptInput(refund string) Input {
	return Input{Kind: InputResolve, Now: now, ID: "cmd-adopt-1", Resolve: &Resolve{Action: ResolveAdopt, Refund: refund, Note: "the buyer filed it"}}
}

// adoptable is the view of refund id in status st, as read for an
// adoption, with the facts the engine found.
func adoptable(p Platform, id, st string, facts AdoptFacts) *PlatformView {
	v := tbView(st)
	if p == Platform1688 {
		v = alView(st)
	}
	v.RefundID, v.Adopting = id, &facts
	return v
}

// TestAdoptingTheRefundThatBlocksACase: the operator adopts the open
// refund the buyer filed on the platform's site; the case takes it as its
// own, where the platform shows it, and sends nothing to take it.
func TestAdoptingTheRefundThatBlocksACase(t *testing.T) {
	for _, tc := range []struct {
		name  string
		p     Platform
		st    string
		want  string
		facts AdoptFacts
	}{
		{"Taobao, waiting for the seller", PlatformTaobao, tbWaitSellerAgree, "act:waiting_seller", AdoptFacts{ForCase: true, Under: "201"}},
		{"Taobao, the seller wants the goods back", PlatformTaobao, tbWaitBuyerReturn, "act:waiting_return_shipment", AdoptFacts{ForCase: true, Under: "201"}},
		{"Taobao, listed for the sub-order, the answer silent on it", PlatformTaobao, tbWaitSellerAgree, "act:waiting_seller", AdoptFacts{ForCase: true}},
		// The refusal came before the adoption: the policy's message,
		// which answers refusals as they come, is not sent.
		{"Taobao, refused by the seller", PlatformTaobao, tbSellerRefused, "act:needs_attention", AdoptFacts{ForCase: true, Under: "201"}},
		{"Taobao, left open by an earlier case closed locally", PlatformTaobao, tbWaitSellerAgree, "act:waiting_seller",
			AdoptFacts{ForCase: true, Under: "201", Owner: 3, OwnerState: StateClosedLocally}},
		{"1688, waiting for the seller", Platform1688, abWaitSellerAgree, "act:waiting_seller", AdoptFacts{ForCase: true, Under: "200"}},
	} {
		c := blockedCase(tc.p)
		v := adoptable(tc.p, "R9", tc.st, tc.facts)
		got := decider.Decide(c, nil, adoptInput("R9"))
		if cell(got) != "fetch/"+CodeReadToAdopt {
			t.Errorf("%s: without a view: %s; want the refund read first (fetch/%s)", tc.name, cell(got), CodeReadToAdopt)
		}
		got = decider.Decide(c, v, adoptInput("R9"))
		if cell(got) != tc.want || got.Code != CodeAdopted || got.RefundID != "R9" {
			t.Errorf("%s: %s %s refund %q (%s); want %s, %s, refund R9", tc.name, cell(got), got.Code, got.RefundID, got.Reason, tc.want, CodeAdopted)
			continue
		}
		if got.Plan == nil || got.Plan.Adopted != "R9" || got.Plan.RefusedForOpen {
			t.Errorf("%s: plan %+v; want it to say R9 was adopted, the refusal gone", tc.name, got.Plan)
		}
		if got.Step != nil {
			t.Errorf("%s: step %s; adopting sends nothing", tc.name, got.Step.Name)
		}
		if !strings.Contains(got.Reason, "refund R9 adopted by the operator (was refund_exists at submitting)") || !strings.Contains(got.Reason, "the buyer filed it") {
			t.Errorf("%s: reason %q; want who adopted what, from where, and the note", tc.name, got.Reason)
		}
		if tc.facts.Owner != 0 && !strings.Contains(got.Reason, "from case 3 (closed_locally)") {
			t.Errorf("%s: reason %q; want the case it was taken from named", tc.name, got.Reason)
		}
	}
}

// TestAdoptingIsRefusedWhereTheRefundIsNotTheOneThatBlocks: every refusal
// changes nothing and says why, and the way on where there is one.
func TestAdoptingIsRefusedWhereTheRefundIsNotTheOneThatBlocks(t *testing.T) {
	blocked := blockedCase(PlatformTaobao)
	own := blocked
	own.RefundID = "R1"
	refused := parkedCase(PlatformTaobao, StateWaitingSeller, AttnSellerRefused)
	refused.RefundID = ""
	withIntent := blocked
	withIntent.Intent = &Intent{Step: StepSubmit, Key: "case:7:submit:v2", Since: now}
	notParked := fixture(PlatformTaobao, StateRendering)
	open := AdoptFacts{ForCase: true, Under: "201"}
	for _, tc := range []struct {
		name string
		c    CaseView
		v    *PlatformView
		code string
		in   string // words the refusal must contain
	}{
		{"another sub-order's refund", blocked, adoptable(PlatformTaobao, "R9", tbWaitSellerAgree, AdoptFacts{Under: "777"}), CodeCannotAdopt, "under sub-order 777, not this case's"},
		{"another order's (1688)", blockedCase(Platform1688), adoptable(Platform1688, "R9", abWaitSellerAgree, AdoptFacts{Under: "555"}), CodeCannotAdopt, "under order 555"},
		{"the answer does not say, and never listed", blocked, adoptable(PlatformTaobao, "R7", tbWaitSellerAgree, AdoptFacts{}), CodeCannotAdopt, "resolve 7 --retry"},
		{"no such refund", blocked, &PlatformView{Found: false, Adopting: &AdoptFacts{}}, CodeCannotAdopt, "has no refund R9"},
		{"the platform cannot tell", blocked, &PlatformView{Inconclusive: true, Adopting: &AdoptFacts{}}, CodeCannotAdopt, "try again later"},
		{"a view not read for the adoption", blocked, tbView(tbWaitSellerAgree), CodeCannotAdopt, "try again later"},
		{"an open case follows it", blocked, adoptable(PlatformTaobao, "R9", tbWaitSellerAgree, AdoptFacts{ForCase: true, Under: "201", Owner: 4, OwnerState: StateWaitingSeller}),
			CodeCannotAdopt, "case 4 follows refund R9"},
		{"it has ended closed", blocked, adoptable(PlatformTaobao, "R9", tbClosed, open), CodeCannotAdopt, "no longer blocks this case: `refundctl resolve 7 --retry`"},
		{"its status is not known", blocked, adoptable(PlatformTaobao, "R9", "SOMETHING_NEW", open), CodeCannotAdopt, `status this build does not know ("SOMETHING_NEW")`},
		{"it has ended refunded", blocked, adoptable(PlatformTaobao, "R9", tbSuccess, open), CodeCannotAdopt, "does not block this case"},
		{"an earlier case followed it to its end", blocked, adoptable(PlatformTaobao, "R9", tbWaitSellerAgree,
			AdoptFacts{ForCase: true, Under: "201", Owner: 3, OwnerState: StateSucceeded}), CodeCannotAdopt, "case 3 follows refund R9 (succeeded)"},
		{"1688: the answer does not say the order", blockedCase(Platform1688), adoptable(Platform1688, "R9", abWaitSellerAgree, AdoptFacts{}), CodeCannotAdopt, "1688's back office"},
		{"the case has a refund of its own", own, adoptable(PlatformTaobao, "R9", tbWaitSellerAgree, open), CodeCannotAdopt, "follows refund R1 already"},
		{"the case stopped for another reason", refused, adoptable(PlatformTaobao, "R9", tbWaitSellerAgree, open), CodeCannotAdopt, "seller_refused"},
		{"the case has a submission in question", withIntent, adoptable(PlatformTaobao, "R9", tbWaitSellerAgree, open), CodeCannotAdopt, "refund_exists"},
		{"the case is not stopped", notParked, adoptable(PlatformTaobao, "R9", tbWaitSellerAgree, open), CodeNotParked, "not stopped"},
	} {
		got := decider.Decide(tc.c, tc.v, adoptInput("R9"))
		if got.Outcome != OutcomeReject || got.Code != tc.code || !strings.Contains(got.Reason, tc.in) {
			t.Errorf("%s: %s %s %q; want reject/%s saying %q", tc.name, cell(got), got.Code, got.Reason, tc.code, tc.in)
		}
		if got.RefundID != "" || got.Plan != nil || got.Step != nil {
			t.Errorf("%s: the refusal changes the case: refund %q plan %+v step %+v", tc.name, got.RefundID, got.Plan, got.Step)
		}
	}
}

// TestAnAdoptedRefundIsNotModifiedFromHere: what an adopted refund asks for
// is the platform's; a modification made from the case's request would
// send parts of a request never filed.
func TestAnAdoptedRefundIsNotModifiedFromHere(t *testing.T) {
	c := parkedCase(PlatformTaobao, StateWaitingSeller, AttnSellerRefused)
	c.RefundID, c.Plan.Adopted = "R9", "R9"
	amount := int64(300)
	got := decider.Decide(c, nil, Input{Kind: InputModify, Now: now, ID: "cmd-modify-1", Modify: &Modification{Amount: &amount}})
	if got.Outcome != OutcomeReject || got.Code != CodeNotSupported || !strings.Contains(got.Reason, "platform's site") || !strings.Contains(got.Reason, "resolve 7 --close") {
		t.Errorf("modify an adopted refund: %s %s %q; want reject/%s with the ways on", cell(got), got.Code, got.Reason, CodeNotSupported)
	}
}

// TestResolveValidatesTheRefundToAdopt: adopt needs a refund id; the others
// take none.
func TestResolveValidatesTheRefundToAdopt(t *testing.T) {
	for _, tc := range []struct {
		r  Resolve
		in string // "" valid
	}{
		{Resolve{Action: ResolveAdopt, Refund: "4102938475610293847"}, ""},
		{Resolve{Action: ResolveAdopt, Refund: "TQ1234567890123456"}, ""},
		{Resolve{Action: ResolveAdopt}, "refund: required to adopt"},
		{Resolve{Action: ResolveAdopt, Refund: "R 9"}, "letters, digits"},
		{Resolve{Action: ResolveAdopt, Refund: strings.Repeat("9", MaxRefundID+1)}, "at most 64"},
		{Resolve{Action: ResolveRetry, Refund: "R9"}, "only to adopt"},
		{Resolve{Action: ResolveClose, Refund: "R9", Note: "x"}, "only to adopt"},
		{Resolve{Action: "take"}, "want retry, close or adopt"},
	} {
		err := tc.r.Validate()
		switch {
		case tc.in == "" && err != nil:
			t.Errorf("%+v: %v; want valid", tc.r, err)
		case tc.in != "" && (err == nil || !strings.Contains(err.Error(), tc.in)):
			t.Errorf("%+v: %v; want an error saying %q", tc.r, err, tc.in)
		}
	}
}

// TestAdoptingWithTheOrdersNewsPending: news of the order the case has not
// seen comes first, as for a retry, and never takes the view of the refund
// to adopt for the case's own: an ended order ends the case (the adoption
// then refused on the finished case); other news is noted with the
// adoption, which is judged as without it.
func TestAdoptingWithTheOrdersNewsPending(t *testing.T) {
	news := func(ended bool) CaseView {
		c := blockedCase(PlatformTaobao)
		c.OrderEvents = []OrderEvent{{ID: 41, Type: "ORDER_STATUS", Kind: "order_status", Status: "WAIT_SELLER_SEND", Ended: ended}}
		return c
	}
	open := AdoptFacts{ForCase: true, Under: "201"}
	got := decider.Decide(news(false), adoptable(PlatformTaobao, "R9", tbWaitSellerAgree, open), adoptInput("R9"))
	if cell(got) != "act:waiting_seller" || got.Code != CodeAdopted || got.RefundID != "R9" || got.OrderEventsSeen != 41 {
		t.Errorf("adopt with news pending: %s %s refund %q seen %d (%s); want adopted, the news noted (41)", cell(got), got.Code, got.RefundID, got.OrderEventsSeen, got.Reason)
	}
	// Another sub-order's refund: refused, with news pending or not (its
	// view never taken for the case's refund).
	got = decider.Decide(news(false), adoptable(PlatformTaobao, "R9", tbWaitSellerAgree, AdoptFacts{Under: "777"}), adoptInput("R9"))
	if got.Outcome != OutcomeReject || got.Code != CodeCannotAdopt || got.RefundID != "" {
		t.Errorf("adopt another sub-order's refund with news pending: %s %s refund %q; want reject/%s", cell(got), got.Code, got.RefundID, CodeCannotAdopt)
	}
	got = decider.Decide(news(false), adoptable(PlatformTaobao, "R9", tbClosed, open), adoptInput("R9"))
	if got.Outcome != OutcomeReject || got.State == StateClosed {
		t.Errorf("adopt a closed refund with news pending: %s; want reject, the case not closed by the other refund", cell(got))
	}
	got = decider.Decide(news(true), adoptable(PlatformTaobao, "R9", tbWaitSellerAgree, open), adoptInput("R9"))
	if cell(got) != "act:cancelled" || got.RefundID != "" || !got.Reapply {
		t.Errorf("adopt on an ended order: %s refund %q reapply %v; want cancelled (order_ended), no refund, the adoption decided again", cell(got), got.RefundID, got.Reapply)
	}
}

// TestAdoptingTheRefundOfASubmissionThePlatformCannotConfirm: a case whose
// submission the platform cannot confirm (an older build's case beside a
// refund no case owns, a 1688 create whose answer was lost) had only
// --close; the refund the operator finds there may now be adopted. The
// open submit intent is closed with it, unconfirmed and not sent again.
func TestAdoptingTheRefundOfASubmissionThePlatformCannotConfirm(t *testing.T) {
	for _, p := range []Platform{PlatformTaobao, Platform1688} {
		c := parkedCase(p, StateSubmitting, CodeUnverifiable)
		c.Intent = &Intent{Step: StepSubmit, Key: "case:7:submit:v2", Since: now.Add(-time.Hour)}
		st, under := tbWaitSellerAgree, "201"
		if p == Platform1688 {
			st, under = abWaitSellerAgree, "200"
		}
		if got := decider.Decide(c, nil, adoptInput("R9")); cell(got) != "fetch/"+CodeReadToAdopt {
			t.Errorf("%s: adopt without a view: %s; want the refund read first", p, cell(got))
		}
		got := decider.Decide(c, adoptable(p, "R9", st, AdoptFacts{ForCase: true, Under: under}), adoptInput("R9"))
		if cell(got) != "act:waiting_seller" || got.RefundID != "R9" || got.Code != CodeAdopted || got.Step != nil {
			t.Fatalf("%s: adopt: %s %s refund %q (%s); want waiting_seller following R9, nothing sent", p, cell(got), got.Code, got.RefundID, got.Reason)
		}
		if r := got.Resolve; r == nil || r.Key != c.Intent.Key || r.Done || r.Code != CodeAdopted || !strings.Contains(r.Note, "never confirmed") {
			t.Errorf("%s: adopt: intent resolution %+v; want %s closed unconfirmed, by the adoption", p, r, c.Intent.Key)
		}
		// Settled unverified already: taken, nothing to close.
		c.Intent = nil
		got = decider.Decide(c, adoptable(p, "R9", st, AdoptFacts{ForCase: true, Under: under}), adoptInput("R9"))
		if got.Code != CodeAdopted || got.Resolve != nil || got.RefundID != "R9" {
			t.Errorf("%s: adopt after the intent was settled: %s %s resolve %+v; want adopted, nothing to close", p, cell(got), got.Code, got.Resolve)
		}
	}
	// Stopped on the platform's refusals of its resends (the older build's
	// case beside a refund no case owns says to adopt it too): taken.
	resent := parkedCase(PlatformTaobao, StateSubmitting, CodeResendsFailed)
	resent.Intent = &Intent{Step: StepSubmit, Key: "case:7:submit:v2", Since: now.Add(-time.Hour)}
	if got := decider.Decide(resent, adoptable(PlatformTaobao, "R9", tbWaitSellerAgree, AdoptFacts{ForCase: true, Under: "201"}), adoptInput("R9")); got.Code != CodeAdopted ||
		got.Resolve == nil || got.Resolve.Key != resent.Intent.Key {
		t.Errorf("adopt on intent_resends_failed: %s %s resolve %+v; want adopted, the intent closed", cell(got), got.Code, got.Resolve)
	}
	// The submission may have made the refund, which has ended since: the
	// case ends with it (for a refund that blocks a case, refused).
	unconfirmed := parkedCase(PlatformTaobao, StateSubmitting, CodeUnverifiable)
	if got := decider.Decide(unconfirmed, adoptable(PlatformTaobao, "R9", tbClosed, AdoptFacts{ForCase: true, Under: "201"}), adoptInput("R9")); cell(got) != "act:closed" ||
		got.RefundID != "R9" || got.Plan == nil || !got.Plan.AdoptedUnconfirmed {
		t.Errorf("adopt an ended refund for an unconfirmed submission: %s refund %q plan %+v; want closed with it, marked unconfirmed", cell(got), got.RefundID, got.Plan)
	}
	// A refund listed on the sub-order before the case submitted is not
	// the submission (review 118: the console offered it): refused, and
	// nothing read.
	prior := parkedCase(PlatformTaobao, StateSubmitting, CodeUnverifiable)
	prior.Intent = &Intent{Step: StepSubmit, Key: "case:7:submit:v2", Since: now.Add(-time.Hour)}
	prior.Plan.PriorRefunds, prior.Plan.PriorOpen = []string{"R8"}, []string{"R8"}
	if got := decider.Decide(prior, nil, adoptInput("R8")); got.Outcome != OutcomeReject || got.Code != CodeCannotAdopt ||
		!strings.Contains(got.Reason, "was on the sub-order before case 7 submitted") || got.Resolve != nil {
		t.Errorf("adopt, for an unconfirmed submission, a refund listed before it: %s %s %q; want refused, the intent left open", cell(got), got.Code, got.Reason)
	}
	// The last attempt may still reach the platform: not yet.
	inFlight := parkedCase(PlatformTaobao, StateSubmitting, CodeUnverifiable)
	inFlight.Intent = &Intent{Step: StepSubmit, Key: "case:7:submit:v2", Since: now.Add(-time.Hour), LastAttempt: now.Add(-time.Second)}
	wary := Decider{Policy: policy}
	wary.Policy.InFlight = time.Minute
	if got := wary.Decide(inFlight, adoptable(PlatformTaobao, "R9", tbWaitSellerAgree, AdoptFacts{ForCase: true, Under: "201"}), adoptInput("R9")); got.Outcome != OutcomeReject ||
		got.Code != CodeCannotAdopt || !strings.Contains(got.Reason, "may still reach the platform") || got.Resolve != nil {
		t.Errorf("adopt while the last attempt may be in flight: %s %s %q; want refused until it cannot arrive", cell(got), got.Code, got.Reason)
	}
	// A return submission the platform cannot confirm: the case has its
	// refund; there is nothing to adopt.
	ret := parkedCase(PlatformTaobao, StateReturnSubmitting, CodeUnverifiable)
	ret.Intent = &Intent{Step: StepReturnSubmit, Key: "case:7:return_submit:v5", Since: now.Add(-time.Hour)}
	if got := decider.Decide(ret, adoptable(PlatformTaobao, "R9", tbWaitSellerAgree, AdoptFacts{ForCase: true, Under: "201"}), adoptInput("R9")); got.Outcome != OutcomeReject ||
		got.Code != CodeCannotAdopt || got.Resolve != nil {
		t.Errorf("adopt on an unconfirmed return: %s %s; want reject/%s, the intent left alone", cell(got), got.Code, CodeCannotAdopt)
	}
}

// TestAdoptCandidatesAreTheRefundsTheAttentionNames: the console's Adopt
// form is filled in from the plan. It took the refunds the form listed
// open only, so a case whose sub-order the platform files under another
// order, whose attention text names the refund a callback named there,
// had an empty field; and then (review 118) it offered a refund listed
// before the case submitted to a case whose submission the platform
// cannot confirm, which is not that submission. Which refunds depends on
// the stop, as the attention texts do.
func TestAdoptCandidatesAreTheRefundsTheAttentionNames(t *testing.T) {
	elsewhere := &OrderElsewhere{SubOrderID: "5", CaseOrder: "4", PlatformOrder: "6", RefundID: "R9"}
	for _, tc := range []struct {
		name      string
		plan      Plan
		attention string
		want      []string
		by        string
	}{
		{"refund_exists: listed open", Plan{PriorOpen: []string{"R1", "R2"}, PriorRefunds: []string{"R0", "R1", "R2"}, CallbackRefund: "R9"},
			AttnRefundExists, []string{"R1", "R2"}, "listed open"},
		{"refund_exists, none listed open", Plan{CallbackRefund: "R9"}, AttnRefundExists, nil, ""},
		{"unverifiable: filed under another order", Plan{CallbackRefund: "R9", OrderElsewhere: elsewhere}, CodeUnverifiable,
			[]string{"R9"}, "files the sub-order under"},
		{"unverifiable: named by a callback", Plan{CallbackRefund: "R8"}, CodeUnverifiable, []string{"R8"}, "named by a callback"},
		{"unverifiable: listed open before the submission", Plan{PriorOpen: []string{"R1"}, PriorRefunds: []string{"R1"}}, CodeUnverifiable, nil, ""},
		{"resends failed: a callback's refund listed before", Plan{CallbackRefund: "R1", PriorRefunds: []string{"R1"}}, CodeResendsFailed, nil, ""},
		{"none known", Plan{}, CodeUnverifiable, nil, ""},
	} {
		got, by := tc.plan.AdoptCandidates(tc.attention)
		if !slices.Equal(got, tc.want) || !strings.Contains(by, tc.by) {
			t.Errorf("%s: AdoptCandidates = %v, %q; want %v, saying %q", tc.name, got, by, tc.want, tc.by)
		}
	}
}
