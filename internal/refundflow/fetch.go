package refundflow

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/casestore"
)

// platformTZ is the zone of the platform's "yyyy-MM-dd HH:mm:ss" times
// (China Standard Time). GUESS: the documentation shows such times without a
// zone.
var platformTZ = time.FixedZone("CST", 8*3600)

// listPageSize and listMaxPages bound the Taobao list walk of one order.
const (
	listPageSize = 50
	listMaxPages = 10
)

// fetch reads the authoritative view of the case's refund: by the case's
// refund id, else the hinted one (a callback's, not owned by another case),
// else, on Taobao, by listing the order's refunds for the sub-order. 1688 has
// no lookup by order: without a refund id the view is Inconclusive.
func (e *Engine) fetch(ctx context.Context, c casestore.Case, hint string) (*PlatformView, error) {
	refundID := c.RefundID
	if refundID == "" {
		refundID = hint
	}
	if Platform(c.Platform) == Platform1688 {
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
		if c.RefundID == "" && info.OrderID != 0 && strconv.FormatInt(int64(info.OrderID), 10) != c.OrderID {
			return &PlatformView{Inconclusive: true}, nil // a hint about another order
		}
		if info.RefundID == "" {
			info.RefundID = refundID
		}
		return &PlatformView{Found: true, RefundID: info.RefundID, AlibabaStatus: info.Status,
			ReturnRequired: info.RefundGoods, RefuseReason: info.RejectReason,
			Deadline: parsePlatformTime(info.GmtTimeOut), ReturnWaybill: info.FreightBill}, nil
	}
	if refundID != "" {
		res, err := e.client.TaobaoQuery(ctx, refundID)
		if isNotFound(err) {
			if c.RefundID == "" {
				return e.listTaobao(ctx, c)
			}
			return &PlatformView{Found: false}, nil
		}
		if err != nil {
			return nil, err
		}
		agg := res.Data.RefundOrderAggregate
		if c.RefundID == "" && agg.PurchaseOrderLine.PurchaseOrderLineID != "" &&
			agg.PurchaseOrderLine.PurchaseOrderLineID.String() != c.SubOrderID {
			return e.listTaobao(ctx, c) // a hint about another sub-order
		}
		v := taobaoView(agg)
		if v.RefundID == "" {
			v.RefundID = refundID
		}
		return v, nil
	}
	return e.listTaobao(ctx, c)
}

// listTaobao finds the sub-order's refund in the order's list: the newest
// open one, else the newest finished one that no other case owns.
func (e *Engine) listTaobao(ctx context.Context, c casestore.Case) (*PlatformView, error) {
	if c.OrderID == "" {
		return &PlatformView{Inconclusive: true}, nil
	}
	var mine []apiclient.RefundOrderAggregate
	for page := 1; page <= listMaxPages; page++ {
		res, err := e.client.TaobaoList(ctx, apiclient.ListRefundsRequest{PurchaseOrderID: c.OrderID, PageNo: page, PageSize: listPageSize})
		if isNotFound(err) {
			return &PlatformView{Found: false}, nil
		}
		if err != nil {
			return nil, err
		}
		for _, a := range res.Data.List {
			if a.PurchaseOrderLine.PurchaseOrderLineID.String() == c.SubOrderID {
				mine = append(mine, a)
			}
		}
		if len(res.Data.List) < listPageSize || page*listPageSize >= res.Data.Total {
			break
		}
		if page == listMaxPages {
			return &PlatformView{Inconclusive: true}, nil
		}
	}
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
		return &PlatformView{Found: false}, nil
	}
	pick := mine[len(mine)-1]
	for i := len(mine) - 1; i >= 0; i-- {
		if s := mine[i].RefundOrder.Status; s != apiclient.TaobaoRefundSuccess && s != apiclient.TaobaoRefundClosed {
			pick = mine[i]
			break
		}
	}
	return taobaoView(pick), nil
}

func taobaoView(a apiclient.RefundOrderAggregate) *PlatformView {
	ro := a.RefundOrder
	v := &PlatformView{Found: true, RefundID: ro.RefundID.String(), TaobaoStatus: ro.Status,
		ReturnRequired: ro.Status == apiclient.TaobaoWaitBuyerReturnGoods,
		RefuseReason:   ro.SellerRefuseReasonDescribe, Deadline: parsePlatformTime(ro.TimeoutDate)}
	if v.RefuseReason == "" {
		v.RefuseReason = ro.SellerRefuseReason
	}
	if a.Logistics != nil {
		v.ReturnWaybill = a.Logistics.LogisticsNo
	}
	return v
}

func parsePlatformTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	if t, err := time.ParseInLocation(time.DateTime, s, platformTZ); err == nil {
		return t.UTC()
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil && ms > 0 {
		return time.UnixMilli(ms).UTC()
	}
	return time.Time{}
}

func isNotFound(err error) bool {
	var ae *apiclient.APIError
	return errors.As(err, &ae) && ae.Code == apiclient.CodeNotFound
}
