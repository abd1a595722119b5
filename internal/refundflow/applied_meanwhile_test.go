package refundflow_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/casestore/casestoretest"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestCallbackAppliedMeanwhileIsADuplicate: process A keeps a callback's
// first copy and, before its decision commits, process B verifies a
// redelivered copy of it to the end. A does not look the callback up again
// (it kept the first copy), so its own decision must find B's inbox row
// where it commits. B finishes before A reads the case, and A's platform
// read works (the decision's commit) or fails (the retry's commit); or B
// finishes while A reads the platform, and A's commit (of the decision or
// of the retry) meets B's new version of the case first. In each, A reports
// a duplicate, changes nothing on the case, leaves no kept copy behind to
// be verified a third time, and reads the platform once.
func TestCallbackAppliedMeanwhileIsADuplicate(t *testing.T) {
	casestoretest.Each(t, func(t *testing.T, be casestoretest.Backend) {
		for _, when := range []bMeanwhile{bBeforeRead, bBeforeFailedRead, bDuringRead, bDuringFailedRead} {
			t.Run(string(when), func(t *testing.T) { testCallbackAppliedMeanwhile(t, be, when) })
		}
	})
}

// bMeanwhile is when, in TestCallbackAppliedMeanwhileIsADuplicate, B
// applies the callback.
type bMeanwhile string

const (
	bBeforeRead       bMeanwhile = "before A's platform read, which works"
	bBeforeFailedRead bMeanwhile = "before A's platform read, which fails"
	bDuringRead       bMeanwhile = "during A's platform read"
	bDuringFailedRead bMeanwhile = "during A's platform read, which fails"
)

func testCallbackAppliedMeanwhile(t *testing.T, be casestoretest.Backend, when bMeanwhile) {
	r := newRigOn(t, be, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	c, o, so, refundID := r.submittedTaobaoCase()
	ctx := context.Background()
	msg, copyOf := r.refundCallback(o, so, refundID, 51)
	ev, _ := r.parser.Parse(msg.Payload)
	b := r.newEngine("engine-B")
	var bGot refundflow.Handled
	var bErr error
	bRuns := func() { bGot, bErr = b.HandleCallback(ctx, ev, copyOf()) }

	// A's platform: the sandbox behind a proxy that counts A's requests
	// by path (and, during A's read, lets B run first), or nothing at all.
	var mu sync.Mutex
	requests := map[string]int{}
	first := ""
	var bOnce sync.Once
	target, _ := neturl.Parse(r.url)
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		requests[req.URL.Path]++
		if first == "" {
			first = req.URL.Path
		}
		mu.Unlock()
		switch when {
		case bDuringRead:
			bOnce.Do(bRuns)
		case bDuringFailedRead:
			bOnce.Do(bRuns)
			http.Error(w, "down", http.StatusNotFound)
			return
		}
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(front.Close)
	url := front.URL
	if when == bBeforeFailedRead {
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
	if when == bBeforeRead || when == bBeforeFailedRead {
		msg.Recorded = bRuns // A has kept the first copy: B verifies a redelivered one to the end
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
	mu.Lock()
	defer mu.Unlock()
	if when != bBeforeFailedRead && requests[first] != 1 {
		t.Errorf("A's requests: %v; want %s once (A read the platform once)", requests, first)
	}
}

// TestRequestAppliedWithoutACaseIsADuplicate: a request_refund whose
// message is in the inbox, applied before without a case of its own (it
// was refused), is a duplicate when it comes again: it opens no case and
// calls nothing. The inbox is looked up by the transaction that would open
// the case, not by a read before it.
func TestRequestAppliedWithoutACaseIsADuplicate(t *testing.T) {
	casestoretest.Each(t, func(t *testing.T, be casestoretest.Backend) {
		r := newRigOn(t, be, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
		ctx := context.Background()
		o, so := r.order(sandbox.PlatformTaobao, nil)
		cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
		cmd.Request = taobaoRequest(false)
		if err := r.store.Update(ctx, func(tx *casestore.Tx) error {
			return tx.InboxAdd(ctx, casestore.InboxEntry{MsgID: cmd.ID, Stream: "COMMANDS", StreamSeq: 1, Subject: "commands.request_refund"})
		}); err != nil {
			t.Fatal(err)
		}
		calls := fmt.Sprint(r.sb.Stats().APICalls)
		h, err := r.engine().HandleCommand(ctx, cmd, message(cmd))
		if err != nil || !h.Duplicate || h.CaseID != 0 {
			t.Fatalf("the request again: %+v, %v; want a duplicate, on no case", h, err)
		}
		if c, err := r.store.CaseOpenedBy(ctx, cmd.ID); !errors.Is(err, casestore.ErrNotFound) {
			t.Errorf("case opened by the request: %+v, %v; want none", c, err)
		}
		if got := fmt.Sprint(r.sb.Stats().APICalls); got != calls {
			t.Errorf("platform calls: %s after the request, %s before; want none", got, calls)
		}
	})
}

// TestCallbackCopiesOfAppliedCallbacksAreDuplicates: a copy of a callback
// applied before (a redelivery after a lost ack) is a duplicate, found by
// the write that would record it rather than by a read before it: a refund
// callback for a case (KeepCallback finds its inbox row), and one that
// concerns no case (its inbox row is there already). Neither copy adds to
// the case's timeline, keeps anything or calls the platform.
func TestCallbackCopiesOfAppliedCallbacksAreDuplicates(t *testing.T) {
	casestoretest.Each(t, func(t *testing.T, be casestoretest.Backend) {
		r := newRigOn(t, be, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
		c, o, so, refundID := r.submittedTaobaoCase()
		ctx := context.Background()
		msg, copyOf := r.refundCallback(o, so, refundID, 61)
		ev, _ := r.parser.Parse(msg.Payload)
		if h, err := r.engine().HandleCallback(ctx, ev, msg); err != nil || h.Duplicate || h.Deferred || h.CaseID != c.ID {
			t.Fatalf("the callback: %+v, %v; want it applied on case %d", h, err, c.ID)
		}
		stranger, strangerCopy := r.refundCallback("9999999999", "8888888888", "R-unknown", 62)
		sev, _ := r.parser.Parse(stranger.Payload)
		if h, err := r.engine().HandleCallback(ctx, sev, stranger); err != nil || !h.Ignored || h.Duplicate {
			t.Fatalf("a callback about no case: %+v, %v; want it ignored", h, err)
		}
		timeline, err := r.store.Timeline(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		calls := fmt.Sprint(r.sb.Stats().APICalls)

		if h, err := r.engine().HandleCallback(ctx, ev, copyOf()); err != nil || !h.Duplicate || h.Deferred {
			t.Errorf("a copy of the callback: %+v, %v; want a duplicate", h, err)
		}
		if h, err := r.engine().HandleCallback(ctx, sev, strangerCopy()); err != nil || !h.Duplicate || h.Ignored {
			t.Errorf("a copy of the callback about no case: %+v, %v; want a duplicate", h, err)
		}
		if after, err := r.store.Timeline(ctx, c.ID); err != nil || len(after) != len(timeline) {
			t.Errorf("timeline: %d entries after the copies, %d before (%v); want no new one", len(after), len(timeline), err)
		}
		if kept, err := r.store.DeferredInputs(ctx, c.ID); err != nil || len(kept) != 0 {
			t.Errorf("kept inputs: %+v, %v; want none", kept, err)
		}
		if got := fmt.Sprint(r.sb.Stats().APICalls); got != calls {
			t.Errorf("platform calls: %s after the copies, %s before; want none", got, calls)
		}
	})
}
