// Package reasons asks the platform which refund reasons it offers for an
// order: Taobao renders the sub-order's refund form (read-only) for each
// refund type and goods status, 1688 looks the reasons up by order for each
// goods status. A request must name one of them, or its case stops
// (reason_not_offered); `refundctl reasons` prints them and the console's
// request form lists them beside the form, from this one implementation.
package reasons

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// Query names what to ask: the platform, the order (1688) or sub-order
// (Taobao), and optionally one goods status (as a request takes it) and,
// on Taobao, one refund type ("refund" or "return"). Left out, every one
// is asked.
type Query struct {
	Platform, OrderID, SubOrderID, GoodsStatus, Type string
}

// FieldError is a Query the platform is not asked with: Field is the
// request's JSON name of the value (platform, orderId, subOrderId,
// goodsStatus, type), so each caller names it its own way (refundctl a
// flag, the console a form field).
type FieldError struct {
	Field string
	Given string // the value, cut to 40 bytes; "" when it is missing
	Rule  string
}

func (e *FieldError) Error() string {
	if e.Given != "" {
		return fmt.Sprintf("%s %q: %s", e.Field, e.Given, e.Rule)
	}
	return e.Field + ": " + e.Rule
}

// idPattern is an order or sub-order id as the platform prints it.
var idPattern = regexp.MustCompile(`^[0-9]{1,24}$`)

// Check reports the first value of q the platform would not be asked
// with, as a *FieldError.
func (q Query) Check() error {
	bad := func(field, given, rule string) error {
		return &FieldError{Field: field, Given: excerpt.Of(given, 40), Rule: rule}
	}
	switch q.Platform {
	case string(refundflow.PlatformTaobao):
		if q.SubOrderID == "" {
			return bad("subOrderId", "", "required for taobao (the reasons come from the sub-order's refund form)")
		}
	case string(refundflow.Platform1688):
		if q.OrderID == "" {
			return bad("orderId", "", "required for 1688")
		}
		if q.SubOrderID != "" {
			return bad("subOrderId", "", "1688 reasons are per order; leave it out")
		}
		if q.Type != "" {
			return bad("type", "", "1688 offers the same reasons for a refund and a return; leave it out")
		}
	default:
		return bad("platform", q.Platform, "want taobao or 1688")
	}
	for field, v := range map[string]string{"orderId": q.OrderID, "subOrderId": q.SubOrderID} {
		if v != "" && !idPattern.MatchString(v) {
			return bad(field, v, "want 1 to 24 digits")
		}
	}
	if q.Platform == string(refundflow.Platform1688) && strings.HasPrefix(q.OrderID, "0") {
		return bad("orderId", q.OrderID, "want a positive integer")
	}
	if q.Type != "" && q.Type != "refund" && q.Type != "return" {
		return bad("type", q.Type, "want refund or return")
	}
	if q.GoodsStatus != "" && !slices.Contains(GoodsStatuses(q.Platform), q.GoodsStatus) {
		return bad("goodsStatus", q.GoodsStatus, fmt.Sprintf("want one of %s for %s", strings.Join(GoodsStatuses(q.Platform), ", "), q.Platform))
	}
	return nil
}

// GoodsStatuses is a request's goods-status vocabulary for a platform. On
// 1688 it is the default profile's goodsStatus values in lifecycle order
// (refundflow's vocabulary; refundctl's TestGoodsStatusesAreRequests checks
// they agree).
func GoodsStatuses(p string) []string {
	if p == string(refundflow.PlatformTaobao) {
		return []string{"1", "2", "3"}
	}
	return platform.Default().Alibaba.GoodsStatus.All()
}

// Reason is one reason the platform offers.
type Reason struct {
	Type        string `json:"type"`        // refund or return (Taobao); any (1688: the reasons do not depend on it)
	GoodsStatus string `json:"goodsStatus"` // as a request takes it
	ID          int64  `json:"id"`          // a request's reasonId
	Reason      string `json:"reason"`      // a request's reason (text)
	// NeedVoucher: 1688 says whether the reason needs a voucher; Taobao's
	// form does not (null), its tip may.
	NeedVoucher *bool  `json:"needVoucher"`
	NoCarriage  bool   `json:"noCarriage,omitempty"` // 1688: no freight refunded with this reason
	Tip         string `json:"tip,omitempty"`
}

// VoucherNeed is whether the reason needs a voucher, in words: "needed",
// "no", or unknown where the platform does not say (Taobao's form), with
// " (no freight)" when 1688 refunds no freight with it.
func (r Reason) VoucherNeed(unknown string) string {
	need := unknown
	if r.NeedVoucher != nil {
		need = map[bool]string{true: "needed", false: "no"}[*r.NeedVoucher]
	}
	if r.NoCarriage {
		need += " (no freight)"
	}
	return need
}

// WithTip is the reason's text with its tip, if any, in brackets.
func (r Reason) WithTip() string {
	if r.Tip == "" {
		return r.Reason
	}
	return r.Reason + " (" + r.Tip + ")"
}

// Form is one call's answer: the reasons for one type and goods status
// were listed, or Error says why the platform gave none.
type Form struct {
	Type        string `json:"type"`
	GoodsStatus string `json:"goodsStatus"`
	RequestID   string `json:"requestId,omitempty"`
	MaxFee      *int64 `json:"maxFee,omitempty"` // Taobao: what an amount of max asks for, fen
	Error       string `json:"error,omitempty"`
	// RateLimited: the platform did not answer the look-up for the
	// account's quota (apiclient.RateLimited), which the worker's calls
	// share; asked again later, it is answered.
	RateLimited bool `json:"rateLimited,omitempty"`
}

