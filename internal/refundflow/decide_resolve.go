// Resolving a case that needs attention: the operator's way out when neither
// the platform nor a new command moves it (refundctl resolve).

package refundflow

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/refundhub/refundhub/internal/excerpt"
)

// ResolveAction is what the operator chose for a case in needs_attention.
type ResolveAction string

// Resolve actions.
const (
	// ResolveRetry asks the platform again and, if nothing there moves the
	// case, runs the step it stopped at again: always for a read, and for a
	// side effect only where the platform shows it did not happen (so it is
	// never done twice).
	ResolveRetry ResolveAction = "retry"
	// ResolveClose ends the case as closed_locally with the operator's note.
	// Nothing is sent to the platform; the order is free for a new request.
	ResolveClose ResolveAction = "close"
	// ResolveAdopt makes a refund on the platform the case's own: one the
	// buyer filed on the platform's site for the case's sub-order (the
	// order on 1688), which blocks the case's (AttnRefundExists), or the
	// one the operator finds for a submission the platform cannot confirm
	// (CodeUnverifiable, CodeResendsFailed; its intent is closed). The case
	// then follows that refund to its end, as if it had filed it. Nothing
	// is sent to take it: the platform is asked that the refund exists, is
	// for the case's sub-order or order and has not ended, and the store
	// that no case of ours follows it.
	ResolveAdopt ResolveAction = "adopt"
)

// MaxRefundID bounds a refund id an operator names: the platforms' are
// a few dozen digits at most.
const MaxRefundID = 64

// MaxNote bounds an operator's note: a sentence or two for the timeline.
const MaxNote = 500

// Resolve is a resolve command's choice and the operator's note, which the
// timeline keeps (required to close: a case closed without the platform
// must say why).
type Resolve struct {
	Action ResolveAction `json:"action"`
	Note   string        `json:"note,omitempty"`
	// Refund is the platform's id of the refund to adopt (ResolveAdopt
	// only).
	Refund string `json:"refund,omitempty"`
}

// Validate checks the action and the note.
func (r Resolve) Validate() error {
	var errs []error
	switch r.Action {
	case ResolveRetry, ResolveClose:
		if r.Refund != "" {
			errs = append(errs, fmt.Errorf("refund: only to adopt a refund, not to %s", r.Action))
		}
	case ResolveAdopt:
		if err := checkRefundID(r.Refund); err != nil {
			errs = append(errs, fmt.Errorf("refund: %w", err))
		}
	default:
		errs = append(errs, fmt.Errorf("action %q: want retry, close or adopt", excerpt.Of(string(r.Action), 40)))
	}
	note := strings.TrimSpace(r.Note)
	switch {
	case utf8.RuneCountInString(r.Note) > MaxNote || !utf8.ValidString(r.Note) || !printableText(r.Note):
		errs = append(errs, fmt.Errorf("note: at most %d characters of text", MaxNote))
	case r.Action == ResolveClose && note == "":
		errs = append(errs, errors.New("note: required to close a case: say why it is closed without the platform"))
	}
	return errors.Join(errs...)
}

// onResolve decides an operator's resolve. Only a case in needs_attention
// can be resolved: any other case is moving, or waiting for the platform or
// the operator's next command, and the refusal says which.
func (d Decider) onResolve(c CaseView, v *PlatformView, in Input) Decision {
	if in.Resolve == nil {
		return reject(c, CodeInvalidInput, "resolve without an action")
	}
	if err := in.Resolve.Validate(); err != nil {
		return reject(c, CodeInvalidInput, "invalid resolve: "+err.Error())
	}
	if c.State != StateNeedsAttention {
		return reject(c, CodeNotParked, notParkedAdvice(c))
	}
	note := strings.TrimSpace(in.Resolve.Note)
	switch in.Resolve.Action {
	case ResolveClose:
		return closeLocally(c, note)
	case ResolveAdopt:
		return d.adopt(c, v, in.Now, in.Resolve.Refund, note)
	}
	if c.Intent != nil {
		// A side effect of the parked case may be on the platform: retrying
		// is settling it (ask, and send it again only if the platform shows
		// it absent). The resolve is then done, not decided again.
		dec := d.settleIntent(c, v, in)
		if dec.Outcome != OutcomeAct {
			return dec
		}
		dec.Reapply = false
		return d.retried(c, dec, note)
	}
	return d.retryParked(c, v, in.Now, note)
}

// closeLocally ends a parked case without touching the platform. An intent
// still open is closed with it: the operator has taken over the question of
// whether it took effect, and the timeline says so.
func closeLocally(c CaseView, note string) Decision {
	dec := Decision{Outcome: OutcomeAct, State: StateClosedLocally, Code: "closed_locally",
		Reason: fmt.Sprintf("closed locally (was %s at %s): %s", c.AttentionCode, c.Parked, note)}
	if c.Intent != nil {
		dec.Resolve = &Resolution{Key: c.Intent.Key, Code: "closed_locally",
			Note: fmt.Sprintf("the case was closed locally; whether the %s took effect was never confirmed", c.Intent.Step)}
	}
	return dec
}

