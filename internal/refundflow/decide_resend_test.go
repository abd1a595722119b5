package refundflow

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/apiclient"
)

// resendCase is a Taobao case in submitting whose submission intent has been
// sent sends times, refusals of the resends refused, the last attempt
// ending at last with lastErr.
func resendCase(sends, refusals int, last time.Time, lastErr string) CaseView {
	c := fixture(PlatformTaobao, StateSubmitting)
	c.Plan.PriorListed = true
	c.Intent = &Intent{Step: StepSubmit, Key: "case:7:submit:v3", Since: last.Add(-time.Hour), LastAttempt: last,
		Sends: sends, LastError: lastErr, Refusals: refusals}
	return c
}

// TestResendsBackOffAndStop: each resend of an intent the platform shows no
// effect of waits twice as long as the one before (from InFlight); once the
// platform has refused ResendLimit of them the case parks with its last
// answer and the ways out, and sends nothing more on a timer, a callback or
// a command; an operator's retry sends it once more, after the in-flight
// wait only.
func TestResendsBackOffAndStop(t *testing.T) {
	d := Decider{Policy: policy}
	d.Policy.InFlight, d.Policy.ResendLimit = time.Minute, 3
	absent := &PlatformView{Found: false}
	last := now.Add(-90 * time.Second)
	const answer = "4091: taobao_submit: platform error code 4091 \"订单未支付或已取消\""

	// The first send, then none: resent once InFlight has passed.
	dec := d.Decide(resendCase(1, 0, last, "http_503: busy"), absent, Input{Kind: InputTimer, Now: now})
	if dec.Step == nil || !dec.Step.Resume {
		t.Fatalf("first send, %s after it: %s; want it sent again", now.Sub(last), cell(dec))
	}
	// One resend so far, refused: the next waits 2 × InFlight, flagged
	// with the count and the answer.
	dec = d.Decide(resendCase(2, 1, last, answer), absent, Input{Kind: InputTimer, Now: now})
	if dec.Step != nil || !dec.WakeAt.Equal(last.Add(2*time.Minute)) || dec.Attention == nil ||
		!strings.Contains(dec.Attention.Message, "after 2 sends") || !strings.Contains(dec.Attention.Message, "订单未支付或已取消") ||
		!strings.Contains(dec.Attention.Message, "1 refused in a row") {
		t.Fatalf("one resend, 90 s after it: %s wake %v attention %+v; want a wait until %v naming the sends, refusals and answer",
			cell(dec), dec.WakeAt, dec.Attention, last.Add(2*time.Minute))
	}
	// A command waits with it, rather than coming back every few minutes.
	cmd := Input{Kind: InputCancel, ID: "cmd-cancel-1", Now: now}
	if dec := d.Decide(resendCase(2, 1, last, answer), absent, cmd); dec.Outcome != OutcomeRetry || !dec.RetryAt.Equal(last.Add(2*time.Minute)) {
		t.Errorf("a command during the wait: %s retry at %v; want it back at %v", cell(dec), dec.RetryAt, last.Add(2*time.Minute))
	}
	if dec := d.Decide(resendCase(3, 2, last, answer), absent, Input{Kind: InputTimer, Now: last.Add(4 * time.Minute)}); dec.Step == nil {
		t.Errorf("two refused resends, 4 × InFlight after the last: %s; want it sent again", cell(dec))
	}

	// The limit: parked, with the last answer and both ways out.
	c := resendCase(4, 3, last, answer)
	dec = d.Decide(c, absent, Input{Kind: InputTimer, Now: now.Add(time.Hour)})
	if dec.State != StateNeedsAttention || dec.Parked != StateSubmitting || dec.Code != CodeResendsFailed || dec.Step != nil {
		t.Fatalf("three refused resends: %s; want parked %s at submitting, nothing sent", cell(dec), CodeResendsFailed)
	}
	for _, want := range []string{"refused 3 resends", "4 sends", answer, "refundctl resolve 7 --retry", "refundctl resolve 7 --close --note"} {
		if !strings.Contains(dec.Attention.Message, want) {
			t.Errorf("attention %q; want it to say %q", dec.Attention.Message, want)
		}
	}
	c = apply(c, dec)
	for _, in := range []Input{{Kind: InputTimer, Now: now.Add(2 * time.Hour)}, {Kind: InputCallback, Now: now.Add(2 * time.Hour)}} {
		if dec := d.Decide(c, absent, in); dec.Step != nil || dec.State != StateNeedsAttention {
			t.Errorf("parked, a %s: %s; want nothing sent, still parked", in.Kind, cell(dec))
		}
	}
	cmd.Now = now.Add(2 * time.Hour)
	if dec := d.Decide(c, absent, cmd); dec.Outcome != OutcomeReject || dec.Code != CodeResendsFailed ||
		!strings.Contains(dec.Reason, "--retry") {
		t.Errorf("parked, a cancel: %s %q; want it refused with the ways out", cell(dec), dec.Reason)
	}
	// A parked case whose count grew (an operator's retry was refused
	// too) says so.
	more := c
	more.Intent = &Intent{Step: StepSubmit, Key: c.Intent.Key, Since: c.Intent.Since, LastAttempt: last, Sends: 5, Refusals: 4,
		LastError: "4092: taken"}
	if dec := d.Decide(more, absent, Input{Kind: InputTimer, Now: now.Add(2 * time.Hour)}); dec.Attention == nil ||
		!strings.Contains(dec.Attention.Message, "refused 4 resends") || !strings.Contains(dec.Attention.Message, "4092: taken") {
		t.Errorf("parked, one more resend refused: attention %+v; want the new count and answer", dec.Attention)
	}

	// The operator's retry: sent once more, under the same key, whatever
	// the count; not before the in-flight wait.
	retry := Input{Kind: InputResolve, ID: "cmd-resolve-1", Now: now.Add(2 * time.Hour), Resolve: &Resolve{Action: ResolveRetry}}
	dec = d.Decide(c, absent, retry)
	if dec.Step == nil || !dec.Step.Resume || dec.Step.Key != c.Intent.Key || dec.State != StateSubmitting {
		t.Fatalf("resolve --retry: %s; want the submission sent again under its key, the case back in submitting", cell(dec))
	}
	// That resend gets no answer (a 503): the run of refusals is over, and
	// the case backs off as any other, not parked again.
	after := apply(c, dec)
	after.Intent = &Intent{Step: StepSubmit, Key: c.Intent.Key, Since: c.Intent.Since, LastAttempt: retry.Now, Sends: 5, LastError: "http_503: busy"}
	if dec := d.Decide(after, absent, Input{Kind: InputTimer, Now: retry.Now.Add(2 * time.Minute)}); dec.State != StateSubmitting ||
		dec.Step != nil || !dec.WakeAt.Equal(retry.Now.Add(8*time.Minute)) {
		t.Errorf("the retry answered 503, two minutes on: %s wake %v; want it waiting until %v (InFlight·2^ResendLimit), not parked",
			cell(dec), dec.WakeAt, retry.Now.Add(8*time.Minute))
	}
	recent := c
	recent.Intent = &Intent{Step: StepSubmit, Key: c.Intent.Key, Since: c.Intent.Since, LastAttempt: retry.Now.Add(-time.Second), Sends: 4, Refusals: 3}
	if dec := d.Decide(recent, absent, retry); dec.Step != nil || dec.Outcome != OutcomeRetry {
		t.Errorf("resolve --retry a second after a send: %s; want it to wait for the in-flight window", cell(dec))
	}
}

