package intake_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/callback/intake"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
)

const testToken = "test-token-0123456789abcdef"

// Two signing secrets, as after a rotation; the second is also used alone.
var (
	secretOld = "whsec_" + base64.StdEncoding.EncodeToString([]byte("old-secret-0123456789abcdef0123"))
	secretNew = "whsec_" + base64.StdEncoding.EncodeToString([]byte("new-secret-0123456789abcdef0123"))
	secretBad = "whsec_" + base64.StdEncoding.EncodeToString([]byte("not-configured-secret-012345678"))
)

// env is a receiver over real loopback HTTP publishing into an embedded JetStream.
type env struct {
	nats   *eventstest.Server
	nc     *nats.Conn
	stream jetstream.Stream
	srv    *intake.Server
	http   *httptest.Server
	url    string // callback URL with the right token
}

func newEnv(t *testing.T, cfg intake.Config) *env {
	t.Helper()
	return newEnvWait(t, cfg, 2*time.Second)
}

func newEnvWait(t *testing.T, cfg intake.Config, publishWait time.Duration) *env {
	t.Helper()
	ns := eventstest.Start(t)
	nc := ns.Conn(events.ConnectOptions("receiver-test")...)
	pub, err := events.NewPublisher(nc, publishWait)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := events.EnsureStream(ctx, pub.JetStream(), events.DefaultStreamConfig())
	if err != nil {
		t.Fatal(err)
	}
	ready := func(ctx context.Context) error {
		if !nc.IsConnected() {
			return errors.New("nats not connected")
		}
		_, err := pub.JetStream().Stream(ctx, events.DefaultStreamName)
		return err
	}
	if cfg.Token == "" {
		cfg.Token = testToken
	}
	srv, err := intake.New(cfg, pub, ready, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &env{nats: ns, nc: nc, stream: st, srv: srv, http: hs, url: hs.URL + "/callbacks/" + cfg.Token}
}

func (e *env) msgs(t *testing.T) uint64 {
	t.Helper()
	info, err := e.stream.Info(context.Background())
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	return info.State.Msgs
}

// lastMsg returns the newest message on subject.
func (e *env) lastMsg(t *testing.T, subject string) *jetstream.RawStreamMsg {
	t.Helper()
	m, err := e.stream.GetLastMsgForSubject(context.Background(), subject)
	if err != nil {
		t.Fatalf("last message on %s: %v", subject, err)
	}
	return m
}

type response struct {
	status int
	header http.Header
	body   []byte
	code   string
}

func do(t *testing.T, method, url, contentType string, body io.Reader, hdr http.Header) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: b}
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &eb) == nil {
		r.code = eb.Error.Code
	}
	return r
}

func post(t *testing.T, url string, body []byte, hdr http.Header) response {
	t.Helper()
	return do(t, http.MethodPost, url, "application/json", bytes.NewReader(body), hdr)
}

// envelope builds a push the way the platform does (messageBody is a string).
func envelope(typ string, platform int, body string, ts string) []byte {
	b, err := json.Marshal(map[string]any{"messageType": typ, "messageBody": body, "messagePlatform": platform, "timestamp": ts})
	if err != nil {
		panic(err)
	}
	return b
}

const orderBody = `{"orderId":"3305075341149134260","orderNo":"PO202605200001","orderStatus":"WAITING_FOR_SENT","payStatus":2,"totalAmount":10000,"shippingFee":500,"productAmount":9500,"refundAmount":0,"refundStatus":null,"closeReason":null,"tbCreateTime":"2026-05-20 15:40:00","payTime":"2026-05-20 15:41:00"}`

var goodOrder = envelope(callback.TypeOrderPaySuccess, 1, orderBody, "1779263269913")

func sign(t *testing.T, secret, id string, ts time.Time, body []byte) http.Header {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := wh.Sign(id, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set(standardwebhooks.HeaderWebhookID, id)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, fmt.Sprint(ts.Unix()))
	h.Set(standardwebhooks.HeaderWebhookSignature, sig)
	return h
}