// retryParked takes a parked case without an open intent out of
// needs_attention where that is safe: its own step is not in flight.
func (d Decider) retryParked(c CaseView, v *PlatformView, now time.Time, note string) Decision {
	if c.AttentionCode == CodeInvalidRequest {
		return reject(c, CodeCannotRetry, fmt.Sprintf("retrying cannot help: the stored request is not valid (%s); "+
			"request again with a valid one, or close the case with `refundctl resolve %d --close --note …`", c.AttentionMessage, c.ID))
	}
	if c.AttentionCode == AttnRefundExists && c.RefundID == "" && stateRank[c.Parked] <= stateRank[StateSubmitting] {
		// Read the form again, and the sub-order's refunds with it: sent
		// only if none is open (onForm). (It stops only before a refund of
		// its own: anywhere else the code is not this build's, and the
		// retry is the usual one.)
		again := unparked(c)
		again.State = StateRendering
		return d.retried(c, d.resume(again, now), note)
	}
	step := stepOf(c.Platform, c.Parked)
	if step != "" && !step.SideEffect() && c.AttentionCode != AttnRefundMissing {
		// A read (form, reasons, carriers, voucher upload): run it again.
		return d.retried(c, d.resume(unparked(c), now), note)
	}
	if v == nil {
		return fetch(c, CodeVerify, "ask the platform before retrying")
	}
	if v.Inconclusive {
		return reject(c, CodeCannotRetry, fmt.Sprintf("the platform cannot tell now where the refund stands; try again later, "+
			"or close the case with `refundctl resolve %d --close --note …`", c.ID))
	}
	if dec := d.fromView(c, *v, now); moved(dec) {
		// The platform has moved on (or shows another reason to stop):
		// follow it.
		return d.retried(c, dec, note)
	}
	if step == "" || c.AttentionCode == AttnRefundMissing {
		return reject(c, CodeCannotRetry, stillParkedAdvice(c, *v))
	}
	if took, absent := intentEvidence(c, step, *v); took || (!absent && c.AttentionCode != AttnPlatformError) {
		// The side effect may be on the platform (platform_error means it
		// was refused whole, so there it is safe): never twice.
		return reject(c, CodeCannotRetry, fmt.Sprintf("the platform does not show that the %s failed, so it is not sent again: "+
			"check the refund in the platform's back office, then close the case with `refundctl resolve %d --close --note …`", step, c.ID))
	}
	return d.retried(c, d.resume(unparked(c), now), note)
}

// unparked is the case as it was before it stopped.
func unparked(c CaseView) CaseView {
	c.State, c.Parked, c.AttentionCode, c.AttentionMessage = c.Parked, "", "", ""
	return c
}

// moved reports whether a decision on the parked case takes it out of
// needs_attention, or parks it elsewhere or for another reason: fromView
// acts on a parked case only then (a view that still implies its stop is a
// no-op, "still needs attention").
func moved(dec Decision) bool { return dec.Outcome == OutcomeAct }

// retried records the operator's retry on the decision taken for it.
func (d Decider) retried(c CaseView, dec Decision, note string) Decision {
	if dec.Outcome != OutcomeAct {
		// resume found nothing to run (cannot happen for a parked work
		// state): say so rather than pretend.
		return reject(c, CodeCannotRetry, fmt.Sprintf("nothing to retry at %s", c.Parked))
	}
	why := fmt.Sprintf("retried by the operator (was %s at %s)", c.AttentionCode, c.Parked)
	if note != "" {
		why += ": " + note
	}
	dec.Code, dec.Reason = "retried", why+"; "+dec.Reason
	return dec
}

// notParkedAdvice is the refusal of a resolve on a case that is not parked.
func notParkedAdvice(c CaseView) string {
	switch {
	case c.State.Terminal():
		return fmt.Sprintf("case %d is finished (%s): nothing to resolve", c.ID, c.State)
	case c.AttentionCode == AttnWaitingEvidence:
		return fmt.Sprintf("case %d is %s and waits for evidence (%s): it goes on or stops by itself then; resolve it if it stops",
			c.ID, c.State, c.AttentionMessage)
	case c.State.waiting():
		return fmt.Sprintf("case %d is %s, not stopped: it waits for the platform; resolve is for a case in needs_attention", c.ID, c.State)
	}
	return fmt.Sprintf("case %d is %s, not stopped: the worker is on it; resolve is for a case in needs_attention", c.ID, c.State)
}

// stillParkedAdvice is the refusal of a retry when the platform still shows
// what stopped the case.
func stillParkedAdvice(c CaseView, v PlatformView) string {
	shows := "no refund for this case"
	if v.Found {
		shows = fmt.Sprintf("status %q", excerpt.Of(v.Status(c.Platform), 40))
	}
	return fmt.Sprintf("the platform still shows %s, so the case stays at %s (%s); wait for the platform, "+
		"or close the case with `refundctl resolve %d --close --note …`", shows, c.Parked, c.AttentionCode, c.ID)
}
