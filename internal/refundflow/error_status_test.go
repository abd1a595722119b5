package refundflow_test

import (
	"testing"

	"github.com/refundhub/refundhub/internal/casestore/casestoretest"
	"github.com/refundhub/refundhub/internal/platform"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestFailuresAtTheProfilesErrorStatusAreTheirCodes: a platform that answers
// its failures with HTTP 400 (envelope.error_http_status = 400, as refundctl
// doctor would have an operator set it). Its submission answers with a rate
// limit, or with an internal error after it made the refund. The rate limit
// is waited out and the refund submitted; the internal error leaves the
// submission's outcome open, settled by asking the platform: one refund
// either way, and the case waits for the seller. (The client read every
// 400 as a refusal that proved nothing was done: the rate limit parked the
// case, and after the internal error the refund was submitted again, refused
// as a duplicate, and the case parked.)
func TestFailuresAtTheProfilesErrorStatusAreTheirCodes(t *testing.T) {
	prof, err := platform.Parse([]byte("[envelope]\nerror_http_status = 400\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		fault sandbox.ForcedError
	}{
		{"rate limited", sandbox.ForcedError{Endpoint: "taobao_submit", Kind: sandbox.ErrRateLimit, Count: 1}},
		{"internal error after the refund was made", sandbox.ForcedError{Endpoint: "taobao_submit", Kind: sandbox.ErrInternal, Count: 1, AfterEffect: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRigProfiled(t, casestoretest.Backends()[0], sandbox.SellerPolicy{Decision: sandbox.DecisionManual}, prof)
			o, so := r.order(sandbox.PlatformTaobao, nil)
			cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
			cmd.Request = taobaoRequest(false)
			r.sb.SetFaults(sandbox.Faults{ForceErrors: []sandbox.ForcedError{tc.fault}})
			h := r.handle(cmd)
			c := r.waitState(h.CaseID, refundflow.StateWaitingSeller)
			if c.AttentionCode != "" {
				t.Errorf("case flagged %s: %s; want none", c.AttentionCode, c.AttentionMessage)
			}
			r.noDuplicates()
			if n := r.sb.Stats().RefundSubmissions; len(n) != 1 {
				t.Errorf("refunds submitted: %v; want one", n)
			}
		})
	}
}
