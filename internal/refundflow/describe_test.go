package refundflow_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/refundhub/refundhub/internal/refundflow"
)

// TestDescribeRequest: a request as filed reads in the operator's words; a
// Taobao amount 0 is the most the form allows, not zero (the stored JSON
// said "amount": 0).
func TestDescribeRequest(t *testing.T) {
	type f = refundflow.Field
	tests := []struct {
		name string
		p    refundflow.Platform
		doc  string
		want []f
	}{
		{"taobao max", refundflow.PlatformTaobao, `{"returnGoods":false,"goodsStatus":"1","reasonId":5,"amount":0,"description":"late"}`,
			[]f{{"Type", "refund only"}, {"Goods status", "1 (not shipped)"}, {"Reason", "5"}, {"Amount", "the most the refund form allows (max)"}, {"Description", "late"}}},
		{"taobao amount and vouchers", refundflow.PlatformTaobao,
			`{"returnGoods":true,"goodsStatus":"3","reason":"质量问题","amount":9505,"description":"broken","vouchers":["https://x/1.jpg","https://x/2.jpg"]}`,
			[]f{{"Type", "return goods and refund"}, {"Goods status", "3 (received)"}, {"Reason", "质量问题"}, {"Amount", "9505 fen (95.05 yuan)"},
				{"Description", "broken"}, {"Vouchers", "https://x/1.jpg https://x/2.jpg"}}},
		{"1688", refundflow.Platform1688,
			`{"returnGoods":false,"goodsStatus":"refundWaitSellerSend","reasonId":20001,"reason":"不想买了","amount":1200,"carriage":500,"description":"no longer needed","orderEntryIds":[11,12]}`,
			[]f{{"Type", "refund only"}, {"Goods status", "refundWaitSellerSend"}, {"Reason", "20001 (不想买了)"}, {"Amount", "1200 fen (12.00 yuan)"},
				{"Carriage", "500 fen (5.00 yuan)"}, {"Description", "no longer needed"}, {"Order entries", "11, 12"}}},
		{"empty", refundflow.PlatformTaobao, `{}`, nil},
		{"fields left empty", refundflow.PlatformTaobao, `{"reasonId":7,"amount":100}`,
			[]f{{"Type", "refund only"}, {"Reason", "7"}, {"Amount", "100 fen (1.00 yuan)"}}},
		{"no request field", refundflow.PlatformTaobao, `{"fee":500}`, []f{{"As stored", `{"fee":500}`}}},
		{"none", refundflow.PlatformTaobao, ``, nil},
		{"not a request", refundflow.PlatformTaobao, `{"amount":"x"}`, []f{{"As stored", `{"amount":"x"}`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := refundflow.DescribeRequest(tt.p, json.RawMessage(tt.doc)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DescribeRequest(%s, %s) =\n%q\nwant\n%q", tt.p, tt.doc, got, tt.want)
			}
		})
	}
}

// TestDescribePlanAndShipment: what the worker sent (the reason the form
// offered, the amount "max" became) and the return shipment read in words;
// the plan's bookkeeping of earlier refunds is left out.
func TestDescribePlanAndShipment(t *testing.T) {
	type f = refundflow.Field
	plan := `{"reasonId":1004,"reasonDesc":"未按约定时间发货","fee":10000,"priorListed":true,"priorRefunds":["R9"]}`
	if got, want := refundflow.DescribePlan(json.RawMessage(plan)), []f{{"Reason", "1004 (未按约定时间发货)"}, {"Amount", "10000 fen (100.00 yuan)"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("DescribePlan(%s) = %q; want %q", plan, got, want)
	}
	plan = `{"reasonId":20021,"needVoucher":true,"fee":500,"carriage":300}`
	if got, want := refundflow.DescribePlan(json.RawMessage(plan)), []f{{"Reason", "20021"}, {"Amount", "500 fen (5.00 yuan)"},
		{"Carriage", "300 fen (3.00 yuan)"}, {"Vouchers", "needed by the reason; uploaded: none yet"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("DescribePlan(%s) = %q; want %q", plan, got, want)
	}
	plan = `{"reasonId":1004,"fee":10000,"priorListed":true,"callbackRefund":"R7",` +
		`"orderElsewhere":{"subOrderId":"201","caseOrder":"200","platformOrder":"300","refundId":"R7"}}`
	if got, want := refundflow.DescribePlan(json.RawMessage(plan)), []f{{"Reason", "1004"}, {"Amount", "10000 fen (100.00 yuan)"},
		{"Platform's order", "300, not the case's 200 (refund R7 on the sub-order showed it)"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("DescribePlan(%s) = %q; want %q", plan, got, want)
	}
	for _, empty := range []string{`{}`, ``, `{"priorListed":true}`} {
		if got := refundflow.DescribePlan(json.RawMessage(empty)); len(got) > 1 || (len(got) == 1 && got[0].Name != "As stored") {
			t.Errorf("DescribePlan(%s) = %q; want nothing or the document as stored", empty, got)
		}
	}
	sh := `{"company":"YTO","waybill":"YT1234567890","phone":"13800000000"}`
	if got, want := refundflow.DescribeShipment(json.RawMessage(sh)), []f{{"Carrier", "YTO"}, {"Waybill", "YT1234567890"}, {"Phone", "13800000000"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("DescribeShipment(%s) = %q; want %q", sh, got, want)
	}
}
