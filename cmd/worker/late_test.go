package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestLateSubmissionNotSentTwice: the platform receives a refund submission
// only after the worker's call timed out, as if a proxy held it (sandbox
// fault "late"). The worker's next look shows no refund. It must not trust
// that until WORKER_INTENT_IN_FLIGHT has passed since the call timed out; by
// then the late request has taken effect and the refund is submitted once.
// With the wait turned off the same run submits twice, so the test shows the
// hazard is real and the wait is what prevents it.
func TestLateSubmissionNotSentTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("full stack with multi-second platform delays; skipped with -short")
	}
	for _, tc := range []struct {
		name     string
		inFlight string
		extra    int64 // submissions beyond the first
	}{
		{"waits for the late request", "6s", 0},
		{"wait off: submitted twice", "0s", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The submission arrives 3 s after it was sent; the worker gives up after 1 s.
			faults := sandbox.Faults{TimeoutAfter: 3 * time.Second,
				ForceErrors: []sandbox.ForcedError{{Endpoint: "taobao_submit", Kind: sandbox.ErrLate, Count: 1}}}
			// Few deliveries: a command waiting for the window must come back
			// once, when it ends, not poll until it is dead-lettered.
			s := newStack(t, faults, quickSeller, 1, map[string]string{"UPSTREAM_TIMEOUT": "1s", "WORKER_INTENT_IN_FLIGHT": tc.inFlight,
				"WORKER_MAX_DELIVER": "4"})
			s.start()
			o, so := s.order(sandbox.PlatformTaobao, nil)
			req := refundflow.Request{GoodsStatus: "1", ReasonID: 1001, Description: "不想要了"}
			s.publish(refundflow.Command{Kind: refundflow.InputRequestRefund, Platform: refundflow.PlatformTaobao, OrderID: o, SubOrderID: so, Request: &req})
			id := s.caseFor(refundflow.PlatformTaobao, o, so)
			c := s.waitState(id, refundflow.StateSucceeded, 40*time.Second)
			s.agrees(c)
			key := "taobao:" + so
			waitFor(t, 10*time.Second, "the late submission to arrive", func() bool {
				return s.httpStats().RefundSubmissions[key] >= 1+tc.extra
			})
			// The late request has arrived (the sandbox counts it when it
			// takes effect); with the wait off the resend came first, and the
			// late one then either made a second refund or was refused as a
			// duplicate, depending on how far the first had got.
			st := s.httpStats()
			if n := st.RefundSubmissions[key]; n != 1+tc.extra {
				t.Errorf("refund submissions for %s = %d; want %d", key, n, 1+tc.extra)
			}
			if tc.extra == 0 && st.DuplicateSubmissions != 0 {
				t.Errorf("duplicate_submissions = %d; want 0", st.DuplicateSubmissions)
			}
			// The wait is visible on the case's timeline.
			tl, err := s.store.Timeline(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			waited := false
			for _, e := range tl {
				waited = waited || strings.Contains(e.Summary, refundflow.CodeInFlight)
			}
			if waited != (tc.extra == 0) {
				t.Errorf("timeline shows the in-flight wait: %v; want %v", waited, tc.extra == 0)
			}
			if dl, err := s.store.DeadLetters(context.Background(), casestore.DeadLetterFilter{}); err != nil || len(dl) != 0 {
				for _, d := range dl {
					t.Errorf("dead letter %s after %d deliveries: %s", d.Reason, d.Deliveries, d.Error)
				}
				t.Errorf("%d dead letters, %v; want none", len(dl), err)
			}
			// One submit intent; begun once when waiting, twice (resumed) when not.
			if submits := s.stepsOf(id, refundflow.StepSubmit); len(submits) != 1 || submits[0].Begins != int(1+tc.extra) || submits[0].Status != casestore.StepDone {
				t.Errorf("submit attempts %+v; want one, done, begun %d time(s)", submits, 1+tc.extra)
			}
		})
	}
}
