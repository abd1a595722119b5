// A refund the case did not file blocks its own: the buyer filed one for
// the sub-order on the platform's site (or another tool did), and the
// platform takes one open refund at a time.

package refundflow

import (
	"fmt"
	"strings"

	"github.com/refundhub/refundhub/internal/excerpt"
)

// refundExists stops a case whose submission the platform refused for an
// open refund on the sub-order (the order on 1688): AttnRefundExists. The
// plan keeps the refusal, so that a retry, which reads the form again
// first, sends nothing while the platform lists one open (onForm). Sent
// again as it was, it was refused again: the platform_error it used to
// stop with offered a retry that did just that.
func refundExists(c CaseView, e *StepError) Decision {
	plan := c.Plan
	plan.RefusedForOpen = true
	said := excerpt.Of(stepErrorText(e.Code, e.Message), 600)
	dec := park(c, AttnRefundExists, refundExistsText(c, plan.PriorOpen, said, blockedRefused))
	dec.Plan = &plan
	return dec
}

// blocked is what shows that another refund blocks the case's.
type blocked int

const (
	blockedRefused blocked = iota // the platform refused the submission
	blockedStill                  // the form read again lists it open still
	blockedForm                   // the form allows no after-sale, and lists it open
)

// maxNamed bounds the refunds the text names, so that the ways out stay
// within MaxAttentionText.
const maxNamed = 3

// refundExistsText is AttnRefundExists's text: which refund, what it means,
// and the ways out: wait for it to end and retry, adopt it (adopt), or
// close the case. open are the refunds the platform listed open for the
// Taobao sub-order when the form was read (none on 1688, whose refunds
// cannot be listed by order); said is the platform's answer, if any.
func refundExistsText(c CaseView, open []string, said string, why blocked) string {
	var b strings.Builder
	what := "the sub-order"
	if c.Platform == Platform1688 {
		what = "the order"
	}
	switch why {
	case blockedStill:
		fmt.Fprintf(&b, "%s has a refund this case did not file still open: ", what)
	case blockedForm:
		fmt.Fprintf(&b, "the platform's form allows no refund now, and %s has an open refund this case did not file, which may be why (the buyer account's on the platform's site, another tool's, or one an earlier case left open): ", what)
	default:
		fmt.Fprintf(&b, "the platform refused the submission: %s has an open refund already, one this case did not file (the buyer account's on the platform's site, another tool's, or one an earlier case left open): ", what)
	}
	switch {
	case len(open) > 0:
		ids := make([]string, 0, maxNamed)
		for _, id := range open[:min(len(open), maxNamed)] {
			ids = append(ids, "open refund "+excerpt.Of(id, 40))
		}
		if len(open) > maxNamed {
			ids = append(ids, fmt.Sprintf("%d more", len(open)-maxNamed))
		}
		again := ""
		if why != blockedRefused {
			again = " again"
		}
		fmt.Fprintf(&b, "%s, listed when the form was read%s. ", strings.Join(ids, ", "), again)
	case c.Platform == Platform1688:
		b.WriteString("1688 does not list an order's refunds; its answer below names it. ")
	default:
		b.WriteString("it was not listed when the form was read. ")
	}
	if why == blockedForm {
		b.WriteString("Nothing is sent while the form allows none. ")
	} else {
		b.WriteString("Nothing more is sent while it is open. ")
	}
	if c.Platform == Platform1688 {
		fmt.Fprintf(&b, "Once it ends (withdrawn on 1688, or decided by the seller), `refundctl resolve %d --retry` files this request (refused again while it is open)", c.ID)
	} else {
		fmt.Fprintf(&b, "Once it ends (withdrawn on the platform's site, or decided by the seller), `refundctl resolve %d --retry` reads the form again and files this request", c.ID)
	}
	adopt, which := "REFUND", ""
	switch {
	case len(open) == 1:
		adopt = excerpt.Of(open[0], 40)
	case len(open) > 1:
		which = ", with one of them"
	case c.Platform == Platform1688:
		which = ", with the id 1688's answer names"
	}
	fmt.Fprintf(&b, "; or have this case follow that refund as its own, if it asks for what this case would: `refundctl resolve %d --adopt %s`%s", c.ID, adopt, which)
	fmt.Fprintf(&b, "; or close this case, leaving that refund to go on without it: `refundctl resolve %d --close --note …`.", c.ID)
	if said != "" {
		fmt.Fprintf(&b, " The platform said: %s", said)
	}
	return excerpt.Of(b.String(), MaxAttentionText)
}