// TestResendsOfUnknownOutcomeNeverStop: resends whose outcome is unknown
// again (the platform down) or that were rate limited do not count towards
// the limit: the case never parks for them, and the waits double up to
// InFlight·2^ResendLimit, so that it goes on soon after the platform is
// back. With no limit they double up to Recheck.
func TestResendsOfUnknownOutcomeNeverStop(t *testing.T) {
	last := now.Add(-30 * time.Hour)
	for _, tt := range []struct {
		limit int
		sends int
		wait  time.Duration
	}{
		{3, 2, 2 * time.Minute}, {3, 3, 4 * time.Minute}, {3, 4, 8 * time.Minute}, {3, 5, 8 * time.Minute}, {3, 60, 8 * time.Minute},
		{0, 5, 16 * time.Minute}, {0, 7, time.Hour}, {0, 40, time.Hour}, // policy's Recheck is an hour
	} {
		d := Decider{Policy: policy}
		d.Policy.InFlight, d.Policy.ResendLimit = time.Minute, tt.limit
		dec := d.Decide(resendCase(tt.sends, 0, last, "http_503: down"), &PlatformView{}, Input{Kind: InputTimer, Now: last.Add(tt.wait - time.Second)})
		if dec.Step != nil || dec.State == StateNeedsAttention || !dec.WakeAt.Equal(last.Add(tt.wait)) {
			t.Errorf("limit %d, %d sends none refused, a second before %s: %s wake %v; want a wait until then", tt.limit, tt.sends, tt.wait, cell(dec), dec.WakeAt)
		}
		if dec := d.Decide(resendCase(tt.sends, 0, last, "http_503: down"), &PlatformView{}, Input{Kind: InputTimer, Now: last.Add(tt.wait)}); dec.Step == nil {
			t.Errorf("limit %d, %d sends none refused, %s after the last: %s; want it sent again", tt.limit, tt.sends, tt.wait, cell(dec))
		}
	}
}

