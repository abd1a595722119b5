package callback

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/refundhub/refundhub/internal/apiclient"
)

// Typed body decoding on the scanner: the same result as encoding/json into
// OrderBody / RefundBody (the apiclient flex types keep their own
// UnmarshalJSON semantics), except that keys match case-sensitively. It
// assumes body was already validated by scanDoc.

// Body-level failures of the typed decoders; any other error is a field
// that does not fit its type.
var (
	errBodySyntax    = errors.New("not a JSON document")
	errBodyNotObject = errors.New("not a JSON object")
)

// DecodeOrderBody decodes the body of an order status or price message.
func DecodeOrderBody(body []byte) (OrderBody, error) {
	return decodeOrder(text{b: body, s: string(body)}, nil)
}

// DecodeRefundBody decodes the body of an after-sales refund message.
func DecodeRefundBody(body []byte) (RefundBody, error) {
	return decodeRefund(text{b: body, s: string(body)}, nil)
}

// text is a body as bytes and as the equal string: a field value without
// escapes becomes a substring of s, so decoding allocates no strings.
type text struct {
	b []byte
	s string
}

// str returns the string for val, a subslice of t.b holding a JSON string
// literal (with quotes).
func (t text) str(val []byte) string {
	inner := val[1 : len(val)-1]
	u := unquote(inner)
	if len(u) == len(inner) && (len(u) == 0 || &u[0] == &inner[0]) {
		off := cap(t.b) - cap(inner)
		return t.s[off : off+len(inner)]
	}
	return string(u)
}

// raw returns the string for val (a subslice of t.b) as written.
func (t text) raw(val []byte) string {
	off := cap(t.b) - cap(val)
	return t.s[off : off+len(val)]
}

func decodeOrder(t text, other *[]string) (OrderBody, error) {
	body := t.b
	var b OrderBody
	var first error
	set := func(name string, err error) {
		if err != nil && first == nil {
			first = fmt.Errorf("field %s: %w", name, err)
		}
	}
	isObj, err := scanDoc(body, func(key []byte, escaped bool, val []byte) {
		if escaped {
			key = unquote(key)
		}
		switch string(key) {
		case "orderId":
			set("orderId", flexString(t, &b.OrderID, val))
		case "orderNo":
			set("orderNo", plainString(t, &b.OrderNo, val))
		case "orderStatus":
			set("orderStatus", plainString(t, &b.OrderStatus, val))
		case "payStatus":
			set("payStatus", plainInt(&b.PayStatus, val))
		case "totalAmount":
			set("totalAmount", amount(&b.TotalAmount, val))
		case "shippingFee":
			set("shippingFee", amount(&b.ShippingFee, val))
		case "productAmount":
			set("productAmount", amount(&b.ProductAmount, val))
		case "refundAmount":
			set("refundAmount", amount(&b.RefundAmount, val))
		case "refundStatus":
			set("refundStatus", flexString(t, &b.RefundStatus, val))
		case "closeReason":
			set("closeReason", optString(t, &b.CloseReason, val))
		case "tbCreateTime":
			set("tbCreateTime", plainString(t, &b.TbCreateTime, val))
		case "payTime":
			set("payTime", optString(t, &b.PayTime, val))
		default:
			noteOther(other, key)
		}
	})
	if err != nil {
		return b, fmt.Errorf("order body: %w", errBodySyntax)
	}
	if !isObj {
		return b, fmt.Errorf("order body: %w", errBodyNotObject)
	}
	return b, first
}

func decodeRefund(t text, other *[]string) (RefundBody, error) {
	body := t.b
	var b RefundBody
	var first error
	set := func(name string, err error) {
		if err != nil && first == nil {
			first = fmt.Errorf("field %s: %w", name, err)
		}
	}
	isObj, err := scanDoc(body, func(key []byte, escaped bool, val []byte) {
		if escaped {
			key = unquote(key)
		}
		switch string(key) {
		case "refundId":
			set("refundId", flexString(t, &b.RefundID, val))
		case "orderId":
			set("orderId", flexString(t, &b.OrderID, val))
		case "subOrderId":
			set("subOrderId", flexString(t, &b.SubOrderID, val))
		case "refundStatus":
			set("refundStatus", flexString(t, &b.RefundStatus, val))
		case "refundAmount":
			set("refundAmount", amount(&b.RefundAmount, val))
		default:
			noteOther(other, key)
		}
	})
	if err != nil {
		return b, fmt.Errorf("refund body: %w", errBodySyntax)
	}
	if !isObj {
		return b, fmt.Errorf("refund body: %w", errBodyNotObject)
	}
	return b, first
}

func kindErr(want string, val []byte) error {
	return fmt.Errorf("want %s, got %s", want, jsonKind(val[0]))
}

// flexString is apiclient.FlexString.UnmarshalJSON on a validated value:
// strings decoded, numbers and booleans kept as written, null empty;
// objects and arrays are errors.
func flexString(t text, f *apiclient.FlexString, val []byte) error {
	switch val[0] {
	case '"':
		*f = apiclient.FlexString(t.str(val))
	case 'n':
		*f = ""
	case '{', '[':
		return kindErr("a string or number", val)
	default:
		*f = apiclient.FlexString(t.raw(val))
	}
	return nil
}

// amount is apiclient.Amount.UnmarshalJSON with an allocation-free path for
// plain integers.
func amount(a *apiclient.Amount, val []byte) error {
	digits := val
	neg := false
	if len(digits) > 0 && digits[0] == '-' {
		neg, digits = true, digits[1:]
	}
	if len(digits) > 0 && len(digits) <= 18 {
		var n int64
		ok := true
		for _, c := range digits {
			if c < '0' || c > '9' {
				ok = false
				break
			}
			n = n*10 + int64(c-'0')
		}
		if ok {
			if neg {
				n = -n
			}
			*a = apiclient.Amount(n)
			return nil
		}
	}
	return a.UnmarshalJSON(val)
}

// plainString is encoding/json into a string: null leaves it unchanged.
func plainString(t text, s *string, val []byte) error {
	switch val[0] {
	case '"':
		*s = t.str(val)
		return nil
	case 'n':
		return nil
	default:
		return kindErr("a string", val)
	}
}

// optString is encoding/json into a *string: null sets nil.
func optString(t text, p **string, val []byte) error {
	switch val[0] {
	case '"':
		s := t.str(val)
		*p = &s
		return nil
	case 'n':
		*p = nil
		return nil
	default:
		return kindErr("a string or null", val)
	}
}

// plainInt is encoding/json into an int: integers only, null unchanged.
func plainInt(n *int, val []byte) error {
	if val[0] == 'n' {
		return nil
	}
	if val[0] != '-' && (val[0] < '0' || val[0] > '9') {
		return kindErr("an integer", val)
	}
	v, err := strconv.ParseInt(string(val), 10, 0)
	if err != nil {
		return fmt.Errorf("want an integer, got %s", short(val))
	}
	*n = int(v)
	return nil
}

// MaxOtherFields bounds Event.OtherFields: enough to show what a platform
// adds, not a way to make the receiver allocate per key of a hostile body.
const MaxOtherFields = 8

// noteOther records a body field the decoder does not read, when asked.
func noteOther(other *[]string, key []byte) {
	if other != nil && len(*other) < MaxOtherFields {
		*other = append(*other, string(key))
	}
}
