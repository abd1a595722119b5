package events_test

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/refundhub/refundhub/internal/events"
)

func TestSubjects(t *testing.T) {
	if got := events.AcceptedSubject("1688", "ORDER_CREATE"); got != "callbacks.1688.ORDER_CREATE" {
		t.Errorf("AcceptedSubject = %q", got)
	}
	if got := events.ParkedSubject("taobao"); got != "parked.callbacks.taobao" {
		t.Errorf("ParkedSubject = %q", got)
	}
}

// TestCallbackHeaders: the Cb-* headers as the package doc documents them,
// spelt out here rather than taken from the constants; the park headers only
// for a parked callback, the signature header only when verified.
func TestCallbackHeaders(t *testing.T) {
	received := time.UnixMilli(1779263269913)
	for _, c := range []struct {
		name string
		in   events.CallbackHeaders
		want nats.Header
	}{
		{"accepted", events.CallbackHeaders{Platform: "1688", Type: "ORDER_CREATE", Received: received, RequestID: "req-1"},
			nats.Header{"Cb-Platform": {"1688"}, "Cb-Type": {"ORDER_CREATE"}, "Cb-Received": {"1779263269913"}, "Cb-Request-Id": {"req-1"}}},
		{"parked and verified", events.CallbackHeaders{Platform: "taobao", Type: "NEW", Received: received, RequestID: "req-2",
			ParkReason: "unknown_type", ParkDetail: "no such type", Verified: true},
			nats.Header{"Cb-Platform": {"taobao"}, "Cb-Type": {"NEW"}, "Cb-Received": {"1779263269913"}, "Cb-Request-Id": {"req-2"},
				"Cb-Park-Reason": {"unknown_type"}, "Cb-Park-Detail": {"no such type"}, "Cb-Signature": {"verified"}}},
	} {
		if got := c.in.Header(); !maps.EqualFunc(got, c.want, slices.Equal) {
			t.Errorf("%s: Header() = %v; want %v", c.name, got, c.want)
		}
		h := nats.Header{}
		c.in.Fill(h)
		if !maps.EqualFunc(h, c.want, slices.Equal) {
			t.Errorf("%s: Fill = %v; want %v", c.name, h, c.want)
		}
	}
}

// TestCallbackHeadersValuesAreSeparate: a value appended to one header does
// not show through another (Fill's value slices share one array, capped).
func TestCallbackHeadersValuesAreSeparate(t *testing.T) {
	h := events.CallbackHeaders{Platform: "1688", Type: "ORDER_CREATE", RequestID: "req-1"}.Header()
	h.Add("Cb-Platform", "extra")
	if got := h.Get("Cb-Type"); got != "ORDER_CREATE" {
		t.Errorf("after adding to Cb-Platform, Cb-Type = %q; want ORDER_CREATE", got)
	}
}