// TestEndedOrderSettlesAnAbsentSubmission: a submission the platform shows
// no refund of, once the in-flight window has passed, on an order that has
// ended since, is settled (not taken effect) and the request ends; within
// the window the case still waits, and a refund on the platform still
// counts.
func TestEndedOrderSettlesAnAbsentSubmission(t *testing.T) {
	d := Decider{Policy: policy}
	d.Policy.InFlight = time.Minute
	c := resendCase(1, 0, now.Add(-2*time.Minute), "http_503: busy")
	c.OrderEvents = []OrderEvent{{ID: 41, Type: "ORDER_STATUS_CHANGE", Status: "CANCEL", Ended: true}, {ID: 42, Type: "ORDER_STATUS_CHANGE"}}
	dec := d.Decide(c, &PlatformView{}, Input{Kind: InputTimer, Now: now})
	if dec.State != StateCancelled || dec.Code != CodeOrderEnded || dec.Step != nil || dec.Resolve == nil ||
		dec.Resolve.Done || dec.Resolve.Key != c.Intent.Key || dec.OrderEventsSeen != 42 {
		t.Fatalf("ended order, no refund: %s resolve %+v seen %d; want cancelled order_ended, the intent settled not done, events seen to 42",
			cell(dec), dec.Resolve, dec.OrderEventsSeen)
	}
	if !strings.Contains(dec.Reason, "status CANCEL") {
		t.Errorf("reason %q; want it to name the order's event", dec.Reason)
	}
	early := c
	early.Intent = &Intent{Step: StepSubmit, Key: c.Intent.Key, Since: c.Intent.Since, LastAttempt: now.Add(-10 * time.Second), Sends: 1}
	if dec := d.Decide(early, &PlatformView{}, Input{Kind: InputTimer, Now: now}); dec.Code != CodeInFlight ||
		dec.Attention == nil || !strings.Contains(dec.Attention.Message, "the request ends there") {
		t.Errorf("ended order, within the in-flight window: %s %+v; want it to wait (the submission may still arrive), saying what comes next",
			cell(dec), dec.Attention)
	}
	// After several resends the ended order still waits only the in-flight
	// window, not the resends' backoff.
	resent := c
	resent.Intent = &Intent{Step: StepSubmit, Key: c.Intent.Key, Since: c.Intent.Since, LastAttempt: now.Add(-2 * time.Minute), Sends: 5}
	if dec := d.Decide(resent, &PlatformView{}, Input{Kind: InputTimer, Now: now}); dec.State != StateCancelled || dec.Code != CodeOrderEnded {
		t.Errorf("ended order, four resends, two minutes after the last: %s; want it ended, not waiting out a backoff", cell(dec))
	}
	if dec := d.Decide(c, tbView("WAIT_SELLER_AGREE"), Input{Kind: InputTimer, Now: now}); dec.Resolve == nil || !dec.Resolve.Done {
		t.Errorf("ended order, the refund on the platform: %s resolve %+v; want the submission confirmed", cell(dec), dec.Resolve)
	}
}

