package callback_test

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/callback"
)

// FuzzParseMatchesReference is the differential check of the hand-written
// envelope path (scanner, Parse, typed decoders) against the encoding/json
// reference in reference_test.go: for any input, Parse accepts exactly what
// the reference accepts, rejects with one of the codes the reference finds,
// and returns the same event (platform, type, timestamp, body, kind, park
// reason, typed body, ID).
//
// Seeds: testdata/fuzz/FuzzParseMatchesReference. Run it with
//
//	go test -run '^$' -fuzz '^FuzzParseMatchesReference$' -fuzztime 5m ./internal/callback
func FuzzParseMatchesReference(f *testing.F) {
	names := callback.DefaultTypeNames()
	p, err := callback.NewParser(names)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkParseMatchesReference(t, p, names, raw)
	})
}

// FuzzDecodeBodyMatchesReference is the same check for the typed body
// decoders alone, which the envelope target reaches only through a valid
// envelope of a known type: DecodeOrderBody and DecodeRefundBody fail
// exactly when the reference does and otherwise decode the same values.
//
// Seeds: testdata/fuzz/FuzzDecodeBodyMatchesReference.
func FuzzDecodeBodyMatchesReference(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecodeMatchesReference(t, body)
	})
}

func checkParseMatchesReference(t *testing.T, p *callback.Parser, names callback.TypeNames, raw []byte) {
	t.Helper()
	want := refParse(names, raw)
	got, err := p.Parse(raw)
	if len(want.codes) > 0 {
		var pe *callback.Error
		if !errors.As(err, &pe) {
			t.Fatalf("Parse(%q) = %+v, %v; the reference rejects it with %v", raw, got, err, want.codes)
		}
		if !want.rejects(pe.Code) {
			t.Fatalf("Parse(%q) rejects with %s (%s); the reference finds only %v", raw, pe.Code, pe.Message, want.codes)
		}
		return
	}
	if err != nil {
		t.Fatalf("Parse(%q) = %v; the reference accepts it as %+v", raw, err, want.ev)
	}
	if got.Parked() != (got.ParkDetail != "") {
		t.Fatalf("Parse(%q): park %q with detail %q; want a detail exactly when parked", raw, got.Park, got.ParkDetail)
	}
	got.ParkDetail = ""
	if !reflect.DeepEqual(got, want.ev) {
		t.Fatalf("Parse(%q) =\n\t%s\nthe reference decodes\n\t%s", raw, eventString(got), eventString(want.ev))
	}
}

func checkDecodeMatchesReference(t *testing.T, body []byte) {
	t.Helper()
	order, orderErr := callback.DecodeOrderBody(body)
	refund, refundErr := callback.DecodeRefundBody(body)
	if !refIsObject(body) {
		if orderErr == nil || refundErr == nil {
			t.Fatalf("body %q is not a JSON object; DecodeOrderBody err = %v, DecodeRefundBody err = %v; want both to fail", body, orderErr, refundErr)
		}
		return
	}
	var wantOrder callback.OrderBody
	wantOrderErr := refDecodeExact(body, &wantOrder)
	if (orderErr == nil) != (wantOrderErr == nil) || orderErr == nil && !reflect.DeepEqual(order, wantOrder) {
		t.Fatalf("DecodeOrderBody(%q) = %s, %v; the reference decodes %s, %v", body, orderString(order), orderErr, orderString(wantOrder), wantOrderErr)
	}
	var wantRefund callback.RefundBody
	wantRefundErr := refDecodeExact(body, &wantRefund)
	if (refundErr == nil) != (wantRefundErr == nil) || refundErr == nil && refund != wantRefund {
		t.Fatalf("DecodeRefundBody(%q) = %+v, %v; the reference decodes %+v, %v", body, refund, refundErr, wantRefund, wantRefundErr)
	}
}

// eventString renders an event with its typed body rather than a pointer.
func eventString(ev callback.Event) string {
	s := fmt.Sprintf("platform=%d type=%q ts=%d kind=%q park=%q id=%s body=%q", ev.Platform, ev.Type, ev.TimestampMS, ev.Kind, ev.Park, ev.ID, ev.Body)
	if ev.Order != nil {
		s += " order=" + orderString(*ev.Order)
	}
	if ev.Refund != nil {
		s += fmt.Sprintf(" refund=%+v", *ev.Refund)
	}
	return s
}

