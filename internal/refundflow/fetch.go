package refundflow

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/platform"
)

// listMaxRefunds bounds the refunds of one order the Taobao list walk reads
// (at whatever page size the platform returns) before it calls the list
// inconclusive. The page size it asks for is the profile's
// taobao.list.max_page_size.
const listMaxRefunds = 1000

// fetch reads the authoritative view of the case's refund: by the case's
// refund id; else, when nothing of the case can be on the platform yet, a
// view of "none"; else by the hinted refund id (a callback's, not owned by
// another case) on 1688, or by listing the order's refunds for the
// sub-order on Taobao, where the hint (and the one the plan kept) only
// keeps the list's silence from proving absence. A refund the case has not
// recorded counts as its own only on positive evidence that it came from
// the case's submission (see listTaobao and alibabaView); 1688 has no
// lookup by order, so without a refund id the view is Inconclusive.
func (e *Engine) fetch(ctx context.Context, c casestore.Case, cv CaseView, hint string) (*PlatformView, error) {
	if c.RefundID == "" && cv.beforeSubmit() {
		// Nothing was ever sent (or every attempt was refused): whatever
		// refund the platform holds for the order is someone else's.
		return &PlatformView{Found: false, unread: true}, nil
	}
	if Platform(c.Platform) == Platform1688 {
		return e.alibabaView(ctx, c, cv, hint)
	}
	if c.RefundID == "" {
		return e.listTaobao(ctx, c, cv, hint)
	}
	res, err := e.client.TaobaoQuery(ctx, c.RefundID)
	if isNotFound(err) {
		return &PlatformView{Found: false}, nil
	}
	if err != nil {
		return nil, err
	}
	v := e.taobaoView(res.Data.RefundOrderAggregate)
	if v.RefundID == "" {
		v.RefundID = c.RefundID
	}
	return v, nil
}

// alibabaView reads a 1688 refund: the case's, or the hinted one while the
// case has none. A hinted refund is the case's only if it is for the case's
// order and was created after the open intent began, less the clock-skew
// margin (EngineConfig.ClockSkew): an older one is someone else's.
func (e *Engine) alibabaView(ctx context.Context, c casestore.Case, cv CaseView, hint string) (*PlatformView, error) {
	refundID := c.RefundID
	if refundID == "" {
		refundID = hint
	}
	if refundID == "" {
		return &PlatformView{Inconclusive: true}, nil
	}
	res, err := e.client.AlibabaRefundInfo(ctx, refundID)
	if isNotFound(err) {
		if c.RefundID == "" { // only a hint: nothing learned
			return &PlatformView{Inconclusive: true}, nil
		}
		return &PlatformView{Found: false}, nil
	}
	if err != nil {
		return nil, err
	}
	info := res.Data
	if info.RefundID == "" {
		info.RefundID = refundID
	}
	if c.RefundID == "" {
		if info.OrderID != 0 && strconv.FormatInt(int64(info.OrderID), 10) != c.OrderID {
			return &PlatformView{Inconclusive: true}, nil // a hint about another order
		}
		if created := e.alibabaCreated(info); cv.Intent != nil && !created.IsZero() && created.Before(cv.Intent.Since.Add(-e.clockSkew)) {
			return &PlatformView{Inconclusive: true, Foreign: []string{info.RefundID}}, nil
		}
	}
	return e.alibabaRefundView(info), nil
}

// alibabaRefundView is the view of a 1688 refund as the platform answered.
func (e *Engine) alibabaRefundView(info apiclient.RefundInfo) *PlatformView {
	text := string(info.Status)
	if info.Phase != "" {
		text = e.client.Profile().AlibabaName(info.Phase)
	}
	return &PlatformView{Found: true, RefundID: info.RefundID, Phase: info.Phase, StatusText: text,
		ReturnRequired: info.RefundGoods, RefuseReason: info.RejectReason,
		Deadline: e.parsePlatformTime(info.GmtTimeOut), ReturnWaybill: info.FreightBill}
}