// TestResendLimitEdges: at the limit the newest resend still gets its
// in-flight window (it may arrive), and the flag says the case stops next;
// a command arriving then parks the case and is refused on it; a parked
// case keeps no timer (one left from before would fire every pass); an
// order that ends while it is parked still ends it.
func TestResendLimitEdges(t *testing.T) {
	d := Decider{Policy: policy}
	d.Policy.InFlight, d.Policy.ResendLimit = time.Minute, 2
	absent := &PlatformView{}
	last := now.Add(-30 * time.Second)
	dec := d.Decide(resendCase(3, 2, last, "4091: refused"), absent, Input{Kind: InputTimer, Now: now})
	if dec.Step != nil || !dec.WakeAt.Equal(last.Add(time.Minute)) || dec.Attention == nil ||
		!strings.Contains(dec.Attention.Message, "the case stops for an operator") {
		t.Errorf("at the limit, within the last resend's window: %s wake %v attention %+v; want a wait until %v saying the case stops next",
			cell(dec), dec.WakeAt, dec.Attention, last.Add(time.Minute))
	}

	c := resendCase(3, 2, now.Add(-time.Hour), "4091: refused")
	cmd := Input{Kind: InputSendMessage, ID: "cmd-message-1", Now: now, Message: "hello"}
	dec = d.Decide(c, absent, cmd)
	if dec.State != StateNeedsAttention || dec.Code != CodeResendsFailed || !dec.Reapply {
		t.Fatalf("a command at the limit: %s reapply %v; want the case parked and the command decided again", cell(dec), dec.Reapply)
	}
	parked := apply(c, dec)
	if dec := d.Decide(parked, absent, cmd); dec.Outcome != OutcomeReject || dec.Code != CodeResendsFailed {
		t.Errorf("the command again, on the parked case: %s; want it refused %s", cell(dec), CodeResendsFailed)
	}

	parked.WakeAt = now.Add(-time.Minute) // a retry's backoff, or an order's price change
	if dec := d.Decide(parked, absent, Input{Kind: InputTimer, Now: now}); dec.Outcome != OutcomeNoOp || !dec.WakeAt.IsZero() {
		t.Errorf("parked %s with a timer due: %s wake %v; want no timer left", CodeResendsFailed, cell(dec), dec.WakeAt)
	}
	unverifiable := parked
	unverifiable.AttentionCode = CodeUnverifiable
	if dec := d.Decide(unverifiable, &PlatformView{Inconclusive: true}, Input{Kind: InputTimer, Now: now}); dec.Code != CodeUnverifiable || !dec.WakeAt.IsZero() {
		t.Errorf("parked %s with a timer due: %s wake %v; want no timer left", CodeUnverifiable, cell(dec), dec.WakeAt)
	}

	ended := parked
	ended.OrderEvents = []OrderEvent{{ID: 9, Type: "ORDER_STATUS_CHANGE", Status: "CANCEL", Ended: true}}
	if dec := d.Decide(ended, absent, Input{Kind: InputCallback, Now: now}); dec.State != StateCancelled || dec.Code != CodeOrderEnded {
		t.Errorf("parked %s, then the order ended: %s; want cancelled %s", CodeResendsFailed, cell(dec), CodeOrderEnded)
	}
}

