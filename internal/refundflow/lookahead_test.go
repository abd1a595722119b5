package refundflow_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// With lookahead, the form is read before its decision commits and the
// submit's intent commits with it: a refund request takes three
// transactions (the case opened before any platform call, form+intent,
// result) instead of four, and leaves the same record as without it: the
// same timeline, the same steps, the intent before the call.
func TestLookaheadSavesACommitSameRecord(t *testing.T) {
	record := func(noLookahead bool) (commits int64, kinds []string, steps []string, h refundflow.Handled) {
		r := newBench(t, 0).r // no callbacks: every commit is the request's
		eng, err := refundflow.NewEngine(refundflow.EngineConfig{Store: r.store, Client: r.client, Policy: testPolicy,
			Owner: "lookahead", NoLookahead: noLookahead})
		if err != nil {
			t.Fatal(err)
		}
		// A read slower than a second (a loaded machine under -race)
		// would commit the request's verdict alone: one commit more.
		refundflow.SetVerdictDue(eng, time.Minute)
		o, so := r.order(sandbox.PlatformTaobao, nil)
		cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
		cmd.Request = taobaoRequest(false)
		before := r.store.Commits()
		h, err = eng.HandleCommand(context.Background(), cmd, &refundflow.Message{ID: cmd.ID})
		if err != nil {
			t.Fatal(err)
		}
		commits = r.store.Commits() - before
		tl, err := r.store.Timeline(context.Background(), h.CaseID)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range tl {
			// The platform's request ids differ between the runs (the render
			// step's two calls run side by side): compare what was done.
			sum, _, _ := strings.Cut(e.Summary, " requestId=")
			kinds = append(kinds, string(e.Kind)+": "+sum[:min(len(sum), 24)])
		}
		sa, err := r.store.Steps(context.Background(), h.CaseID)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sa {
			steps = append(steps, s.Step+"/"+string(s.Status))
			if s.Step == "submit" && (s.IdempotencyKey == "" || s.Status != casestore.StepDone) {
				t.Errorf("submit attempt %+v: want a keyed, finished intent", s)
			}
		}
		r.noDuplicates()
		return commits, kinds, steps, h
	}
	c1, k1, s1, h1 := record(false)
	c0, k0, s0, h0 := record(true)
	if c1 != 3 || c0 != 4 {
		t.Fatalf("commits per request: %d with lookahead, %d without; want 3 and 4", c1, c0)
	}
	if h1.State != refundflow.StateWaitingSeller || h0.State != h1.State || h1.Steps != 2 || h0.Steps != 2 {
		t.Fatalf("handled %+v with lookahead, %+v without; want both waiting_seller after 2 steps", h1, h0)
	}
	if !slices.Equal(k1, k0) {
		t.Fatalf("timelines differ:\n with    %q\n without %q", k1, k0)
	}
	if !slices.Equal(s1, s0) {
		t.Fatalf("steps differ: with %q, without %q", s1, s0)
	}
}