// adoptView reads the refund an operator asks case c to adopt, by its id,
// and what shows whether it may (PlatformView.Adopting): what the platform
// files it under, and which case of ours follows it, if any. The decider
// judges (adopt).
func (e *Engine) adoptView(ctx context.Context, c casestore.Case, cv CaseView, refund string) (*PlatformView, error) {
	var v *PlatformView
	facts := &AdoptFacts{}
	if Platform(c.Platform) == Platform1688 {
		res, err := e.client.AlibabaRefundInfo(ctx, refund)
		if isNotFound(err) {
			return &PlatformView{Found: false, Adopting: facts}, nil
		}
		if err != nil {
			return nil, err
		}
		v = e.alibabaRefundView(res.Data)
		if res.Data.OrderID != 0 {
			facts.Under = strconv.FormatInt(int64(res.Data.OrderID), 10)
		}
		facts.ForCase = facts.Under == c.OrderID
	} else {
		res, err := e.client.TaobaoQuery(ctx, refund)
		if isNotFound(err) {
			return &PlatformView{Found: false, Adopting: facts}, nil
		}
		if err != nil {
			return nil, err
		}
		a := res.Data.RefundOrderAggregate
		v = e.taobaoView(a)
		facts.Under = a.PurchaseOrderLine.PurchaseOrderLineID.String()
		// An answer that does not name the sub-order: one listed for it
		// when the form was read, or one a callback named for it (the
		// refund the attention text of a sub-order filed under another
		// order names), is the sub-order's.
		named := refund == cv.Plan.CallbackRefund || (cv.Plan.OrderElsewhere != nil && refund == cv.Plan.OrderElsewhere.RefundID)
		facts.ForCase = facts.Under == c.SubOrderID ||
			(facts.Under == "" && (slices.Contains(cv.Plan.PriorRefunds, refund) || slices.Contains(cv.Plan.PriorOpen, refund) || named))
	}
	v.RefundID = refund // asked by it: the platform's answer may leave it out
	owner, err := e.store.CaseByRefundID(ctx, c.Platform, refund)
	switch {
	case err == nil:
		facts.Owner, facts.OwnerState = owner.ID, State(owner.State)
	case !errors.Is(err, casestore.ErrNotFound):
		return nil, err
	}
	v.Adopting = facts
	return v, nil
}

// adopting is the refund an input asks its case to adopt, "" when it is
// not an adoption.
func adopting(in Input) string {
	if in.Kind != InputResolve || in.Resolve == nil || in.Resolve.Action != ResolveAdopt {
		return ""
	}
	return in.Resolve.Refund
}