// chunked hides the length so the client sends Transfer-Encoding: chunked.
type chunked struct{ r io.Reader }

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p) }

func TestBadRequestsStoreNothing(t *testing.T) {
	plain := newEnv(t, intake.Config{MaxBytes: 1024})
	signed := newEnv(t, intake.Config{MaxBytes: 1024, SigningSecrets: []string{secretOld, secretNew}})
	now := time.Now()
	big := envelope(callback.TypeOrderPaySuccess, 1, `{"orderId":"1","pad":"`+strings.Repeat("x", 2000)+`"}`, "1")

	type tc struct {
		name        string
		signed      bool
		method      string
		path        string // default: the right callback path
		contentType string
		body        []byte
		reader      func() io.Reader // overrides body
		header      func(body []byte) http.Header
		status      int
		code        string
	}
	env := func(fields string) []byte { return []byte("{" + fields + "}") }
	const okBody = `"messageBody":"{\"orderId\":\"1\"}"`
	const okRest = `"messageType":"ORDER_CREATE","messagePlatform":1,"timestamp":"1779263269913"`
	cases := []tc{
		{name: "wrong token", path: "/callbacks/wrong-token-0123456789abcdef", body: goodOrder, status: 401, code: "unauthorized"},
		{name: "token prefix", path: "/callbacks/" + testToken[:10], body: goodOrder, status: 401, code: "unauthorized"},
		{name: "token with suffix", path: "/callbacks/" + testToken + "x", body: goodOrder, status: 401, code: "unauthorized"},
		{name: "no token", path: "/callbacks/", body: goodOrder, status: 401, code: "unauthorized"},
		{name: "no token segment", path: "/callbacks", body: goodOrder, status: 401, code: "unauthorized"},
		{name: "PUT on callback", method: http.MethodPut, body: goodOrder, status: 405, code: "method_not_allowed"},
		{name: "GET probe with wrong token", method: http.MethodGet, path: "/callbacks/wrong-token-0123456789abcdef", status: 401, code: "unauthorized"},
		{name: "empty body", body: []byte{}, status: 400, code: "empty_body"},
		{name: "whitespace body", body: []byte(" \n\t "), status: 400, code: "empty_body"},
		{name: "not JSON", body: []byte("messageType=ORDER_CREATE"), status: 400, code: "invalid_json"},
		{name: "truncated", body: goodOrder[:len(goodOrder)/2], status: 400, code: "invalid_json"},
		{name: "trailing garbage", body: append(append([]byte{}, goodOrder...), "}"...), status: 400, code: "invalid_json"},
		{name: "JSON array", body: []byte(`[` + string(goodOrder) + `]`), status: 400, code: "invalid_envelope"},
		{name: "JSON string", body: []byte(`"hello"`), status: 400, code: "invalid_envelope"},
		{name: "JSON null", body: []byte(`null`), status: 400, code: "invalid_envelope"},
		{name: "wrong content type", contentType: "text/plain", body: goodOrder, status: 415, code: "unsupported_media_type"},
		{name: "form content type", contentType: "application/x-www-form-urlencoded", body: goodOrder, status: 415, code: "unsupported_media_type"},
		{name: "no content type", contentType: "-", body: goodOrder, status: 415, code: "unsupported_media_type"},
		{name: "oversize with length", body: big, status: 413, code: "body_too_large"},
		{name: "oversize chunked", reader: func() io.Reader { return chunked{bytes.NewReader(big)} }, status: 413, code: "body_too_large"},
		{name: "messageType missing", body: env(okBody + `,"messagePlatform":1,"timestamp":"1"`), status: 400, code: "invalid_message_type"},
		{name: "messageType number", body: env(okBody + `,"messageType":7,"messagePlatform":1,"timestamp":"1"`), status: 400, code: "invalid_message_type"},
		{name: "messageType empty", body: env(okBody + `,"messageType":"","messagePlatform":1,"timestamp":"1"`), status: 400, code: "invalid_message_type"},
		{name: "messageType control char", body: env(okBody + `,"messageType":"A\nB","messagePlatform":1,"timestamp":"1"`), status: 400, code: "invalid_message_type"},
		{name: "platform 2", body: env(okBody + `,"messageType":"ORDER_CREATE","messagePlatform":2,"timestamp":"1"`), status: 400, code: "invalid_platform"},
		{name: "platform as string", body: env(okBody + `,"messageType":"ORDER_CREATE","messagePlatform":"1","timestamp":"1"`), status: 400, code: "invalid_platform"},
		{name: "platform 1.0", body: env(okBody + `,"messageType":"ORDER_CREATE","messagePlatform":1.0,"timestamp":"1"`), status: 400, code: "invalid_platform"},
		{name: "platform missing", body: env(okBody + `,"messageType":"ORDER_CREATE","timestamp":"1"`), status: 400, code: "invalid_platform"},
		{name: "platform null", body: env(okBody + `,"messageType":"ORDER_CREATE","messagePlatform":null,"timestamp":"1"`), status: 400, code: "invalid_platform"},
		{name: "messageBody as object", body: env(`"messageBody":{"orderId":"1"},` + okRest), status: 400, code: "invalid_message_body"},
		{name: "messageBody invalid JSON string", body: env(`"messageBody":"{\"orderId\":",` + okRest), status: 400, code: "invalid_message_body"},
		{name: "messageBody holding array", body: env(`"messageBody":"[1,2]",` + okRest), status: 400, code: "invalid_message_body"},
		{name: "messageBody holding number", body: env(`"messageBody":"42",` + okRest), status: 400, code: "invalid_message_body"},
		{name: "messageBody empty string", body: env(`"messageBody":"",` + okRest), status: 400, code: "invalid_message_body"},
		{name: "messageBody missing", body: env(okRest), status: 400, code: "invalid_message_body"},
		{name: "timestamp letters", body: env(okBody + `,"messageType":"ORDER_CREATE","messagePlatform":1,"timestamp":"yesterday"`), status: 400, code: "invalid_timestamp"},
		{name: "timestamp negative", body: env(okBody + `,"messageType":"ORDER_CREATE","messagePlatform":1,"timestamp":-5`), status: 400, code: "invalid_timestamp"},
		{name: "timestamp float", body: env(okBody + `,"messageType":"ORDER_CREATE","messagePlatform":1,"timestamp":1.5`), status: 400, code: "invalid_timestamp"},
		{name: "timestamp bool", body: env(okBody + `,"messageType":"ORDER_CREATE","messagePlatform":1,"timestamp":true`), status: 400, code: "invalid_timestamp"},
		{name: "timestamp missing", body: env(okBody + `,"messageType":"ORDER_CREATE","messagePlatform":1`), status: 400, code: "invalid_timestamp"},
		{name: "timestamp overflow", body: env(okBody + `,"messageType":"ORDER_CREATE","messagePlatform":1,"timestamp":"99999999999999999999"`), status: 400, code: "invalid_timestamp"},
		// Standard Webhooks mode.
		{name: "signing: headers missing", signed: true, body: goodOrder, status: 401, code: "signature_missing"},
		{name: "signing: signature header missing", signed: true, body: goodOrder, header: func(b []byte) http.Header {
			h := sign(t, secretNew, "msg_1", now, b)
			h.Del(standardwebhooks.HeaderWebhookSignature)
			return h
		}, status: 401, code: "signature_missing"},
		{name: "signing: unknown secret", signed: true, body: goodOrder, header: func(b []byte) http.Header { return sign(t, secretBad, "msg_1", now, b) }, status: 401, code: "signature_invalid"},
		{name: "signing: body changed after signing", signed: true, body: goodOrder, header: func(b []byte) http.Header {
			return sign(t, secretNew, "msg_1", now, append([]byte(" "), b...))
		}, status: 401, code: "signature_invalid"},
		{name: "signing: id changed after signing", signed: true, body: goodOrder, header: func(b []byte) http.Header {
			h := sign(t, secretNew, "msg_1", now, b)
			h.Set(standardwebhooks.HeaderWebhookID, "msg_2")
			return h
		}, status: 401, code: "signature_invalid"},
		{name: "signing: garbage signature", signed: true, body: goodOrder, header: func(b []byte) http.Header {
			h := sign(t, secretNew, "msg_1", now, b)
			h.Set(standardwebhooks.HeaderWebhookSignature, "v1,AAAA v2,BBBB nonsense")
			return h
		}, status: 401, code: "signature_invalid"},
		{name: "signing: timestamp not a number", signed: true, body: goodOrder, header: func(b []byte) http.Header {
			h := sign(t, secretNew, "msg_1", now, b)
			h.Set(standardwebhooks.HeaderWebhookTimestamp, "soon")
			return h
		}, status: 401, code: "signature_invalid"},
		{name: "signing: stale timestamp", signed: true, body: goodOrder, header: func(b []byte) http.Header { return sign(t, secretNew, "msg_1", now.Add(-10*time.Minute), b) }, status: 401, code: "signature_expired"},
		{name: "signing: future timestamp", signed: true, body: goodOrder, header: func(b []byte) http.Header { return sign(t, secretNew, "msg_1", now.Add(10*time.Minute), b) }, status: 401, code: "signature_expired"},
		{name: "signing: wrong token beats good signature", signed: true, path: "/callbacks/nope-nope-nope-nope-nope", body: goodOrder, header: func(b []byte) http.Header { return sign(t, secretNew, "msg_1", now, b) }, status: 401, code: "unauthorized"},
	}
	if len(cases) < 25 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := plain
			if c.signed {
				e = signed
			}
			method := c.method
			if method == "" {
				method = http.MethodPost
			}
			url := e.url
			if c.path != "" {
				url = e.http.URL + c.path
			}
			ct := c.contentType
			switch ct {
			case "":
				ct = "application/json"
			case "-":
				ct = ""
			}
			var body io.Reader = bytes.NewReader(c.body)
			if c.reader != nil {
				body = c.reader()
			}
			var hdr http.Header
			if c.header != nil {
				hdr = c.header(c.body)
			}
			r := do(t, method, url, ct, body, hdr)
			if r.status != c.status || r.code != c.code {
				t.Errorf("status, code = %d, %q; want %d, %q (body %s)", r.status, r.code, c.status, c.code, r.body)
			}
			if got := r.header.Get("Content-Type"); !strings.HasPrefix(got, "application/json") {
				t.Errorf("Content-Type = %q; want application/json", got)
			}
			if method == http.MethodPost && r.header.Get("X-Request-Id") == "" {
				t.Errorf("error response without X-Request-Id")
			}
			if strings.Contains(string(r.body), testToken) {
				t.Errorf("response body contains the token: %s", r.body)
			}
			if n := e.msgs(t); n != 0 {
				t.Errorf("stream has %d messages after a rejected request; want 0", n)
			}
		})
	}
	// Every rejection was counted by code.
	m := scrape(t, plain.http.URL)
	for _, want := range []string{`receiver_rejections_total{code="unauthorized"} 6`, `receiver_rejections_total{code="invalid_platform"} 5`, `receiver_requests_total{outcome="accepted"} 0`} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestAcceptedParkedDuplicate(t *testing.T) {
	e := newEnv(t, intake.Config{})

	// Accepted 1688 order message.
	r := post(t, e.url, goodOrder, http.Header{"X-Request-Id": {"req-abc"}})
	if r.status != 200 || string(r.body) != `{"code":200,"msg":"success"}`+"\n" {
		t.Fatalf("POST good order = %d %s; want 200 {\"code\":200,\"msg\":\"success\"}", r.status, r.body)
	}
	subj := "callbacks.1688.ORDER_PAY_SUCCESS"
	m := e.lastMsg(t, subj)
	if !bytes.Equal(m.Data, goodOrder) {
		t.Errorf("stored data = %s; want the raw request body", m.Data)
	}
	wantID := callback.ContentID(callback.Platform1688, callback.TypeOrderPaySuccess, 1779263269913, orderBody)
	for k, want := range map[string]string{
		events.HeaderMsgID: wantID, events.HeaderPlatform: "1688", events.HeaderType: "ORDER_PAY_SUCCESS",
		events.HeaderRequestID: "req-abc", events.HeaderParkReason: "",
	} {
		if got := m.Header.Get(k); got != want {
			t.Errorf("header %s = %q; want %q", k, got, want)
		}
	}
	if ms, err := strconv.ParseInt(m.Header.Get(events.HeaderReceivedAt), 10, 64); err != nil || time.Since(time.UnixMilli(ms)).Abs() > time.Minute {
		t.Errorf("received-at %q: %v", m.Header.Get(events.HeaderReceivedAt), err)
	}

	// The same push again, byte-identical and re-serialised (other key
	// order, timestamp as a number): stored once.
	if r := post(t, e.url, goodOrder, nil); r.status != 200 {
		t.Fatalf("duplicate POST = %d %s; want 200", r.status, r.body)
	}
	reser := []byte(`{"timestamp":1779263269913,"messagePlatform":1,"messageBody":` + mustJSON(orderBody) + `,"messageType":"ORDER_PAY_SUCCESS"}`)
	if r := post(t, e.url, reser, nil); r.status != 200 {
		t.Fatalf("re-serialised duplicate POST = %d %s; want 200", r.status, r.body)
	}
	if n := e.msgs(t); n != 1 {
		t.Errorf("stream has %d messages after 3 posts of one push; want 1", n)
	}

	// Taobao refund: accepted under its platform.
	refund := envelope(callback.TypeOrderRefund, 0, `{"refundId":"TQ123","orderId":"42","subOrderId":"43"}`, "1779263269999")
	if r := post(t, e.url, refund, nil); r.status != 200 {
		t.Fatalf("refund POST = %d %s", r.status, r.body)
	}
	if m := e.lastMsg(t, "callbacks.taobao.ORDER_BUYER_VIEW_ORDER_BUYER_REFUND"); m.Header.Get(events.HeaderPlatform) != "taobao" {
		t.Errorf("refund platform header = %q; want taobao", m.Header.Get(events.HeaderPlatform))
	}

	// Parked: unknown type, refund without refundId, order with a broken id.
	parked := []struct {
		name, platform string
		body           []byte
		reason         string
	}{
		{"unknown type", "1688", envelope("ORDER_SOMETHING_NEW", 1, `{"orderId":"1"}`, "1"), "unknown_type"},
		{"unknown type with odd characters", "taobao", envelope("weird.type *>", 0, `{}`, "2"), "unknown_type"},
		{"refund without refundId", "1688", envelope(callback.TypeOrderRefund, 1, `{"orderId":"1"}`, "3"), "missing_refund_id"},
		{"refund without orderId", "1688", envelope(callback.TypeOrderRefund, 1, `{"refundId":"TQ1"}`, "4"), "missing_order_id"},
		{"order without orderId", "taobao", envelope(callback.TypeOrderCreate, 0, `{"orderNo":"PO1"}`, "5"), "missing_order_id"},
		{"order id is an object", "1688", envelope(callback.TypeOrderCancel, 1, `{"orderId":{"x":1}}`, "6"), "invalid_body"},
	}
	for _, p := range parked {
		before := e.msgs(t)
		r := post(t, e.url, p.body, nil)
		if r.status != 200 {
			t.Fatalf("%s: POST = %d %s; want 200", p.name, r.status, r.body)
		}
		if n := e.msgs(t); n != before+1 {
			t.Fatalf("%s: stream has %d messages; want %d", p.name, n, before+1)
		}
		m := e.lastMsg(t, "parked.callbacks."+p.platform)
		if got := m.Header.Get(events.HeaderParkReason); got != p.reason {
			t.Errorf("%s: park reason = %q; want %q", p.name, got, p.reason)
		}
		if m.Header.Get(events.HeaderParkDetail) == "" || !bytes.Equal(m.Data, p.body) {
			t.Errorf("%s: park detail %q, data %s", p.name, m.Header.Get(events.HeaderParkDetail), m.Data)
		}
	}

	metrics := scrape(t, e.http.URL)
	for _, want := range []string{
		`receiver_requests_total{outcome="accepted"} 2`,
		`receiver_requests_total{outcome="duplicate"} 2`,
		`receiver_requests_total{outcome="parked"} 6`,
		`receiver_duplicates_total 2`,
		`receiver_parked_total{reason="unknown_type"} 2`,
		`receiver_parked_total{reason="missing_order_id"} 2`,
		`receiver_publish_duration_seconds_count 10`,
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(metrics, testToken) {
		t.Error("/metrics contains the token")
	}
}

func TestSignedCallbackAccepted(t *testing.T) {
	e := newEnv(t, intake.Config{SigningSecrets: []string{secretOld, secretNew}})
	for _, secret := range []string{secretOld, secretNew} {
		body := envelope(callback.TypeOrderCreate, 1, `{"orderId":"`+secret[:10]+`"}`, "1")
		r := post(t, e.url, body, sign(t, secret, "msg_"+secret[6:10], time.Now(), body))
		if r.status != 200 {
			t.Fatalf("signed POST = %d %s; want 200", r.status, r.body)
		}
		if got := e.lastMsg(t, "callbacks.1688.ORDER_CREATE").Header.Get(events.HeaderSignature); got != "verified" {
			t.Errorf("signature header = %q; want verified", got)
		}
	}
}

func TestNATSOutageGives503AndRecovers(t *testing.T) {
	e := newEnv(t, intake.Config{})
	if r := post(t, e.url, goodOrder, nil); r.status != 200 {
		t.Fatalf("POST before outage = %d %s", r.status, r.body)
	}
	waitReady(t, e.http.URL, 200)

	e.nats.Stop()
	body := envelope(callback.TypeOrderCreate, 1, `{"orderId":"during-outage"}`, "7")
	r := post(t, e.url, body, nil)
	if r.status != 503 || r.code != "unavailable" || r.header.Get("Retry-After") == "" {
		t.Fatalf("POST during outage = %d %q Retry-After=%q; want 503 unavailable with Retry-After", r.status, r.code, r.header.Get("Retry-After"))
	}
	waitReady(t, e.http.URL, 503)

	e.nats.Restart()
	waitReady(t, e.http.URL, 200)
	if r := post(t, e.url, body, nil); r.status != 200 {
		t.Fatalf("POST after recovery = %d %s; want 200", r.status, r.body)
	}
	if n := e.msgs(t); n != 2 {
		t.Errorf("stream has %d messages; want 2 (one before, one after the outage)", n)
	}
	if m := scrape(t, e.http.URL); !strings.Contains(m, `receiver_requests_total{outcome="unavailable"} 1`+"\n") {
		t.Errorf("/metrics does not count the 503")
	}
}

// TestNoAckInTimeGives503 makes the publish hang: the stream is gone and a
// plain subscriber swallows the subject without replying, so no PubAck ever
// comes. The receiver must give up after its publish wait and answer 503.
func TestNoAckInTimeGives503(t *testing.T) {
	const wait = 300 * time.Millisecond
	e := newEnvWait(t, intake.Config{}, wait)
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(context.Background(), events.DefaultStreamName); err != nil {
		t.Fatal(err)
	}
	sink := e.nats.Conn()
	if _, err := sink.Subscribe("callbacks.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if err := sink.Flush(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := post(t, e.url, goodOrder, nil)
	took := time.Since(start)
	if r.status != 503 || r.code != "unavailable" || r.header.Get("Retry-After") != "5" {
		t.Fatalf("POST with no ack = %d %q Retry-After=%q; want 503 unavailable, Retry-After 5", r.status, r.code, r.header.Get("Retry-After"))
	}
	if took < wait || took > 20*wait {
		t.Errorf("503 came after %s; want about the publish wait %s", took, wait)
	}
	waitReady(t, e.http.URL, 503) // the stream is not reachable
}

func TestHealthAndNotFound(t *testing.T) {
	e := newEnv(t, intake.Config{})
	// The platform console's address verification: GET with the token.
	if r := do(t, http.MethodGet, e.url, "", nil, nil); r.status != 200 || e.msgs(t) != 0 {
		t.Errorf("GET probe = %d, %d msgs stored; want 200, 0", r.status, e.msgs(t))
	}
	if r := do(t, http.MethodGet, e.http.URL+"/healthz", "", nil, nil); r.status != 200 {
		t.Errorf("/healthz = %d; want 200", r.status)
	}
	if r := do(t, http.MethodGet, e.http.URL+"/nope", "", nil, nil); r.status != 404 || r.code != "not_found" {
		t.Errorf("/nope = %d %q; want 404 not_found", r.status, r.code)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	pub := struct{ intake.Publisher }{}
	ready := func(context.Context) error { return nil }
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, cfg := range []intake.Config{
		{},
		{Token: testToken, SigningSecrets: []string{"plainsecret"}},
		{Token: testToken, SigningSecrets: []string{"whsec_%%%notbase64"}},
		{Token: testToken, TypeNames: callback.TypeNames{callback.Platform1688: {"BAD.NAME": callback.KindRefund}}},
	} {
		_, err := intake.New(cfg, pub, ready, log)
		if err == nil {
			t.Errorf("New(%+v) = nil error; want an error", cfg)
			continue
		}
		if strings.Contains(err.Error(), "notbase64") || strings.Contains(err.Error(), "plainsecret") {
			t.Errorf("error quotes a secret: %v", err)
		}
	}
}

func waitReady(t *testing.T, base string, want int) {
	t.Helper()
	eventstest.WaitFor(t, 30*time.Second, fmt.Sprintf("/readyz to answer %d", want), func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == want
	})
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics = %d", resp.StatusCode)
	}
	return string(b)
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// stubPublisher acks every message without storing it, so that a benchmark
// measures the handler alone.
type stubPublisher struct{ seq uint64 }

func (p *stubPublisher) Publish(_ context.Context, m *nats.Msg, msgID string) (events.Ack, error) {
	if m.Header == nil || msgID == "" {
		return events.Ack{}, errors.New("stub: no header or msg id")
	}
	p.seq++
	return events.Ack{Stream: events.DefaultStreamName, Sequence: p.seq}, nil
}

// BenchmarkHandleCallback is the handler's own cost per accepted callback
// (routing, token, content type, body read, envelope, headers, metrics, the
// 200), without HTTP transport or NATS.
func BenchmarkHandleCallback(b *testing.B) {
	srv, err := intake.New(intake.Config{Token: testToken}, &stubPublisher{},
		func(context.Context) error { return nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	body := bytes.NewReader(goodOrder)
	req := httptest.NewRequest(http.MethodPost, "/callbacks/"+testToken, body)
	req.Header.Set("Content-Type", "application/json")
	b.ReportAllocs()
	for b.Loop() {
		body.Reset(goodOrder)
		req.Body = io.NopCloser(body)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// recordingPublisher keeps a copy of every published message's headers and
// adds a header of its own, as a Publisher may.
type recordingPublisher struct {
	mu      sync.Mutex
	headers []nats.Header
}

func (p *recordingPublisher) Publish(_ context.Context, m *nats.Msg, msgID string) (events.Ack, error) {
	m.Header[events.HeaderMsgID] = []string{msgID}
	m.Header["X-Publisher-Own"] = append(m.Header["X-Publisher-Own"], "1")
	h := nats.Header{}
	for k, v := range m.Header {
		h[k] = slices.Clone(v)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.headers = append(p.headers, h)
	return events.Ack{Stream: events.DefaultStreamName, Sequence: uint64(len(p.headers))}, nil
}

// The outgoing message and its headers are pooled: a parked or signed
// callback's extra headers, and headers the Publisher added, must not show
// up on the next message.
func TestPooledHeadersDoNotLeak(t *testing.T) {
	pub := &recordingPublisher{}
	srv, err := intake.New(intake.Config{Token: testToken, SigningSecrets: []string{secretNew}}, pub,
		func(context.Context) error { return nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	parked := envelope("ORDER_SOMETHING_NEW", 0, `{"orderId":"1"}`, "1")
	steps := []struct {
		name string
		body []byte
		want map[string]string // "" = header absent
	}{
		{"parked", parked, map[string]string{events.HeaderPlatform: "taobao", events.HeaderType: "ORDER_SOMETHING_NEW",
			events.HeaderParkReason: "unknown_type", events.HeaderSignature: "verified"}},
		{"accepted after parked", goodOrder, map[string]string{events.HeaderPlatform: "1688", events.HeaderType: "ORDER_PAY_SUCCESS",
			events.HeaderParkReason: "", events.HeaderParkDetail: "", events.HeaderSignature: "verified"}},
	}
	for _, st := range steps {
		for round := range 3 {
			req := httptest.NewRequest(http.MethodPost, "/callbacks/"+testToken, bytes.NewReader(st.body))
			req.Header.Set("Content-Type", "application/json")
			for k, v := range sign(t, secretNew, "msg_"+strconv.Itoa(round), time.Now(), st.body) {
				req.Header[k] = v
			}
			w := httptest.NewRecorder()
			srv.Handler().ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				t.Fatalf("%s #%d: status %d %s; want 200", st.name, round, w.Code, w.Body)
			}
			h := pub.headers[len(pub.headers)-1]
			for k, want := range st.want {
				if got := h.Get(k); got != want {
					t.Errorf("%s #%d: header %s = %q; want %q", st.name, round, k, got, want)
				}
			}
			if got := h.Values("X-Publisher-Own"); len(got) != 1 {
				t.Errorf("%s #%d: the Publisher's own header has %d values; want 1 (left over from an earlier message?)", st.name, round, len(got))
			}
			if h.Get(events.HeaderRequestID) == "" || h.Get(events.HeaderReceivedAt) == "" || h.Get(events.HeaderMsgID) == "" {
				t.Errorf("%s #%d: headers %v lack request id, receive time or message id", st.name, round, h)
			}
		}
	}

	// Unsigned messages on a server without signing carry no signature header.
	pub2 := &recordingPublisher{}
	srv2, err := intake.New(intake.Config{Token: testToken}, pub2,
		func(context.Context) error { return nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range [][]byte{parked, goodOrder, goodOrder} {
		if w := serveJSON(srv2.Handler(), testToken, body); w.Code != http.StatusOK {
			t.Fatalf("unsigned POST: status %d %s; want 200", w.Code, w.Body)
		}
	}
	last := pub2.headers[len(pub2.headers)-1]
	for _, k := range []string{events.HeaderParkReason, events.HeaderParkDetail, events.HeaderSignature} {
		if v := last.Values(k); len(v) != 0 {
			t.Errorf("accepted unsigned message after a parked one: header %s = %q; want none", k, v)
		}
	}
	if len(last) != 6 {
		t.Errorf("accepted unsigned message has headers %v; want exactly platform, type, received, request id, message id and the Publisher's own", last)
	}
}

// The URL token is compared in full: a prefix, an extension, a different
// last character or another length is refused.
func TestTokenVariantsRefused(t *testing.T) {
	srv, err := intake.New(intake.Config{Token: testToken}, &stubPublisher{},
		func(context.Context) error { return nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	other := []byte(testToken)
	other[len(other)-1] ^= 1
	for _, tok := range []string{testToken[:len(testToken)-1], testToken + "x", string(other), "x", strings.ToUpper(testToken)} {
		if w := serveJSON(srv.Handler(), tok, goodOrder); w.Code != http.StatusUnauthorized {
			t.Errorf("POST /callbacks/%s = %d; want 401", tok, w.Code)
		}
	}
	if w := serveJSON(srv.Handler(), testToken, goodOrder); w.Code != http.StatusOK {
		t.Errorf("POST with the right token = %d %s; want 200", w.Code, w.Body)
	}
}

// serveJSON posts body as JSON to /callbacks/<token> on h, in process.
func serveJSON(h http.Handler, token string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/callbacks/"+token, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}
