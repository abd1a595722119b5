package callback

import (
	"encoding/json"
	"testing"
)

var benchEnvelope = []byte(`{"messageType":"ORDER_PAY_SUCCESS","messageBody":"{\"orderId\":\"3305075341149134260\",\"orderNo\":\"PO202605200001\",\"orderStatus\":\"WAITING_FOR_SENT\",\"payStatus\":2,\"totalAmount\":10000,\"shippingFee\":500,\"productAmount\":9500,\"refundAmount\":0,\"refundStatus\":null,\"closeReason\":null,\"tbCreateTime\":\"2026-05-20 15:40:00\",\"payTime\":\"2026-05-20 15:41:00\"}","messagePlatform":1,"timestamp":"1779263269913"}`)

func BenchmarkParse(b *testing.B) {
	p, err := NewParser(DefaultTypeNames())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		ev, err := p.Parse(benchEnvelope)
		if err != nil || ev.Parked() {
			b.Fatalf("Parse: %v %v", err, ev.Park)
		}
	}
}

func BenchmarkOrderBodyStd(b *testing.B) {
	body := []byte(`{"orderId":"3305075341149134260","orderNo":"PO202605200001","orderStatus":"WAITING_FOR_SENT","payStatus":2,"totalAmount":10000,"shippingFee":500,"productAmount":9500,"refundAmount":0,"refundStatus":null,"closeReason":null,"tbCreateTime":"2026-05-20 15:40:00","payTime":"2026-05-20 15:41:00"}`)
	b.ReportAllocs()
	for b.Loop() {
		var o OrderBody
		if err := json.Unmarshal(body, &o); err != nil {
			b.Fatal(err)
		}
	}
}
