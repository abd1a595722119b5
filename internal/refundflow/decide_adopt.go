// Adopting a refund on the platform: the operator's way out of
// AttnRefundExists (a refund the case did not file blocks it), besides
// waiting for that refund to end and closing the case, and of a submission
// the platform cannot confirm (CodeUnverifiable, CodeResendsFailed), besides
// closing it. The case takes the refund as its own and follows it to its
// end.

package refundflow

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
)

// CodeCannotAdopt refuses an adoption: the case is not one that can take
// the refund, or the refund is not one it can take. The reason says which,
// and the way on.
const CodeCannotAdopt = "cannot_adopt"

// CodeAdopted is the decision that made the refund the case's.
const CodeAdopted = "adopted"

// CodeReadToAdopt asks for the view of the refund to adopt, by its id
// (Engine.adoptView), not the case's own: only the adoption's fetch has
// it, so no other decision on the input (its order's news first) is ever
// made on another refund's view.
const CodeReadToAdopt = "read_to_adopt"

// AdoptFacts is what the platform and the store show of a refund an
// operator asks a case to adopt (PlatformView.Adopting), beyond the view of
// the refund itself. The engine reads them; the decider judges.
type AdoptFacts struct {
	// ForCase: the platform files the refund under the case's Taobao
	// sub-order (or its 1688 order), or, where its answer does not say,
	// the case's form read listed it for the sub-order (Plan.PriorRefunds,
	// Plan.PriorOpen) or it is the refund the plan kept from a callback
	// for the sub-order (Plan.CallbackRefund, OrderElsewhere.RefundID: the
	// one the attention text names).
	ForCase bool
	// Under is the sub-order (Taobao) or order (1688) the platform files
	// the refund under, "" when its answer does not say.
	Under string
	// Owner is the case of ours that recorded the refund (0: none), and
	// OwnerState its state.
	Owner      int64
	OwnerState State
}

// submissionUnverified reports whether c stopped because the platform
// cannot confirm whether its submission took effect (CodeUnverifiable, or
// CodeResendsFailed, at submitting, before a refund of its own), its
// intent open or settled
// unverified: the refund the operator finds on the platform may be
// adopted as the case's.
func submissionUnverified(c CaseView) bool {
	return AdoptsHere(c.Parked, c.RefundID, c.AttentionCode) && c.AttentionCode != AttnRefundExists &&
		(c.Intent == nil || c.Intent.Step == StepSubmit)
}

// AdoptsHere reports whether a case stopped at parked for attention, with
// refund id refundID, is one whose refund on the platform an operator may
// adopt (ResolveAdopt): stopped for an open refund it did not file, or on a
// submission the platform cannot confirm, before a refund of its own. The
// decider checks the rest (the intent, the refund); the console offers
// Adopt where this holds.
func AdoptsHere(parked State, refundID, attention string) bool {
	if refundID != "" {
		return false
	}
	switch attention {
	case AttnRefundExists:
		return true
	case CodeUnverifiable, CodeResendsFailed:
		return parked == StateSubmitting
	}
	return false
}

// AdoptCandidates are the refunds the plan knows of that a case stopped
// for attention where it may adopt one (AdoptsHere) would adopt, for a
// form to offer, and what named them; the same refunds its attention text
// names. Stopped for an open refund it did not file (refund_exists):
// those the platform listed open when its form was read. Stopped on a
// submission the platform cannot confirm: the refund a callback named on
// a sub-order the platform files under another order, or one a callback
// named that the case's own look did not show; never one listed before
// the submission, which is not the submission's (adopt refuses it). None
// on 1688, whose answer names the refund in the attention text. The
// operator checks it in the back office either way, and the decider
// checks it again.
func (p Plan) AdoptCandidates(attention string) (refunds []string, namedBy string) {
	switch {
	case attention == AttnRefundExists:
		if len(p.PriorOpen) > 0 {
			return p.PriorOpen, "listed open when the form was read"
		}
	case p.OrderElsewhere != nil && p.OrderElsewhere.RefundID != "" && !slices.Contains(p.PriorRefunds, p.OrderElsewhere.RefundID):
		return []string{p.OrderElsewhere.RefundID}, "named by a callback, on the order the platform files the sub-order under"
	case p.CallbackRefund != "" && !slices.Contains(p.PriorRefunds, p.CallbackRefund):
		return []string{p.CallbackRefund}, "named by a callback"
	}
	return nil, ""
}

