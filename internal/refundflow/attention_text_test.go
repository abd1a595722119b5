package refundflow

import (
	"strings"
	"testing"
)

// TestAttentionKeepsTheCause: the platform's text in an attention message
// is kept whole (up to MaxAttentionText), not cut before its cause.
func TestAttentionKeepsTheCause(t *testing.T) {
	msg := "applyPayment 9500 超过可退金额 500: the amount asked for exceeds what the order can still refund"
	c := fixture(PlatformTaobao, StateSubmitting)
	c.Intent = &Intent{Step: StepSubmit, Key: "k1"}
	r := &StepResult{Step: StepSubmit, Key: "k1", Err: &StepError{Code: "isv.invalid-parameter", Message: msg}}
	dec := decider.Decide(c, nil, Input{Kind: InputStepResult, Now: now, Result: r})
	if dec.Attention == nil || dec.Attention.Code != AttnPlatformError || !strings.Contains(dec.Attention.Message, msg) {
		t.Fatalf("submit failed with %q: attention %+v; want %s with the whole message", msg, dec.Attention, AttnPlatformError)
	}

	long := strings.Repeat("原因", 1000) // 6000 bytes
	r.Err.Message = long
	dec = decider.Decide(c, nil, Input{Kind: InputStepResult, Now: now, Result: r})
	if n := len(dec.Attention.Message); n > MaxAttentionText+len("…") || n < MaxAttentionText-3 {
		t.Errorf("attention of a %d-byte error is %d bytes; want about MaxAttentionText (%d)", len(long), n, MaxAttentionText)
	}
}
