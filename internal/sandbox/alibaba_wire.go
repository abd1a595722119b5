// 1688's wire shapes: the request and response bodies, and A1's 71-field
// refund info a refund is rendered as.

package sandbox

import (
	"strconv"
	"strings"

	"github.com/refundhub/refundhub/internal/platform"
)

// 1688 request bodies: A1 and A5 as documented (DOC-1688-INFO, SEED-000),
// A4 as documented (DOC-1688-CREATE), A2 upstream (path and fields UNKNOWN).
type (
	abInfoIn struct {
		RefundID string `json:"refundId"`
	}
	abReasonsIn struct {
		OrderID       int64   `json:"orderId"`
		OrderEntryIDs []int64 `json:"orderEntryIds"`
		GoodsStatus   string  `json:"goodsStatus"`
	}
	abEntryCount struct {
		ID    int64 `json:"id"`
		Count int   `json:"count"`
	}
	abCreateIn struct {
		OrderID             int64          `json:"orderId"`
		OrderEntryIDs       []int64        `json:"orderEntryIds"`
		DisputeRequest      string         `json:"disputeRequest"`
		ApplyPayment        amountIn       `json:"applyPayment"`
		ApplyCarriage       amountIn       `json:"applyCarriage"`
		ApplyReasonID       int64          `json:"applyReasonId"`
		Description         string         `json:"description"`
		GoodsStatus         string         `json:"goodsStatus"`
		Vouchers            []string       `json:"vouchers"`
		OrderEntryCountList []abEntryCount `json:"orderEntryCountList"`
	}
	abGoodsReturnIn struct {
		RefundID           string   `json:"refundId"`
		LogisticsCompanyNo string   `json:"logisticsCompanyNo"`
		FreightBill        string   `json:"freightBill"`
		Description        string   `json:"description"`
		Vouchers           []string `json:"vouchers"`
	}
)

// 1688 response objects.
type (
	abReasonOut struct {
		ID               int64  `json:"id"`
		Name             string `json:"name"`
		NeedVoucher      bool   `json:"needVoucher"`
		NoRefundCarriage bool   `json:"noRefundCarriage"`
		Tip              string `json:"tip"`
	}
	abReasonsOut struct {
		Reasons []abReasonOut `json:"reasons"`
	}
	abVoucherOut struct {
		ImageDomain      string `json:"imageDomain"`
		ImageRelativeURL string `json:"imageRelativeURL"`
	}
	abCreateOut struct {
		RefundID string `json:"refundId"`
	}
	// abGoodsReturnOut is SEED-000's AlibabaRefundReturnGoodSubmitVO; every
	// field is nullable, and the error fields are null on success.
	abGoodsReturnOut struct {
		ErrorCode *string `json:"errorCode"`
		ErrorInfo *string `json:"errorInfo"`
		Success   bool    `json:"success"`
	}
)

// abInfoOut is A1's data, AlibabaRefundInfo: the 71 fields of SEED-002 in
// its order, every one nullable. A field the sandbox has no value for is
// null, never a zero value: id and the audit columns (PandaPon's database),
// Alipay and member ids, and the upstream flags it does not simulate.
type abInfoOut struct {
	ID                   *int64  `json:"id"`
	CreateBy             *string `json:"createBy"`
	CreateByID           *int64  `json:"createById"`
	CreateTime           *string `json:"createTime"`
	UpdateBy             *string `json:"updateBy"`
	UpdateByID           *int64  `json:"updateById"`
	UpdateTime           *string `json:"updateTime"`
	Remark               *string `json:"remark"`
	AlipayPaymentID      *string `json:"alipayPaymentId"`
	ApplyCarriage        *money  `json:"applyCarriage"`
	ApplyExpect          *int64  `json:"applyExpect"`
	ApplyPayment         *money  `json:"applyPayment"`
	ApplyReason          *string `json:"applyReason"`
	ApplyReasonID        *int64  `json:"applyReasonId"`
	ApplySubReason       *string `json:"applySubReason"`
	ApplySubReasonID     *int64  `json:"applySubReasonId"`
	BuyerAlipayID        *string `json:"buyerAlipayId"`
	BuyerLogisticsName   *string `json:"buyerLogisticsName"`
	BuyerMemberID        *string `json:"buyerMemberId"`
	BuyerSendGoods       *bool   `json:"buyerSendGoods"`
	BuyerUserID          *int64  `json:"buyerUserId"`
	CanRefundPayment     *money  `json:"canRefundPayment"`
	CrmModifyRefund      *bool   `json:"crmModifyRefund"`
	DisburseChannel      *string `json:"disburseChannel"`
	DisputeRequest       *int64  `json:"disputeRequest"`
	DisputeType          *int64  `json:"disputeType"`
	ExtInfo              *string `json:"extInfo"`
	FreightBill          *string `json:"freightBill"`
	FrozenFund           *money  `json:"frozenFund"`
	GmtApply             *string `json:"gmtApply"`
	GmtCompleted         *string `json:"gmtCompleted"`
	GmtCreate            *string `json:"gmtCreate"`
	GmtFreezed           *string `json:"gmtFreezed"`
	GmtModified          *string `json:"gmtModified"`
	GmtTimeOut           *string `json:"gmtTimeOut"`
	GoodsReceived        *bool   `json:"goodsReceived"`
	GoodsStatus          *int64  `json:"goodsStatus"`
	RefundID             *string `json:"refundId"`
	InstantRefundType    *string `json:"instantRefundType"`
	InsufficientAccount  *bool   `json:"insufficientAccount"`
	InsufficientBail     *bool   `json:"insufficientBail"`
	NewRefundReturn      *bool   `json:"newRefundReturn"`
	OnlyRefund           *bool   `json:"onlyRefund"`
	OrderEntryCountMap   *string `json:"orderEntryCountMap"`
	OrderEntryIDList     *string `json:"orderEntryIdList"`
	OrderID              *int64  `json:"orderId"`
	PrepaidBalance       *money  `json:"prepaidBalance"`
	ProductName          *string `json:"productName"`
	RefundCarriage       *money  `json:"refundCarriage"`
	RefundGoods          *bool   `json:"refundGoods"`
	RefundPayment        *money  `json:"refundPayment"`
	RejectReason         *string `json:"rejectReason"`
	RejectReasonID       *int64  `json:"rejectReasonId"`
	RejectTimes          *int64  `json:"rejectTimes"`
	SellerAlipayID       *string `json:"sellerAlipayId"`
	SellerDelayDisburse  *bool   `json:"sellerDelayDisburse"`
	SellerMemberID       *string `json:"sellerMemberId"`
	SellerMobile         *string `json:"sellerMobile"`
	SellerRealName       *string `json:"sellerRealName"`
	SellerReceiveAddress *string `json:"sellerReceiveAddress"`
	SellerTel            *string `json:"sellerTel"`
	SellerUserID         *string `json:"sellerUserId"`
	Status               *string `json:"status"`
	SupportNewSteppay    *bool   `json:"supportNewSteppay"`
	TaskStatus           *string `json:"taskStatus"`
	TimeOutFreeze        *bool   `json:"timeOutFreeze"`
	TimeOutOperateType   *string `json:"timeOutOperateType"`
	TradeTypeStr         *string `json:"tradeTypeStr"`
	RefundOperationList  *string `json:"refundOperationList"`
	BuyerLoginID         *string `json:"buyerLoginId"`
	SellerLoginID        *string `json:"sellerLoginId"`
}