// TestEndedOrderLeavesOtherIntentsAlone: only a submission is settled by
// an ended order; a cancel or a return shipment of unknown outcome is about
// a refund that exists, and goes on being settled by the refund's view.
func TestEndedOrderLeavesOtherIntentsAlone(t *testing.T) {
	d := Decider{Policy: policy}
	d.Policy.InFlight = time.Minute
	ended := []OrderEvent{{ID: 9, Type: "ORDER_STATUS_CHANGE", Status: "CANCEL", Ended: true}}
	last := now.Add(-time.Hour)

	cancel := fixture(PlatformTaobao, StateCancelling)
	cancel.RefundID = "R1"
	cancel.Intent = &Intent{Step: StepCancel, Key: "case:7:cancel:v3", Since: last, LastAttempt: last, Sends: 1}
	cancel.OrderEvents = ended
	if dec := d.Decide(cancel, tbView("WAIT_SELLER_AGREE"), Input{Kind: InputTimer, Now: now}); dec.Step == nil || !dec.Step.Resume ||
		dec.Code == CodeOrderEnded {
		t.Errorf("a cancel of unknown outcome, the refund still open, the order ended: %s; want the cancel sent again", cell(dec))
	}

	ret := fixture(PlatformTaobao, StateReturnSubmitting)
	ret.RefundID = "R1"
	ret.Shipment = &Shipment{Company: "SF", Waybill: "SF100"}
	ret.Intent = &Intent{Step: StepReturnSubmit, Key: "case:7:return:v3", Since: last, LastAttempt: last, Sends: 1}
	ret.OrderEvents = ended
	if dec := d.Decide(ret, tbView("WAIT_BUYER_RETURN_GOODS"), Input{Kind: InputTimer, Now: now}); dec.Code == CodeOrderEnded ||
		dec.State == StateCancelled {
		t.Errorf("a return shipment of unknown outcome, the order ended: %s; want it not ended by the order", cell(dec))
	}
}

// TestOnlyThePlatformsVerdictIsARefusal: a resend counts as refused only
// when the platform answered refusing it whole; a failure of our own
// before anything was sent (a shutdown's cancelled context, a rate-limiter
// wait cut short, a bad argument), a rate limit, a 5xx or a timeout says
// nothing about what the platform would do.
func TestOnlyThePlatformsVerdictIsARefusal(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"a business refusal", &apiclient.APIError{Endpoint: "taobao_submit", Code: 4091, NotApplied: true}, true},
		{"a nested failure", &apiclient.APIError{Endpoint: "alibaba_create_refund", NestedCode: "E1", NotApplied: true}, true},
		{"an HTTP 400", &apiclient.HTTPError{Endpoint: "taobao_submit", StatusCode: 400}, true},
		{"a rate limit", &apiclient.APIError{Endpoint: "taobao_submit", Code: 4290, NotApplied: true, Retryable: true}, false},
		{"an HTTP 429", &apiclient.HTTPError{Endpoint: "taobao_submit", StatusCode: 429}, false},
		{"an HTTP 503", &apiclient.HTTPError{Endpoint: "taobao_submit", StatusCode: 503}, false},
		{"an unknown code", &apiclient.APIError{Endpoint: "taobao_submit", Code: 7777}, false},
		{"a cancelled context", fmt.Errorf("taobao_submit: rate limiter wait: %w", context.Canceled), false},
		{"a deadline", fmt.Errorf("taobao_submit: %w", context.DeadlineExceeded), false},
		{"a bad argument", fmt.Errorf("taobao_submit: %w", apiclient.ErrInvalidArgument), false},
	} {
		se := stepError(tt.err, true, true)
		if se.Refused != tt.want {
			t.Errorf("%s (%v): refused %v; want %v", tt.name, tt.err, se.Refused, tt.want)
		}
		if se.Refused && !se.NotApplied {
			t.Errorf("%s: refused but not 'not applied'", tt.name)
		}
	}
}

