package intake_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/callback/intake"
	"github.com/refundhub/refundhub/internal/platform"
)

// TestUnknownBodyFieldsAreCounted: fields of an accepted body that the
// profile does not list for the kind are counted per platform, type and
// field, with the label sets bounded; fields the profile lists, and parked
// bodies, are not counted.
func TestUnknownBodyFieldsAreCounted(t *testing.T) {
	prof, err := platform.Parse([]byte("[callbacks.taobao.fields]\nrefund = [\"refundId\", \"orderId\", \"tid\"]\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, intake.Config{Profile: prof})
	const refund = "ORDER_BUYER_VIEW_ORDER_BUYER_REFUND"
	for i, body := range []string{
		`{"refundId":"R1","orderId":"1","tid":"T1","buyerNick":"n","refundFee":"1.00"}`, // tid is listed
		`{"refundId":"R2","orderId":"2","buyerNick":"m"}`,
		`{"orderId":"3","buyerNick":"parked: no refundId"}`,
	} {
		if r := post(t, e.url, envelope(refund, 0, body, fmt.Sprint(1000+i)), nil); r.status != 200 {
			t.Fatalf("post %d: %d %s", i, r.status, r.body)
		}
	}
	m := scrape(t, e.http.URL)
	for _, want := range []string{
		`receiver_body_unknown_fields_total{field="buyerNick",platform="taobao",type="` + refund + `"} 2`,
		`receiver_body_unknown_fields_total{field="refundFee",platform="taobao",type="` + refund + `"} 1`,
	} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, `field="tid"`) {
		t.Error("a field the profile lists was counted")
	}

	// A hostile sender cannot grow the label sets without bound.
	for i := range 100 {
		body := fmt.Sprintf(`{"orderId":"9","f%d":1}`, i)
		if r := post(t, e.url, envelope("ORDER_CREATE", 1, body, fmt.Sprint(5000+i)), nil); r.status != 200 {
			t.Fatalf("post: %d %s", r.status, r.body)
		}
	}
	m = scrape(t, e.http.URL)
	if n := strings.Count(m, "receiver_body_unknown_fields_total{"); n > 65 {
		t.Errorf("%d series; want at most 64 and _other", n)
	}
	if !strings.Contains(m, `field="_other",platform="1688",type="ORDER_CREATE"`) {
		t.Error("no _other series once the bound was reached")
	}
}