// checkRefundID checks a refund id an operator typed: the platforms' ids
// are digits (Taobao) or letters and digits (1688); what is allowed here
// is wider, and the platform is asked whether the refund exists.
func checkRefundID(id string) error {
	if id == "" {
		return errors.New("required to adopt: the platform's id of the refund the case is to follow")
	}
	if len(id) > MaxRefundID {
		return fmt.Errorf("at most %d characters", MaxRefundID)
	}
	for _, r := range id {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '_') {
			return fmt.Errorf("%q: letters, digits, - and _ only", excerpt.Of(id, 40))
		}
	}
	return nil
}

// adopt decides an operator's adoption of refund on a parked case: only a
// case stopped for an open refund it did not file (AttnRefundExists), with
// no refund and no side effect of its own in question, can take one; or
// one whose submission the platform cannot confirm (submissionUnverified),
// whose submit intent the adoption closes, unconfirmed. The
// view (read by the refund's id, PlatformView.Adopting) must show the
// refund, for the case's sub-order or order, in a status the profile
// names, not ended, and followed by no other case (but one closed
// locally, which left it to go on). The
// case then goes where the refund is, as if it had filed it: waiting for
// the seller or a return, or stopped by the seller's refusal.
func (d Decider) adopt(c CaseView, v *PlatformView, now time.Time, refund, note string) Decision {
	blocked := c.AttentionCode == AttnRefundExists && c.Intent == nil
	unverified := submissionUnverified(c)
	// Where the refusals below send the operator: a retry files the case's
	// request once the other refund is gone; a submission nobody can
	// confirm has only its back office and a close.
	again := fmt.Sprintf("`refundctl resolve %d --retry` files this case's request", c.ID)
	if unverified {
		again = fmt.Sprintf("if no refund there is this case's, close it with `refundctl resolve %d --close --note …`", c.ID)
	}
	switch {
	case c.RefundID != "":
		return reject(c, CodeCannotAdopt, fmt.Sprintf("case %d follows refund %s already, its own: it cannot take another", c.ID, c.RefundID))
	case !blocked && !unverified:
		return reject(c, CodeCannotAdopt, fmt.Sprintf("adopting is for a case stopped because another refund is open (%s), or whose submission "+
			"the platform cannot confirm (%s, %s); case %d is %s: refundctl show %d says the way out", AttnRefundExists, CodeUnverifiable, CodeResendsFailed,
			c.ID, describeState(c), c.ID))
	case unverified && c.Intent != nil && now.Before(c.Intent.lastAttempt().Add(d.Policy.InFlight)):
		// The last attempt may still reach the platform and make a refund
		// of its own beside the one adopted.
		return reject(c, CodeCannotAdopt, fmt.Sprintf("the last attempt of the %s may still reach the platform until %s: adopt after that",
			c.Intent.Step, stamp(c.Intent.lastAttempt().Add(d.Policy.InFlight))))
	case unverified && slices.Contains(c.Plan.PriorRefunds, refund):
		// Listed on the sub-order before the case submitted: another's,
		// whatever became of the submission.
		return reject(c, CodeCannotAdopt, fmt.Sprintf("refund %s was on the sub-order before case %d submitted (listed when its form was read), "+
			"so it is not the submission the platform cannot confirm: look in the platform's back office for the case's own; %s", refund, c.ID, again))
	case v == nil:
		return fetch(c, CodeReadToAdopt, "read the refund to adopt")
	case v.Adopting == nil || v.Inconclusive:
		return reject(c, CodeCannotAdopt, fmt.Sprintf("the platform could not say now what refund %s is; try again later", refund))
	case !v.Found:
		return reject(c, CodeCannotAdopt, fmt.Sprintf("the platform has no refund %s; check the id (refundctl show %d names the open refunds it listed)", refund, c.ID))
	}
	a := v.Adopting
	what := "sub-order"
	if c.Platform == Platform1688 {
		what = "order"
	}
	switch {
	case !a.ForCase && a.Under != "":
		return reject(c, CodeCannotAdopt, fmt.Sprintf("the platform files refund %s under %s %s, not this case's", refund, what, excerpt.Of(a.Under, 40)))
	case !a.ForCase && c.Platform == Platform1688:
		return reject(c, CodeCannotAdopt, fmt.Sprintf("1688's answer for refund %s does not say which order it is for, so it cannot be told this case's; "+
			"check it in 1688's back office; or close the case with `refundctl resolve %d --close --note …`", refund, c.ID))
	case !a.ForCase && unverified:
		return reject(c, CodeCannotAdopt, fmt.Sprintf("the platform's answer for refund %s does not say which sub-order it is for, so it cannot be told this case's; "+
			"check its id in the platform's back office; %s", refund, again))
	case !a.ForCase:
		return reject(c, CodeCannotAdopt, fmt.Sprintf("the platform's answer for refund %s does not say which sub-order it is for, and it was not listed for this case's "+
			"when the form was read: `refundctl resolve %d --retry` reads the form again, and lists the open ones", refund, c.ID))
	case a.Owner != 0 && a.Owner != c.ID && a.OwnerState != StateClosedLocally:
		// Only a case closed locally leaves its refund to go on without
		// it; any other followed it, or follows it still.
		return reject(c, CodeCannotAdopt, fmt.Sprintf("case %d follows refund %s (%s): a refund is one case's", a.Owner, refund, a.OwnerState))
	case v.Phase == platform.PhaseClosed && !unverified:
		// (A submission nobody could confirm may have made it: its end is
		// then the case's.)
		return reject(c, CodeCannotAdopt, fmt.Sprintf("refund %s has ended (%s), so it no longer blocks this case: %s",
			refund, excerpt.Of(v.Status(c.Platform), 40), again))
	case v.Phase == "":
		// Parked unknown_status where the case stopped, before its
		// submission, a retry would read the form and file the case's
		// request beside the refund it follows.
		return reject(c, CodeCannotAdopt, fmt.Sprintf("refund %s is in a status this build does not know (%q): map it in the profile "+
			"(refundctl doctor prints the line; docs/platform.md) and restart the worker, then adopt it again",
			refund, excerpt.Of(v.StatusText, 40)))
	case v.Phase == platform.PhaseSuccess && !unverified:
		return reject(c, CodeCannotAdopt, fmt.Sprintf("refund %s has ended (%s), so it does not block this case (refundctl show %d names the open refunds listed): "+
			"if it refunded what this case asks for, close the case with `refundctl resolve %d --close --note …`; otherwise %s",
			refund, excerpt.Of(v.Status(c.Platform), 40), c.ID, c.ID, again))
	}
	plan := c.Plan
	plan.Adopted, plan.AdoptedUnconfirmed, plan.RefusedForOpen = refund, unverified, false
	taken := withoutIntent(unparked(c))
	taken.Plan = plan
	dec := d.fromView(taken, *v, now)
	if !moved(dec) { // the view's refund is the case's from now: cannot happen
		return reject(c, CodeCannotAdopt, fmt.Sprintf("nothing to follow in refund %s (%s)", refund, dec.Reason))
	}
	// The seller's refusal, if that is where the refund is, came before
	// the case took it: the policy's message answers refusals as they come,
	// and nothing is sent to take a refund.
	dec.Step = nil
	dec.RefundID, dec.Plan = refund, &plan
	if it := c.Intent; it != nil {
		// The submission the platform could not confirm is closed with the
		// adoption, never sent again: the operator's word, not the
		// platform's, says what became of it.
		dec.Resolve = &Resolution{Key: it.Key, Code: CodeAdopted,
			Note: fmt.Sprintf("the operator adopted refund %s; whether the %s took effect, as that refund or not, was never confirmed by the platform", refund, it.Step)}
	}
	why := fmt.Sprintf("refund %s adopted by the operator (was %s at %s)", refund, c.AttentionCode, c.Parked)
	if a.Owner != 0 && a.Owner != c.ID {
		why += fmt.Sprintf(", from case %d (%s)", a.Owner, a.OwnerState)
	}
	if note != "" {
		why += ": " + note
	}
	dec.Code, dec.Reason = CodeAdopted, why+"; "+dec.Reason
	return dec
}
