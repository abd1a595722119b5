package refundflow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/casestore/casestoretest"
	"github.com/refundhub/refundhub/internal/platform"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

const (
	testKey    = "engine-test-key"
	testSecret = "engine-test-secret-0123456789"
)

var testPolicy = refundflow.Policy{RefusalMessage: "请重新考虑: {reason}", Recheck: time.Hour,
	StepTimeout: time.Minute, IntentGrace: time.Minute}

// rig is a sandbox over HTTP, a fresh store (a temp SQLite file unless
// made by newRigOn), an engine, and a pump that feeds the sandbox's
// callbacks to the engine.
type rig struct {
	t      *testing.T
	sb     *sandbox.Sandbox
	url    string
	store  *casestore.Store
	client *apiclient.Client
	eng    atomic.Pointer[refundflow.Engine] // swapped by "restart" tests while callbacks are delivered
	seq    atomic.Int64
	pumped atomic.Int64
	parser *callback.Parser
	dbPath string
	// stop stops the callback pump and the sandbox's pushes (once); a test
	// whose store goes away before the rig's own cleanup calls it first.
	stop func()
}

// engine is the rig's current engine (a test may replace it, as after a
// restart, while the callback goroutine delivers to it).
func (r *rig) engine() *refundflow.Engine { return r.eng.Load() }

func (r *rig) setEngine(e *refundflow.Engine) { r.eng.Store(e) }

// newRig is newRigOn the SQLite store.
func newRig(t *testing.T, seller sandbox.SellerPolicy) *rig {
	t.Helper()
	return newRigOn(t, casestoretest.Backends()[0], seller)
}

// newRigOn is a rig whose store is a fresh one of the backend's kind.
func newRigOn(t *testing.T, be casestoretest.Backend, seller sandbox.SellerPolicy) *rig {
	t.Helper()
	return newRigProfiled(t, be, seller, nil)
}

// newRigProfiled is newRigOn with the sandbox and the client on a platform
// profile other than the default (nil: the default).
func newRigProfiled(t *testing.T, be casestoretest.Backend, seller sandbox.SellerPolicy, prof *platform.Profile) *rig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &rig{t: t}
	events := make(chan delivered, 1000)
	parser, err := callback.NewParser(callback.DefaultTypeNames())
	if err != nil {
		t.Fatal(err)
	}
	r.parser = parser
	cbSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		ev, err := parser.Parse(b)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case events <- delivered{ev, b}:
		default:
			http.Error(w, "full", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	sb, err := sandbox.New(sandbox.Config{AccessKey: testKey, AccessSecret: testSecret, CallbackURL: cbSrv.URL,
		PushRetryInterval: 50 * time.Millisecond, Seller: seller, Seed: 1, Profile: prof})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	r.sb, r.url = sb, srv.URL
	var wg sync.WaitGroup
	wg.Go(func() { _ = sb.Run(ctx) })
	r.dbPath = be.Fresh(t)
	r.store, err = casestore.Open(ctx, r.dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.client = newProfiledClient(t, srv.URL, prof)
	r.setEngine(r.newEngine("engine-a"))
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case d := <-events:
				r.deliver(ctx, d.ev, d.body)
			}
		}
	})
	r.stop = sync.OnceFunc(func() {
		cancel()
		wg.Wait()
	})
	t.Cleanup(func() {
		r.stop()
		srv.Close()
		cbSrv.Close()
		_ = r.store.Close()
	})
	return r
}

func newClient(t *testing.T, url string) *apiclient.Client {
	t.Helper()
	return newProfiledClient(t, url, nil)
}