// TestNewShipmentReplacesAnAbsentReturn: a return submission of unknown
// outcome (or one whose resends the platform keeps refusing, a wrong
// carrier say) that the platform shows absent is replaced by the
// operator's new shipment once the in-flight window has passed: the old
// intent is settled superseded and the new shipment taken as a first one
// (the carriers read, then submitted under a new key), in one decision
// that is the command's verdict.
// Before, the new shipment waited behind the old one's resends, and on a
// case stopped with intent_resends_failed it was refused: a dead end
// short of closing a refund that is on the platform.
func TestNewShipmentReplacesAnAbsentReturn(t *testing.T) {
	d := Decider{Policy: policy}
	d.Policy.InFlight, d.Policy.ResendLimit = time.Minute, 3
	c := fixture(PlatformTaobao, StateNeedsAttention)
	c.Parked, c.AttentionCode, c.AttentionMessage = StateReturnSubmitting, CodeResendsFailed, "refused"
	c.RefundID = "R1"
	c.Shipment = &Shipment{Company: "NOPE", Waybill: "X1"}
	last := now.Add(-10 * time.Minute)
	c.Intent = &Intent{Step: StepReturnSubmit, Key: "case:7:return_submit:v2", Since: last.Add(-time.Hour), LastAttempt: last,
		Sends: 4, Refusals: 3, LastError: "4003: company not allowed"}
	absent := tbView("WAIT_BUYER_RETURN_GOODS")
	if dec := d.Decide(c, absent, Input{Kind: InputTimer, Now: now}); dec.Code != CodeResendsFailed ||
		!strings.Contains(dec.Attention.Message, "refundctl ship 7 --company") {
		t.Fatalf("parked return: %s %+v; want its attention to offer a corrected shipment", cell(dec), dec.Attention)
	}

	ship := Input{Kind: InputReportShipment, ID: "cmd-ship-2", Now: now, Shipment: &Shipment{Company: "SF", Waybill: "SF200"}}
	dec := d.Decide(c, absent, ship)
	if dec.Outcome != OutcomeAct || dec.State != StateReturnRendering || dec.Shipment == nil || dec.Shipment.Waybill != "SF200" ||
		dec.Step == nil || dec.Step.Name != StepReturnRender || dec.Reapply || dec.Resolve == nil || dec.Resolve.Done ||
		dec.Resolve.Code != CodeShipmentReplaced || dec.Resolve.Key != c.Intent.Key {
		t.Fatalf("a new shipment: %s resolve %+v reapply %v; want the old return settled superseded and the new one read, in one decision",
			cell(dec), dec.Resolve, dec.Reapply)
	}
	// A phone, or the waybill in other letters, is not another shipment.
	for _, sh := range []Shipment{{Company: "NOPE", Waybill: "X1", Phone: "13800000000"}, {Company: "nope", Waybill: "x1"}} {
		in := Input{Kind: InputReportShipment, ID: "cmd-ship-4", Now: now, Shipment: &sh}
		if dec := d.Decide(c, absent, in); dec.Code == CodeShipmentReplaced {
			t.Errorf("shipment %+v replaced %+v; want it taken as the same", sh, *c.Shipment)
		}
	}
	// A full-width waybill (a Chinese input method's) the platform
	// refused, typed again in ASCII, is a correction.
	wide := c
	wide.Shipment = &Shipment{Company: "SF", Waybill: "ＳＦ５５５０００１"}
	in := Input{Kind: InputReportShipment, ID: "cmd-ship-5", Now: now, Shipment: &Shipment{Company: "SF", Waybill: "SF5550001"}}
	if dec := d.Decide(wide, absent, in); dec.Code != CodeShipmentReplaced {
		t.Errorf("a full-width waybill corrected to ASCII: %s; want it replaced", cell(dec))
	}

	// Within the old attempt's window, the shipment is refused, saying
	// when to report it again (kept for then, it would come after the
	// case's own timer resending the earlier one).
	recent := fixture(PlatformTaobao, StateReturnSubmitting)
	recent.RefundID, recent.Shipment = "R1", &Shipment{Company: "NOPE", Waybill: "X1"}
	recent.Intent = &Intent{Step: StepReturnSubmit, Key: "case:7:return_submit:v2", Since: now.Add(-time.Hour), LastAttempt: now.Add(-10 * time.Second), Sends: 1}
	if dec := d.Decide(recent, absent, ship); dec.Outcome != OutcomeReject || dec.Code != CodeNotNow ||
		!strings.Contains(dec.Reason, "report the new shipment (SF SF200) again after") {
		t.Errorf("a new shipment within the window: %s %q; want it refused, saying when to report it again", cell(dec), dec.Reason)
	}
	// The platform shows the old waybill: the old submission took effect,
	// and the new shipment does not replace it.
	took := tbView("WAIT_SELLER_CONFIRM_GOODS")
	took.ReturnWaybill = "X1"
	if dec := d.Decide(recent, took, Input{Kind: InputReportShipment, ID: "cmd-ship-2", Now: now.Add(time.Hour), Shipment: ship.Shipment}); dec.Resolve == nil ||
		!dec.Resolve.Done {
		t.Errorf("a new shipment, the old on the platform: %s resolve %+v; want the old confirmed", cell(dec), dec.Resolve)
	}
	// The same shipment again is no replacement: the usual resend.
	same := Input{Kind: InputReportShipment, ID: "cmd-ship-3", Now: now.Add(time.Hour), Shipment: &Shipment{Company: "NOPE", Waybill: "X1"}}
	if dec := d.Decide(recent, absent, same); dec.Step == nil || !dec.Step.Resume {
		t.Errorf("the same shipment again: %s; want the open return sent again under its key", cell(dec))
	}
}