// orderString renders an order body with its optional strings rather than pointers.
func orderString(b callback.OrderBody) string {
	opt := func(p *string) string {
		if p == nil {
			return "nil"
		}
		return strconv.Quote(*p)
	}
	closeReason, payTime := opt(b.CloseReason), opt(b.PayTime)
	b.CloseReason, b.PayTime = nil, nil
	return fmt.Sprintf("%+v closeReason=%s payTime=%s", b, closeReason, payTime)
}

// exact returns s as a byte slice with no capacity beyond its length, so
// that a read past the end panics instead of finding stale bytes.
func exact(s string) []byte {
	b := []byte(s)
	return b[:len(b):len(b)]
}

// prefixDocs are documents whose every prefix is checked: between them they
// hold each JSON token kind, every escape, hex digits at the ends of their
// ranges, surrogate pairs at the end of a string, runs of eight plain bytes,
// and every kind of whitespace between tokens.
var prefixDocs = []string{
	"{\"messageType\":\"ORDER_PAY_SUCCESS\",\"messageBody\":\"{\\\"orderId\\\":\\\"3305075341149134260\\\",\\\"orderNo\\\":\\\"PO202605200001\\\",\\\"payStatus\\\":2,\\\"totalAmount\\\":10000,\\\"closeReason\\\":null,\\\"payTime\\\":\\\"2026-05-20 15:41:00\\\"}\",\"messagePlatform\":1,\"timestamp\":\"1779263269913\"}",
	"{ \"pad\" :\t[ true ,false\r, null\n, -0.5e+3, 1E-2, 9e9, -12, 0, [], {}, [1], {\"a\":[{}]}, \"\\b\\f\\n\\r\\t\" ] ,\"messageType\" : \"A\\u0039\\u00Af\\u00aF\\u00C9\\\"\\\\\\/\\ud83d\\ude00\", \"timestamp\":1779263269913,\"messagePlatform\":0,\"messageBody\":\"{\\\"x\\\":\\\"\\\\ud83d\\\\ude00\\\",\\\"y\\\":\\\"12345678\\\\u00e9\\u00C9\\u00Af\\\"}\" }",
	"{\"messageType\":\"ORDER_BUYER_VIEW_ORDER_BUYER_REFUND\",\"messageBody\":\"{\\\"refundId\\\":\\\"TQ1\\\",\\\"orderId\\\":2}\",\"messagePlatform\":1,\"timestamp\":\"1\",\"abcdefgh\":\"abcdefghabcdefgh\"}",
	"[\"abcdefgh\",\"\\uFFFF\",\"\\u0000\"]",
	"-1.0e-1",
}

// wideDoc is an array of n copies of elem: nesting stays shallow however
// long the document is.
func wideDoc(elem string, n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat(elem+",", n), ",") + "]"
}

// TestParseMatchesReferenceOnCuratedInputs runs the differential check on
// inputs the fuzzer reaches only by luck: every prefix of prefixDocs (a
// truncated document must be refused without reading past its end), wide
// documents (closing an array or object must give back its nesting level),
// and values at the edges of the envelope rules.
func TestParseMatchesReferenceOnCuratedInputs(t *testing.T) {
	names := callback.DefaultTypeNames()
	p, err := callback.NewParser(names)
	if err != nil {
		t.Fatal(err)
	}
	var inputs []string
	for _, doc := range prefixDocs {
		for n := 0; n <= len(doc); n++ {
			inputs = append(inputs, doc[:n])
		}
	}
	env := func(pad string) string {
		return `{"messageType":"X","messageBody":"{}","messagePlatform":1,"timestamp":"1","pad":` + pad + `}`
	}
	for _, elem := range []string{"[]", "{}", "[1]", `{"a":1}`, "[[]]"} {
		inputs = append(inputs, env(wideDoc(elem, 2*refMaxDepth)))
	}
	// Nesting at the limit and one past it, with an object innermost: the
	// envelope is depth 1, so 510 arrays put the object at 512.
	for _, arrays := range []int{refMaxDepth - 2, refMaxDepth - 1} {
		inputs = append(inputs, env(strings.Repeat("[", arrays)+"{}"+strings.Repeat("]", arrays)))
	}
	withType := func(typ string) string {
		return `{"messageType":"` + typ + `","messageBody":"{}","messagePlatform":1,"timestamp":"1"}`
	}
	inputs = append(inputs,
		withType(`\\\\`), withType(`\\`), withType(`\u00e9\ud83d\ude00`), withType("\xff\\n"), withType("\xc3\xa9"),
		withType(strings.Repeat("A", callback.MaxMessageTypeLen)), withType(strings.Repeat("A", callback.MaxMessageTypeLen+1)),
		withType(strings.Repeat("\\u00e9", callback.MaxMessageTypeLen/2)), withType(strings.Repeat("\\u00e9", callback.MaxMessageTypeLen/2)+"A"),
		withType(" "), withType("\\u001f"), withType("\\u007f"), withType("~"), withType("\x80"), withType("A\x80"),
		"{\"messageType\":\"X\",\"messagePlatform\":1,\"timestamp\":\"1\",\"messageBody\":\"{\\\"a\\\":\\\"\x80\x7f\\\"}\"}",
		// Raw multi-byte text next to an escape (the slow path of unquote),
		// in the type, the timestamp and a typed field; a refund body whose
		// field does not decode.
		withType("\u00e9\\u0041"), withType("\u00e9\x80"),
		`{"messageType":"X","messageBody":"{}","messagePlatform":1,"timestamp":"\u0031\u0032"}`,
		`{"messageType":"ORDER_CREATE","messageBody":"{\"orderId\":\"\u00e9\\n\"}","messagePlatform":1,"timestamp":"1"}`,
		`{"messageType":"ORDER_BUYER_VIEW_ORDER_BUYER_REFUND","messageBody":"{\"refundId\":{},\"orderId\":\"1\"}","messagePlatform":0,"timestamp":"1"}`,
	)
	for _, raw := range inputs {
		checkParseMatchesReference(t, p, names, exact(raw))
	}
}