// alibabaCreated is when the platform says a 1688 refund was applied for
// (gmtApply, else gmtCreate, else createTime); zero if it says none of them.
func (e *Engine) alibabaCreated(info apiclient.RefundInfo) time.Time {
	for _, s := range []string{info.GmtApply, info.GmtCreate, info.CreateTime} {
		if t := e.parsePlatformTime(s); !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

// listTaobao finds the case's refund among the order's refunds for its
// sub-order. A listed refund counts as the case's only if it was not there
// when the case read its form, before its first submission
// (Plan.PriorRefunds), and no other case owns it; of those, the newest open
// one, else the newest finished one. Refunds that predate the submission are
// reported as Foreign. Without a record of what was listed before (a case
// from an older build), a refund cannot be told from someone else's: the
// view is Inconclusive, with those refunds as Unattributed (the case parks
// at once: no later list can tell either). So is a list the walk cannot
// prove complete; only a complete list that holds none of the case's
// refunds is Found false, and only if the refund a callback named for the
// sub-order (hint, owned by no case) is not on it (hintedTaobao).
func (e *Engine) listTaobao(ctx context.Context, c casestore.Case, cv CaseView, hint string) (*PlatformView, error) {
	if c.OrderID == "" {
		return &PlatformView{Inconclusive: true}, nil
	}
	if o := cv.Plan.OrderElsewhere; o != nil {
		// The list of the case's order proves nothing of the sub-order
		// (hintedTaobao found it elsewhere before).
		return &PlatformView{Inconclusive: true, Unattributed: []string{o.RefundID}, OrderElsewhere: o, CallbackRefund: o.RefundID}, nil
	}
	mine, complete, err := e.listSubOrder(ctx, c.OrderID, c.SubOrderID)
	if err != nil {
		return nil, err
	}
	var foreign []string
	mine = slices.DeleteFunc(mine, func(a apiclient.RefundOrderAggregate) bool {
		if id := a.RefundOrder.RefundID.String(); slices.Contains(cv.Plan.PriorRefunds, id) {
			foreign = append(foreign, id)
			return true
		}
		return false
	})
	ids := make([]string, 0, len(mine))
	for _, a := range mine {
		ids = append(ids, a.RefundOrder.RefundID.String())
	}
	owners, err := e.store.RefundOwners(ctx, c.Platform, ids)
	if err != nil {
		return nil, err
	}
	mine = slices.DeleteFunc(mine, func(a apiclient.RefundOrderAggregate) bool {
		owner, ok := owners[a.RefundOrder.RefundID.String()]
		return ok && owner != c.ID
	})
	if len(mine) == 0 {
		v, err := e.hintedTaobao(ctx, c, cv.Plan, hint)
		if err != nil {
			return nil, err
		}
		if v != nil {
			v.Foreign = foreign
			return v, nil
		}
	}
	switch {
	case len(mine) > 0 && !cv.Plan.PriorListed:
		// Every one is unowned: the case owns none (listTaobao runs for a
		// case without a refund id), and those of other cases are gone.
		unattributed := make([]string, 0, len(mine))
		for _, a := range mine {
			unattributed = append(unattributed, a.RefundOrder.RefundID.String())
		}
		return &PlatformView{Inconclusive: true, Foreign: foreign, Unattributed: unattributed}, nil
	case len(mine) == 0 && !complete:
		return &PlatformView{Inconclusive: true, Foreign: foreign}, nil
	case len(mine) == 0:
		return &PlatformView{Found: false, Foreign: foreign}, nil
	}
	pick := mine[len(mine)-1]
	for i := len(mine) - 1; i >= 0; i-- {
		if !mine[i].RefundOrder.Phase.Terminal() {
			pick = mine[i]
			break
		}
	}
	v := e.taobaoView(pick)
	v.Foreign = foreign
	return v, nil
}

// hintedTaobao reads the refunds callbacks named for the case's sub-order
// (hint, this run's, and the one the plan kept) while the list of the
// case's order shows none of the case's. One the platform holds on that
// sub-order leaves absence unproven: the view is Inconclusive, and the
// plan keeps the refund (CallbackRefund) for every later look. One it
// cannot find (yet: its query may lag the refund's creation, as 1688's
// may) makes this look inconclusive only. If the platform
// files the sub-order under another order than the case's, the list can
// never prove anything (OrderElsewhere: the case parks at once). nil when
// no hint says anything of the case: none, one the case listed before its
// first submission (someone else's), or another sub-order's.
func (e *Engine) hintedTaobao(ctx context.Context, c casestore.Case, plan Plan, hint string) (*PlatformView, error) {
	var found *PlatformView
	for _, id := range slices.Compact([]string{plan.CallbackRefund, hint}) {
		if id == "" || slices.Contains(plan.PriorRefunds, id) {
			continue
		}
		res, err := e.client.TaobaoQuery(ctx, id)
		switch {
		case isNotFound(err):
			// Not (yet) on the platform: this look proves nothing, but
			// the id is not kept, so that a callback naming a refund
			// that never comes cannot hold the case for good.
			found = cmp.Or(found, &PlatformView{Inconclusive: true})
			continue
		case err != nil:
			return nil, err
		}
		line := res.Data.RefundOrderAggregate.PurchaseOrderLine
		if sub := line.PurchaseOrderLineID.String(); sub != "" && sub != c.SubOrderID {
			continue // another sub-order's: nothing learned
		}
		// The sub-order as the callback named it (the answer may not say).
		if po := line.PurchaseOrderID.String(); po != "" && !sameID(po, c.OrderID) {
			return &PlatformView{Inconclusive: true, CallbackRefund: id, Unattributed: []string{id},
				OrderElsewhere: &OrderElsewhere{SubOrderID: c.SubOrderID, CaseOrder: c.OrderID, PlatformOrder: po, RefundID: id}}, nil
		}
		found = cmp.Or(found, &PlatformView{Inconclusive: true, CallbackRefund: id})
	}
	return found, nil
}

// sameID reports whether two platform ids are the same number: an order
// typed with leading zeros is the order the platform writes without them.
func sameID(a, b string) bool {
	return strings.TrimLeft(a, "0") == strings.TrimLeft(b, "0")
}

// errListIncomplete: the Taobao list walk could not prove it saw every
// refund of the order (see listSubOrder).
var errListIncomplete = errors.New("the platform's refund list could not be read completely")

// listSubOrder walks the Taobao list of an order's refunds and returns the
// sub-order's, oldest first. complete reports that the walk saw every refund
// of the order, which absence needs as proof.
//
// Neither the page size asked for nor the total is trusted blindly. The end
// of the list is a page shorter than a page size the platform has shown it
// honours (an earlier full page at that size), and only if a total, when
// given, is no larger than what the walk saw. A first page shorter than
// asked may be the end or the platform capping the page size: the walk then
// starts over with that page's length as the page size, so the next pages
// show which. One shortcut: a single short first page holding exactly the
// total is the whole list. Anything else (a total the walk never reaches, a
// page repeating an earlier one, an empty page 1 while a total says more,
// more than listMaxRefunds refunds) is incomplete.
func (e *Engine) listSubOrder(ctx context.Context, orderID, subOrderID string) (mine []apiclient.RefundOrderAggregate, complete bool, err error) {
	asked := e.client.Profile().Taobao.List.MaxPageSize
	size := asked
	for walk := 0; walk < 2; walk++ {
		mine = mine[:0]
		seen := map[string]bool{}
		trusted := walk > 0 // the size was learned from the platform
		for page := 1; (page-1)*size < listMaxRefunds; page++ {
			res, err := e.client.TaobaoList(ctx, apiclient.ListRefundsRequest{PurchaseOrderID: orderID, PageNo: page, PageSize: size})
			if isNotFound(err) && page == 1 {
				return nil, true, nil // no such order: no refunds
			}
			if err != nil {
				return nil, false, err
			}
			list := res.Data.List
			for _, a := range list {
				id := a.RefundOrder.RefundID.String()
				if seen[id] {
					return mine, false, nil // pages overlap: paging is not what we think
				}
				seen[id] = true
				if a.PurchaseOrderLine.PurchaseOrderLineID.String() == subOrderID {
					mine = append(mine, a)
				}
			}
			total, hasTotal := res.Data.Total, res.Data.HasTotal
			switch {
			case len(list) == size:
				trusted = true // a full page: the platform honours the size
				continue
			case trusted:
				// A short page at an honoured size: the end, unless the total
				// says there are more.
				return mine, !hasTotal || len(seen) >= total, nil
			case page == 1 && hasTotal && len(seen) == total:
				return mine, true, nil // one short page holding the whole total
			case page == 1 && len(list) == 0:
				return mine, !hasTotal || total == 0, nil
			case page == 1 && walk == 0:
				size = len(list) // maybe a cap: walk again at that size
			default:
				return mine, false, nil
			}
			break
		}
		if walk > 0 || size == asked {
			return mine, false, nil // more refunds than listMaxRefunds
		}
	}
	return mine, false, nil
}

func (e *Engine) taobaoView(a apiclient.RefundOrderAggregate) *PlatformView {
	ro := a.RefundOrder
	text := strings.TrimSpace(string(ro.RefundStatus))
	if ro.Phase != "" {
		text = e.client.Profile().TaobaoName(ro.Phase)
	}
	v := &PlatformView{Found: true, RefundID: ro.RefundID.String(), Phase: ro.Phase, StatusText: text,
		ReturnRequired: ro.Phase == platform.PhaseWaitBuyerReturn,
		RefuseReason:   ro.SellerRefuseReasonDescribe, Deadline: e.parsePlatformTime(ro.TimeoutDate)}
	if v.RefuseReason == "" {
		v.RefuseReason = ro.SellerRefuseReason
	}
	if a.Logistics != nil {
		v.ReturnWaybill = a.Logistics.LogisticsNo
	}
	return v
}

// existingRefunds lists every refund the platform holds for a Taobao
// sub-order, for Plan.PriorRefunds, and those not finished, for
// Plan.PriorOpen: it fails (errListIncomplete) rather than return a list it
// cannot prove complete.
func (e *Engine) existingRefunds(ctx context.Context, orderID, subOrderID string) (ids, open []string, err error) {
	mine, complete, err := e.listSubOrder(ctx, orderID, subOrderID)
	if err != nil {
		return nil, nil, fmt.Errorf("list the sub-order's refunds: %w", err)
	}
	if !complete {
		return nil, nil, fmt.Errorf("list the sub-order's refunds: %w", errListIncomplete)
	}
	ids = make([]string, 0, len(mine))
	for _, a := range mine {
		id := a.RefundOrder.RefundID.String()
		ids = append(ids, id)
		if !a.RefundOrder.Phase.Terminal() {
			open = append(open, id)
		}
	}
	return ids, open, nil
}

// parsePlatformTime reads a platform time in the profile's layouts and
// zone, or as epoch milliseconds; zero when it is neither.
func (e *Engine) parsePlatformTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	if t, err := e.client.Profile().ParseTime(s); err == nil {
		return t.UTC()
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil && ms > 0 {
		return time.UnixMilli(ms).UTC()
	}
	return time.Time{}
}

// isNotFound reports that the platform answered the call (HTTP 2xx) with a
// not_found code. An HTTP 404 is not that: it is what a wrong path gets, and
// reading it as "no such refund" could make a refund look absent.
func isNotFound(err error) bool {
	var ae *apiclient.APIError
	return errors.As(err, &ae) && ae.Class == platform.ClassNotFound
}