// Result is what the platform offered for a Query.
type Result struct {
	Platform   string   `json:"platform"`
	OrderID    string   `json:"orderId,omitempty"`
	SubOrderID string   `json:"subOrderId,omitempty"`
	Reasons    []Reason `json:"reasons"`
	Forms      []Form   `json:"forms"`
}

// Answered reports whether any call was answered with the reasons of its
// form (none, perhaps).
func (r Result) Answered() bool {
	return slices.ContainsFunc(r.Forms, func(f Form) bool { return f.Error == "" })
}

// Err is nil when at least one call was answered, else why none was (the
// first call's error): no reason was read, which says nothing of what the
// forms offer.
func (r Result) Err() error {
	if len(r.Forms) == 0 || r.Answered() {
		return nil
	}
	if i := slices.IndexFunc(r.Forms, func(f Form) bool { return f.RateLimited }); i >= 0 {
		return fmt.Errorf("no reasons read: the platform rate-limits the account (the worker's calls count against the same quota): look up again in a minute (%s)", r.Forms[i].Error)
	}
	return fmt.Errorf("no reasons read: every look-up failed: %s", r.Forms[0].Error)
}

// Lookup asks the platform through cl once per type and goods status that
// q leaves open (on Taobao not for a return of goods never shipped, which
// the form refuses, unless q asks for it), and stops at the first call
// nothing answered: asking the others would only wait out the same
// timeouts. A refusal is about its combination; the others are asked.
// q must pass Check.
func Lookup(ctx context.Context, cl *apiclient.Client, q Query) Result {
	out := Result{Platform: q.Platform, OrderID: q.OrderID, SubOrderID: q.SubOrderID, Reasons: []Reason{}, Forms: []Form{}}
	goods := GoodsStatuses(q.Platform)
	if q.GoodsStatus != "" {
		goods = []string{q.GoodsStatus}
	}
	prof := cl.Profile()
	if q.Platform == string(refundflow.Platform1688) {
		orderID, _ := strconv.ParseInt(q.OrderID, 10, 64) // checked by Check
		for _, g := range goods {
			r, err := cl.AlibabaRefundReasons(ctx, apiclient.RefundReasonsRequest{OrderID: orderID, GoodsStatus: alibabaGoodsWire(prof, g)})
			form := Form{Type: "any", GoodsStatus: g, RequestID: r.RequestID}
			if err != nil {
				form.Error, form.RateLimited = err.Error(), apiclient.RateLimited(err)
			}
			out.Forms = append(out.Forms, form)
			if unanswered(err) {
				return out
			}
			for _, rr := range r.Data.Reasons {
				need := rr.NeedVoucher
				out.Reasons = append(out.Reasons, Reason{Type: "any", GoodsStatus: g, ID: int64(rr.ID), Reason: rr.Name,
					NeedVoucher: &need, NoCarriage: rr.NoRefundCarriage, Tip: rr.Tip})
			}
		}
		return out
	}
	types := []string{"refund", "return"}
	if q.Type != "" {
		types = []string{q.Type}
	}
	for _, typ := range types {
		for _, g := range goods {
			if typ == "return" && g == "1" && q.GoodsStatus == "" {
				continue // nothing to send back before it was shipped: the form refuses it
			}
			rt := prof.Taobao.RefundType.RefundOnly
			if typ == "return" {
				rt = prof.Taobao.RefundType.ReturnAndRefund
			}
			r, err := cl.TaobaoRender(ctx, apiclient.RenderRequest{SubOrderID: q.SubOrderID, RefundType: rt, GoodsStatus: taobaoGoodsWire(prof, g)})
			form := Form{Type: typ, GoodsStatus: g, RequestID: r.RequestID}
			if err != nil {
				form.Error, form.RateLimited = err.Error(), apiclient.RateLimited(err)
			} else {
				maxFee := int64(r.Data.RefundOrderTemplate.MaxRefundFee.MaxRefundFee)
				form.MaxFee = &maxFee
			}
			out.Forms = append(out.Forms, form)
			if unanswered(err) {
				return out
			}
			for _, rr := range r.Data.RefundOrderTemplate.RefundReasons {
				out.Reasons = append(out.Reasons, Reason{Type: typ, GoodsStatus: g, ID: int64(rr.ReasonID), Reason: rr.ReasonDesc, Tip: rr.Tips})
			}
		}
	}
	return out
}

// unanswered reports a call the platform did not answer (as opposed to a
// refusal, which is about that type and goods status).
func unanswered(err error) bool {
	var apiErr *apiclient.APIError
	return err != nil && !errors.As(err, &apiErr)
}

// taobaoGoodsWire is the goodsStatus integer the profile sends for a
// Taobao goods status, as refundflow sends it for a request.
func taobaoGoodsWire(prof *platform.Profile, code string) int {
	g := prof.Taobao.GoodsStatus
	return map[string]int{"1": g.NotShipped, "2": g.NotReceived, "3": g.Received}[code]
}

// alibabaGoodsWire is the goodsStatus string the profile sends for a 1688
// goods status: the profile's value at the word's place in the lifecycle.
func alibabaGoodsWire(prof *platform.Profile, word string) string {
	i := slices.Index(GoodsStatuses(string(refundflow.Platform1688)), word)
	if i < 0 {
		return ""
	}
	return prof.Alibaba.GoodsStatus.All()[i]
}