// newProfiledClient is newClient on a platform profile (nil: the default).
func newProfiledClient(t *testing.T, url string, prof *platform.Profile) *apiclient.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 256, 256
	hc := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	c, err := apiclient.New(apiclient.Config{BaseURL: url, AccessKey: testKey, AccessSecret: testSecret, UserID: "u1", HTTPClient: hc,
		RateLimit: rate.Inf, Timeout: 2 * time.Second, Profile: prof,
		Retry: apiclient.RetryPolicy{MaxAttempts: 3, InitialInterval: 5 * time.Millisecond, MaxInterval: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (r *rig) newEngine(owner string) *refundflow.Engine {
	r.t.Helper()
	return r.newEngineWith(owner, testPolicy, 0)
}

// newEngineWith is newEngine under another policy, its retry backoff
// capped at retryMax (0: the engine's default).
func (r *rig) newEngineWith(owner string, policy refundflow.Policy, retryMax time.Duration) *refundflow.Engine {
	r.t.Helper()
	e, err := refundflow.NewEngine(refundflow.EngineConfig{Store: r.store, Client: r.client, Policy: policy,
		Owner: owner, RetryDelay: 50 * time.Millisecond, RetryMax: retryMax,
		Vouchers: func(_ context.Context, ref string) (string, []byte, error) {
			return ref, []byte("\x89PNG\r\n\x1a\n fake image " + ref), nil
		}})
	if err != nil {
		r.t.Fatal(err)
	}
	return e
}

// delivered is a callback the sandbox pushed: parsed, and as sent.
type delivered struct {
	ev   callback.Event
	body []byte
}

// deliver hands a callback to the engine as the worker's consumer does
// (with its body, so that the engine can keep it), retrying while it asks
// to. A callback whose verification has to wait is kept in the store and
// taken up by drive (waitState), as the worker's timer would.
func (r *rig) deliver(ctx context.Context, ev callback.Event, body []byte) {
	for range 200 {
		_, err := r.engine().HandleCallback(ctx, ev, &refundflow.Message{ID: ev.ID, Subject: "test",
			Source: casestore.SourceCallbacks, Payload: body})
		var re *refundflow.RetryError
		if !errors.As(err, &re) {
			if err != nil && ctx.Err() == nil {
				r.t.Errorf("callback %s: %v", ev.Type, err)
			}
			r.pumped.Add(1)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// order creates a sandbox order and returns its order id and (Taobao)
// sub-order id.
func (r *rig) order(platform string, seller *sandbox.SellerPolicy) (orderID, subOrderID string) {
	r.t.Helper()
	n := r.seq.Add(1)
	orderID = fmt.Sprintf("%d", 7000000000000000000+n)
	req := sandbox.CreateOrderRequest{Platform: platform, OrderID: orderID, Seller: seller, Amount: 10000}
	if platform == sandbox.PlatformTaobao {
		subOrderID = fmt.Sprintf("%d", 8000000000000000000+n)
		req.SubOrders = []sandbox.SubOrder{{SubOrderID: subOrderID, Amount: 10000}}
		req.Amount = 0
	}
	b, _ := json.Marshal(req)
	resp, err := http.Post(r.url+"/_sandbox/orders", "application/json", bytes.NewReader(b))
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(resp.Body)
		r.t.Fatalf("create order: %d %s", resp.StatusCode, body)
	}
	return orderID, subOrderID
}

func (r *rig) command(kind refundflow.InputKind, p refundflow.Platform, orderID, subOrderID string) refundflow.Command {
	return refundflow.Command{ID: fmt.Sprintf("cmd-%s-%d", kind, r.seq.Add(1)), Kind: kind, Platform: p,
		OrderID: orderID, SubOrderID: subOrderID, Operator: "tester", IssuedAt: time.Now()}
}

func taobaoRequest(returnGoods bool) *refundflow.Request {
	if returnGoods {
		return &refundflow.Request{ReturnGoods: true, GoodsStatus: "3", ReasonID: 4001, Amount: 5000, Description: "不合适"}
	}
	return &refundflow.Request{GoodsStatus: "1", ReasonID: 1001, Amount: 0, Description: "不想要了"}
}

func alibabaRequest(returnGoods, vouchers bool) *refundflow.Request {
	req := &refundflow.Request{GoodsStatus: "refundWaitSellerSend", ReasonID: 20001, Amount: 3000, Description: "不想要了"}
	if returnGoods {
		req = &refundflow.Request{ReturnGoods: true, GoodsStatus: "aftersaleBuyerReceived", ReasonID: 20025,
			Amount: 3000, Description: "七天无理由"}
	}
	if vouchers {
		req.ReasonID, req.Vouchers = 20021, []string{"photo-1.png", "photo-2.png"}
	}
	return req
}

// message is the stream message of a command, with its body, as the
// worker's consumer hands it to the engine.
func message(cmd refundflow.Command) *refundflow.Message {
	b, _ := json.Marshal(cmd)
	return &refundflow.Message{ID: cmd.ID, Source: casestore.SourceCommands, Payload: b}
}

// handle applies a command as a consumer would: retrying while asked to.
func (r *rig) handle(cmd refundflow.Command) refundflow.Handled {
	r.t.Helper()
	for range 100 {
		h, err := r.engine().HandleCommand(context.Background(), cmd, message(cmd))
		var re *refundflow.RetryError
		if errors.As(err, &re) {
			<-time.After(20 * time.Millisecond)
			continue
		}
		if err != nil {
			r.t.Fatalf("HandleCommand(%s): %v", cmd.Kind, err)
		}
		return h
	}
	r.t.Fatalf("HandleCommand(%s): still retrying", cmd.Kind)
	return refundflow.Handled{}
}

// drive does for one case what the worker's timer loop does: it fires the
// case's timer when due, then takes up its due deferred inputs in order.
func (r *rig) drive(eng *refundflow.Engine, id int64) {
	r.t.Helper()
	ctx := context.Background()
	if c, err := r.store.GetCase(ctx, id); err == nil && !c.NextWakeAt.IsZero() && !c.NextWakeAt.After(time.Now()) {
		_, _ = eng.Wake(ctx, id, refundflow.InputTimer)
	}
	ins, err := r.store.DeferredInputs(ctx, id)
	if err != nil {
		r.t.Fatal(err)
	}
	commandsWait := false // as the worker's takeUp: commands in order, callbacks in any
	for _, d := range ins {
		command := d.Source == casestore.SourceCommands
		if (command && commandsWait) || d.NotBefore.After(time.Now()) {
			commandsWait = commandsWait || command
			continue
		}
		msg := &refundflow.Message{ID: d.MsgID, Source: d.Source, Payload: d.Payload, Deferred: true}
		var h refundflow.Handled
		var herr error
		if d.Source == casestore.SourceCommands {
			cmd, err := refundflow.DecodeCommand(d.Payload)
			if err != nil {
				r.t.Fatalf("deferred command %s: %v", d.MsgID, err)
			}
			h, herr = eng.HandleCommand(ctx, cmd, msg)
		} else {
			ev, err := r.parser.Parse(d.Payload)
			if err != nil {
				r.t.Fatalf("deferred callback %s: %v", d.MsgID, err)
			}
			h, herr = eng.HandleCallback(ctx, ev, msg)
		}
		if herr != nil {
			return // failed: the worker would retry it later
		}
		if h.Deferred {
			commandsWait = commandsWait || command // it waits again
		}
	}
}

func (r *rig) caseOf(p refundflow.Platform, orderID, subOrderID string) casestore.Case {
	r.t.Helper()
	c, err := r.store.OpenCase(context.Background(), p, orderID, subOrderID)
	if err != nil {
		r.t.Fatalf("case of %s %s/%s: %v", p, orderID, subOrderID, err)
	}
	return c
}

// waitState waits until the case reaches want (or fails with its timeline).
// waitFor waits until cond holds, polling with a deadline.
func (r *rig) waitFor(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s", what)
		}
		<-time.After(5 * time.Millisecond)
	}
}

func (r *rig) waitState(id int64, want refundflow.State) casestore.Case {
	r.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := r.store.GetCase(context.Background(), id)
		if err == nil && c.State == string(want) {
			return c
		}
		r.drive(r.engine(), id)
		if time.Now().After(deadline) {
			tl, _ := r.store.Timeline(context.Background(), id)
			for _, e := range tl {
				r.t.Logf("  %s %s %s", e.Kind, e.Summary, e.Detail)
			}
			r.t.Fatalf("case %d state = %q (attention %q %q); want %q", id, c.State, c.AttentionCode, c.AttentionMessage, want)
		}
		<-time.After(10 * time.Millisecond)
	}
}

func (r *rig) platformStatus(refundID string) string {
	r.t.Helper()
	resp, err := http.Get(r.url + "/_sandbox/refunds/" + refundID)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		r.t.Fatal(err)
	}
	return v.Status
}

func (r *rig) noDuplicates() {
	r.t.Helper()
	st := r.sb.Stats()
	if st.DuplicateSubmissions != 0 {
		r.t.Errorf("sandbox duplicate_submissions = %d; want 0", st.DuplicateSubmissions)
	}
	for k, n := range st.RefundSubmissions {
		if n != 1 {
			r.t.Errorf("refund submissions for %s = %d; want 1", k, n)
		}
	}
	for k, n := range st.ReturnLogisticsSubmissions {
		if n != 1 {
			r.t.Errorf("return submissions for %s = %d; want 1", k, n)
		}
	}
	for k, n := range st.Cancels {
		if n != 1 {
			r.t.Errorf("cancels for %s = %d; want 1", k, n)
		}
	}
}

var fast = sandbox.SellerPolicy{Decision: sandbox.DecisionAgree, DecideAfter: 20 * time.Millisecond, ReceiveAfter: 20 * time.Millisecond}

func TestEngineTaobaoRefundOnly(t *testing.T) { casestoretest.Each(t, testEngineTaobaoRefundOnly) }

func testEngineTaobaoRefundOnly(t *testing.T, be casestoretest.Backend) {
	r := newRigOn(t, be, fast)
	o, so := r.order(sandbox.PlatformTaobao, nil)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(false)
	h := r.handle(cmd)
	if h.Steps != 2 || h.State != refundflow.StateWaitingSeller {
		t.Fatalf("request: steps %d state %s; want 2 (render, submit) waiting_seller", h.Steps, h.State)
	}
	c := r.waitState(h.CaseID, refundflow.StateSucceeded)
	if got := r.platformStatus(c.RefundID); got != platform.Default().TaobaoName(platform.PhaseSuccess) {
		t.Fatalf("sandbox status %s; want SUCCESS", got)
	}
	// The same command again is a duplicate: nothing happens.
	if h2 := r.handle(cmd); !h2.Duplicate {
		t.Fatalf("redelivered command: %+v; want duplicate", h2)
	}
	steps, _ := r.store.Steps(context.Background(), c.ID)
	var submits int
	for _, s := range steps {
		if s.Step == "submit" {
			submits++
			if s.Status != casestore.StepDone || s.RequestID == "" {
				t.Errorf("submit step = %+v; want done with a requestId", s)
			}
		}
	}
	if submits != 1 {
		t.Fatalf("submit attempts = %d; want 1", submits)
	}
	r.noDuplicates()
}

func TestEngineTaobaoReturn(t *testing.T) { casestoretest.Each(t, testEngineTaobaoReturn) }

func testEngineTaobaoReturn(t *testing.T, be casestoretest.Backend) {
	r := newRigOn(t, be, fast)
	o, so := r.order(sandbox.PlatformTaobao, nil)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(true)
	h := r.handle(cmd)
	c := r.waitState(h.CaseID, refundflow.StateWaitingReturnShipment)
	ship := r.command(refundflow.InputReportShipment, refundflow.PlatformTaobao, "", so)
	ship.Shipment = &refundflow.Shipment{Company: "SF", Waybill: "SF1234567890"}
	r.handle(ship)
	c = r.waitState(c.ID, refundflow.StateSucceeded)
	if got := r.platformStatus(c.RefundID); got != platform.Default().TaobaoName(platform.PhaseSuccess) {
		t.Fatalf("sandbox status %s; want SUCCESS", got)
	}
	r.noDuplicates()
}

func TestEngineTaobaoRefusalPostsMessage(t *testing.T) {
	casestoretest.Each(t, testEngineTaobaoRefusalPostsMessage)
}

func testEngineTaobaoRefusalPostsMessage(t *testing.T, be casestoretest.Backend) {
	r := newRigOn(t, be, sandbox.SellerPolicy{Decision: sandbox.DecisionRefuse, RefuseReason: "不同意", DecideAfter: 20 * time.Millisecond})
	o, so := r.order(sandbox.PlatformTaobao, nil)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(false)
	h := r.handle(cmd)
	c := r.waitState(h.CaseID, refundflow.StateNeedsAttention)
	if c.AttentionCode != refundflow.AttnSellerRefused {
		t.Fatalf("attention = %q; want %q", c.AttentionCode, refundflow.AttnSellerRefused)
	}
	// The state commits with the message's intent, before the post: wait
	// for the post (the platform's message list) rather than the state.
	var raw []byte
	for deadline := time.Now().Add(10 * time.Second); ; {
		msgs, err := r.client.TaobaoListMessages(context.Background(), apiclient.ListMessagesRequest{RefundID: c.RefundID, PageSize: 50})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ = json.Marshal(msgs.Data)
		if bytes.Contains(raw, []byte("请重新考虑: 不同意")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("refund messages %s; want the refusal message", raw)
		}
		<-time.After(10 * time.Millisecond)
	}
	// More callbacks and reconciles do not post it again.
	for range 3 {
		if _, err := r.engine().Wake(context.Background(), c.ID, refundflow.InputReconcile); err != nil {
			t.Fatal(err)
		}
	}
	steps, _ := r.store.Steps(context.Background(), c.ID)
	n := 0
	for _, s := range steps {
		if s.Step == "message" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("message steps = %d; want 1", n)
	}
}

func TestEngineTaobaoCancel(t *testing.T) { casestoretest.Each(t, testEngineTaobaoCancel) }

func testEngineTaobaoCancel(t *testing.T, be casestoretest.Backend) {
	r := newRigOn(t, be, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	o, so := r.order(sandbox.PlatformTaobao, nil)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(false)
	h := r.handle(cmd)
	r.handle(r.command(refundflow.InputCancel, refundflow.PlatformTaobao, "", so))
	c := r.waitState(h.CaseID, refundflow.StateCancelled)
	if got := r.platformStatus(c.RefundID); got != platform.Default().TaobaoName(platform.PhaseClosed) {
		t.Fatalf("sandbox status %s; want CLOSED", got)
	}
	r.noDuplicates()
}

func TestEngine1688VouchersAndReturn(t *testing.T) {
	casestoretest.Each(t, testEngine1688VouchersAndReturn)
}

func testEngine1688VouchersAndReturn(t *testing.T, be casestoretest.Backend) {
	r := newRigOn(t, be, fast)
	o, _ := r.order(sandbox.Platform1688, &sandbox.SellerPolicy{Decision: sandbox.DecisionRequireReturn, DecideAfter: 20 * time.Millisecond, ReceiveAfter: 20 * time.Millisecond})
	cmd := r.command(refundflow.InputRequestRefund, refundflow.Platform1688, o, "")
	req := alibabaRequest(true, true)
	cmd.Request = req
	h := r.handle(cmd)
	if h.Steps != 3 {
		t.Fatalf("request: %d steps; want 3 (reasons, upload, create)", h.Steps)
	}
	c := r.waitState(h.CaseID, refundflow.StateWaitingReturnShipment)
	bad := r.command(refundflow.InputReportShipment, refundflow.Platform1688, o, "")
	bad.Shipment = &refundflow.Shipment{Company: "NOPE", Waybill: "X1234567"}
	r.handle(bad)
	c = r.waitState(c.ID, refundflow.StateNeedsAttention)
	if c.AttentionCode != refundflow.AttnCompanyRejected {
		t.Fatalf("attention %q; want %q", c.AttentionCode, refundflow.AttnCompanyRejected)
	}
	ship := r.command(refundflow.InputReportShipment, refundflow.Platform1688, o, "")
	ship.Shipment = &refundflow.Shipment{Company: "SF", Waybill: "SF9876543210"}
	r.handle(ship)
	c = r.waitState(c.ID, refundflow.StateSucceeded)
	if got := r.platformStatus(c.RefundID); got != platform.Default().AlibabaName(platform.PhaseSuccess) {
		t.Fatalf("sandbox status %s; want refundsuccess", got)
	}
	r.noDuplicates()
}

func TestEngine1688Happy(t *testing.T) { casestoretest.Each(t, testEngine1688Happy) }

func testEngine1688Happy(t *testing.T, be casestoretest.Backend) {
	r := newRigOn(t, be, fast)
	o, _ := r.order(sandbox.Platform1688, nil)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.Platform1688, o, "")
	cmd.Request = alibabaRequest(false, false)
	h := r.handle(cmd)
	c := r.waitState(h.CaseID, refundflow.StateSucceeded)
	if got := r.platformStatus(c.RefundID); got != platform.Default().AlibabaName(platform.PhaseSuccess) {
		t.Fatalf("sandbox status %s; want refundsuccess", got)
	}
	r.noDuplicates()
}

// TestEngineCrashAfterEffect: the platform applies a side effect and the
// answer is lost (the worker "dies" between the call and the commit). The
// redelivered input asks the platform first and never submits again.
func TestEngineCrashAfterEffect(t *testing.T) { casestoretest.Each(t, testEngineCrashAfterEffect) }

func testEngineCrashAfterEffect(t *testing.T, be casestoretest.Backend) {
	for _, tc := range []struct {
		name     string
		platform refundflow.Platform
		endpoint string
		ret      bool // return flow: the fault hits the return submission
		cancel   bool
	}{
		{"taobao submit", refundflow.PlatformTaobao, "taobao_submit", false, false},
		{"1688 create", refundflow.Platform1688, "alibaba_create_refund", false, false},
		{"taobao return submit", refundflow.PlatformTaobao, "taobao_return_logistics_submit", true, false},
		{"1688 goods return", refundflow.Platform1688, "alibaba_goods_return", true, false},
		{"taobao cancel", refundflow.PlatformTaobao, "taobao_cancel", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seller := fast
			if tc.cancel {
				seller = sandbox.SellerPolicy{Decision: sandbox.DecisionManual}
			}
			r := newRigOn(t, be, seller)
			plat := sandbox.PlatformTaobao
			if tc.platform == refundflow.Platform1688 {
				plat = sandbox.Platform1688
			}
			o, so := r.order(plat, nil)
			cmd := r.command(refundflow.InputRequestRefund, tc.platform, o, so)
			if tc.platform == refundflow.PlatformTaobao {
				cmd.Request = taobaoRequest(tc.ret)
			} else {
				cmd.Request = alibabaRequest(tc.ret, false)
			}
			fault := sandbox.Faults{ForceErrors: []sandbox.ForcedError{{Endpoint: tc.endpoint, Kind: sandbox.ErrHTTP500, Count: 1, AfterEffect: true}}}
			var trigger refundflow.Command
			switch {
			case tc.ret:
				h := r.handle(cmd)
				r.waitState(h.CaseID, refundflow.StateWaitingReturnShipment)
				trigger = r.command(refundflow.InputReportShipment, tc.platform, o, so)
				trigger.Shipment = &refundflow.Shipment{Company: "SF", Waybill: "SF5550001111"}
			case tc.cancel:
				h := r.handle(cmd)
				r.waitState(h.CaseID, refundflow.StateWaitingSeller)
				trigger = r.command(refundflow.InputCancel, tc.platform, o, so)
			default:
				trigger = cmd
			}
			r.sb.SetFaults(fault)
			h, err := r.engine().HandleCommand(context.Background(), trigger, message(trigger))
			if err != nil || h.Until.IsZero() {
				t.Fatalf("command with a lost answer: %+v, %v; want it applied and the case's timer set to carry on", h, err)
			}
			// The case the request opened (by its command: a callback of the
			// platform, verified meanwhile, may have finished it already, so
			// it need not be open).
			c, err := r.store.CaseOpenedBy(context.Background(), cmd.ID)
			if err != nil {
				t.Fatal(err)
			}
			// The side effect's attempt: its intent may still be open, or a
			// callback of the platform may already have settled it.
			steps, err := r.store.Steps(context.Background(), c.ID)
			if err != nil {
				t.Fatal(err)
			}
			var it casestore.StepAttempt
			for _, s := range steps {
				if s.IdempotencyKey != "" {
					it = s
				}
			}
			if it.IdempotencyKey == "" {
				t.Fatalf("no keyed step attempt after the lost answer: %+v", steps)
			}
			// The case's timer carries on (a new engine, as after a restart);
			// a redelivered copy of the command is a duplicate.
			r.setEngine(r.newEngine("engine-restarted"))
			if h := r.handle(trigger); !h.Duplicate {
				t.Fatalf("redelivered command: %+v; want a duplicate (it was applied)", h)
			}
			want := refundflow.StateSucceeded
			if tc.cancel {
				want = refundflow.StateCancelled
			}
			c = r.waitState(c.ID, want)
			a, err := func() (casestore.StepAttempt, error) {
				var a casestore.StepAttempt
				err := r.store.Update(context.Background(), func(tx *casestore.Tx) error {
					var err error
					a, err = tx.StepByKey(context.Background(), it.IdempotencyKey)
					return err
				})
				return a, err
			}()
			if err != nil || a.Status != casestore.StepDone {
				t.Fatalf("intent %s after settling = %+v, %v; want done", it.IdempotencyKey, a, err)
			}
			r.noDuplicates()
		})
	}
}

