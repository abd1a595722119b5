package refundflow_test

import (
	"context"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore/casestoretest"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestAnInputKeptWhileThePlatformIsAwayIsNotCountedTowardsItsDeadLetter:
// a refund callback's verification read fails because the platform rate
// limits it (or is down, or does not answer). The callback is kept for its
// case and taken up again later; those failures are the platform's, not
// the input's, and do not count towards WORKER_MAX_DELIVER, at which a
// kept input becomes a dead letter: an hour-long rate limit or outage no
// longer dead-letters the callbacks and commands waiting through it. A
// read the platform refuses (an answer that is not a pause) still counts.
func TestAnInputKeptWhileThePlatformIsAwayIsNotCountedTowardsItsDeadLetter(t *testing.T) {
	r := newRigOn(t, casestoretest.Backends()[0], sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	c, o, so, refundID := r.submittedTaobaoCase()
	policy := testPolicy
	policy.PlatformAwayLimit = refundflow.DefaultPlatformAwayLimit
	eng := r.newEngineWith("engine-away", policy, 0)
	ctx := context.Background()
	away := func(kind sandbox.ErrorKind) {
		r.sb.SetFaults(sandbox.Faults{ForceErrors: []sandbox.ForcedError{
			{Endpoint: "taobao_query", Kind: kind, Count: 1000}, {Endpoint: "taobao_list", Kind: kind, Count: 1000}}})
	}
	msg, copyOf := r.refundCallback(o, so, refundID, 61)
	ev, err := r.parser.Parse(msg.Payload)
	if err != nil {
		t.Fatal(err)
	}
	attempts := func() int {
		t.Helper()
		kept, err := r.store.DeferredInputs(ctx, c.ID)
		if err != nil || len(kept) != 1 || kept[0].MsgID != ev.ID {
			t.Fatalf("kept inputs: %+v, %v; want the callback", kept, err)
		}
		return kept[0].Attempts
	}
	for i, kind := range []sandbox.ErrorKind{sandbox.ErrRateLimit, sandbox.ErrHTTP503, sandbox.ErrRateLimit} {
		away(kind)
		m := copyOf()
		m.Deferred = i > 0 // taken up again, as the worker's timer does
		if h, err := eng.HandleCallback(ctx, ev, m); err != nil || !h.Deferred {
			t.Fatalf("callback %d while the platform is away (%s): %+v, %v; want it kept", i+1, kind, h, err)
		}
		if n := attempts(); n != 0 {
			t.Fatalf("after %d failed verifications (%s): %d attempts counted; want none (the platform's pause)", i+1, kind, n)
		}
	}
	// Kept for longer than Policy.PlatformAwayLimit, it counts again: an
	// input the platform never answers still reaches its dead letter.
	m := copyOf()
	m.Deferred, m.KeptSince = true, time.Now().Add(-policy.PlatformAwayLimit-time.Hour)
	if h, err := eng.HandleCallback(ctx, ev, m); err != nil || !h.Deferred {
		t.Fatalf("callback kept for over a day while the platform is away: %+v, %v; want it kept", h, err)
	}
	if n := attempts(); n != 1 {
		t.Fatalf("after a failure past the limit: %d attempts counted; want 1", n)
	}
	away(sandbox.ErrRefused)
	m = copyOf()
	m.Deferred = true
	if h, err := eng.HandleCallback(ctx, ev, m); err != nil || !h.Deferred {
		t.Fatalf("callback while the platform refuses the read: %+v, %v; want it kept", h, err)
	}
	if n := attempts(); n != 2 {
		t.Fatalf("after a refused read: %d attempts counted; want 2", n)
	}
}
