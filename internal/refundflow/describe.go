package refundflow

import (
	"cmp"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Field is one line of a case's document (its request, plan or return
// shipment) as an operator reads it.
type Field struct {
	Name, Value string
}

// fields collects the lines of a document, leaving empty values out.
type fields []Field

func (f *fields) add(name, value string) {
	if value != "" {
		*f = append(*f, Field{name, value})
	}
}

// describeDoc decodes a stored document into v and describes it; a
// document that does not decode, or sets nothing (isZero), is one field
// holding it as stored; none at all, nothing.
func describeDoc[T any](doc json.RawMessage, isZero func(T) bool, describe func(T) []Field) []Field {
	s := strings.TrimSpace(string(doc))
	if s == "" || s == "null" || s == "{}" {
		return nil
	}
	var v T
	if err := json.Unmarshal(doc, &v); err != nil || isZero(v) {
		return []Field{{"As stored", s}}
	}
	return describe(v)
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
func DescribeRequest(p Platform, doc json.RawMessage) []Field {
	return describeDoc(doc, Request.isZero, func(r Request) []Field { return r.describe(p) })
}

// DescribePlan is what the worker chose for a case's request from the
// platform's form (its stored plan: the reason the form offered, the
// amount, the vouchers uploaded), in the operator's words: "max" in the
// request is the amount here. It is chosen when the form is read, so it is
// what a submission sends, or would send: not proof that one reached the
// platform. The bookkeeping of earlier refunds is left out.
func DescribePlan(doc json.RawMessage) []Field {
	return describeDoc(doc, func(p Plan) bool {
		return p.ReasonID == 0 && p.ReasonDesc == "" && p.Fee == 0 && p.Carriage == 0 && len(p.Vouchers) == 0 && p.Adopted == ""
	}, func(p Plan) []Field {
		var out fields
		switch {
		case p.Adopted != "" && p.AdoptedUnconfirmed:
			out.add("Adopted", fmt.Sprintf("refund %s, taken by an operator for this case's submission, which the platform never confirmed: "+
				"the case follows it; what the refund asks for is the platform's", p.Adopted))
		case p.Adopted != "":
			out.add("Adopted", fmt.Sprintf("refund %s, filed outside this case (on the platform's site, or by another tool) and adopted by an operator: "+
				"the case follows it. This case's request and the choices below were never filed: what the refund asks for is the platform's", p.Adopted))
		}
		switch {
		case p.ReasonID > 0 && p.ReasonDesc != "":
			out.add("Reason", fmt.Sprintf("%d (%s)", p.ReasonID, p.ReasonDesc))
		case p.ReasonID > 0:
			out.add("Reason", strconv.FormatInt(p.ReasonID, 10))
		default:
			out.add("Reason", p.ReasonDesc)
		}
		if p.Fee > 0 {
			out.add("Amount", fen(p.Fee))
		}
		if p.Carriage > 0 {
			out.add("Carriage", fen(p.Carriage))
		}
		if p.NeedVoucher {
			out.add("Vouchers", "needed by the reason; uploaded: "+cmp.Or(strings.Join(p.Vouchers, " "), "none yet"))
		} else {
			out.add("Vouchers", strings.Join(p.Vouchers, " "))
		}
		if o := p.OrderElsewhere; o != nil {
			out.add("Platform's order", fmt.Sprintf("%s, not the case's %s (refund %s on the sub-order showed it)", o.PlatformOrder, o.CaseOrder, o.RefundID))
		} else if p.CallbackRefund != "" {
			out.add("Callback's refund", p.CallbackRefund+" (a callback named it for the sub-order, which the order's list did not show, "+
				"while the case had no refund of its own: read with every look until it has)")
		}
		if f := p.Filed; f != nil { // Taobao only: 1688 refunds are not modified
			var parts []string
			for _, fl := range f.describe(PlatformTaobao) {
				parts = append(parts, fl.Name+": "+fl.Value)
			}
			out.add("Before the last modification", strings.Join(parts, "; "))
		}
		return out
	})
}

// DescribeShipment is a case's return shipment, in the operator's words.
func DescribeShipment(doc json.RawMessage) []Field {
	return describeDoc(doc, func(s Shipment) bool { return s == Shipment{} }, func(s Shipment) []Field {
		var out fields
		out.add("Carrier", s.Company)
		out.add("Waybill", s.Waybill)
		out.add("Phone", s.Phone)
		out.add("Description", s.Description)
		return out
	})
}

// isZero reports whether no field of the request is set.
func (r Request) isZero() bool {
	return !r.ReturnGoods && r.GoodsStatus == "" && r.ReasonID == 0 && r.Reason == "" && r.Amount == 0 && r.Carriage == 0 &&
		r.Description == "" && len(r.Vouchers) == 0 && len(r.OrderEntryIDs) == 0
}

func (r Request) describe(p Platform) []Field {
	var out fields
	add := out.add
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