// alibabaInfoLocked renders A1's AlibabaRefundInfo.
func (s *Sandbox) alibabaInfoLocked(ref *Refund) abInfoOut {
	o := s.orderOfLocked(ref)
	orderID, _ := strconv.ParseInt(ref.OrderID, 10, 64)
	received := s.prof.Alibaba.GoodsStatus.Received(ref.GoodsStatusStr)
	info := abInfoOut{
		CreateTime:           s.timeOrNull(ref.CreatedAt),
		UpdateTime:           s.timeOrNull(ref.ModifiedAt),
		ApplyCarriage:        ptr(s.abMoney(ref.ApplyCarriage)),
		ApplyPayment:         ptr(s.abMoney(ref.ApplyPayment)),
		ApplyReason:          str(ref.ApplyReason),
		ApplyReasonID:        ptr(ref.ApplyReasonID),
		BuyerSendGoods:       ptr(ref.Return != nil),
		DisputeType:          ptr(int64(1)), // UPSTREAM: 1 in-sale, 2 after-sale
		GmtApply:             s.timeOrNull(ref.CreatedAt),
		GmtCreate:            s.timeOrNull(ref.CreatedAt),
		GmtModified:          s.timeOrNull(ref.ModifiedAt),
		GmtCompleted:         s.timeOrNull(ref.ClosedAt),
		GoodsReceived:        ptr(received),
		GoodsStatus:          ptr(int64(1)), // UPSTREAM: 1 not received, 2 received, 3 returned
		RefundID:             ptr(ref.RefundID),
		OnlyRefund:           ptr(!ref.ReturnRequired),
		RefundGoods:          ptr(ref.ReturnRequired),
		OrderID:              ptr(orderID),
		RejectReason:         str(ref.RefuseReason),
		RejectTimes:          ptr(int64(ref.RejectTimes)),
		SellerReceiveAddress: ptr(sellerAddress.DetailAddress),
		SellerRealName:       ptr(sellerAddress.Receiver),
		SellerMobile:         ptr(sellerAddress.Phone),
		SellerLoginID:        ptr(supplierNick),
		SellerUserID:         ptr(supplierID),
		Status:               ptr(ref.Status),
		TradeTypeStr:         ptr("50060"),
	}
	if g, _ := s.abGoodsOf(ref.GoodsStatusStr); g == abAfterSaleNotReceived || g == abAfterSaleReceived {
		info.DisputeType = ptr(int64(2))
	}
	if received {
		info.GoodsStatus = ptr(int64(2))
	}
	if ref.Return != nil {
		info.GoodsStatus = ptr(int64(3))
		info.FreightBill = str(ref.Return.TrackingNo)
		info.BuyerLogisticsName = str(ref.Return.CompanyName)
	}
	if ref.RefuseReason != "" {
		info.RejectReasonID = ptr(int64(1))
	}
	if deadline, ok := s.deadline(ref); ok {
		info.GmtTimeOut = s.timeOrNull(deadline)
	}
	if ref.Phase == platform.PhaseSuccess {
		info.RefundPayment = ptr(s.abMoney(ref.ApplyPayment))
		info.RefundCarriage = ptr(s.abMoney(ref.ApplyCarriage))
	}
	if o != nil {
		info.CanRefundPayment = ptr(s.abMoney(o.Amount - o.Refunded))
		if sub := o.SubOrders; len(sub) > 0 {
			info.ProductName = str(sub[0].Title)
		}
		ids := make([]string, 0, len(ref.OrderEntryIDs))
		for _, id := range ref.OrderEntryIDs {
			ids = append(ids, strconv.FormatInt(id, 10))
		}
		info.OrderEntryIDList = str(strings.Join(ids, ","))
	}
	return info
}