// TestNewModificationReplacesAnAbsentOne: a Taobao modification of unknown
// outcome, or stopped because the platform refused its resends, that the
// platform shows did not take effect (the refund still refused) is
// replaced by the operator's next modification past the in-flight window:
// settled modification_replaced, and the form read for the new one, in one
// decision. Within the window it is refused, saying when to modify again;
// the same modification again is no replacement.
func TestNewModificationReplacesAnAbsentOne(t *testing.T) {
	d := Decider{Policy: policy}
	d.Policy.InFlight, d.Policy.ResendLimit = time.Minute, 3
	c := fixture(PlatformTaobao, StateNeedsAttention)
	c.Parked, c.AttentionCode, c.AttentionMessage = StateModifying, CodeResendsFailed, "refused"
	c.RefundID = "R1"
	last := now.Add(-10 * time.Minute)
	c.Intent = &Intent{Step: StepModify, Key: "case:7:modify:v2", Since: last.Add(-time.Hour), LastAttempt: last, Sends: 4, Refusals: 3}
	refused := tbView("SELLER_REFUSE_BUYER")
	if dec := d.Decide(c, refused, Input{Kind: InputTimer, Now: now}); dec.Code != CodeResendsFailed ||
		!strings.Contains(dec.Attention.Message, "refundctl modify 7") {
		t.Fatalf("parked modification: %s %+v; want its attention to offer another modification", cell(dec), dec.Attention)
	}
	amount := int64(250)
	modify := Input{Kind: InputModify, ID: "cmd-modify-2", Now: now, Modify: &Modification{Amount: &amount}}
	dec := d.Decide(c, refused, modify)
	if dec.Outcome != OutcomeAct || dec.State != StateModifyRendering || dec.Request == nil || dec.Request.Amount != 250 ||
		dec.Step == nil || dec.Step.Name != StepRender || dec.Resolve == nil || dec.Resolve.Done ||
		dec.Resolve.Code != CodeModificationReplaced || dec.Resolve.Key != c.Intent.Key {
		t.Fatalf("a new modification: %s resolve %+v; want the old settled %s and the form read for the new one",
			cell(dec), dec.Resolve, CodeModificationReplaced)
	}
	same := Input{Kind: InputModify, ID: "cmd-modify-3", Now: now, Modify: &Modification{Amount: &c.Request.Amount}}
	if dec := d.Decide(c, refused, same); dec.Code == CodeModificationReplaced {
		t.Errorf("the same request again: %s; want no replacement", cell(dec))
	}

	// The replaced modification never took effect, so it is not the base
	// of the new one either: what the new one leaves out is as filed.
	filed := c.Request
	withFiled := c
	withFiled.Plan.Filed = &filed
	withFiled.Request.Description = "the earlier modification's words"
	if dec := d.Decide(withFiled, refused, modify); dec.Code != CodeModificationReplaced || dec.Request == nil ||
		dec.Request.Description != filed.Description || dec.Request.Amount != 250 {
		t.Errorf("a new modification replacing one that changed the description: %s request %+v; want the filed description %q, amount 250",
			cell(dec), dec.Request, filed.Description)
	}
	recent := c
	recent.State, recent.Parked, recent.AttentionCode, recent.AttentionMessage = StateModifying, "", "", ""
	recent.Intent = &Intent{Step: StepModify, Key: "case:7:modify:v2", Since: last, LastAttempt: now.Add(-10 * time.Second), Sends: 1}
	if dec := d.Decide(recent, refused, modify); dec.Outcome != OutcomeReject || dec.Code != CodeNotNow ||
		!strings.Contains(dec.Reason, "modify again after") {
		t.Errorf("a new modification within the window: %s %q; want it refused, saying when to modify again", cell(dec), dec.Reason)
	}
}

