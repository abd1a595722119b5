package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/events"
)

func TestTriggerEveryType(t *testing.T) {
	e := newEnv(t)
	e.startReceiver()
	parser, err := callback.NewParser(callback.DefaultTypeNames())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args     []string
		platform string
		typ      string
		check    func(t *testing.T, ev callback.Event)
	}{
		{[]string{"ORDER_CREATE", "--platform", "1688", "--order", "3305075341149134260"}, "1688", callback.TypeOrderCreate,
			func(t *testing.T, ev callback.Event) {
				if o := ev.Order; o.OrderStatus != "WAITING_FOR_PAYMENT" || o.PayStatus != 1 || o.TotalAmount != 10000 || o.ShippingFee != 500 || o.ProductAmount != 9500 || o.PayTime != nil {
					t.Errorf("order body = %+v", o)
				}
			}},
		{[]string{"cancel", "--platform", "taobao", "--order", "11"}, "taobao", callback.TypeOrderCancel,
			func(t *testing.T, ev callback.Event) {
				if o := ev.Order; o.OrderStatus != "CANCEL" || o.CloseReason == nil || *o.CloseReason != "buyer_cancel" {
					t.Errorf("order body = %+v", o)
				}
			}},
		{[]string{"pay", "--platform", "1688", "--order", "12", "--amount", "20000"}, "1688", callback.TypeOrderPaySuccess,
			func(t *testing.T, ev callback.Event) {
				if o := ev.Order; o.OrderStatus != "WAITING_FOR_SENT" || o.PayStatus != 2 || o.PayTime == nil || o.TotalAmount != 20000 || o.ProductAmount != 19500 {
					t.Errorf("order body = %+v", o)
				}
			}},
		{[]string{"Order_Buyer_View_Order_Price_Modify", "--platform", "1688", "--order", "13", "--status", "WAITING_FOR_PAYMENT"}, "1688", callback.TypeOrderPriceModify,
			func(t *testing.T, ev callback.Event) {
				if o := ev.Order; o.TotalAmount != 9800 || o.ProductAmount != 9300 {
					t.Errorf("order body = %+v", o)
				}
			}},
		{[]string{"refund", "--platform", "taobao", "--order", "14", "--sub-order", "15", "--refund", "TQ123", "--status", "WAIT_SELLER_AGREE", "--amount", "9500"},
			"taobao", callback.TypeOrderRefund,
			func(t *testing.T, ev callback.Event) {
				if r := ev.Refund; r.RefundID != "TQ123" || r.OrderID != "14" || r.SubOrderID != "15" || r.RefundStatus != "WAIT_SELLER_AGREE" || r.RefundAmount != 9500 {
					t.Errorf("refund body = %+v", r)
				}
			}},
		// A phase is sent as the profile names it on that platform.
		{[]string{"refund", "--platform", "1688", "--order", "16", "--refund", "TQ124", "--status", "seller_refused"},
			"1688", callback.TypeOrderRefund,
			func(t *testing.T, ev callback.Event) {
				if r := ev.Refund; r.RefundStatus != "waitbuyermodify" {
					t.Errorf("refund status = %q; want the 1688 name of seller_refused", r.RefundStatus)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			before := len(e.recv.requests())
			r := e.mustRun(append([]string{"trigger"}, tt.args...)...)
			subject := events.AcceptedSubject(tt.platform, tt.typ)
			if !strings.Contains(r.stdout, "sent "+tt.typ+" ("+subject) || !strings.Contains(r.stdout, `receiver answered 200 OK: {"code":200,"msg":"success"}`) {
				t.Errorf("stdout = %q", r.stdout)
			}
			reqs := e.recv.requests()
			if len(reqs) != before+1 {
				t.Fatalf("receiver got %d requests; want 1", len(reqs)-before)
			}
			req := reqs[len(reqs)-1]
			if req.Method != "POST" || req.Path != "/callbacks/"+testToken || req.ContentType != "application/json" {
				t.Errorf("request %s %s (%s)", req.Method, strings.ReplaceAll(req.Path, testToken, "<token>"), req.ContentType)
			}
			// The documented envelope: messageBody a string, timestamp a string of ms.
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(req.Body, &raw); err != nil {
				t.Fatal(err)
			}
			if raw["messageBody"][0] != '"' || raw["timestamp"][0] != '"' || len(raw) != 4 {
				t.Errorf("envelope = %s", req.Body)
			}
			ev, err := parser.Parse(req.Body)
			if err != nil || ev.Parked() {
				t.Fatalf("envelope does not validate: %v %s", err, ev.Park)
			}
			if ev.Platform.String() != tt.platform || ev.Type != tt.typ || time.Since(time.UnixMilli(ev.TimestampMS)) > time.Hour {
				t.Errorf("event %s %s ts %d", ev.Platform, ev.Type, ev.TimestampMS)
			}
			tt.check(t, ev)
			m := e.lastMsg(events.DefaultStreamName, subject)
			if string(m.Data) != string(req.Body) || m.Header.Get(events.HeaderMsgID) != ev.ID {
				t.Errorf("stored message differs from what was posted")
			}
		})
	}
}

