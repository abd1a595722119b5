package refundflow_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/casestore/casestoretest"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestRoundTripsOfARefundOnPostgreSQL pins what a refund request and the
// callback that follows it cost on PostgreSQL in round trips to the server
// (Store.RoundTrips), the figure the worker's throughput is bound by there
// (docs/benchmarks.md): a read added on the hot path fails here, in a count
// that does not depend on the machine, rather than in a benchmark later.
// The second request of the test is measured, once pgx's statement cache is
// warm; the callbacks are captured and handed to the engine by the test, so
// that nothing else runs meanwhile.
func TestRoundTripsOfARefundOnPostgreSQL(t *testing.T) {
	const (
		requestBudget  = 8 // the request: render and submit, from the command to waiting_seller (14, then 10, then 9 before)
		orderBudget    = 2 // the order's status callback: kept for its case (8, 4, 3 before)
		callbackBudget = 4 // the refund-created callback: found and recorded, verified (with the order event before it), decided (10, 7, 6 before)

		// Statements, BEGIN and COMMIT included: each costs the server its
		// executor start, the one part every worker host shares.
		requestStatements  = 22
		orderStatements    = 8
		callbackStatements = 7 // 9 before the inbox row was claimed with its check (InboxClaim)
	)
	ctx := context.Background()
	pushed := make(chan []byte, 16)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		pushed <- b
	}))
	defer sink.Close()
	sb, err := sandbox.New(sandbox.Config{AccessKey: testKey, AccessSecret: testSecret, CallbackURL: sink.URL,
		PushRetryInterval: time.Hour, Seller: sandbox.SellerPolicy{Decision: sandbox.DecisionManual}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	defer srv.Close()
	sbCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = sb.Run(sbCtx) })
	defer func() { stop(); wg.Wait() }()
	store, err := casestore.Open(ctx, casestoretest.Backends()[1].Fresh(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	r := &rig{t: t, url: srv.URL, store: store, client: newClient(t, srv.URL)}
	eng := r.newEngine("engine-a")
	parser, err := callback.NewParser(callback.DefaultTypeNames())
	if err != nil {
		t.Fatal(err)
	}

	// cost is what the store has sent the server so far: round trips and
	// statements.
	type cost struct{ trips, stmts int64 }
	sent := func() cost { return cost{store.RoundTrips(), store.Statements()} }
	since := func(c cost) cost { n := sent(); return cost{n.trips - c.trips, n.stmts - c.stmts} }
	refund := func() (request, order, cb cost) {
		o, so := r.order(sandbox.PlatformTaobao, nil)
		cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
		cmd.Request = taobaoRequest(false)
		before := sent()
		h, err := eng.HandleCommand(ctx, cmd, message(cmd))
		request = since(before)
		if err != nil || h.Steps != 2 || h.State != refundflow.StateWaitingSeller {
			t.Fatalf("request: %+v, %v; want 2 steps (render, submit) and waiting_seller", h, err)
		}
		var ev, orderEv callback.Event
		var body, orderBody []byte
		for ev.Kind != callback.KindRefund || orderEv.Kind != callback.KindOrderStatus { // in either order
			var b []byte
			select {
			case b = <-pushed:
			case <-time.After(10 * time.Second):
				t.Fatal("no refund and order status callbacks pushed after the submit")
			}
			got, err := parser.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			switch got.Kind {
			case callback.KindRefund:
				ev, body = got, b
			case callback.KindOrderStatus:
				orderEv, orderBody = got, b
			}
		}
		before = sent()
		h, err = eng.HandleCallback(ctx, orderEv, &refundflow.Message{ID: orderEv.ID, Subject: "test",
			Source: casestore.SourceCallbacks, Payload: orderBody})
		order = since(before)
		if err != nil || h.Duplicate || h.Ignored {
			t.Fatalf("order status callback: %+v, %v; want it kept for the case", h, err)
		}
		before = sent()
		h, err = eng.HandleCallback(ctx, ev, &refundflow.Message{ID: ev.ID, Subject: "test",
			Source: casestore.SourceCallbacks, Payload: body})
		cb = since(before)
		if err != nil || h.CaseID == 0 || h.Duplicate || h.Ignored || h.State != refundflow.StateWaitingSeller {
			t.Fatalf("callback: %+v, %v; want applied to the case, waiting_seller", h, err)
		}
		return request, order, cb
	}
	refund() // warms pgx's statement cache: a new statement's first run prepares it too
	request, order, cb := refund()
	t.Logf("round trips (statements) on PostgreSQL: request %d (%d), budget %d (%d); order status callback %d (%d), budget %d (%d); refund callback %d (%d), budget %d (%d)",
		request.trips, request.stmts, requestBudget, requestStatements, order.trips, order.stmts, orderBudget, orderStatements,
		cb.trips, cb.stmts, callbackBudget, callbackStatements)
	for _, c := range []struct {
		what              string
		got               cost
		trips, statements int64
	}{
		{"a refund request", request, requestBudget, requestStatements},
		{"an order status callback", order, orderBudget, orderStatements},
		{"a refund callback", cb, callbackBudget, callbackStatements},
	} {
		if c.got.trips > c.trips {
			t.Errorf("%s took %d round trips; budget %d", c.what, c.got.trips, c.trips)
		}
		if c.got.stmts > c.statements {
			t.Errorf("%s ran %d statements; budget %d", c.what, c.got.stmts, c.statements)
		}
	}
}