// TestAStoppedResendKeepsItsCodeWhenThePlatformCannotTell: a case stopped
// with intent_resends_failed whose next look finds the platform unable to
// tell (a 1688 read that proves nothing, say) stays stopped as it was.
// Before, it was parked again as intent_unverifiable, and the next view
// showing no effect parked it back as intent_resends_failed: with views
// alternating, the code, its advice and a timeline entry changed at every
// look.
func TestAStoppedResendKeepsItsCodeWhenThePlatformCannotTell(t *testing.T) {
	d := Decider{Policy: policy}
	d.Policy.InFlight, d.Policy.ResendLimit = time.Minute, 2
	c := resendCase(3, 2, now.Add(-time.Hour), "4091: refused")
	stopped := apply(c, d.Decide(c, &PlatformView{}, Input{Kind: InputTimer, Now: now}))
	if stopped.State != StateNeedsAttention || stopped.AttentionCode != CodeResendsFailed {
		t.Fatalf("at the limit: %s %s; want stopped %s", stopped.State, stopped.AttentionCode, CodeResendsFailed)
	}
	cannotTell := &PlatformView{Inconclusive: true}
	for i, v := range []*PlatformView{cannotTell, {}, cannotTell} {
		dec := d.Decide(stopped, v, Input{Kind: InputReconcile, Now: now.Add(time.Duration(i+1) * time.Hour)})
		if dec.Outcome != OutcomeNoOp || dec.State != StateNeedsAttention || dec.Code != CodeResendsFailed || dec.Step != nil {
			t.Errorf("look %d (inconclusive %v): %s; want the case left stopped %s", i+1, v.Inconclusive, cell(dec), CodeResendsFailed)
		}
	}
	cmd := Input{Kind: InputSendMessage, ID: "cmd-message-2", Now: now, Message: "hello"}
	if dec := d.Decide(stopped, cannotTell, cmd); dec.Outcome != OutcomeReject || dec.Code != CodeResendsFailed {
		t.Errorf("a command, the platform unable to tell: %s; want it refused with %s's ways out", cell(dec), CodeResendsFailed)
	}
	// The operator's retry needs the platform to show no effect: refused
	// while it cannot tell, saying to retry later, and taken once it can.
	retry := Input{Kind: InputResolve, ID: "cmd-retry", Now: now, Resolve: &Resolve{Action: ResolveRetry}}
	if dec := d.Decide(stopped, cannotTell, retry); dec.Outcome != OutcomeReject || dec.Code != CodeInconclusive ||
		!strings.Contains(dec.Reason, "--retry` again later") {
		t.Errorf("a retry, the platform unable to tell: %s %q; want it refused, saying to retry later", cell(dec), dec.Reason)
	}
	if dec := d.Decide(stopped, &PlatformView{}, retry); dec.Step == nil || !dec.Step.Resume {
		t.Errorf("a retry, the platform showing no effect: %s; want the step sent again under its key", cell(dec))
	}
}
