package sandbox

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/platform"
)

// pushEnvelope is a push as documented (reference §3.2).
type pushEnvelope struct {
	MessageType     string `json:"messageType"`
	MessageBody     string `json:"messageBody"`
	MessagePlatform int    `json:"messagePlatform"`
	Timestamp       string `json:"timestamp"`
}

// pushedType is the message type the sandbox pushes for a kind: the first
// of the profile's names of that kind, in byte order.
func pushedType(p *platform.Profile, taobao bool, kind platform.Kind) string {
	types := p.Callbacks.Alibaba.Types
	if taobao {
		types = p.Callbacks.Taobao.Types
	}
	var names []string
	for name, k := range types {
		if k == kind {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names[0]
}

// bodyKeys returns the keys of a JSON object in their order.
func bodyKeys(t *testing.T, raw string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(raw))
	var keys []string
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("body %s: not an object", raw)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("body %s: %v", raw, err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatalf("body %s: %v", raw, err)
		}
	}
	return keys
}

func decodePush(t *testing.T, p receivedPush) (pushEnvelope, map[string]any) {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(p.Raw, &raw); err != nil {
		t.Fatalf("push %q: %v", p.Raw, err)
	}
	if b := raw["messageBody"]; len(b) == 0 || b[0] != '"' {
		t.Fatalf("messageBody %s: want a JSON string", b)
	}
	if b := raw["timestamp"]; len(b) == 0 || b[0] != '"' {
		t.Fatalf("timestamp %s: want a string", b)
	}
	var env pushEnvelope
	if err := json.Unmarshal(p.Raw, &env); err != nil {
		t.Fatalf("push %q: %v", p.Raw, err)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(env.MessageBody), &body); err != nil {
		t.Fatalf("messageBody %q is not a JSON object: %v", env.MessageBody, err)
	}
	if ms, err := strconv.ParseInt(env.Timestamp, 10, 64); err != nil || len(env.Timestamp) != 13 || ms <= 0 {
		t.Errorf("timestamp %q: want 13-digit milliseconds", env.Timestamp)
	}
	if p.ContentType != "application/json" {
		t.Errorf("Content-Type %q; want application/json", p.ContentType)
	}
	return env, body
}

func TestCallbackEnvelopes(t *testing.T) {
	rc := newReceiver(t, nil)
	e := newEnv(t, func(c *Config) {
		c.CallbackURL = rc.srv.URL
		c.Seller = SellerPolicy{Decision: DecisionAgree}
		c.PushConcurrency = 1
	})
	e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: Platform1688, OrderID: "3305075341149134260",
		Amount: 9500, Carriage: 500, Status: OrderWaitingForPayment}, nil)
	e.adminOK(http.MethodPost, "/_sandbox/orders/3305075341149134260/events", OrderEvent{Type: "price_modify", TotalAmount: 9800}, nil)
	e.adminOK(http.MethodPost, "/_sandbox/orders/3305075341149134260/events", OrderEvent{Type: "pay"}, nil)
	id := e.tbSubmit("8000000000000000001", 1, 1, 1001, 300)
	e.waitStatus(id, tbSuccess)
	waitFor(t, "5 pushes", func() bool { return len(rc.pushes()) >= 5 })

	type want struct {
		typ      string
		platform int
		kind     platform.Kind
		check    func(map[string]any) bool
	}
	ab, tb := 1, 0 // documented messagePlatform values
	status, price, refund := platform.KindOrderStatus, platform.KindPriceModify, platform.KindRefund
	wants := []want{
		{docTypeCreate, ab, status, func(b map[string]any) bool {
			return b["orderId"] == "3305075341149134260" && b["orderStatus"] == OrderWaitingForPayment &&
				b["totalAmount"] == 10000.0 && b["shippingFee"] == 500.0 && b["productAmount"] == 9500.0 && b["payStatus"] == 1.0 &&
				b["refundStatus"] == nil && b["payTime"] == nil
		}},
		{docTypePriceModify, ab, price, func(b map[string]any) bool {
			return b["totalAmount"] == 9800.0 && b["productAmount"] == 9300.0
		}},
		{docTypePaySuccess, ab, status, func(b map[string]any) bool {
			return b["orderStatus"] == OrderWaitingForSent && b["payStatus"] == 2.0 && b["payTime"] != nil
		}},
		{pushedType(prof, true, refund), tb, refund, func(b map[string]any) bool {
			return b["refundId"] == id && b["subOrderId"] == "8000000000000000001" && b["refundStatus"] == tbWaitAgree && b["refundAmount"] == 300.0
		}},
		{pushedType(prof, true, refund), tb, refund, func(b map[string]any) bool {
			return b["refundId"] == id && b["refundStatus"] == tbSuccess
		}},
	}
	got := rc.pushes()
	for i, w := range wants {
		env, body := decodePush(t, got[i])
		if env.MessageType != w.typ || env.MessagePlatform != w.platform || !w.check(body) {
			t.Errorf("push %d: %s platform %d body %s; want %s platform %d", i, env.MessageType, env.MessagePlatform, env.MessageBody, w.typ, w.platform)
		}
		// The body carries exactly the profile's fields for the kind, in its order.
		fields := prof.Callbacks.Alibaba.Fields[w.kind]
		if w.platform == tb {
			fields = prof.Callbacks.Taobao.Fields[w.kind]
		}
		if keys := bodyKeys(t, env.MessageBody); !slices.Equal(keys, fields) {
			t.Errorf("push %d body keys %v; want the profile's %v", i, keys, fields)
		}
	}
	// The receiver sees a push before the sandbox records its answer.
	waitFor(t, "5 deliveries recorded", func() bool { return e.s.Stats().Callbacks.Delivered >= 5 })
	st := e.s.Stats().Callbacks
	if st.Delivered != 5 || st.Sent != 5 || st.Pending != 0 || st.Failed != 0 {
		t.Errorf("callback stats %+v; want 5 sent and delivered", st)
	}
}

