package refundflow_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/casestore/casestoretest"
	"github.com/refundhub/refundhub/internal/platform"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// gate holds every platform call of one engine until it is opened, and
// tells when the first one arrives: the moment a callback is being verified.
type gate struct {
	arrived chan struct{} // closed at the first call
	open    chan struct{} // closed to let calls through
	once    sync.Once
	next    http.RoundTripper
}

func newGate() *gate {
	return &gate{arrived: make(chan struct{}), open: make(chan struct{}), next: http.DefaultTransport}
}

func (g *gate) RoundTrip(req *http.Request) (*http.Response, error) {
	g.once.Do(func() { close(g.arrived) })
	select {
	case <-g.open:
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	return g.next.RoundTrip(req)
}

// gatedEngine is an engine on the rig's store and sandbox whose platform
// calls pass g. leaseTTL also bounds how long a callback it records waits
// before the timer may take it up.
func (r *rig) gatedEngine(owner string, g *gate, leaseTTL time.Duration) *refundflow.Engine {
	r.t.Helper()
	client, err := apiclient.New(apiclient.Config{BaseURL: r.url, AccessKey: testKey, AccessSecret: testSecret, UserID: "u1",
		HTTPClient: &http.Client{Transport: g}, RateLimit: rate.Inf, Timeout: 30 * time.Second,
		Retry: apiclient.RetryPolicy{MaxAttempts: 1}})
	if err != nil {
		r.t.Fatal(err)
	}
	eng, err := refundflow.NewEngine(refundflow.EngineConfig{Store: r.store, Client: client, Policy: testPolicy,
		Owner: owner, RetryDelay: 50 * time.Millisecond, LeaseTTL: leaseTTL})
	if err != nil {
		r.t.Fatal(err)
	}
	return eng
}

// submittedTaobaoCase is a Taobao refund submitted and waiting for the
// seller, its submission's callbacks applied: the case and its refund id.
func (r *rig) submittedTaobaoCase() (casestore.Case, string, string, string) {
	r.t.Helper()
	o, so := r.order(sandbox.PlatformTaobao, nil)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(false)
	if h := r.handle(cmd); h.State != refundflow.StateWaitingSeller {
		r.t.Fatalf("request: state %s; want waiting_seller", h.State)
	}
	r.waitFor("the submission's callbacks applied", func() bool {
		st := r.sb.Stats()
		return st.Callbacks.Pending == 0 && r.pumped.Load() >= st.Callbacks.Delivered
	})
	c := r.caseOf(refundflow.PlatformTaobao, o, so)
	return c, o, so, c.RefundID
}

// refundCallback is a Taobao refund callback as the platform sends it,
// parsed, with its stream message as the worker's consumer makes it.
func (r *rig) refundCallback(orderID, subOrderID, refundID string, seq uint64) (*refundflow.Message, func() *refundflow.Message) {
	r.t.Helper()
	body, _ := json.Marshal(map[string]any{"refundId": refundID, "orderId": orderID, "subOrderId": subOrderID,
		"refundStatus": "WAIT_SELLER_AGREE", "refundAmount": 10000})
	raw, _ := json.Marshal(map[string]any{"messageType": "ORDER_BUYER_VIEW_ORDER_BUYER_REFUND", "messageBody": string(body),
		"messagePlatform": 0, "timestamp": strconv.FormatInt(time.Now().UnixMilli(), 10)})
	ev, err := r.parser.Parse(raw)
	if err != nil || ev.Refund == nil {
		r.t.Fatalf("parse the callback: %v (%+v)", err, ev)
	}
	received := time.Now()
	copyOf := func() *refundflow.Message {
		return &refundflow.Message{ID: ev.ID, Stream: "CALLBACKS", Seq: seq, Subject: "callbacks.taobao",
			Source: casestore.SourceCallbacks, Payload: raw, ReceivedAt: received}
	}
	return copyOf(), copyOf
}

// callbackEntries returns the case's timeline entries that record the
// callback msgID (its CallbackDetail names it).
func (r *rig) callbackEntries(caseID int64, msgID string) []casestore.TimelineEntry {
	r.t.Helper()
	tl, err := r.store.Timeline(context.Background(), caseID)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []casestore.TimelineEntry
	for _, e := range tl {
		var d refundflow.CallbackDetail
		if e.Kind == casestore.KindCallback && json.Unmarshal(e.Detail, &d) == nil && d.MsgID == msgID {
			out = append(out, e)
		}
	}
	return out
}

// TestCallbackRecordedBeforeItsVerification: a refund callback is on its
// case's timeline (with its lag) and kept in the store as soon as it comes,
// while the platform read that verifies it is still under way; the inbox
// has it only once the verified decision commits, which also drops the
// kept copy. A command for the case meanwhile is applied, not sent behind
// the callback to the timer.
func TestCallbackRecordedBeforeItsVerification(t *testing.T) {
	casestoretest.Each(t, func(t *testing.T, be casestoretest.Backend) {
		r := newRigOn(t, be, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
		c, o, so, refundID := r.submittedTaobaoCase()
		g := newGate()
		eng := r.gatedEngine("engine-gated", g, 0)
		msg, _ := r.refundCallback(o, so, refundID, 41)
		ev, _ := r.parser.Parse(msg.Payload)
		ctx := context.Background()

		type result struct {
			h   refundflow.Handled
			err error
		}
		done := make(chan result, 1)
		go func() {
			h, err := eng.HandleCallback(ctx, ev, msg)
			done <- result{h, err}
		}()
		t.Cleanup(func() {
			select {
			case <-g.open:
			default:
				close(g.open)
			}
		})
		select {
		case <-g.arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("the callback's verification never called the platform")
		}

		// Recorded, not yet verified.
		entries := r.callbackEntries(c.ID, ev.ID)
		if len(entries) != 1 || !strings.HasPrefix(entries[0].Summary, "callback ORDER_BUYER_VIEW_ORDER_BUYER_REFUND refund "+refundID) {
			t.Fatalf("callback entries while verifying: %+v; want one naming the callback and its refund", entries)
		}
		var d refundflow.CallbackDetail
		if err := json.Unmarshal(entries[0].Detail, &d); err != nil || d.LagMs == nil || *d.LagMs < 0 || d.Stream != "CALLBACKS" || d.Seq != 41 {
			t.Errorf("callback entry detail %s; want its lag, stream and seq", entries[0].Detail)
		}
		kept, err := r.store.DeferredInputs(ctx, c.ID)
		if err != nil || len(kept) != 1 || kept[0].MsgID != ev.ID || kept[0].Source != casestore.SourceCallbacks ||
			!strings.HasPrefix(kept[0].Reason, "verifying") || string(kept[0].Payload) != string(msg.Payload) {
			t.Fatalf("kept inputs while verifying: %+v, %v; want the callback, verifying", kept, err)
		}
		if seen, err := r.store.InboxSeen(ctx, ev.ID); err != nil || seen {
			t.Fatalf("inbox while verifying: %v, %v; want not yet", seen, err)
		}

		// A command meanwhile goes through at once.
		note := r.command(refundflow.InputSendMessage, refundflow.PlatformTaobao, o, so)
		note.Message = "请尽快处理"
		if h, err := r.engine().HandleCommand(ctx, note, message(note)); err != nil || h.Deferred {
			t.Fatalf("command while the callback is verified: %+v, %v; want it applied, not deferred", h, err)
		}

		close(g.open)
		res := <-done
		if res.err != nil || res.h.Deferred || res.h.CaseID != c.ID {
			t.Fatalf("HandleCallback = %+v, %v; want it verified on case %d", res.h, res.err, c.ID)
		}
		if seen, err := r.store.InboxSeen(ctx, ev.ID); err != nil || !seen {
			t.Errorf("inbox after the verification: %v, %v; want the callback", seen, err)
		}
		if kept, err := r.store.DeferredInputs(ctx, c.ID); err != nil || len(kept) != 0 {
			t.Errorf("kept inputs after the verification: %+v, %v; want none", kept, err)
		}
		if n := len(r.callbackEntries(c.ID, ev.ID)); n != 1 {
			t.Errorf("callback entries after the verification: %d; want still one", n)
		}
		if msg.Lag <= 0 || msg.Verified < msg.Lag {
			t.Errorf("lag %s, verified after %s; want the lag measured at the record, the verification after it", msg.Lag, msg.Verified)
		}
	})
}

// TestCallbackVerifiedAfterItsProcessDied: the process that recorded a
// callback dies (here: its platform read never returns) before verifying
// it. A redelivered copy is verified by another process without a second
// timeline entry or a second lag; failing a redelivery, the worker's timer
// takes the kept copy up once the recording process's lease time has
// passed.
func TestCallbackVerifiedAfterItsProcessDied(t *testing.T) {
	for _, how := range []string{"redelivery", "timer"} {
		t.Run(how, func(t *testing.T) {
			r := newRig(t, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
			c, o, so, refundID := r.submittedTaobaoCase()
			g := newGate()
			const leaseTTL = 300 * time.Millisecond
			dead := r.gatedEngine("engine-dies", g, leaseTTL)
			msg, copyOf := r.refundCallback(o, so, refundID, 42)
			ev, _ := r.parser.Parse(msg.Payload)
			ctx, cancel := context.WithCancel(context.Background())
			stopped := make(chan struct{})
			go func() {
				defer close(stopped)
				_, _ = dead.HandleCallback(ctx, ev, msg)
			}()
			t.Cleanup(func() { cancel(); <-stopped })
			select {
			case <-g.arrived:
			case <-time.After(10 * time.Second):
				t.Fatal("the callback's verification never called the platform")
			}
			kept, err := r.store.DeferredInputs(context.Background(), c.ID)
			if err != nil || len(kept) != 1 {
				t.Fatalf("kept inputs: %+v, %v; want the callback", kept, err)
			}

			other := r.newEngine("engine-after")
			switch how {
			case "redelivery":
				again := copyOf()
				h, err := other.HandleCallback(context.Background(), ev, again)
				if err != nil || h.Deferred {
					t.Fatalf("the redelivered copy: %+v, %v; want it verified", h, err)
				}
				if again.Lag != 0 || again.Verified <= 0 {
					t.Errorf("the copy's lag %s, verified after %s; want no second lag, a verification", again.Lag, again.Verified)
				}
			case "timer":
				if kept[0].NotBefore.Sub(kept[0].CreatedAt) < leaseTTL-10*time.Millisecond {
					t.Fatalf("kept until %v (from %v); want at least the lease time %s, so no timer verifies it meanwhile",
						kept[0].NotBefore, kept[0].CreatedAt, leaseTTL)
				}
				r.waitFor("the kept callback due", func() bool { return !time.Now().Before(kept[0].NotBefore) })
				r.drive(other, c.ID)
			}
			if seen, err := r.store.InboxSeen(context.Background(), ev.ID); err != nil || !seen {
				t.Errorf("inbox: %v, %v; want the callback applied", seen, err)
			}
			if kept, err := r.store.DeferredInputs(context.Background(), c.ID); err != nil || len(kept) != 0 {
				t.Errorf("kept inputs after: %+v, %v; want none", kept, err)
			}
			if n := len(r.callbackEntries(c.ID, ev.ID)); n != 1 {
				t.Errorf("callback entries: %d; want one", n)
			}
			tl, _ := r.store.Timeline(context.Background(), c.ID)
			last := tl[len(tl)-1]
			if !strings.Contains(string(last.Detail), `"input":"callback"`) {
				t.Errorf("last timeline entry %q %s; want the callback's verified decision", last.Summary, last.Detail)
			}
		})
	}
}

// TestCallbackVerifiedOnceWhenItsKeptCopyFallsDue: a callback's
// verification outlasts its kept copy's wait (a slow platform read, longer
// than LeaseTTL), so the worker's timer takes the copy up and verifies it
// meanwhile. When the slow verification then comes to commit, it finds the
// callback applied and drops its decision: one decision for one callback.
func TestCallbackVerifiedOnceWhenItsKeptCopyFallsDue(t *testing.T) {
	casestoretest.Each(t, func(t *testing.T, be casestoretest.Backend) {
		r := newRigOn(t, be, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
		c, o, so, refundID := r.submittedTaobaoCase()
		decisions := func() int {
			tl, err := r.store.Timeline(context.Background(), c.ID)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, e := range tl {
				if e.Kind == casestore.KindDecision && strings.Contains(string(e.Detail), `"input":"callback"`) {
					n++
				}
			}
			return n
		}
		before := decisions()
		g := newGate()
		const leaseTTL = 300 * time.Millisecond
		slow := r.gatedEngine("engine-slow", g, leaseTTL)
		msg, _ := r.refundCallback(o, so, refundID, 43)
		ev, _ := r.parser.Parse(msg.Payload)
		type result struct {
			h   refundflow.Handled
			err error
		}
		done := make(chan result, 1)
		go func() {
			h, err := slow.HandleCallback(context.Background(), ev, msg)
			done <- result{h, err}
		}()
		t.Cleanup(func() {
			select {
			case <-g.open:
			default:
				close(g.open)
			}
		})
		select {
		case <-g.arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("the verification never called the platform")
		}
		kept, err := r.store.DeferredInputs(context.Background(), c.ID)
		if err != nil || len(kept) != 1 {
			t.Fatalf("kept inputs: %+v, %v; want the callback", kept, err)
		}
		r.waitFor("the kept callback due", func() bool { return !time.Now().Before(kept[0].NotBefore) })
		r.drive(r.newEngine("engine-timer"), c.ID) // the worker's timer takes it up
		if n := decisions() - before; n != 1 {
			t.Fatalf("decisions on the callback after the timer's: %d; want 1", n)
		}
		close(g.open)
		res := <-done
		if res.err != nil || !res.h.Duplicate {
			t.Errorf("the slow verification: %+v, %v; want it dropped as a duplicate", res.h, res.err)
		}
		if n := decisions() - before; n != 1 {
			t.Errorf("decisions on the callback: %d; want 1 (verified once)", n)
		}
		if n := len(r.callbackEntries(c.ID, ev.ID)); n != 1 {
			t.Errorf("callback entries: %d; want 1", n)
		}
		if kept, err := r.store.DeferredInputs(context.Background(), c.ID); err != nil || len(kept) != 0 {
			t.Errorf("kept inputs after: %+v, %v; want none", kept, err)
		}
	})
}

// TestCallbackRecordedWhenItsCallerGivesUp: the record of a refund callback
// (found with its case by the refund, and kept) is one write that the
// caller's giving up does not cancel half way: with the caller's context
// ended already, the callback is still kept for its case and on its
// timeline, to be verified by a redelivered copy or the timer, whatever
// the call itself answers.
func TestCallbackRecordedWhenItsCallerGivesUp(t *testing.T) {
	casestoretest.Each(t, func(t *testing.T, be casestoretest.Backend) {
		r := newRigOn(t, be, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
		c, o, so, refundID := r.submittedTaobaoCase()
		msg, _ := r.refundCallback(o, so, refundID, 42)
		ev, _ := r.parser.Parse(msg.Payload)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, _ = r.engine().HandleCallback(ctx, ev, msg)
		if n := len(r.callbackEntries(c.ID, ev.ID)); n != 1 {
			t.Errorf("callback entries after the caller gave up: %d; want one", n)
		}
		kept, err := r.store.DeferredInputs(context.Background(), c.ID)
		if err != nil || len(kept) != 1 || kept[0].MsgID != ev.ID {
			t.Errorf("kept inputs after the caller gave up: %+v, %v; want the callback", kept, err)
		}
	})
}

// TestOrderEventEntryNamesItsMessage: an order callback's entry on each
// open case of its order names the stream message it came from (stream,
// seq, msgId: what the console's Replay button re-delivers) and its lag,
// as a refund callback's entry does, beside the kept event's id, type and
// status. Without them an order status callback on a case timeline could
// not be replayed from there.
func TestOrderEventEntryNamesItsMessage(t *testing.T) {
	r := newRigOn(t, casestoretest.Backends()[0], sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	c, o, _, _ := r.submittedTaobaoCase()
	body, _ := json.Marshal(map[string]any{"orderId": o, "orderStatus": "TRADE_CLOSED_BY_TAOBAO", "closeReason": "buyer_cancel"})
	raw, _ := json.Marshal(map[string]any{"messageType": "ORDER_CANCEL", "messageBody": string(body),
		"messagePlatform": 0, "timestamp": strconv.FormatInt(time.Now().UnixMilli(), 10)})
	ev, err := r.parser.Parse(raw)
	if err != nil || ev.Order == nil {
		t.Fatalf("parse the order callback: %v (%+v)", err, ev)
	}
	msg := &refundflow.Message{ID: ev.ID, Stream: "CALLBACKS", Seq: 57, Subject: "callbacks.taobao.ORDER_CANCEL",
		Source: casestore.SourceCallbacks, Payload: raw, ReceivedAt: time.Now()}
	if _, err := r.engine().HandleCallback(context.Background(), ev, msg); err != nil {
		t.Fatal(err)
	}
	entries := r.callbackEntries(c.ID, ev.ID)
	if len(entries) != 1 {
		t.Fatalf("entries naming the order callback %s: %+v; want one", ev.ID, entries)
	}
	var d refundflow.OrderEventDetail
	if err := json.Unmarshal(entries[0].Detail, &d); err != nil || d.Stream != "CALLBACKS" || d.Seq != 57 || d.LagMs == nil || *d.LagMs < 0 {
		t.Errorf("order event entry detail %s; want its stream, seq and lag", entries[0].Detail)
	}
	kept := r.keptEvent(platform.Taobao, o, "ORDER_CANCEL")
	if d.OrderEvent != kept.ID || d.Type != "ORDER_CANCEL" || d.OrderStatus != "TRADE_CLOSED_BY_TAOBAO" {
		t.Errorf("order event entry detail %s; want event %d, ORDER_CANCEL, TRADE_CLOSED_BY_TAOBAO", entries[0].Detail, kept.ID)
	}
}
