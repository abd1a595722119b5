package refundflow_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/apiclient"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/casestore/casestoretest"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestAHeldCaseMakesNoPlatformCall: a case that three worker processes in
// a row ended while they held it (each left its lease behind) is held by
// its next input (worker_ended), here the reconciler's wake; from then on a
// wake, a refund callback and an operator's command make no platform call
// (the command is refused, saying how to resolve the case), until the
// operator's resolve --retry takes the hold off: the case waits for the
// seller again, its timer due, and the timer reads the refund.
func TestAHeldCaseMakesNoPlatformCall(t *testing.T) {
	casestoretest.Each(t, testAHeldCaseMakesNoPlatformCall)
}

func testAHeldCaseMakesNoPlatformCall(t *testing.T, be casestoretest.Backend) {
	r := newRigOn(t, be, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	ctx := context.Background()
	c, o, so, refundID := r.submittedTaobaoCase()
	r.processesEnded(c, 3)
	eng := r.newEngineWith("engine-held", endedPolicy(), 0)
	calls := r.apiCalls
	before := calls()

	h, err := eng.Wake(ctx, c.ID, refundflow.InputReconcile)
	if err != nil || h.State != refundflow.StateNeedsAttention {
		t.Fatalf("the wake after three processes ended: %+v, %v; want the case held", h, err)
	}
	got, err := r.store.GetCase(ctx, c.ID)
	if err != nil || got.AttentionCode != refundflow.CodeWorkerEnded || got.ParkedState != string(refundflow.StateWaitingSeller) ||
		!got.NextWakeAt.IsZero() || got.LeaseOwner != "" || got.LeasesAbandoned != 0 {
		t.Fatalf("held case: %s at %s, timer %v, lease %q, count %d, %v; want worker_ended at waiting_seller, no timer, no lease, the count 0",
			got.AttentionCode, got.ParkedState, got.NextWakeAt, got.LeaseOwner, got.LeasesAbandoned, err)
	}

	if _, err := eng.Wake(ctx, c.ID, refundflow.InputTimer); err != nil {
		t.Fatalf("a timer wake of the held case: %v", err)
	}
	msg, _ := r.refundCallback(o, so, refundID, 77)
	ev, err := r.parser.Parse(msg.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := eng.HandleCallback(ctx, ev, msg); err != nil || h.Duplicate || h.Code != refundflow.CodeWorkerEnded {
		t.Fatalf("a refund callback for the held case: %+v, %v; want it recorded, changing nothing (%s)", h, err, refundflow.CodeWorkerEnded)
	}
	if seen, err := r.store.InboxSeen(ctx, msg.ID); err != nil || !seen {
		t.Errorf("the callback in the inbox: %v, %v; want it recorded as applied", seen, err)
	}
	cancel := r.command(refundflow.InputCancel, refundflow.PlatformTaobao, o, so)
	h, err = eng.HandleCommand(ctx, cancel, message(cancel))
	if err != nil || h.Outcome != refundflow.OutcomeReject || h.Code != refundflow.CodeWorkerEnded {
		t.Fatalf("a cancel for the held case: %+v, %v; want it refused (%s)", h, err, refundflow.CodeWorkerEnded)
	}
	if out, err := r.store.CommandOutcome(ctx, cancel.ID); err != nil || out.Verdict != casestore.VerdictRejected ||
		!strings.Contains(out.Reason, fmt.Sprintf("refundctl resolve %d --retry", c.ID)) {
		t.Errorf("the cancel's verdict: %+v, %v; want rejected, saying how to resolve the case", out, err)
	}
	if n := calls(); n != before {
		t.Errorf("%d platform calls for the held case; want none", n-before)
	}

	resolve := r.command(refundflow.InputResolve, refundflow.PlatformTaobao, o, so)
	resolve.CaseID, resolve.Resolve = c.ID, &refundflow.Resolve{Action: refundflow.ResolveRetry, Note: "not this case"}
	h, err = eng.HandleCommand(ctx, resolve, message(resolve))
	if err != nil || h.Outcome != refundflow.OutcomeAct || h.State != refundflow.StateWaitingSeller {
		t.Fatalf("resolve --retry of the held case: %+v, %v; want it back at waiting_seller", h, err)
	}
	got, err = r.store.GetCase(ctx, c.ID)
	if err != nil || got.AttentionCode != "" || got.HeldCode != "" || got.NextWakeAt.IsZero() || got.NextWakeAt.After(time.Now()) {
		t.Errorf("after the retry: attention %q (kept %q), timer %v, %v; want none, and its timer due now", got.AttentionCode, got.HeldCode, got.NextWakeAt, err)
	}
	if n := calls(); n != before {
		t.Errorf("%d platform calls for the retry itself; want none", n-before)
	}
	if _, err := eng.Wake(ctx, c.ID, refundflow.InputTimer); err != nil {
		t.Fatalf("the timer after the retry: %v", err)
	}
	if n := calls(); n == before {
		t.Errorf("no platform call when the timer took the case up again; want the refund read")
	}
}

// countingGate is a gate that counts the platform calls that reached it.
type countingGate struct {
	*gate
	calls atomic.Int64
}

func (g *countingGate) RoundTrip(req *http.Request) (*http.Response, error) {
	g.calls.Add(1)
	return g.gate.RoundTrip(req)
}

// TestACaseOnItsLastChanceRunsAlone: a case one process end away from
// being held runs its input alone among such cases in its process, so that
// the process that ends on one of them takes no other with it to the
// limit. While one is in flight another waits for its turn without its
// lease (so an end meanwhile does not count against it), counting the
// expired lease another process left on it, which its takeover would
// count; and a case further from the limit is not held up.
func TestACaseOnItsLastChanceRunsAlone(t *testing.T) {
	casestoretest.Each(t, testACaseOnItsLastChanceRunsAlone)
}

func testACaseOnItsLastChanceRunsAlone(t *testing.T, be casestoretest.Backend) {
	r := newRigOn(t, be, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	ctx := context.Background()
	a, _, _, _ := r.submittedTaobaoCase()
	b, _, _, _ := r.submittedTaobaoCase()
	c, _, _, _ := r.submittedTaobaoCase()
	r.processesEnded(a, 2)
	r.processesEnded(c, 1)
	// b: one end counted, and a lease another host's process left, expired:
	// its takeover will count the second.
	r.processesEnded(b, 1)
	const gone = "worker@other-host/ns/1/gone"
	r.leftExpired(b, gone)
	g := &countingGate{gate: newGate()}
	client, err := apiclient.New(apiclient.Config{BaseURL: r.url, AccessKey: testKey, AccessSecret: testSecret, UserID: "u1",
		HTTPClient: &http.Client{Transport: g}, RateLimit: rate.Inf, Timeout: 30 * time.Second, Retry: apiclient.RetryPolicy{MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := refundflow.NewEngine(refundflow.EngineConfig{Store: r.store, Client: client, Policy: endedPolicy(), Owner: "engine-alone",
		RetryDelay: 50 * time.Millisecond, LeaseTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var aErr error
	wg.Go(func() { _, aErr = eng.Wake(ctx, a.ID, refundflow.InputReconcile) })
	<-g.arrived // a's check is in flight, on its last chance

	bctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = eng.Wake(bctx, b.ID, refundflow.InputReconcile)
	cancel()
	var re *refundflow.RetryError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "waits for its last chance alone") {
		t.Fatalf("b's wake while a runs its last chance: %v; want it to wait for its turn", err)
	}
	if owner, _, err := r.store.LeaseUntil(ctx, b.ID); err != nil || owner != gone {
		t.Errorf("b's lease while it waits: %q, %v; want the gone process's, not taken over (a process end meanwhile must not count against it)", owner, err)
	}
	wg.Go(func() {
		if _, err := eng.Wake(ctx, c.ID, refundflow.InputReconcile); err != nil {
			t.Errorf("c's wake: %v", err)
		}
	})
	r.waitFor("c's check in flight beside a's", func() bool { return g.calls.Load() >= 2 })

	close(g.open)
	wg.Wait()
	if aErr != nil {
		t.Fatalf("a's wake: %v", aErr)
	}
	if _, err := eng.Wake(ctx, b.ID, refundflow.InputReconcile); err != nil {
		t.Fatalf("b's wake once a is done: %v", err)
	}
	for _, id := range []int64{a.ID, b.ID, c.ID} {
		got, err := r.store.GetCase(ctx, id)
		if err != nil || got.State != string(refundflow.StateWaitingSeller) || got.LeasesAbandoned != 0 {
			t.Errorf("case %d after its check: %s, count %d, %v; want waiting_seller, the count started again", id, got.State, got.LeasesAbandoned, err)
		}
	}
}

// TestAParkedCaseHeldStopsForItsOwnReasonAgain: holding a case that had
// stopped already keeps its reason, and the operator's retry gives it back
// (the case stops for it again, to be resolved as before), rather than
// losing it under worker_ended.
func TestAParkedCaseHeldStopsForItsOwnReasonAgain(t *testing.T) {
	casestoretest.Each(t, testAParkedCaseHeldStopsForItsOwnReasonAgain)
}

func testAParkedCaseHeldStopsForItsOwnReasonAgain(t *testing.T, be casestoretest.Backend) {
	r := newRigOn(t, be, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	ctx := context.Background()
	c, o, so, _ := r.submittedTaobaoCase()
	const why = "the seller refused: wrong size"
	if err := r.store.Update(ctx, func(tx *casestore.Tx) error {
		next := c
		next.State, next.ParkedState, next.AttentionCode, next.AttentionMessage, next.NextWakeAt =
			string(refundflow.StateNeedsAttention), string(refundflow.StateWaitingSeller), refundflow.AttnSellerRefused, why, time.Time{}
		_, err := tx.UpdateCase(ctx, next)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r.processesEnded(c, 3)
	eng := r.newEngineWith("engine-held", endedPolicy(), 0)
	if _, err := eng.Wake(ctx, c.ID, refundflow.InputReconcile); err != nil {
		t.Fatal(err)
	}
	got, err := r.store.GetCase(ctx, c.ID)
	if err != nil || got.AttentionCode != refundflow.CodeWorkerEnded || got.HeldCode != refundflow.AttnSellerRefused ||
		got.HeldMessage != why || !strings.Contains(got.AttentionMessage, "It was stopped for seller_refused before") {
		t.Fatalf("held: %s (kept %s %q): %q, %v; want worker_ended, keeping seller_refused and saying so",
			got.AttentionCode, got.HeldCode, got.HeldMessage, got.AttentionMessage, err)
	}
	resolve := r.command(refundflow.InputResolve, refundflow.PlatformTaobao, o, so)
	resolve.CaseID, resolve.Resolve = c.ID, &refundflow.Resolve{Action: refundflow.ResolveRetry}
	if h, err := eng.HandleCommand(ctx, resolve, message(resolve)); err != nil || h.Outcome != refundflow.OutcomeAct {
		t.Fatalf("resolve --retry: %+v, %v; want the hold taken off", h, err)
	}
	got, err = r.store.GetCase(ctx, c.ID)
	if err != nil || got.State != string(refundflow.StateNeedsAttention) || got.ParkedState != string(refundflow.StateWaitingSeller) ||
		got.AttentionCode != refundflow.AttnSellerRefused || got.AttentionMessage != why || got.HeldCode != "" || got.HeldMessage != "" {
		t.Errorf("after the retry: %s at %s, %s %q (kept %q %q), %v; want stopped at waiting_seller for seller_refused again, nothing kept",
			got.State, got.ParkedState, got.AttentionCode, got.AttentionMessage, got.HeldCode, got.HeldMessage, err)
	}
}

// TestAMessageCountsTheExpiredLeaseItTakesOver: an input from a message
// decides before its commit takes the case's lease over; an expired lease
// another process left on the case counts already, as it does for a wake
// (which claims the lease first), so both hold the case at the same count.
func TestAMessageCountsTheExpiredLeaseItTakesOver(t *testing.T) {
	casestoretest.Each(t, testAMessageCountsTheExpiredLeaseItTakesOver)
}

func testAMessageCountsTheExpiredLeaseItTakesOver(t *testing.T, be casestoretest.Backend) {
	r := newRigOn(t, be, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	ctx := context.Background()
	c, o, so, refundID := r.submittedTaobaoCase()
	r.processesEnded(c, 2)
	r.leftExpired(c, "worker@other-host/ns/1/gone")
	eng := r.newEngineWith("engine-held", endedPolicy(), 0)
	calls := r.apiCalls
	before := calls()
	msg, _ := r.refundCallback(o, so, refundID, 91)
	ev, err := r.parser.Parse(msg.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.HandleCallback(ctx, ev, msg); err != nil {
		t.Fatal(err)
	}
	if got, err := r.store.GetCase(ctx, c.ID); err != nil || got.AttentionCode != refundflow.CodeWorkerEnded {
		t.Errorf("after the callback: %s %s, %v; want the case held (two ends counted, the third taken over with the lease)", got.State, got.AttentionCode, err)
	}
	if n := calls(); n != before {
		t.Errorf("%d platform calls; want none", n-before)
	}
}

// TestACommandWaitingForAnotherProcessesLeaseIsKeptAfterTheLeaseWait: a
// command for a case another process holds waits for that lease up to the
// lease wait (5 s), re-reading the case every 100 ms, and is then kept in
// the store for its case, freeing its slot. Each re-read counted as one of
// the 24 decisions an input may lead to, so after 2.4 s the command was
// handed back as a spinning input ("more than 24 decisions") instead.
func TestACommandWaitingForAnotherProcessesLeaseIsKeptAfterTheLeaseWait(t *testing.T) {
	r := newRig(t, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	ctx := context.Background()
	c, o, so, _ := r.submittedTaobaoCase()
	if _, err := r.store.ClaimLease(ctx, c.ID, "another-process", time.Minute); err != nil {
		t.Fatal(err)
	}
	cmd := r.command(refundflow.InputSendMessage, refundflow.PlatformTaobao, o, so)
	cmd.Message = "any news?"
	h, err := r.engine().HandleCommand(ctx, cmd, message(cmd))
	if err != nil || !h.Deferred {
		t.Fatalf("the command while another process holds its case: %+v, %v; want it kept in the store", h, err)
	}
	if n, err := r.store.CountDeferred(ctx); err != nil || n != 1 {
		t.Errorf("inputs kept: %d, %v; want the command", n, err)
	}
}

// processesEnded records n worker processes that ended holding case c
// (each leaves its lease, which a starting worker takes over), as the
// store counts them: c.LeasesAbandoned goes up by n.
func (r *rig) processesEnded(c casestore.Case, n int) {
	r.t.Helper()
	ctx := context.Background()
	for i := range n {
		dead := fmt.Sprintf("worker@host/ns/%d/dead-%d", i+1, c.ID)
		if _, err := r.store.ClaimLease(ctx, c.ID, dead, time.Minute); err != nil {
			r.t.Fatal(err)
		}
		if _, err := r.store.ReleaseLeasesOf(ctx, dead); err != nil {
			r.t.Fatal(err)
		}
	}
}

// apiCalls is how many platform calls the sandbox has answered.
func (r *rig) apiCalls() (n int64) {
	for _, k := range r.sb.Stats().APICalls {
		n += k
	}
	return n
}

// endedPolicy is testPolicy holding a case after three worker processes
// ended on it.
func endedPolicy() refundflow.Policy {
	p := testPolicy
	p.EndedLimit = 3
	return p
}

// leftExpired leaves on case c an expired lease of owner, another process
// that ended without letting go (found after its lease ran out).
func (r *rig) leftExpired(c casestore.Case, owner string) {
	r.t.Helper()
	ctx := context.Background()
	if _, err := r.store.ClaimLease(ctx, c.ID, owner, time.Millisecond); err != nil {
		r.t.Fatal(err)
	}
	r.waitFor("the lease expired", func() bool {
		_, until, err := r.store.LeaseUntil(ctx, c.ID)
		return err == nil && time.Now().After(until.Add(time.Millisecond))
	})
}