func TestCallbackRetriesThenGivesUp(t *testing.T) {
	rc := newReceiver(t, func(int) int { return http.StatusInternalServerError })
	e := newEnv(t, func(c *Config) {
		c.CallbackURL = rc.srv.URL
		c.PushRetries = 2
		c.PushRetryInterval = 20 * time.Millisecond
	})
	e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: PlatformTaobao}, nil)
	waitFor(t, "give up", func() bool { return e.s.Stats().Callbacks.GaveUp == 1 })
	st := e.s.Stats().Callbacks
	if st.Sent != 3 || st.Failed != 3 || st.Retried != 2 || st.Delivered != 0 || st.Pending != 0 {
		t.Errorf("stats %+v; want 3 sent, 3 failed, 2 retried, 0 pending", st)
	}
	if n := len(rc.pushes()); n != 3 {
		t.Errorf("receiver got %d pushes; want 3 (1 + PushRetries)", n)
	}
	var log struct{ Callbacks []CallbackRecord }
	e.adminOK(http.MethodGet, "/_sandbox/callbacks", nil, &log)
	if len(log.Callbacks) != 1 || log.Callbacks[0].Status != CallbackGaveUp || log.Callbacks[0].Attempts != 3 || log.Callbacks[0].LastError == "" {
		t.Errorf("log %+v; want one gave_up record with 3 attempts", log.Callbacks)
	}
}

func TestCallbackTimeoutAndRetryNow(t *testing.T) {
	slow := true
	block := make(chan struct{})
	rc := &receiver{}
	var calls int
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		calls++
		s := slow
		rc.mu.Unlock()
		if s {
			select { // hold the push until the sandbox gives up on it
			case <-r.Context().Done():
			case <-block:
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(func() { close(block); rc.srv.Close() })
	e := newEnv(t, func(c *Config) {
		c.CallbackURL = rc.srv.URL
		c.PushTimeout = 50 * time.Millisecond
		c.PushRetryInterval = time.Hour
	})
	e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: PlatformTaobao}, nil)
	waitFor(t, "first attempt to time out", func() bool {
		log := e.s.cb.log()
		return len(log) == 1 && log[0].Status == CallbackRetryWait
	})
	rc.mu.Lock()
	slow = false
	rc.mu.Unlock()
	var out map[string]int
	e.adminOK(http.MethodPost, "/_sandbox/callbacks/retry-now", nil, &out)
	if out["queued"] != 1 {
		t.Errorf("retry-now queued %d; want 1", out["queued"])
	}
	waitFor(t, "delivery after retry-now", func() bool { return e.s.Stats().Callbacks.Delivered == 1 })
	if st := e.s.Stats().Callbacks; st.Retried != 1 || st.Failed != 1 || st.Pending != 0 {
		t.Errorf("stats %+v; want 1 retried, 1 failed, 0 pending", st)
	}
}

