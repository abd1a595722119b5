package callback_test

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
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