func TestTriggerJSONAndDryRun(t *testing.T) {
	e := newEnv(t)
	e.startReceiver()
	var out struct {
		Envelope json.RawMessage `json:"envelope"`
		MsgID    string          `json:"msgId"`
		Subject  string          `json:"subject"`
		DryRun   bool            `json:"dryRun"`
		Status   int             `json:"status"`
		Response string          `json:"response"`
	}
	decodeJSON(t, e.mustRun("trigger", "create", "--platform", "1688", "--order", "5", "--timestamp", "1779263269913", "--json").stdout, &out)
	if out.Status != 200 || out.Subject != "callbacks.1688.ORDER_CREATE" || len(out.MsgID) != 32 || out.DryRun {
		t.Errorf("trigger --json = %+v", out)
	}
	wantID := out.MsgID
	// The same envelope (same timestamp) again: the receiver stores it once.
	decodeJSON(t, e.mustRun("trigger", "create", "--platform", "1688", "--order", "5", "--timestamp", "1779263269913", "--json").stdout, &out)
	if out.MsgID != wantID {
		t.Errorf("same envelope, msg id %s then %s", wantID, out.MsgID)
	}
	if n := e.streamCount(events.DefaultStreamName); n != 1 {
		t.Errorf("stream holds %d callbacks; want 1 (the second is a duplicate)", n)
	}

	before := len(e.recv.requests())
	r := e.mustRun("trigger", "refund", "--platform", "1688", "--order", "5", "--refund", "TQ9", "--timestamp", "1779263269913", "--dry-run")
	want := `{"messageType":"ORDER_BUYER_VIEW_ORDER_BUYER_REFUND","messageBody":"{\"refundId\":\"TQ9\",\"orderId\":\"5\"}","messagePlatform":1,"timestamp":"1779263269913"}` + "\n"
	if r.stdout != want {
		t.Errorf("dry run = %s; want %s", r.stdout, want)
	}
	out.Status, out.Response = 0, ""
	decodeJSON(t, e.mustRun("trigger", "refund", "--platform", "1688", "--order", "5", "--refund", "TQ9", "--dry-run", "--json").stdout, &out)
	if !out.DryRun || out.Status != 0 || out.Subject != "callbacks.1688.ORDER_BUYER_VIEW_ORDER_BUYER_REFUND" {
		t.Errorf("dry run --json = %+v", out)
	}
	if len(e.recv.requests()) != before || e.streamCount(events.DefaultStreamName) != 1 {
		t.Errorf("dry run sent something")
	}
}