func TestCallbackFaults(t *testing.T) {
	t.Run("duplicate", func(t *testing.T) {
		rc := newReceiver(t, nil)
		e := newEnv(t, func(c *Config) { c.CallbackURL = rc.srv.URL; c.Faults.DuplicatePushRate = 1 })
		e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: PlatformTaobao}, nil)
		waitFor(t, "two copies", func() bool { return len(rc.pushes()) == 2 })
		got := rc.pushes()
		if string(got[0].Raw) != string(got[1].Raw) {
			t.Errorf("copies differ: %s vs %s", got[0].Raw, got[1].Raw)
		}
		waitFor(t, "stats", func() bool { return e.s.Stats().Callbacks.Sent == 2 })
		if st := e.s.Stats().Callbacks; st.Duplicated != 1 || st.Delivered != 1 {
			t.Errorf("stats %+v; want duplicated 1 delivered 1", st)
		}
	})
	t.Run("drop", func(t *testing.T) {
		rc := newReceiver(t, nil)
		e := newEnv(t, func(c *Config) { c.CallbackURL = rc.srv.URL })
		e.s.SetFaults(Faults{DropPushRate: 1})
		e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: PlatformTaobao}, nil)
		e.s.SetFaults(Faults{})
		e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: Platform1688}, nil)
		waitFor(t, "the undropped push", func() bool { return len(rc.pushes()) == 1 })
		env, _ := decodePush(t, rc.pushes()[0])
		if env.MessagePlatform != messagePlatform(false) {
			t.Errorf("delivered push platform %d; want the 1688 one (taobao dropped)", env.MessagePlatform)
		}
		if st := e.s.Stats().Callbacks; st.Dropped != 1 {
			t.Errorf("dropped %d; want 1", st.Dropped)
		}
		if log := e.s.cb.log(); log[0].Status != CallbackDropped || log[0].Attempts != 0 {
			t.Errorf("dropped record %+v", log[0])
		}
	})
	t.Run("reorder", func(t *testing.T) {
		rc := newReceiver(t, nil)
		e := newEnv(t, func(c *Config) {
			c.CallbackURL = rc.srv.URL
			c.PushConcurrency = 1
			c.Faults.ReorderPushRate = 1
		})
		e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: PlatformTaobao, OrderID: "A1"}, nil)
		e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: PlatformTaobao, OrderID: "B2"}, nil)
		waitFor(t, "both pushes", func() bool { return len(rc.pushes()) == 2 })
		_, first := decodePush(t, rc.pushes()[0])
		_, second := decodePush(t, rc.pushes()[1])
		if first["orderId"] != "B2" || second["orderId"] != "A1" {
			t.Errorf("order %v then %v; want B2 then A1", first["orderId"], second["orderId"])
		}
	})
	t.Run("no url records only", func(t *testing.T) {
		e := newEnv(t, nil)
		e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: PlatformTaobao}, nil)
		if log := e.s.cb.log(); len(log) != 1 || log[0].Status != CallbackRecorded {
			t.Errorf("log %+v; want one recorded entry", log)
		}
	})
}

// TestRefundCallbacksOnEveryChange: the 1688 return flow produces one refund push per status.
func TestRefundCallbacksOnEveryChange(t *testing.T) {
	rc := newReceiver(t, nil)
	e := newEnv(t, func(c *Config) { c.CallbackURL = rc.srv.URL; c.PushConcurrency = 1 })
	id := e.abRefundIn(abSuccess)
	waitFor(t, "4 refund pushes", func() bool { return len(rc.pushes()) == 4 })
	var statuses []any
	for _, p := range rc.pushes() {
		env, body := decodePush(t, p)
		if env.MessageType != pushedType(prof, false, platform.KindRefund) || env.MessagePlatform != messagePlatform(false) || body["refundId"] != id {
			t.Errorf("push %s", p.Raw)
		}
		statuses = append(statuses, body["refundStatus"])
	}
	want := []any{abWaitAgree, abWaitSend, abWaitReceive, abSuccess}
	for i := range want {
		if statuses[i] != want[i] {
			t.Fatalf("statuses %v; want %v", statuses, want)
		}
	}
	_ = codeOK
}

