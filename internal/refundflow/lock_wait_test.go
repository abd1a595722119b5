package refundflow_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore/casestoretest"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestAnInputWaitingLongForItsCaseInThisProcessIsKept: one callback's
// platform read hangs, holding this process's lock on its case; a second
// callback for the same case waits for that lock. After the lease wait it
// is kept in the store for its case, as an input waiting for another
// process's lease is, and its handler returns: it no longer holds a worker
// slot for as long as the other input's platform calls take (a slow
// platform could fill every slot with the inputs of one case, and hold up
// every other case). When the read comes back, the kept callback is
// verified.
func TestAnInputWaitingLongForItsCaseInThisProcessIsKept(t *testing.T) {
	r := newRigOn(t, casestoretest.Backends()[0], sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	c, o, so, refundID := r.submittedTaobaoCase()
	g := newGate()
	eng := r.gatedEngine("engine-gated", g, 0)
	refundflow.SetLeaseWait(eng, 300*time.Millisecond)
	t.Cleanup(func() {
		select {
		case <-g.open:
		default:
			close(g.open)
		}
	})
	ctx := context.Background()

	first, _ := r.refundCallback(o, so, refundID, 51)
	ev1, _ := r.parser.Parse(first.Payload)
	firstDone := make(chan error, 1)
	go func() {
		_, err := eng.HandleCallback(ctx, ev1, first)
		firstDone <- err
	}()
	select {
	case <-g.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the first callback's verification never called the platform")
	}

	second, _ := r.refundCallback(o, so, refundID, 52)
	var raw map[string]any
	if err := json.Unmarshal(second.Payload, &raw); err != nil {
		t.Fatal(err)
	}
	raw["timestamp"] = "1700000000000" // another message than the first
	second.Payload, _ = json.Marshal(raw)
	ev2, err := r.parser.Parse(second.Payload)
	if err != nil || ev2.ID == ev1.ID {
		t.Fatalf("second callback: %v, id %s; want another message", err, ev2.ID)
	}
	second.ID = ev2.ID
	type result struct {
		h   refundflow.Handled
		err error
	}
	secondDone := make(chan result, 1)
	go func() {
		h, err := eng.HandleCallback(ctx, ev2, second)
		secondDone <- result{h, err}
	}()
	select {
	case res := <-secondDone:
		if res.err != nil || !res.h.Deferred || res.h.CaseID != c.ID {
			t.Fatalf("second callback while the first holds its case: %+v, %v; want it kept for case %d", res.h, res.err, c.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second callback still waits for its case 10 s after the lease wait (300 ms); want it kept in the store")
	}
	kept, err := r.store.DeferredInputs(ctx, c.ID)
	if err != nil || len(kept) != 2 {
		t.Fatalf("kept inputs: %+v, %v; want both callbacks (the first verifying, the second waiting)", kept, err)
	}

	close(g.open)
	if err := <-firstDone; err != nil {
		t.Fatalf("first callback: %v", err)
	}
	second.Deferred = true
	if h, err := eng.HandleCallback(ctx, ev2, second); err != nil || h.Deferred {
		t.Fatalf("the kept callback taken up: %+v, %v; want it verified", h, err)
	}
	if seen, err := r.store.InboxSeen(ctx, ev2.ID); err != nil || !seen {
		t.Errorf("inbox: %v, %v; want the second callback applied", seen, err)
	}
}
