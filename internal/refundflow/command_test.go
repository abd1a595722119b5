package refundflow

import (
	"strings"
	"testing"
)

func TestDecodeCommand(t *testing.T) {
	good := []string{
		`{"id":"cmd-00000001","kind":"request_refund","platform":"taobao","orderId":"3296711100591134260","subOrderId":"1034499579120189839",
		  "request":{"returnGoods":false,"goodsStatus":"1","reasonId":1001,"amount":0,"description":"wrong size"},"issuedAt":"2026-11-22T01:00:00Z"}`,
		`{"id":"cmd-00000002","kind":"request_refund","platform":"1688","orderId":"3305075341149134260",
		  "request":{"returnGoods":true,"goodsStatus":"aftersaleBuyerReceived","reason":"质量问题","amount":9500,"description":"broken on arrival"},"issuedAt":"2026-11-22T01:00:00Z"}`,
		`{"id":"cmd-00000003","kind":"report_shipment","platform":"1688","orderId":"3305075341149134260",
		  "shipment":{"company":"YTO","waybill":"YT1234567890"},"issuedAt":"2026-11-22T01:00:00Z"}`,
		`{"id":"cmd-00000004","kind":"cancel","platform":"taobao","caseId":7,"issuedAt":"2026-11-22T01:00:00Z"}`,
		`{"id":"cmd-00000005","kind":"send_message","platform":"taobao","subOrderId":"1","message":"请尽快处理","issuedAt":"2026-11-22T01:00:00Z"}`,
	}
	for _, in := range good {
		c, err := DecodeCommand([]byte(in))
		if err != nil {
			t.Errorf("DecodeCommand(%.60s…) = %v; want ok", in, err)
			continue
		}
		if in := c.Input(c.IssuedAt); in.Kind != c.Kind || in.Now.IsZero() {
			t.Errorf("Input() = %+v", in)
		}
	}
	bad := map[string]string{
		"not json":          `nope`,
		"trailing":          `{"id":"cmd-00000004","kind":"cancel","platform":"taobao","caseId":7} {}`,
		"unknown field":     `{"id":"cmd-00000004","kind":"cancel","platform":"taobao","caseId":7,"x":1}`,
		"short id":          `{"id":"c1","kind":"cancel","platform":"taobao","caseId":7}`,
		"bad platform":      `{"id":"cmd-00000004","kind":"cancel","platform":"amazon","caseId":7}`,
		"no sub-order":      `{"id":"cmd-00000004","kind":"cancel","platform":"taobao"}`,
		"1688 no order":     `{"id":"cmd-00000004","kind":"cancel","platform":"1688","subOrderId":"5"}`,
		"1688 order zero":   `{"id":"cmd-00000004","kind":"cancel","platform":"1688","orderId":"0"}`,
		"1688 sub-order":    `{"id":"cmd-00000004","kind":"request_refund","platform":"1688","orderId":"3305075341149134260","subOrderId":"42","request":{"goodsStatus":"refundWaitSellerSend","reasonId":1,"amount":1,"description":"ok"}}`,
		"non-digit order":   `{"id":"cmd-00000004","kind":"cancel","platform":"taobao","subOrderId":"12a"}`,
		"negative case":     `{"id":"cmd-00000004","kind":"cancel","platform":"taobao","caseId":-1,"subOrderId":"1"}`,
		"unknown kind":      `{"id":"cmd-00000004","kind":"refund_everything","platform":"taobao","subOrderId":"1"}`,
		"request missing":   `{"id":"cmd-00000004","kind":"request_refund","platform":"taobao","orderId":"2","subOrderId":"1"}`,
		"taobao no order":   `{"id":"cmd-00000004","kind":"request_refund","platform":"taobao","subOrderId":"1","request":{"goodsStatus":"1","reasonId":1}}`,
		"request invalid":   `{"id":"cmd-00000004","kind":"request_refund","platform":"taobao","orderId":"2","subOrderId":"1","request":{"goodsStatus":"9","reasonId":1}}`,
		"shipment missing":  `{"id":"cmd-00000004","kind":"report_shipment","platform":"taobao","subOrderId":"1"}`,
		"shipment invalid":  `{"id":"cmd-00000004","kind":"report_shipment","platform":"taobao","subOrderId":"1","shipment":{"company":"","waybill":"x"}}`,
		"empty message":     `{"id":"cmd-00000004","kind":"send_message","platform":"taobao","subOrderId":"1","message":""}`,
		"long message":      `{"id":"cmd-00000004","kind":"send_message","platform":"taobao","subOrderId":"1","message":"` + strings.Repeat("x", 501) + `"}`,
		"wrong field types": `{"id":1,"kind":"cancel","platform":"taobao","subOrderId":"1"}`,
	}
	for name, in := range bad {
		if _, err := DecodeCommand([]byte(in)); err == nil {
			t.Errorf("%s: DecodeCommand accepted %s", name, in)
		}
	}
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add([]byte(`{"id":"cmd-00000004","kind":"cancel","platform":"taobao","caseId":7}`))
	f.Add([]byte(`{"id":"cmd-00000003","kind":"report_shipment","platform":"1688","orderId":"3305075341149134260","shipment":{"company":"YTO","waybill":"YT1"}}`))
	f.Add([]byte(`{"kind":"request_refund","request":{"amount":-1}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("DecodeCommand returned a command that fails Validate: %v", err)
		}
	})
}

func TestOrderKey(t *testing.T) {
	for payload, want := range map[string]string{
		`{"kind":"cancel","platform":"taobao","orderId":"1","subOrderId":"2"}`: "taobao:2",
		`{"kind":"cancel","platform":"1688","orderId":"3"}`:                    "1688:3",
		`{"kind":"cancel","platform":"1688","orderId":"3","caseId":9}`:         "case:9",
		`{"kind":"cancel","platform":"taobao","orderId":"1"}`:                  "",
		`not json`: "",
	} {
		if got := OrderKey([]byte(payload)); got != want {
			t.Errorf("OrderKey(%s) = %q; want %q", payload, got, want)
		}
	}
}

// TestABadIDIsReportedOnce: a Taobao sub-order or a 1688 order that is not
// digits broke two rules, the platform's "required, digits only" and the
// general "digits only"; an operator's batch report printed both for one
// cell ("sub-order: required for Taobao, digits only; sub-order: digits
// only"). One fault is one message.
func TestABadIDIsReportedOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		c     Command
		field string
		says  string
	}{
		{"taobao sub-order", Command{ID: "cmd-00000001", Kind: InputCancel, Platform: PlatformTaobao, SubOrderID: "abc"}, "subOrderId", "digits only"},
		{"1688 order", Command{ID: "cmd-00000001", Kind: InputCancel, Platform: Platform1688, OrderID: "abc"}, "orderId", "digits only"},
		{"taobao order", Command{ID: "cmd-00000001", Kind: InputCancel, Platform: PlatformTaobao, OrderID: "abc", SubOrderID: "1"}, "orderId", "digits only"},
		{"1688 order with a leading zero", Command{ID: "cmd-00000001", Kind: InputCancel, Platform: Platform1688, OrderID: "0123"}, "orderId", "no leading zero"},
		{"1688 order past int64", Command{ID: "cmd-00000001", Kind: InputCancel, Platform: Platform1688, OrderID: "99999999999999999999"}, "orderId", "at most 9223372036854775807"},
		{"1688 order of 19 digits past int64", Command{ID: "cmd-00000001", Kind: InputCancel, Platform: Platform1688, OrderID: "9999999999999999999"}, "orderId", "at most 9223372036854775807"},
		{"1688 order of 25 digits", Command{ID: "cmd-00000001", Kind: InputCancel, Platform: Platform1688, OrderID: strings.Repeat("9", 25)}, "orderId", "at most 24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if err == nil {
				t.Fatal("Validate accepted a non-digit id")
			}
			if n := strings.Count(err.Error(), tc.field+":"); n != 1 {
				t.Errorf("Validate names %s %d times: %q; want once", tc.field, n, err)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("Validate = %q; want it to say %q", err, tc.says)
			}
		})
	}
}
