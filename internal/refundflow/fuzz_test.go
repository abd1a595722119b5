package refundflow

import (
	"encoding/json"
	"testing"
)

// FuzzDecide feeds operator input as it arrives on the wire (JSON request,
// JSON shipment, message text) and arbitrary platform statuses to Decide in
// every state: it must never panic, never move a case backwards, and reject
// bad input without changing anything.
func FuzzDecide(f *testing.F) {
	req, _ := json.Marshal(taobaoRequest())
	ship, _ := json.Marshal(shipment)
	f.Add(uint8(0), uint8(0), req, ship, "hello", "WAIT_SELLER_AGREE")
	f.Add(uint8(4), uint8(2), []byte(`{"goodsStatus":"9","amount":-1}`), []byte(`{"company":" SF"}`), "", "")
	f.Add(uint8(9), uint8(7), []byte(`null`), []byte(`{"company":"SF","waybill":"W\u0000"}`), "\x1b[2J", "refundsuccess")
	f.Add(uint8(13), uint8(1), []byte(`{"reasonId":1e30}`), []byte(`[]`), "ok", "waitbuyersend")
	f.Fuzz(func(t *testing.T, stateIdx, inputIdx uint8, reqJSON, shipJSON []byte, msg, status string) {
		states := States()
		for _, p := range []Platform{PlatformTaobao, Platform1688} {
			c := fixture(p, states[int(stateIdx)%len(states)])
			if c.check() != nil {
				continue
			}
			in := matrixInput(c, columns[int(inputIdx)%len(columns)])
			var r Request
			if json.Unmarshal(reqJSON, &r) == nil && in.Kind == InputRequestRefund {
				in.Request = &r
			}
			var sh Shipment
			if json.Unmarshal(shipJSON, &sh) == nil && in.Kind == InputReportShipment {
				in.Shipment = &sh
			}
			if in.Kind == InputSendMessage {
				in.Message = msg
			}
			v := tbView((status))
			if p == Platform1688 {
				v = alView((status))
			}
			v.Found = status != ""
			for _, view := range []*PlatformView{nil, v} {
				got := decider.Decide(c, view, in)
				checkDecision(t, "fuzz", c, view, in, got)
				if got.Outcome == OutcomeAct && in.Request != nil && in.Request.Validate(p) != nil {
					t.Fatalf("invalid request %+v acted on: %+v", *in.Request, got)
				}
				if got.Outcome == OutcomeAct && in.Shipment != nil && in.Shipment.Validate() != nil {
					t.Fatalf("invalid shipment %+v acted on: %+v", *in.Shipment, got)
				}
			}
		}
	})
}
