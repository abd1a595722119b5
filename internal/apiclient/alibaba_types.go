package apiclient

import "github.com/refundhub/refundhub/internal/platform"

// 1688 after-sales wire types, reference §5. PandaPon's fields are 1:1 with
// Alibaba's own 1688 API, so upstream semantics are noted beside them.
// Amounts are fen.

// AlibabaRefundStatus is a 1688 refund status as the platform sends it;
// RefundInfo.Phase says what it means (the profile's alibaba.refund_status).
type AlibabaRefundStatus string

// RefundInfoRequest is A1's body: POST /alibaba/refund/info. One documented
// variant sends refundId as a query parameter instead; the client sends both.
type RefundInfoRequest struct {
	RefundID string `json:"refundId"`
}

// RefundInfo is A1's data (AlibabaRefundInfo). Every field is nullable.
type RefundInfo struct {
	ID                   FlexInt64           `json:"id"`
	CreateBy             string              `json:"createBy"`
	CreateByID           FlexInt64           `json:"createById"`
	CreateTime           string              `json:"createTime"`
	UpdateBy             string              `json:"updateBy"`
	UpdateByID           FlexInt64           `json:"updateById"`
	UpdateTime           string              `json:"updateTime"`
	Remark               string              `json:"remark"`
	AlipayPaymentID      string              `json:"alipayPaymentId"`
	ApplyCarriage        Amount              `json:"applyCarriage"` // requested freight refund
	ApplyExpect          FlexInt64           `json:"applyExpect"`
	ApplyPayment         Amount              `json:"applyPayment"` // requested refund
	ApplyReason          string              `json:"applyReason"`
	ApplyReasonID        FlexInt64           `json:"applyReasonId"`
	ApplySubReason       string              `json:"applySubReason"`
	ApplySubReasonID     FlexInt64           `json:"applySubReasonId"`
	BuyerAlipayID        string              `json:"buyerAlipayId"`
	BuyerLogisticsName   string              `json:"buyerLogisticsName"`
	BuyerMemberID        string              `json:"buyerMemberId"`
	BuyerSendGoods       bool                `json:"buyerSendGoods"`
	BuyerUserID          FlexInt64           `json:"buyerUserId"`
	CanRefundPayment     Amount              `json:"canRefundPayment"` // max refundable
	CrmModifyRefund      bool                `json:"crmModifyRefund"`
	DisburseChannel      string              `json:"disburseChannel"`
	DisputeRequest       FlexInt64           `json:"disputeRequest"`
	DisputeType          FlexInt64           `json:"disputeType"` // 1 in-sale, 2 after-sale
	ExtInfo              string              `json:"extInfo"`
	FreightBill          string              `json:"freightBill"`
	FrozenFund           Amount              `json:"frozenFund"`
	GmtApply             string              `json:"gmtApply"`
	GmtCompleted         string              `json:"gmtCompleted"`
	GmtCreate            string              `json:"gmtCreate"`
	GmtFreezed           string              `json:"gmtFreezed"`
	GmtModified          string              `json:"gmtModified"`
	GmtTimeOut           string              `json:"gmtTimeOut"`
	GoodsReceived        bool                `json:"goodsReceived"`
	GoodsStatus          FlexInt64           `json:"goodsStatus"` // 1 not received, 2 received, 3 returned
	RefundID             string              `json:"refundId"`
	InstantRefundType    string              `json:"instantRefundType"`
	InsufficientAccount  bool                `json:"insufficientAccount"`
	InsufficientBail     bool                `json:"insufficientBail"`
	NewRefundReturn      bool                `json:"newRefundReturn"`
	OnlyRefund           bool                `json:"onlyRefund"`
	OrderEntryCountMap   string              `json:"orderEntryCountMap"`
	OrderEntryIDList     string              `json:"orderEntryIdList"`
	OrderID              FlexInt64           `json:"orderId"`
	PrepaidBalance       Amount              `json:"prepaidBalance"`
	ProductName          string              `json:"productName"`
	RefundCarriage       Amount              `json:"refundCarriage"` // freight actually refunded
	RefundGoods          bool                `json:"refundGoods"`    // a return is required
	RefundPayment        Amount              `json:"refundPayment"`  // amount actually refunded
	RejectReason         string              `json:"rejectReason"`
	RejectReasonID       FlexInt64           `json:"rejectReasonId"`
	RejectTimes          FlexInt64           `json:"rejectTimes"`
	SellerAlipayID       string              `json:"sellerAlipayId"`
	SellerDelayDisburse  bool                `json:"sellerDelayDisburse"`
	SellerMemberID       string              `json:"sellerMemberId"`
	SellerMobile         string              `json:"sellerMobile"`
	SellerRealName       string              `json:"sellerRealName"`
	SellerReceiveAddress string              `json:"sellerReceiveAddress"`
	SellerTel            string              `json:"sellerTel"`
	SellerUserID         FlexString          `json:"sellerUserId"`
	Status               AlibabaRefundStatus `json:"status"`
	// Phase is what Status means per the profile (not on the wire); "" for
	// a status the profile does not know.
	Phase               platform.Phase `json:"-"`
	SupportNewSteppay   bool           `json:"supportNewSteppay"`
	TaskStatus          string         `json:"taskStatus"`
	TimeOutFreeze       bool           `json:"timeOutFreeze"`
	TimeOutOperateType  string         `json:"timeOutOperateType"`
	TradeTypeStr        string         `json:"tradeTypeStr"`
	RefundOperationList string         `json:"refundOperationList"`
	BuyerLoginID        string         `json:"buyerLoginId"`
	SellerLoginID       string         `json:"sellerLoginId"`
}

