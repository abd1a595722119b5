package refundflow

import (
	"fmt"
	"testing"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/platform"
)

// TestOperatorWordsAreSentAsTheProfileSays: the request's goods status and
// return choice are the operator's words; what goes on the wire is the
// profile's, so a corrected profile changes the requests and not the
// commands operators type.
func TestOperatorWordsAreSentAsTheProfileSays(t *testing.T) {
	def := platform.Default()
	prof, err := platform.Parse([]byte(`
[taobao.goods_status]
not_shipped = 10
not_received = 20
received = 30
[taobao.refund_type]
refund_only = 0
return_and_refund = 1
[alibaba.goods_status]
in_sale_buyer_received = "BUYER_RECEIVED"
[alibaba.dispute_request]
return_refund = "RETURN_REFUND"
`), "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		prof       *platform.Profile
		code       string
		wantGoods  int
		returnWant int
	}{{def, "1", 1, 2}, {def, "3", 3, 2}, {prof, "1", 10, 1}, {prof, "2", 20, 1}, {prof, "9", 0, 1}} {
		if got := taobaoGoodsWire(tt.prof, tt.code); got != tt.wantGoods {
			t.Errorf("taobaoGoodsWire(%q) = %d; want %d", tt.code, got, tt.wantGoods)
		}
		if got := taobaoRefundType(tt.prof, true); got != tt.returnWant {
			t.Errorf("taobaoRefundType(return) = %d; want %d", got, tt.returnWant)
		}
	}
	if got := alibabaGoodsWire(prof, "refundBuyerReceived"); got != "BUYER_RECEIVED" {
		t.Errorf("alibabaGoodsWire = %q; want the profile's BUYER_RECEIVED", got)
	}
	if got := alibabaGoodsWire(def, "refundBuyerReceived"); got != "refundBuyerReceived" {
		t.Errorf("alibabaGoodsWire(default) = %q", got)
	}
	if got := alibabaGoodsWire(def, "BUYER_RECEIVED"); got != "" {
		t.Errorf("a wire value is not an operator word: got %q", got)
	}
	if alibabaDispute(prof, true) != "RETURN_REFUND" || alibabaDispute(prof, false) != "refund" {
		t.Errorf("alibabaDispute = %q, %q", alibabaDispute(prof, true), alibabaDispute(prof, false))
	}
	// The vocabulary covers every goods status the profile names.
	if len(alibabaGoods) != len(def.Alibaba.GoodsStatus.All()) {
		t.Errorf("%d operator words for %d profile goods statuses", len(alibabaGoods), len(def.Alibaba.GoodsStatus.All()))
	}
	for _, g := range alibabaGoods {
		if g.received != def.Alibaba.GoodsStatus.Received(g.wire(def.Alibaba.GoodsStatus)) {
			t.Errorf("%s: received = %v disagrees with the profile", g.word, g.received)
		}
	}
}

// TestAWrongPathIsNotAMissingRefund: only the platform's own not_found answer
// (HTTP 2xx) says a refund does not exist. An HTTP 404, which is what a
// wrong path in the profile gets, even with a not_found code in its body,
// must not make a refund look absent (a submit would follow).
func TestAWrongPathIsNotAMissingRefund(t *testing.T) {
	if !isNotFound(fmt.Errorf("query: %w", &apiclient.APIError{Code: 4041, Class: platform.ClassNotFound})) {
		t.Error("the platform's not_found answer is not read as not found")
	}
	if isNotFound(&apiclient.HTTPError{StatusCode: 404, Code: 4041, Class: platform.ClassNotFound}) {
		t.Error("an HTTP 404 is read as a missing refund")
	}
	if isNotFound(&apiclient.APIError{Code: 4999}) {
		t.Error("an unknown code is read as a missing refund")
	}
}
