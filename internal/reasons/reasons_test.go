package reasons

import (
	"errors"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/excerpt"
)

// TestCheck: a query the platform would not be asked with names the
// request field at fault (each caller names it its own way) and the value,
// cut; a good one passes.
func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		q            Query
		field, given string
	}{
		{Query{Platform: "amazon"}, "platform", "amazon"},
		{Query{Platform: "taobao", OrderID: "1"}, "subOrderId", ""},
		{Query{Platform: "1688"}, "orderId", ""},
		{Query{Platform: "1688", OrderID: "1", SubOrderID: "2"}, "subOrderId", ""},
		{Query{Platform: "1688", OrderID: "1", Type: "return"}, "type", ""},
		{Query{Platform: "1688", OrderID: "12x"}, "orderId", "12x"},
		{Query{Platform: "1688", OrderID: "012"}, "orderId", "012"},
		{Query{Platform: "taobao", SubOrderID: "1", Type: "swap"}, "type", "swap"},
		{Query{Platform: "taobao", SubOrderID: "1", GoodsStatus: "4"}, "goodsStatus", "4"},
		{Query{Platform: "taobao", SubOrderID: strings.Repeat("9", 100)}, "subOrderId", strings.Repeat("9", 40) + excerpt.Ellipsis},
	} {
		var fe *FieldError
		if err := tc.q.Check(); !errors.As(err, &fe) || fe.Field != tc.field || (tc.given != "" && fe.Given != tc.given) {
			t.Errorf("Check(%+v) = %v; want a FieldError on %s (given %q)", tc.q, err, tc.field, tc.given)
		}
	}
	for _, q := range []Query{
		{Platform: "taobao", SubOrderID: "3305075341149134261", GoodsStatus: "3", Type: "return"},
		{Platform: "1688", OrderID: "3305075341149134262", GoodsStatus: "aftersaleBuyerReceived"},
	} {
		if err := q.Check(); err != nil {
			t.Errorf("Check(%+v) = %v; want nil", q, err)
		}
	}
}