// TestDecodeMatchesReferenceOnCuratedBodies runs the body check on values at
// the edges of the typed decoders' fast paths: empty strings, a string whose
// decoded text is as long as its escaped form, integers at the ends of the
// digit range and of the 18-digit fast path, and wrong kinds for each field.
func TestDecodeMatchesReferenceOnCuratedBodies(t *testing.T) {
	bodies := []string{
		`{"orderId":"","orderNo":"","orderStatus":"","tbCreateTime":"","closeReason":"","payTime":"","refundId":"","subOrderId":"","refundStatus":""}`,
		"{\"orderNo\":\"\\n\\n\xff\",\"orderId\":\"\\t\\t\xfe\",\"payTime\":\"\\/\\/\x80\",\"refundId\":\"\\r\\r\xc0\"}",
		"{\"orderNo\":\"\xef\xbf\xbd\",\"orderStatus\":\"\\ufffd\"}",
		`{"orderId":"a\ud83d\ude00","orderNo":"\ud83d\ude00","closeReason":"x\ud83d"}`,
		"{\"orderId\":\"\x80\",\"orderNo\":\"\\u00C9\\u00Af\\u00aF\"}",
		`{"orderId":1,"x":` + strings.Repeat("[", refMaxDepth-2) + "{}" + strings.Repeat("]", refMaxDepth-2) + `}`,
		`{"orderId":1,"x":` + strings.Repeat("[", refMaxDepth-1) + "{}" + strings.Repeat("]", refMaxDepth-1) + `}`,
		`{"payStatus":0}`, `{"payStatus":9}`, `{"payStatus":-7}`, `{"payStatus":-0}`, `{"payStatus":1.5}`, `{"payStatus":true}`, `{"payStatus":"1"}`, `{"payStatus":[]}`,
		`{"totalAmount":999999999999999999,"shippingFee":-999999999999999999,"productAmount":9090,"refundAmount":-0}`,
		`{"totalAmount":9999999999999999999}`, `{"totalAmount":-9999999999999999999}`, `{"totalAmount":99999999999999999999}`,
		`{"refundAmount":9223372036854775807}`, `{"refundAmount":1000000000000000}`, `{"refundAmount":1000000000000001}`,
		`{"totalAmount":1.5}`, `{"totalAmount":-1.5}`, `{"totalAmount":"1.5"}`, `{"totalAmount":1.0}`, `{"totalAmount":-2e2}`, `{"totalAmount":"-"}`, `{"totalAmount":true}`,
		`{"refundId":{},"orderId":"1"}`, `{"refundId":"1","orderId":[]}`, `{"subOrderId":{"a":1}}`, `{"refundStatus":[1]}`, `{"refundAmount":"x"}`,
		`{"orderNo":1}`, `{"orderStatus":true}`, `{"tbCreateTime":{}}`, `{"closeReason":1}`, `{"payTime":[]}`, `{"orderId":{}}`, `{"refundStatus":{}}`,
		`{"orderNo":"a","orderNo":null,"closeReason":"b","closeReason":null,"payStatus":3,"payStatus":null,"totalAmount":5,"totalAmount":null}`,
	}
	for _, b := range bodies {
		checkDecodeMatchesReference(t, exact(b))
	}
}
