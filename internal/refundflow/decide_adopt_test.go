package refundflow

import (
	"strings"
	"testing"
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
		{"Taobao, refunded already", PlatformTaobao, tbSuccess, "act:succeeded", AdoptFacts{ForCase: true, Under: "201"}},
		{"Taobao, refused by the seller (the policy's message to the seller)", PlatformTaobao, tbSellerRefused, "act:needs_attention+message", AdoptFacts{ForCase: true, Under: "201"}},
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
		if got.Step != nil && got.Step.Name != StepMessage {
			t.Errorf("%s: step %s; adopting sends nothing of the case's own", tc.name, got.Step.Name)
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
