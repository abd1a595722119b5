package refundflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestEngineWakeBackoff: while the platform is down, each timer wake of a
// case that fails puts its next wake further away (RetryDelay doubling up to
// RetryMax), with one timeline entry per failed wake; a wake that gets an
// answer resets the delay.
func TestEngineWakeBackoff(t *testing.T) {
	r := newRig(t, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	o, so := r.order(sandbox.PlatformTaobao, nil)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(false)
	h := r.handle(cmd)
	if h.State != refundflow.StateWaitingSeller {
		t.Fatalf("request: state %s; want waiting_seller", h.State)
	}
	// Let the callbacks of the submission be applied first: during the
	// outage they would fail too (and count as failed inputs of the case).
	deadline := time.Now().Add(15 * time.Second)
	for st := r.sb.Stats(); st.Callbacks.Pending > 0 || r.pumped.Load() < st.Callbacks.Delivered; st = r.sb.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("callbacks still pending: %+v, %d applied", st.Callbacks, r.pumped.Load())
		}
		<-time.After(10 * time.Millisecond)
	}
	const base, limit = time.Second, 5 * time.Second
	eng, err := refundflow.NewEngine(refundflow.EngineConfig{Store: r.store, Client: r.client, Policy: testPolicy,
		Owner: "engine-backoff", RetryDelay: base, RetryMax: limit})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// due makes the case's timer due, as the timer sweep would find it.
	due := func() {
		t.Helper()
		err := r.store.Update(ctx, func(tx *casestore.Tx) error {
			c, err := tx.GetCase(ctx, h.CaseID)
			if err != nil {
				return err
			}
			c.NextWakeAt = time.Now().Add(-time.Second)
			_, err = tx.UpdateCase(ctx, c)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// failWake runs a due timer wake that must fail, and returns the delay
	// to the next wake it set and the attempt its timeline entry records.
	failWake := func() (time.Duration, int) {
		t.Helper()
		due()
		_, err := eng.Wake(ctx, h.CaseID, refundflow.InputTimer)
		var re *refundflow.RetryError
		if !errors.As(err, &re) {
			t.Fatalf("wake during the outage: %v; want a RetryError", err)
		}
		c, err := r.store.GetCase(ctx, h.CaseID)
		if err != nil {
			t.Fatal(err)
		}
		tl, err := r.store.Timeline(ctx, h.CaseID)
		if err != nil {
			t.Fatal(err)
		}
		last := tl[len(tl)-1]
		if !strings.HasPrefix(last.Summary, "retry later: ") {
			t.Fatalf("last timeline entry %q; want the retry", last.Summary)
		}
		var d struct {
			Attempt int   `json:"attempt"`
			AfterMS int64 `json:"afterMs"`
		}
		if err := json.Unmarshal(last.Detail, &d); err != nil {
			t.Fatalf("retry detail %s: %v", last.Detail, err)
		}
		got := c.NextWakeAt.Sub(last.At)
		if re.After != got || time.Duration(d.AfterMS)*time.Millisecond != got {
			t.Errorf("RetryError.After %s, detail %dms, next wake in %s; want all equal", re.After, d.AfterMS, got)
		}
		return got, d.Attempt
	}

	outage := sandbox.Faults{ErrorRate: 1, ErrorKinds: []sandbox.ErrorKind{sandbox.ErrHTTP500}}
	r.sb.SetFaults(outage)
	before, _ := r.store.Timeline(ctx, h.CaseID)
	for i, want := range []time.Duration{base, 2 * base, 4 * base, limit, limit} {
		got, attempt := failWake()
		if got != want || attempt != i {
			t.Errorf("failed wake %d: next wake in %s (attempt %d); want %s (attempt %d)", i+1, got, attempt, want, i)
		}
	}
	after, _ := r.store.Timeline(ctx, h.CaseID)
	if n := len(after) - len(before); n != 5 {
		t.Errorf("%d timeline entries for 5 failed wakes; want 5", n)
	}

	// The platform answers again: the wake succeeds and the next failure
	// starts over from RetryDelay.
	r.sb.SetFaults(sandbox.Faults{})
	due()
	if _, err := eng.Wake(ctx, h.CaseID, refundflow.InputTimer); err != nil {
		t.Fatalf("wake after the outage: %v", err)
	}
	r.sb.SetFaults(outage)
	if got, attempt := failWake(); got != base || attempt != 0 {
		t.Errorf("first failure after a success: next wake in %s (attempt %d); want %s (attempt 0)", got, attempt, base)
	}
	if got, attempt := failWake(); got != 2*base || attempt != 1 {
		t.Errorf("second failure after a success: next wake in %s (attempt %d); want %s (attempt 1)", got, attempt, 2*base)
	}
	r.sb.SetFaults(sandbox.Faults{})
}

// TestEngineWaitsForAttemptInFlight: a submission whose call failed on our
// side (a gateway timeout after 1.5 s) may still reach the platform, so a
// view showing no refund is not trusted until Policy.InFlight has passed
// since we stopped waiting for the call (not since it began). The request
// itself is applied at once (its message is done); the case's timer asks
// the platform, and while the window lasts the case shows that it waits for
// evidence, and until when. A command for the case meanwhile waits in the
// store until the window ends (it holds no consumer slot). After the window
// the same key is sent again, once, and the waiting command is applied.
func TestEngineWaitsForAttemptInFlight(t *testing.T) {
	r := newRig(t, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	r.sb.SetFaults(sandbox.Faults{TimeoutAfter: 1500 * time.Millisecond,
		ForceErrors: []sandbox.ForcedError{{Endpoint: "taobao_submit", Kind: sandbox.ErrTimeout, Count: 1}}})
	policy := testPolicy
	policy.InFlight = time.Hour
	newEngine := func(owner string, now func() time.Time) *refundflow.Engine {
		eng, err := refundflow.NewEngine(refundflow.EngineConfig{Store: r.store, Client: r.client, Policy: policy,
			Owner: owner, RetryDelay: 50 * time.Millisecond, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return eng
	}
	eng := newEngine("engine-inflight", time.Now)
	o, so := r.order(sandbox.PlatformTaobao, nil)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(false)
	ctx := context.Background()
	h, err := eng.HandleCommand(ctx, cmd, message(cmd))
	if err != nil || h.Deferred || h.Until.IsZero() {
		t.Fatalf("submit timed out: %+v, %v; want the request applied and the case's timer set", h, err)
	}
	c := r.caseOf(refundflow.PlatformTaobao, o, so)
	it, err := r.store.OpenIntent(ctx, c.ID)
	if err != nil || it.Begins != 1 {
		t.Fatalf("open intent %+v, %v; want the submit intent, begun once", it, err)
	}
	began, ended := it.StartedAt, it.LastAttemptAt
	if ended.Sub(began) < time.Second {
		t.Fatalf("intent began %v, last attempt %v; want the attempt's end (1.5 s later) recorded", began, ended)
	}
	until := ended.Add(time.Hour)
	// The timer: the platform shows no refund, but the attempt may be in flight.
	if _, err := eng.Wake(ctx, c.ID, refundflow.InputTimer); err != nil {
		t.Fatalf("wake within the window: %v", err)
	}
	c = r.caseOf(refundflow.PlatformTaobao, o, so)
	if !c.NextWakeAt.Equal(until) || c.AttentionCode != refundflow.AttnWaitingEvidence ||
		!strings.Contains(c.AttentionMessage, until.UTC().Format(time.RFC3339)) {
		t.Fatalf("case within the window: wake %v, attention %q %q; want wake %v and waiting_evidence naming it",
			c.NextWakeAt, c.AttentionCode, c.AttentionMessage, until)
	}
	// A cancel meanwhile waits in the store until the window ends.
	cancelCmd := r.command(refundflow.InputCancel, refundflow.PlatformTaobao, o, so)
	h, err = eng.HandleCommand(ctx, cancelCmd, message(cancelCmd))
	if err != nil || !h.Deferred || h.Until.Before(until) || h.Until.After(until.Add(time.Second)) {
		t.Fatalf("cancel within the window: %+v, %v; want it deferred until %v", h, err, until)
	}
	key := "taobao:" + so
	if n := r.sb.Stats().RefundSubmissions[key]; n != 0 {
		t.Fatalf("submissions within the window: %d; want 0", n)
	}
	// An hour after the call began but not after it ended: still waiting.
	between := began.Add(time.Hour + ended.Sub(began)/2)
	if _, err := newEngine("engine-inflight-between", func() time.Time { return between }).Wake(ctx, c.ID, refundflow.InputTimer); err != nil {
		t.Fatal(err)
	}
	if n := r.sb.Stats().RefundSubmissions[key]; n != 0 {
		t.Fatalf("an hour after the call began, before an hour after it ended: %d submissions; want 0 (the window counts from the end)", n)
	}
	// An hour after it ended the view is trusted: sent again under the same key.
	late := newEngine("engine-inflight-later", func() time.Time { return ended.Add(time.Hour + time.Second) })
	h, err = late.Wake(ctx, c.ID, refundflow.InputTimer)
	if err != nil || h.State != refundflow.StateWaitingSeller {
		t.Fatalf("after the window: %+v, %v; want waiting_seller", h, err)
	}
	if n := r.sb.Stats().RefundSubmissions[key]; n != 1 {
		t.Fatalf("submissions after the window: %d; want 1", n)
	}
	if c = r.caseOf(refundflow.PlatformTaobao, o, so); c.AttentionCode != "" {
		t.Errorf("attention after the intent was settled: %q; want none", c.AttentionCode)
	}
	steps, err := r.store.Steps(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	var submits []casestore.StepAttempt
	for _, s := range steps {
		if s.Step == "submit" {
			submits = append(submits, s)
		}
	}
	if len(submits) != 1 || submits[0].Begins != 2 || submits[0].Status != casestore.StepDone {
		t.Fatalf("submit attempts %+v; want one key, begun twice, done", submits)
	}
	// The waiting cancel is taken up and applied. (The submission's
	// callbacks, kept while they are verified, may wait beside it.)
	commands := func() ([]casestore.DeferredInput, error) {
		all, err := r.store.DeferredInputs(ctx, c.ID)
		return slices.DeleteFunc(all, func(d casestore.DeferredInput) bool { return d.Source != casestore.SourceCommands }), err
	}
	waiting, err := commands()
	if err != nil || len(waiting) != 1 || waiting[0].MsgID != cancelCmd.ID {
		t.Fatalf("deferred inputs %+v, %v; want the cancel", waiting, err)
	}
	msg := &refundflow.Message{ID: cancelCmd.ID, Source: waiting[0].Source, Payload: waiting[0].Payload, Deferred: true}
	if h, err = late.HandleCommand(ctx, cancelCmd, msg); err != nil || h.State != refundflow.StateCancelled {
		t.Fatalf("the waiting cancel taken up: %+v, %v; want cancelled", h, err)
	}
	if waiting, err = commands(); err != nil || len(waiting) != 0 {
		t.Fatalf("deferred inputs after it was applied: %+v, %v; want none", waiting, err)
	}
}
