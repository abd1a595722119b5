package callback_test

import (
	"fmt"
	"testing"

	"github.com/refundhub/refundhub/internal/callback"
)

// TestParseAllocationBudget pins what the hand-written path is for (its
// doc comments; BenchmarkParse): an accepted push costs one allocation for
// the decoded body, one for the typed body, one for the ID and one per
// optional string that is present, whatever its fields hold. String fields
// without escapes share the body's bytes, and integers (negative, zero, up
// to 18 digits) take the path that allocates nothing.
func TestParseAllocationBudget(t *testing.T) {
	p, err := callback.NewParser(callback.DefaultTypeNames())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		raw  string
		want float64
	}{
		{"order", `{"messageType":"ORDER_PAY_SUCCESS","messageBody":"{\"orderId\":\"3305075341149134260\",\"orderNo\":\"PO202605200001\",\"orderStatus\":\"WAITING_FOR_SENT\",\"payStatus\":2,\"totalAmount\":999999999999999999,\"shippingFee\":-500,\"productAmount\":9090,\"refundAmount\":0,\"refundStatus\":null,\"closeReason\":null,\"tbCreateTime\":\"2026-05-20 15:40:00\",\"payTime\":\"2026-05-20 15:41:00\"}","messagePlatform":1,"timestamp":"1779263269913"}`, 4},
		{"refund", `{"messageType":"ORDER_BUYER_VIEW_ORDER_BUYER_REFUND","messageBody":"{\"refundId\":\"TQ1\",\"orderId\":\"2\",\"subOrderId\":3,\"refundStatus\":\"WAIT\",\"refundAmount\":-1240}","messagePlatform":0,"timestamp":1779263269913}`, 3},
	} {
		raw := []byte(c.raw)
		var bad string
		got := testing.AllocsPerRun(100, func() {
			if ev, err := p.Parse(raw); err != nil || ev.Parked() {
				bad = fmt.Sprintf("Parse = park %q, %v; want an accepted event", ev.Park, err)
			}
		})
		if bad != "" {
			t.Fatalf("%s: %s", c.name, bad)
		}
		if got > c.want {
			t.Errorf("%s: Parse allocates %.0f times per push; want at most %.0f", c.name, got, c.want)
		}
	}
}