// RefundReasonsRequest is A2's body. The PandaPon path and fields are UNKNOWN;
// these are the upstream alibaba.trade.getRefundReasonList fields.
type RefundReasonsRequest struct {
	OrderID       int64   `json:"orderId"`
	OrderEntryIDs []int64 `json:"orderEntryIds,omitempty"`
	GoodsStatus   string  `json:"goodsStatus"`
}

// AlibabaRefundReason is one reason the seller accepts.
type AlibabaRefundReason struct {
	ID               FlexInt64 `json:"id"`
	Name             string    `json:"name"`
	NeedVoucher      bool      `json:"needVoucher"`
	NoRefundCarriage bool      `json:"noRefundCarriage"`
	Tip              string    `json:"tip"`
}

// RefundReasonsResponse is A2's data (upstream shape).
type RefundReasonsResponse struct {
	Reasons []AlibabaRefundReason `json:"reasons"`
}

// UploadVoucherResponse is A3's data (upstream shape). Vouchers passed to
// CreateRefund and GoodsReturn are ImageDomain + "/" + ImageRelativeURL.
type UploadVoucherResponse struct {
	ImageDomain      string `json:"imageDomain"`
	ImageRelativeURL string `json:"imageRelativeURL"`
}

// URL returns the voucher reference CreateRefund and GoodsReturn expect.
func (u UploadVoucherResponse) URL() string {
	if u.ImageDomain == "" {
		return u.ImageRelativeURL
	}
	return u.ImageDomain + "/" + trimLeftSlash(u.ImageRelativeURL)
}

func trimLeftSlash(s string) string {
	for len(s) > 0 && s[0] == '/' {
		s = s[1:]
	}
	return s
}

// OrderEntryCount is a sub-order and a quantity to return.
type OrderEntryCount struct {
	ID    int64 `json:"id"`
	Count int   `json:"count"`
}

// CreateRefundRequest is A4's body: POST /alibaba/refund/detail/create.
type CreateRefundRequest struct {
	OrderID             int64             `json:"orderId"`
	OrderEntryIDs       []int64           `json:"orderEntryIds,omitempty"`
	DisputeRequest      string            `json:"disputeRequest"`
	ApplyPayment        Amount            `json:"applyPayment"`
	ApplyCarriage       Amount            `json:"applyCarriage"`
	ApplyReasonID       int64             `json:"applyReasonId"`
	Description         string            `json:"description"`
	GoodsStatus         string            `json:"goodsStatus"`
	Vouchers            []string          `json:"vouchers,omitempty"`
	OrderEntryCountList []OrderEntryCount `json:"orderEntryCountList,omitempty"`
}

// CreateRefundResponse is A4's data: the new refund's id (TQ + digits).
type CreateRefundResponse struct {
	RefundID string `json:"refundId"`
}

// GoodsReturnRequest is A5's body: POST /alibaba/refund/goods/return.
type GoodsReturnRequest struct {
	RefundID           string   `json:"refundId"`
	LogisticsCompanyNo string   `json:"logisticsCompanyNo"`
	FreightBill        string   `json:"freightBill"`
	Description        string   `json:"description,omitempty"`
	Vouchers           []string `json:"vouchers,omitempty"`
}

// GoodsReturnResponse is A5's data. Success false is a business failure the
// client reports as *APIError with ErrorCode/ErrorInfo.
type GoodsReturnResponse struct {
	ErrorCode string `json:"errorCode"`
	ErrorInfo string `json:"errorInfo"`
	Success   bool   `json:"success"`
}

// AlibabaLogisticsCompany is one carrier of A6 (upstream shape). CompanyNo is
// what GoodsReturnRequest.LogisticsCompanyNo expects.
type AlibabaLogisticsCompany struct {
	ID           FlexInt64 `json:"id"`
	CompanyName  string    `json:"companyName"`
	CompanyNo    string    `json:"companyNo"`
	CompanyPhone string    `json:"companyPhone"`
	SupportPrint bool      `json:"supportPrint"`
	Spelling     string    `json:"spelling"`
}
