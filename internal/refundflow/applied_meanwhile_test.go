package refundflow_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/casestore/casestoretest"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestCallbackAppliedMeanwhileIsADuplicate: process A keeps a callback's
// first copy and, before it verifies it, process B verifies a redelivered
// copy of it to the end. A does not look the callback up again (it kept the
// first copy), so its own decision must find B's inbox row where it
// commits: whether A's platform read works (the decision's commit) or fails
// (the retry's commit), A reports a duplicate, changes nothing on the case
// and leaves no kept copy behind to be verified a third time.
func TestCallbackAppliedMeanwhileIsADuplicate(t *testing.T) {
	casestoretest.Each(t, func(t *testing.T, be casestoretest.Backend) {
		for _, platformUp := range []bool{true, false} {
			name := "A's platform read works"
			if !platformUp {
				name = "A's platform read fails"
			}
			t.Run(name, func(t *testing.T) { testCallbackAppliedMeanwhile(t, be, platformUp) })
		}
	})
}

func testCallbackAppliedMeanwhile(t *testing.T, be casestoretest.Backend, platformUp bool) {
	r := newRigOn(t, be, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	c, o, so, refundID := r.submittedTaobaoCase()
	ctx := context.Background()
	url := r.url
	if !platformUp {
		down := httptest.NewServer(http.NotFoundHandler())
		down.Close()
		url = down.URL
	}
	client, err := apiclient.New(apiclient.Config{BaseURL: url, AccessKey: testKey, AccessSecret: testSecret, UserID: "u1",
		RateLimit: rate.Inf, Timeout: 5 * time.Second, Retry: apiclient.RetryPolicy{MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := refundflow.NewEngine(refundflow.EngineConfig{Store: r.store, Client: client, Policy: testPolicy,
		Owner: "engine-A", RetryDelay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b := r.newEngine("engine-B")

	msg, copyOf := r.refundCallback(o, so, refundID, 51)
	ev, _ := r.parser.Parse(msg.Payload)
	var bGot refundflow.Handled
	var bErr error
	msg.Recorded = func() { // A has kept the first copy: B verifies a redelivered one to the end
		bGot, bErr = b.HandleCallback(ctx, ev, copyOf())
	}
	h, err := a.HandleCallback(ctx, ev, msg)
	if bErr != nil || bGot.Duplicate || bGot.Deferred || bGot.CaseID != c.ID {
		t.Fatalf("B's copy: %+v, %v; want it verified on case %d", bGot, bErr, c.ID)
	}
	if err != nil || !h.Duplicate || h.Deferred {
		t.Fatalf("A's copy: %+v, %v; want a duplicate, not deferred", h, err)
	}
	if kept, err := r.store.DeferredInputs(ctx, c.ID); err != nil || len(kept) != 0 {
		t.Errorf("kept inputs: %+v, %v; want none (the callback is applied)", kept, err)
	}
	after, err := r.store.GetCase(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.FailedInputs != 0 || after.AttentionCode != "" {
		t.Errorf("case after: failed inputs %d, attention %q; want A's failure not counted", after.FailedInputs, after.AttentionCode)
	}
	tl, err := r.store.Timeline(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tl {
		if strings.HasPrefix(e.Summary, "waits until") || strings.HasPrefix(e.Summary, "retry later") {
			t.Errorf("timeline entry %q: A's retry of an applied callback was committed", e.Summary)
		}
	}
	if n := len(r.callbackEntries(c.ID, ev.ID)); n != 1 {
		t.Errorf("callback entries: %d; want one", n)
	}
}
