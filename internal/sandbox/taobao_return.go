// Taobao's return of the goods: T3 (the return logistics render) and T4 (the
// buyer's waybill).

package sandbox

import (
	"net/http"
	"slices"
	"unicode/utf8"

	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
)

// taobaoReturnLogisticsRender: T3. Only while the seller waits for the return.
func (s *Sandbox) taobaoReturnLogisticsRender(r *http.Request, c *apiCall) (any, *apiError) {
	id, e := refundIDArg(r, c)
	if e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, e := s.taobaoRefundLocked(id)
	if e != nil {
		return nil, e
	}
	if ref.Phase != platform.PhaseWaitBuyerReturn {
		return nil, illegal(ref, "return logistics render")
	}
	agg := s.taobaoAggregateLocked(ref, aggSeed)
	return tbLogisticsRenderOut{Currency: currencyCNY, DistributorID: distributorID,
		LogisticsCompanies: slices.Clone(taobaoCompanies), ReceiverAddress: sellerAddress, RefundOrderAggregate: &agg}, nil
}

// taobaoReturnLogisticsSubmit: T4.
func (s *Sandbox) taobaoReturnLogisticsSubmit(r *http.Request, _ *apiCall) (any, *apiError) {
	body, e := readBody(r)
	if e != nil {
		return nil, e
	}
	var req tbLogisticsIn
	if _, e := decodeJSON(body, &req, "refundId", "logisticsCompanyCode", "logisticsNo"); e != nil {
		return nil, e
	}
	if len(req.BuyerPhone) > 30 || utf8.RuneCountInString(req.ReturnGoodsDesc) > 200 {
		return nil, errf(classInvalid, "buyerPhone or returnGoodsDesc too long")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, e := s.taobaoRefundLocked(req.RefundID)
	if e != nil {
		return nil, e
	}
	s.stats.ReturnLogisticsSubmissions[ref.RefundID]++
	if ref.Return != nil {
		s.stats.DuplicateSubmissions++
		return nil, errf(classIllegal, "退货物流已提交 (refund %s already has return logistics %s)", ref.RefundID, ref.Return.TrackingNo)
	}
	if ref.Phase != platform.PhaseWaitBuyerReturn {
		return nil, illegal(ref, "return logistics submit")
	}
	i := slices.IndexFunc(taobaoCompanies, func(c tbCompany) bool { return c.LogisticsCompanyCode == req.LogisticsCompanyCode })
	if i < 0 {
		return nil, errf(classInvalid, "logisticsCompanyCode %q 不在可选物流公司中 (see the return logistics render)", excerpt.Of(req.LogisticsCompanyCode, 40))
	}
	if !validTracking(req.LogisticsNo) {
		return nil, errf(classInvalid, "logisticsNo %q 格式错误 (want 6-40 letters or digits)", excerpt.Of(req.LogisticsNo, 50))
	}
	company := taobaoCompanies[i]
	ref.Return = &ReturnShipment{CompanyCode: company.LogisticsCompanyCode, CompanyName: company.LogisticsCompanyName,
		TrackingNo: req.LogisticsNo, BuyerPhone: req.BuyerPhone, Description: req.ReturnGoodsDesc, SubmittedAt: s.now()}
	s.setStatusLocked(ref, platform.PhaseWaitSellerReceive, "买家已退货，等待卖家确认收货")
	return tbSubmitOut{Currency: currencyCNY, DistributorID: distributorID, SubmitSuccess: true}, nil
}

func validTracking(s string) bool {
	if len(s) < 6 || len(s) > 40 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
