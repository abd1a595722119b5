package callback

import (
	"encoding/json"
	"errors"
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
	body := []byte(benchOrderBody)
	b.ReportAllocs()
	for b.Loop() {
		var o OrderBody
		if err := json.Unmarshal(body, &o); err != nil {
			b.Fatal(err)
		}
	}
}

// benchOrderBody is benchEnvelope's messageBody, decoded.
const benchOrderBody = `{"orderId":"3305075341149134260","orderNo":"PO202605200001","orderStatus":"WAITING_FOR_SENT","payStatus":2,"totalAmount":10000,"shippingFee":500,"productAmount":9500,"refundAmount":0,"refundStatus":null,"closeReason":null,"tbCreateTime":"2026-05-20 15:40:00","payTime":"2026-05-20 15:41:00"}`

// stdParse is what Parse would be on encoding/json alone, for
// BenchmarkParseStd: the envelope's members by exact key, the body decoded
// into OrderBody (encoding/json matches its keys case-insensitively, so it
// does less than Parse: this is a lower bound of a replacement's cost).
func stdParse(raw []byte) (Event, error) {
	var ev Event
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return ev, err
	}
	if err := json.Unmarshal(members["messageType"], &ev.Type); err != nil {
		return ev, err
	}
	switch string(members["messagePlatform"]) {
	case "0":
		ev.Platform = PlatformTaobao
	case "1":
		ev.Platform = Platform1688
	default:
		return ev, errors.New("platform")
	}
	ts, err := parseTimestamp(members["timestamp"])
	if err != nil {
		return ev, err
	}
	ev.TimestampMS = ts
	if err := json.Unmarshal(members["messageBody"], &ev.Body); err != nil {
		return ev, err
	}
	var b OrderBody
	if err := json.Unmarshal([]byte(ev.Body), &b); err != nil {
		return ev, err
	}
	ev.Order = &b
	ev.Kind = KindOrderStatus
	ev.ID = ContentID(ev.Platform, ev.Type, ts, ev.Body)
	return ev, nil
}

// BenchmarkParseStd is BenchmarkParse's push through stdParse.
func BenchmarkParseStd(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := stdParse(benchEnvelope); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOrderBody is BenchmarkOrderBodyStd's body through the
// hand-written decoder.
func BenchmarkOrderBody(b *testing.B) {
	body := []byte(benchOrderBody)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeOrderBody(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScanEnvelope is the validating pass of Parse alone (the scanner
// and the one-pass decode of messageBody); BenchmarkValidStd is
// encoding/json's validation of the same bytes, which decodes nothing.
func BenchmarkScanEnvelope(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var env envelope
		if ok, err := scanEnvelope(benchEnvelope, &env); err != nil || !ok {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidStd(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if !json.Valid(benchEnvelope) {
			b.Fatal("invalid")
		}
	}
}

// BenchmarkContentID is the hash of BenchmarkParse's push.
func BenchmarkContentID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = ContentID(Platform1688, TypeOrderPaySuccess, 1779263269913, benchOrderBody)
	}
}