// TestEngineTwoOwnersOneCase: two engines (as two processes) on one
// database: the lease lets only one run a case. While another process
// holds it, a timer wake is handed back and a command waits in the store.
func TestEngineTwoOwnersOneCase(t *testing.T) { casestoretest.Each(t, testEngineTwoOwnersOneCase) }

func testEngineTwoOwnersOneCase(t *testing.T, be casestoretest.Backend) {
	r := newRigOn(t, be, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	o, so := r.order(sandbox.PlatformTaobao, nil)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(false)
	engines := []*refundflow.Engine{r.engine(), r.newEngine("engine-b")}
	// Open the case while the form cannot be read: the request is applied,
	// the case's timer carries on.
	r.sb.SetFaults(sandbox.Faults{ForceErrors: []sandbox.ForcedError{{Endpoint: "taobao_render", Kind: sandbox.ErrHTTP503, Count: 100}}})
	if h, err := r.engine().HandleCommand(context.Background(), cmd, message(cmd)); err != nil || h.Until.IsZero() {
		t.Fatalf("render failing: %+v, %v; want the request applied and the timer set", h, err)
	}
	r.sb.SetFaults(sandbox.Faults{})
	c := r.caseOf(refundflow.PlatformTaobao, o, so)
	if _, err := r.store.ClaimLease(context.Background(), c.ID, "someone-else", time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, e := range engines {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err := e.Wake(ctx, c.ID, refundflow.InputTimer)
		cancel()
		var re *refundflow.RetryError
		if !errors.As(err, &re) || !errors.Is(err, casestore.ErrLeased) {
			t.Fatalf("%s waking the case leased elsewhere: %v; want RetryError(ErrLeased)", e.Owner(), err)
		}
	}
	if err := r.store.ReleaseLease(context.Background(), c.ID, "someone-else"); err != nil {
		t.Fatal(err)
	}
	// Both engines at once, each many times: one submission.
	var wg sync.WaitGroup
	for _, e := range engines {
		for range 4 {
			wg.Go(func() {
				for range 200 {
					_, err := e.Wake(context.Background(), c.ID, refundflow.InputTimer)
					var re *refundflow.RetryError
					if !errors.As(err, &re) {
						return
					}
					<-time.After(5 * time.Millisecond)
				}
			})
		}
	}
	wg.Wait()
	r.waitState(c.ID, refundflow.StateWaitingSeller)
	r.noDuplicates()
	if n := r.sb.Stats().RefundSubmissions["taobao:"+so]; n != 1 {
		t.Fatalf("submissions = %d; want 1", n)
	}
}

// TestEngineStaleCallbackCannotMoveBack: callbacks replayed after the case
// finished (old statuses in their bodies) change nothing.
func TestEngineStaleCallbackCannotMoveBack(t *testing.T) {
	casestoretest.Each(t, testEngineStaleCallbackCannotMoveBack)
}

func testEngineStaleCallbackCannotMoveBack(t *testing.T, be casestoretest.Backend) {
	r := newRigOn(t, be, fast)
	o, so := r.order(sandbox.PlatformTaobao, nil)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(false)
	h := r.handle(cmd)
	c := r.waitState(h.CaseID, refundflow.StateSucceeded)
	body, _ := json.Marshal(callback.RefundBody{RefundID: apiclient.FlexString(c.RefundID), OrderID: apiclient.FlexString(o),
		SubOrderID: apiclient.FlexString(so), RefundStatus: "WAIT_SELLER_AGREE"})
	ev := callback.Event{Platform: callback.PlatformTaobao, Type: callback.TypeOrderRefund, Kind: callback.KindRefund,
		Body: string(body), Refund: &callback.RefundBody{RefundID: apiclient.FlexString(c.RefundID), OrderID: apiclient.FlexString(o)},
		ID: "stale-1"}
	if _, err := r.engine().HandleCallback(context.Background(), ev, &refundflow.Message{ID: ev.ID}); err != nil {
		t.Fatal(err)
	}
	got, _ := r.store.GetCase(context.Background(), c.ID)
	if got.State != string(refundflow.StateSucceeded) {
		t.Fatalf("after a stale callback: state %s; want succeeded", got.State)
	}
}

// TestEngine1688CreateUnverifiable: a 1688 create whose answer is lost and
// whose refund callback never comes cannot be checked (no lookup by order):
// the case parks for an operator and nothing is sent again.
func TestEngine1688CreateUnverifiable(t *testing.T) {
	casestoretest.Each(t, testEngine1688CreateUnverifiable)
}

func testEngine1688CreateUnverifiable(t *testing.T, be casestoretest.Backend) {
	r := newRigOn(t, be, fast)
	r.sb.SetFaults(sandbox.Faults{DropPushRate: 1})
	eng, err := refundflow.NewEngine(refundflow.EngineConfig{Store: r.store, Client: r.client,
		Policy: refundflow.Policy{StepTimeout: time.Minute, Recheck: time.Hour}, Owner: "no-grace"})
	if err != nil {
		t.Fatal(err)
	}
	o, _ := r.order(sandbox.Platform1688, nil)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.Platform1688, o, "")
	cmd.Request = alibabaRequest(false, false)
	r.sb.SetFaults(sandbox.Faults{DropPushRate: 1, ForceErrors: []sandbox.ForcedError{{Endpoint: "alibaba_create_refund", Kind: sandbox.ErrHTTP503, Count: 1, AfterEffect: true}}})
	if h, err := eng.HandleCommand(context.Background(), cmd, message(cmd)); err != nil || h.Until.IsZero() {
		t.Fatalf("lost answer: %+v, %v; want the request applied and the timer set", h, err)
	}
	for range 3 {
		_, _ = eng.Wake(context.Background(), r.caseOf(refundflow.Platform1688, o, "").ID, refundflow.InputReconcile)
	}
	c := r.caseOf(refundflow.Platform1688, o, "")
	if c.State != string(refundflow.StateNeedsAttention) || c.AttentionCode != refundflow.CodeUnverifiable {
		t.Fatalf("case %s attention %q; want needs_attention %q", c.State, c.AttentionCode, refundflow.CodeUnverifiable)
	}
	if n := r.sb.Stats().RefundSubmissions["1688:"+o]; n != 1 {
		t.Fatalf("submissions = %d; want 1", n)
	}
}

// TestEngineMessageAtMostOnce: a send_message whose answer is lost and that
// is delivered again is not posted a second time.
func TestEngineMessageAtMostOnce(t *testing.T) { casestoretest.Each(t, testEngineMessageAtMostOnce) }

func testEngineMessageAtMostOnce(t *testing.T, be casestoretest.Backend) {
	r := newRigOn(t, be, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	o, so := r.order(sandbox.PlatformTaobao, nil)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(false)
	h := r.handle(cmd)
	c := r.waitState(h.CaseID, refundflow.StateWaitingSeller)
	msg := r.command(refundflow.InputSendMessage, refundflow.PlatformTaobao, "", so)
	msg.Message = "请尽快处理 unique-text-42"
	r.sb.SetFaults(sandbox.Faults{ForceErrors: []sandbox.ForcedError{{Endpoint: "taobao_submit_message", Kind: sandbox.ErrHTTP500, Count: 1, AfterEffect: true}}})
	// A message's outcome cannot be checked: it is never retried; the
	// command is done (a lost answer leaves the intent open, unverified).
	if _, err := r.engine().HandleCommand(context.Background(), msg, &refundflow.Message{ID: msg.ID}); err != nil {
		t.Fatalf("message with a lost answer: %v", err)
	}
	// Redeliveries, even ones the inbox would not catch (no message id).
	for range 3 {
		if _, err := r.engine().HandleCommand(context.Background(), msg, nil); err != nil {
			t.Fatalf("redelivered message: %v", err)
		}
	}
	res, err := r.client.TaobaoListMessages(context.Background(), apiclient.ListMessagesRequest{RefundID: c.RefundID, PageSize: 50})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(res.Data)
	if n := bytes.Count(raw, []byte("unique-text-42")); n != 1 {
		t.Fatalf("message posted %d times; want 1 (%s)", n, raw)
	}
}

// TestACommandWithoutACaseNamesItsOrder: a command for an order or
// sub-order without a case is tried again and then dead-lettered with
// this error. It read `taobao order  sub-order "999"` (the order not
// given) and `1688 order 123 sub-order ""`; it names what names the case.
func TestACommandWithoutACaseNamesItsOrder(t *testing.T) {
	r := newRig(t, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	for _, tc := range []struct {
		cmd  refundflow.Command
		want string
	}{
		{r.command(refundflow.InputCancel, refundflow.PlatformTaobao, "", "999"), "taobao sub-order 999: no case for the command yet"},
		{r.command(refundflow.InputCancel, refundflow.PlatformTaobao, "998", "999"), "taobao sub-order 999: no case for the command yet"},
		{r.command(refundflow.InputCancel, refundflow.Platform1688, "123", ""), "1688 order 123: no case for the command yet"},
	} {
		_, err := r.engine().HandleCommand(context.Background(), tc.cmd, message(tc.cmd))
		if !errors.Is(err, refundflow.ErrNoCase) || err.Error() != tc.want {
			t.Errorf("HandleCommand(%s %s %s/%s) = %v; want %q", tc.cmd.Kind, tc.cmd.Platform, tc.cmd.OrderID, tc.cmd.SubOrderID, err, tc.want)
		}
	}
}

// lostSubmitOnTypedOrder makes a Taobao order on the sandbox and requests
// a refund of its sub-order under typed, another order, with the
// submission taking effect and its answer lost (faults, plus the lost
// answer). The engine waits a minute in flight, so the submit is not sent
// again before then, whichever comes first of a callback and the retry.
// It returns the sandbox's order, the sub-order and the case.
func (r *rig) lostSubmitOnTypedOrder(typed string, faults sandbox.Faults) (platformOrder, subOrder string, c casestore.Case) {
	r.t.Helper()
	pol := testPolicy
	pol.InFlight = time.Minute
	r.setEngine(r.newEngineWith("engine-in-flight", pol, 0))
	ctx := context.Background()
	platformOrder, subOrder = r.order(sandbox.PlatformTaobao, nil)
	faults.ForceErrors = []sandbox.ForcedError{{Endpoint: "taobao_submit", Kind: sandbox.ErrHTTP500, Count: 1, AfterEffect: true}}
	r.sb.SetFaults(faults)
	req := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, typed, subOrder)
	req.Request = taobaoRequest(false)
	if _, err := r.engine().HandleCommand(ctx, req, message(req)); err != nil {
		r.t.Fatalf("request with a lost answer: %v", err)
	}
	c, err := r.store.CaseOpenedBy(ctx, req.ID)
	if err != nil {
		r.t.Fatal(err)
	}
	return platformOrder, subOrder, c
}

// TestALostSubmitUnderAnotherOrderIsNotSentAgain: the operator's order is
// not the one the platform files the sub-order under (a typo; or, in the
// sandbox, an order made for the sub-order on first use). The submission
// takes effect and its answer is lost. Listing the case's order cannot
// show the refund, so the worker sent it again after the in-flight wait:
// a second submission for the sub-order. The refund callback names the
// refund; the platform puts it on the case's sub-order under another
// order: the case stops at once, saying so, and nothing is sent again.
func TestALostSubmitUnderAnotherOrderIsNotSentAgain(t *testing.T) {
	r := newRig(t, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	ctx := context.Background()
	const typed = "7100000000000000001"
	platformOrder, so, opened := r.lostSubmitOnTypedOrder(typed, sandbox.Faults{})
	// The sandbox pushes the new refund's callback; the pump delivers it.
	c := r.waitState(opened.ID, refundflow.StateNeedsAttention)
	if c.AttentionCode != refundflow.CodeUnverifiable || !strings.Contains(c.AttentionMessage, "under order "+platformOrder+", not the case's order "+typed) ||
		!strings.Contains(c.AttentionMessage, "resolve "+strconv.FormatInt(c.ID, 10)+" --close") {
		t.Errorf("case stopped with %s: %q; want %s naming both orders and the way out", c.AttentionCode, c.AttentionMessage, refundflow.CodeUnverifiable)
	}
	// Past the in-flight wait, reads without the callback (timers, a
	// reconcile, after a restart) and the operator's retry send nothing:
	// the plan keeps what the callback showed.
	later := r.newEngineWith("engine-later", testPolicy, 0)
	for _, kind := range []refundflow.InputKind{refundflow.InputTimer, refundflow.InputReconcile, refundflow.InputTimer} {
		if _, err := later.Wake(ctx, c.ID, kind); err != nil {
			t.Fatal(err)
		}
	}
	retry := r.command(refundflow.InputResolve, refundflow.PlatformTaobao, typed, so)
	retry.CaseID, retry.Resolve = c.ID, &refundflow.Resolve{Action: refundflow.ResolveRetry}
	if h, err := later.HandleCommand(ctx, retry, message(retry)); err != nil || h.Outcome != refundflow.OutcomeReject {
		t.Errorf("resolve --retry: %+v, %v; want it refused", h, err)
	}
	r.noDuplicates()
	if n := r.sb.Stats().RefundSubmissions["taobao:"+so]; n != 1 {
		t.Errorf("%d submissions for sub-order %s; want 1", n, so)
	}
	if got, err := r.store.GetCase(ctx, c.ID); err != nil || got.State != string(refundflow.StateNeedsAttention) ||
		!strings.Contains(got.AttentionMessage, "under order "+platformOrder) || !strings.Contains(string(got.Plan), `"orderElsewhere"`) {
		t.Errorf("after the later reads: %s %q, plan %s, %v; want still stopped, saying so, the plan keeping it", got.State, got.AttentionMessage, got.Plan, err)
	}
}

// TestACallbackRefundThePlatformDoesNotFindIsNotKept: the case's order is
// mistyped, the submission's answer is lost, the sandbox's own push is
// lost too, and a callback names a refund for the sub-order that the
// platform's query does not find (a test callback, say: refundctl trigger
// refund --refund TQ123). That look proves nothing either way: nothing is
// sent from it. But the id is not kept: a refund that never comes must not
// hold the case for good (kept, it kept every later look inconclusive and
// the case parked, its retry refused).
func TestACallbackRefundThePlatformDoesNotFindIsNotKept(t *testing.T) {
	r := newRig(t, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	ctx := context.Background()
	const typed = "7100000000000000002"
	_, so, c := r.lostSubmitOnTypedOrder(typed, sandbox.Faults{DropPushRate: 1})
	msg, _ := r.refundCallback(typed, so, "9999999999999999999", 71)
	ev, _ := r.parser.Parse(msg.Payload)
	if _, err := r.engine().HandleCallback(ctx, ev, msg); err != nil {
		t.Fatalf("the callback: %v", err)
	}
	if n := r.sb.Stats().RefundSubmissions["taobao:"+so]; n != 1 {
		t.Errorf("%d submissions for sub-order %s after the callback; want 1", n, so)
	}
	got, err := r.store.GetCase(ctx, c.ID)
	if err != nil || strings.Contains(string(got.Plan), "9999999999999999999") || got.State == string(refundflow.StateNeedsAttention) {
		t.Errorf("case %s (%s), plan %s, %v; want the refund not found not kept, the case not stopped", got.State, got.AttentionCode, got.Plan, err)
	}
}
