package refundflow_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// A new case's first commit (case, form, submit intent, lease) happens before
// the engine takes the case's in-process lock. If in that gap another input
// of the same process ends and drops the (per-process) lease without changing
// the version, the submit must not run unleased: a second process waking the
// case would find the refund absent and submit again. The engine decides
// afresh instead, and the platform sees exactly one submission.
// (Found in review; before the fix the submit ran with no lease, engine-b
// resumed the same intent meanwhile and the platform got two.)
func TestSubmitNeverRunsAfterLeaseDroppedInOpenGap(t *testing.T) {
	r := newRig(t, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	target, err := url.Parse(r.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var submits atomic.Int32
	var engB *refundflow.Engine
	var caseID atomic.Int64
	var leaseOwnerAtSubmit atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/open/order/refund/submit" && submits.Add(1) == 1 {
			owner, _, _ := r.store.LeaseUntil(context.Background(), caseID.Load())
			leaseOwnerAtSubmit.Store(owner)
			// A second process wakes the case while this submit is in
			// flight; the submit is held up to a second for it. Leased, B
			// waits for engine-a and the submit goes on; unleased, B would
			// resume the intent (the refund is not there yet) and submit.
			bDone := make(chan struct{})
			go func() {
				defer close(bDone)
				if _, err := engB.Wake(context.Background(), caseID.Load(), refundflow.InputTimer); err != nil {
					t.Logf("engine-b: %v", err)
				}
			}()
			t.Cleanup(func() { <-bDone })
			select {
			case <-bDone:
			case <-time.After(time.Second):
			}
		}
		proxy.ServeHTTP(w, req)
	}))
	defer srv.Close()
	cl := newClient(t, srv.URL)
	mk := func(owner string, onStep refundflow.StepObserver) *refundflow.Engine {
		e, err := refundflow.NewEngine(refundflow.EngineConfig{Store: r.store, Client: cl, Policy: testPolicy,
			Owner: owner, RetryDelay: 50 * time.Millisecond, OnStep: onStep})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	var engA *refundflow.Engine
	var once sync.Once
	gapDone := make(chan struct{})
	engA = mk("engine-a", func(_ refundflow.Platform, s refundflow.StepName, _ string, _ time.Duration) {
		if s != refundflow.StepRender {
			return
		}
		once.Do(func() {
			// The render ran ahead in open(), before the case exists (id 1
			// in a fresh database). Hold the case's lock first, then do what
			// retryLater does for an input whose fetch failed: drop the
			// process's lease, version unchanged.
			unlock := refundflow.LockCaseForTest(engA, 1)
			go func() {
				defer close(gapDone)
				defer unlock()
				deadline := time.Now().Add(10 * time.Second)
				for {
					c, err := r.store.GetCase(context.Background(), 1)
					if err == nil && c.Version == 3 {
						break
					}
					if time.Now().After(deadline) {
						t.Error("the combined first commit never happened")
						return
					}
					<-time.After(time.Millisecond)
				}
				caseID.Store(1)
				if err := r.store.Update(context.Background(), func(tx *casestore.Tx) error {
					return tx.DropLease(context.Background(), 1, "engine-a")
				}); err != nil {
					t.Error(err)
				}
			}()
		})
	})
	engB = mk("engine-b", nil)
	o, so := r.order(sandbox.PlatformTaobao, nil)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(false)
	for range 50 {
		_, err = engA.HandleCommand(context.Background(), cmd, &refundflow.Message{ID: cmd.ID})
		var re *refundflow.RetryError
		if err == nil || !errors.As(err, &re) {
			break
		}
		<-time.After(re.After)
	}
	if err != nil {
		t.Fatalf("HandleCommand: %v", err)
	}
	<-gapDone
	// The submit ran under engine-a's lease and the platform got exactly one.
	if owner, _ := leaseOwnerAtSubmit.Load().(string); owner != "engine-a" {
		t.Fatalf("the first submit ran under lease owner %q; want engine-a", owner)
	}
	if st := r.sb.Stats(); len(st.RefundSubmissions) != 1 {
		tl, _ := r.store.Timeline(context.Background(), 1)
		for _, e := range tl {
			t.Logf("  %s %s %s", e.Kind, e.Summary, e.Detail)
		}
		t.Fatalf("refund submissions %v; want exactly one", st.RefundSubmissions)
	}
	r.noDuplicates()
}