func TestTriggerErrors(t *testing.T) {
	e := newEnv(t)
	e.startReceiver()
	tests := []struct {
		name string
		code int
		want string
		args []string
	}{
		{"unknown type", 2, `unknown message type "ORDER_SHIPPED": want one of ORDER_BUYER_VIEW_ORDER_BUYER_REFUND`, []string{"ORDER_SHIPPED", "--platform", "1688", "--order", "1"}},
		{"no type", 2, "accepts 1 arg(s), received 0", []string{"--platform", "1688", "--order", "1"}},
		{"bad platform", 2, `--platform "2"`, []string{"create", "--platform", "2", "--order", "1"}},
		{"no order", 2, `required flag(s) "order" not set`, []string{"create", "--platform", "1688"}},
		{"malformed order", 2, `--order "12-3": want 1 to 24 digits`, []string{"create", "--platform", "1688", "--order", "12-3"}},
		{"refund without id", 2, "--refund is required for ORDER_BUYER_VIEW_ORDER_BUYER_REFUND", []string{"refund", "--platform", "1688", "--order", "1"}},
		{"malformed refund id", 2, `--refund "a b"`, []string{"refund", "--platform", "1688", "--order", "1", "--refund", "a b"}},
		{"refund id on order type", 2, "--refund applies only to", []string{"create", "--platform", "1688", "--order", "1", "--refund", "R1"}},
		{"negative amount", 2, "--amount -5: must not be negative", []string{"create", "--platform", "1688", "--order", "1", "--amount", "-5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { e.wantErr(tt.code, tt.want, append([]string{"trigger"}, tt.args...)...) })
	}
	if n := len(e.recv.requests()); n != 0 {
		t.Errorf("bad input sent %d requests", n)
	}

	// Wrong token: the receiver's 401, reported without the token.
	e.vars["CALLBACK_TOKEN"] = "wrong-token-0123456789"
	r := e.wantErr(1, "receiver answered 401 Unauthorized", "trigger", "create", "--platform", "1688", "--order", "1")
	if strings.Contains(r.line(), "wrong-token") {
		t.Errorf("error shows the token: %s", r.line())
	}
	e.vars["CALLBACK_TOKEN"] = ""
	e.wantErr(1, "CALLBACK_TOKEN is not set", "trigger", "create", "--platform", "1688", "--order", "1")
	e.vars["CALLBACK_TOKEN"] = testToken
	e.wantErr(1, "post to http://127.0.0.1:1/callbacks/***: dial tcp", "trigger", "create", "--platform", "1688", "--order", "1", "--receiver-url", "http://127.0.0.1:1")
	e.wantErr(2, `receiver URL "ftp://x"`, "trigger", "create", "--platform", "1688", "--order", "1", "--receiver-url", "ftp://x")
	if n := e.streamCount(events.DefaultStreamName); n != 0 {
		t.Errorf("stream holds %d callbacks after failures; want 0", n)
	}
}

func TestTriggerSigned(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	e := newEnv(t)
	e.startReceiver(secret)
	e.wantErr(1, "receiver answered 401", "trigger", "create", "--platform", "1688", "--order", "1")
	e.vars["CALLBACK_SIGNING_SECRETS"] = secret + " whsec_b3RoZXJvdGhlcm90aGVyb3RoZXI="
	r := e.mustRun("trigger", "create", "--platform", "1688", "--order", "1")
	if !strings.Contains(r.stdout, "receiver answered 200") {
		t.Errorf("signed trigger: %q", r.stdout)
	}
	if m := e.lastMsg(events.DefaultStreamName, "callbacks.1688.ORDER_CREATE"); m.Header.Get(events.HeaderSignature) != events.SignatureVerified {
		t.Errorf("stored without %s: %v", events.HeaderSignature, m.Header)
	}
	var o replayOut
	decodeJSON(t, e.mustRun("replay", "--all", "--json").stdout, &o)
	if o.Count != 1 || o.Items[0].Status != 200 {
		t.Errorf("signed replay = %+v", o)
	}
	e.vars["CALLBACK_SIGNING_SECRETS"] = "not-a-secret"
	r = e.wantErr(1, "CALLBACK_SIGNING_SECRETS: the first secret is not whsec_<base64>", "trigger", "create", "--platform", "1688", "--order", "1")
	if strings.Contains(r.line(), "not-a-secret") {
		t.Errorf("error shows the secret")
	}
}
