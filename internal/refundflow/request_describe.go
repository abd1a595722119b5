package refundflow

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// RequestField is one line of a request as an operator reads it.
type RequestField struct {
	Name, Value string
}

// taobaoGoodsWords are the words for the Taobao goods-status codes the
// operator files (Request.GoodsStatus).
var taobaoGoodsWords = map[string]string{"1": "not shipped", "2": "shipped, not received", "3": "received"}

// DescribeRequest is a case's request as filed (its stored JSON), in the
// operator's words, for the pages that show a case: the type, goods status,
// reason, amount, description and the rest, each whole. The stored JSON is
// exact but misleading to read: a Taobao "amount": 0 is the most the form
// allows, not nothing. A field left empty is left out; a document that is
// not a request (not one, or none of its fields set) comes back as one
// field holding it as stored.
func DescribeRequest(p Platform, doc json.RawMessage) []RequestField {
	s := strings.TrimSpace(string(doc))
	if s == "" || s == "null" || s == "{}" {
		return nil
	}
	var r Request
	if err := json.Unmarshal(doc, &r); err != nil || r.isZero() {
		return []RequestField{{"As stored", s}}
	}
	return r.describe(p)
}

// isZero reports whether no field of the request is set.
func (r Request) isZero() bool {
	return !r.ReturnGoods && r.GoodsStatus == "" && r.ReasonID == 0 && r.Reason == "" && r.Amount == 0 && r.Carriage == 0 &&
		r.Description == "" && len(r.Vouchers) == 0 && len(r.OrderEntryIDs) == 0
}

func (r Request) describe(p Platform) []RequestField {
	var out []RequestField
	add := func(name, value string) {
		if value != "" {
			out = append(out, RequestField{name, value})
		}
	}
	add("Type", "refund only")
	if r.ReturnGoods {
		out[0].Value = "return goods and refund" // the request form's words
	}
	goods := r.GoodsStatus
	if w, ok := taobaoGoodsWords[goods]; ok && p == PlatformTaobao {
		goods += " (" + w + ")"
	}
	add("Goods status", goods)
	switch {
	case r.ReasonID > 0 && r.Reason != "":
		add("Reason", fmt.Sprintf("%d (%s)", r.ReasonID, r.Reason))
	case r.ReasonID > 0:
		add("Reason", strconv.FormatInt(r.ReasonID, 10))
	default:
		add("Reason", r.Reason)
	}
	amount := fen(r.Amount)
	if r.Amount == 0 && p == PlatformTaobao {
		amount = "the most the refund form allows (max)"
	}
	add("Amount", amount)
	if r.Carriage > 0 {
		add("Carriage", fen(r.Carriage))
	}
	add("Description", r.Description)
	add("Vouchers", strings.Join(r.Vouchers, " "))
	if len(r.OrderEntryIDs) > 0 {
		ids := make([]string, len(r.OrderEntryIDs))
		for i, id := range r.OrderEntryIDs {
			ids[i] = strconv.FormatInt(id, 10)
		}
		add("Order entries", strings.Join(ids, ", "))
	}
	return out
}

// fen is an amount in fen, the unit operators file in, with its yuan.
func fen(n int64) string {
	if n < 0 { // never filed (Validate), but shown as stored
		return fmt.Sprintf("%d fen", n)
	}
	return fmt.Sprintf("%d fen (%d.%02d yuan)", n, n/100, n%100)
}