func TestOrderCancelEvent(t *testing.T) {
	e := newEnv(t, nil)
	e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: Platform1688, OrderID: "3800000000000000001"}, nil)
	e.adminOK(http.MethodPost, "/_sandbox/orders/3800000000000000001/events", OrderEvent{Type: "cancel"}, nil)
	log := e.s.cb.log()
	if len(log) != 2 || log[1].Kind != platform.KindOrderStatus || log[1].Type != pushedType(prof, false, platform.KindOrderStatus) {
		t.Fatalf("log %+v; want two order status messages (creation, cancel)", log)
	}
	var body struct {
		OrderStatus string  `json:"orderStatus"`
		CloseReason *string `json:"closeReason"`
		PayStatus   int     `json:"payStatus"`
	}
	if err := json.Unmarshal([]byte(log[1].Envelope.MessageBody), &body); err != nil {
		t.Fatal(err)
	}
	if body.OrderStatus != OrderCancel || body.CloseReason == nil || *body.CloseReason != "buyer_cancel" || body.PayStatus != 2 {
		t.Errorf("cancel body %+v", body)
	}
	// A cancelled order takes no refunds.
	r := e.call(http.MethodPost, paths.AlibabaCreateRefund, ab(3800000000000000001, "refund", "refundWaitSellerSend", 20001, 100, 0, "不想要了"))
	if r.Code != codeIllegal {
		t.Errorf("refund on cancelled order: code %d; want %d", r.Code, codeIllegal)
	}
}

// TestCallbackErrorsHideTheToken: the callback URL's path carries the
// receiver's secret token; a failed push must not record or log it.
func TestCallbackErrorsHideTheToken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: every push is refused
	const token = "s3cr3t-t0ken-that-must-not-leak"
	var logs bytes.Buffer
	var mu sync.Mutex
	e := newEnv(t, func(c *Config) {
		c.CallbackURL = "http://" + addr + "/callbacks/" + token
		c.PushRetries = -1
		c.Logger = slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: PlatformTaobao}, nil)
	waitFor(t, "give up", func() bool { return e.s.Stats().Callbacks.GaveUp == 1 })
	_, raw := e.admin(http.MethodGet, "/_sandbox/callbacks", nil)
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(string(raw), token) || strings.Contains(logs.String(), token) {
		t.Fatalf("token leaked: callbacks log %s / logs %s", raw, logs.String())
	}
	if !strings.Contains(string(raw), "refused") {
		t.Errorf("callbacks log %s; want the cause (connection refused) kept", raw)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestResetForgetsPushesInFlight: a push that was in flight when the sandbox
// was reset is neither counted in the new stats nor retried.
func TestResetForgetsPushesInFlight(t *testing.T) {
	var mu sync.Mutex
	first := true
	arrived := make(chan struct{})
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		f := first
		first = false
		mu.Unlock()
		if f {
			close(arrived)
			<-release
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	e := newEnv(t, func(c *Config) {
		c.CallbackURL = srv.URL
		c.PushRetryInterval = 10 * time.Millisecond
		c.PushConcurrency = 1
	})
	e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: PlatformTaobao}, nil)
	<-arrived
	e.adminOK(http.MethodPost, "/_sandbox/reset", nil, nil)
	close(release)
	e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: Platform1688}, nil)
	waitFor(t, "the post-reset push", func() bool { return e.s.Stats().Callbacks.Delivered == 1 })
	st := e.s.Stats().Callbacks
	if st.Sent != 1 || st.Failed != 0 || st.Retried != 0 || st.Pending != 0 {
		t.Errorf("stats after reset %+v; want only the post-reset push", st)
	}
	if log := e.s.cb.log(); len(log) != 1 || log[0].Platform != Platform1688 {
		t.Errorf("callback log after reset = %+v; want only the 1688 order's push", log)
	}
}

// TestPushesKeepTheirConnectionsToTheReceiver: the pushers reuse their
// connections. With Go's default of two idle connections per host, every
// burst of the default four pushers closed two and dialled two again: in the
// worker's benchmark about one new TCP connection per callback, on both the
// sandbox's and the receiver's side.
func TestPushesKeepTheirConnectionsToTheReceiver(t *testing.T) {
	const orders = 60
	release := make(chan struct{})
	var dialled atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		<-release // the first pushes wait for the rest to queue: every pusher busy at once
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dialled.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	// Released however the test ends: Close waits for the handlers.
	stop := sync.OnceFunc(func() { close(release) })
	t.Cleanup(stop)
	e := newEnv(t, func(c *Config) { c.CallbackURL = srv.URL; c.PushTimeout = 10 * time.Second })
	for range orders {
		e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: PlatformTaobao}, nil)
	}
	stop()
	waitFor(t, "every push delivered", func() bool { return e.s.Stats().Callbacks.Delivered == orders })
	if n := dialled.Load(); n > DefaultPushConcurrency {
		t.Errorf("the receiver accepted %d connections for %d pushes; want at most one per pusher (%d)", n, orders, DefaultPushConcurrency)
	}
}
