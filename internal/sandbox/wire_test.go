package sandbox

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/platform"
)

// The tests' own client view of the wire, written from the reference and the
// seed pages: request bodies, the response fields the tests read, codes and
// status names from the default profile, and a signer. It shares nothing
// with the sandbox's encoding but the profile.

// prof is the profile the tests' sandboxes run with unless they say otherwise.
var prof = platform.Default()

// Envelope codes of the default profile.
var (
	codeOK          = prof.Envelope.SuccessCode
	codeMalformed   = prof.Code(platform.ClassMalformedRequest)
	codeMissing     = prof.Code(platform.ClassMissingField)
	codeInvalid     = prof.Code(platform.ClassInvalidField)
	codeAuthMissing = prof.Code(platform.ClassAuthMissing)
	codeUnknownKey  = prof.Code(platform.ClassAuthUnknownKey)
	codeBadSig      = prof.Code(platform.ClassAuthBadSignature)
	codeExpired     = prof.Code(platform.ClassAuthExpiredTimestamp)
	codeNotFound    = prof.Code(platform.ClassNotFound)
	codeIllegal     = prof.Code(platform.ClassIllegalState)
	codeDuplicate   = prof.Code(platform.ClassDuplicateRefund)
	codeRateLimited = prof.Code(platform.ClassRateLimited)
	codeInternal    = prof.Code(platform.ClassInternal)
)

// Status names of the default profile.
var (
	tbWaitAgree   = prof.TaobaoName(platform.PhaseWaitSellerAgree)
	tbWaitReturn  = prof.TaobaoName(platform.PhaseWaitBuyerReturn)
	tbWaitConfirm = prof.TaobaoName(platform.PhaseWaitSellerReceive)
	tbRefused     = prof.TaobaoName(platform.PhaseSellerRefused)
	tbClosed      = prof.TaobaoName(platform.PhaseClosed)
	tbSuccess     = prof.TaobaoName(platform.PhaseSuccess)

	abWaitAgree   = prof.AlibabaName(platform.PhaseWaitSellerAgree)
	abWaitModify  = prof.AlibabaName(platform.PhaseSellerRefused)
	abWaitSend    = prof.AlibabaName(platform.PhaseWaitBuyerReturn)
	abWaitReceive = prof.AlibabaName(platform.PhaseWaitSellerReceive)
	abSuccess     = prof.AlibabaName(platform.PhaseSuccess)
	abClose       = prof.AlibabaName(platform.PhaseClosed)
)

// testPaths are the endpoint paths of a profile, by the sandbox's endpoint names.
type testPaths struct {
	TaobaoList, TaobaoRender, TaobaoReturnLogisticsRender, TaobaoReturnLogisticsSubmit, TaobaoCancel,
	TaobaoSubmitMessage, TaobaoSubmit, TaobaoListMessages, TaobaoModify, TaobaoQuery,
	AlibabaRefundInfo, AlibabaRefundReasons, AlibabaUploadVoucher, AlibabaCreateRefund, AlibabaGoodsReturn,
	AlibabaLogisticsCompanies string
}

func pathsOf(p *platform.Profile) testPaths {
	at := func(e platform.Endpoint) string { return p.Endpoint(e).Path }
	return testPaths{
		TaobaoList: at(platform.TaobaoList), TaobaoRender: at(platform.TaobaoRender),
		TaobaoReturnLogisticsRender: at(platform.TaobaoReturnLogisticsRender),
		TaobaoReturnLogisticsSubmit: at(platform.TaobaoReturnLogisticsSubmit), TaobaoCancel: at(platform.TaobaoCancel),
		TaobaoSubmitMessage: at(platform.TaobaoSubmitMessage), TaobaoSubmit: at(platform.TaobaoSubmit),
		TaobaoListMessages: at(platform.TaobaoListMessages), TaobaoModify: at(platform.TaobaoModify),
		TaobaoQuery: at(platform.TaobaoQuery), AlibabaRefundInfo: at(platform.AlibabaRefundInfo),
		AlibabaRefundReasons: at(platform.AlibabaRefundReasons), AlibabaUploadVoucher: at(platform.AlibabaUploadVoucher),
		AlibabaCreateRefund: at(platform.AlibabaCreateRefund), AlibabaGoodsReturn: at(platform.AlibabaGoodsReturn),
		AlibabaLogisticsCompanies: at(platform.AlibabaLogisticsCompanies),
	}
}

var paths = pathsOf(prof)

// mustProfile is the default profile overridden by the TOML text.
func mustProfile(t testing.TB, override string) *platform.Profile {
	t.Helper()
	p, err := platform.Parse([]byte(override), "test override")
	if err != nil {
		t.Fatalf("profile override %q: %v", override, err)
	}
	return p
}

// v2Render is the default profile with the render on the v2 family, the
// only render that documents saleFlag (DOC-TB-RENDER-V2).
const v2Render = `[endpoints.taobao_render]
path = "/v2/taobao/order/refund/render"
family = "v2"`

// fill puts a refund id into a path template.
func fill(tmpl, id string) string { return strings.ReplaceAll(tmpl, "{refundId}", id) }

// testSign is the documented rule (reference §2.2), written out:
// UPPER(HEX(MD5(access-key + timestamp + nonce-str + secret))).
func testSign(key, ts, nonce, secret string) string {
	sum := md5.Sum([]byte(key + ts + nonce + secret))
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// Request bodies.
type (
	renderReq struct {
		SubOrderID  string `json:"subOrderId"`
		RefundType  int    `json:"refundType"`
		GoodsStatus int    `json:"goodsStatus"`
	}
	submitRefundReq struct {
		SubOrderID   string `json:"subOrderId"`
		RefundType   int    `json:"refundType"`
		GoodsStatus  int    `json:"goodsStatus"`
		ReasonID     int    `json:"reasonId"`
		RefundFee    int64  `json:"refundFee"`
		RefundDesc   string `json:"refundDesc,omitempty"`
		RefundImages string `json:"refundImages,omitempty"`
	}
	modifyRefundReq struct {
		RefundID     string `json:"refundId"`
		RefundType   int    `json:"refundType"`
		GoodsStatus  int    `json:"goodsStatus"`
		ReasonID     int    `json:"reasonId"`
		RefundFee    int64  `json:"refundFee"`
		RefundDesc   string `json:"refundDesc,omitempty"`
		RefundImages string `json:"refundImages,omitempty"`
	}
	listRefundsReq struct {
		RefundID        string `json:"refundId,omitempty"`
		PurchaseOrderID string `json:"purchaseOrderId,omitempty"`
		SalesOrderID    string `json:"salesOrderId,omitempty"`
		RefundStatus    *int   `json:"refundStatus,omitempty"`
		RefundStartTime int64  `json:"refundStartTime,omitempty"`
		RefundEndTime   int64  `json:"refundEndTime,omitempty"`
		PageNo          int    `json:"pageNo,omitempty"`
		PageSize        int    `json:"pageSize"`
	}
	submitMessageReq struct {
		RefundID      string `json:"refundId"`
		RefundMessage string `json:"refundMessage"`
		RefundImages  string `json:"refundImages,omitempty"`
	}
	listMessagesReq struct {
		RefundID string `json:"refundId"`
		PageNo   int    `json:"pageNo,omitempty"`
		PageSize int    `json:"pageSize"`
	}
	returnLogisticsSubmitReq struct {
		RefundID             string `json:"refundId"`
		LogisticsCompanyCode string `json:"logisticsCompanyCode"`
		LogisticsNo          string `json:"logisticsNo"`
		BuyerPhone           string `json:"buyerPhone,omitempty"`
		ReturnGoodsDesc      string `json:"returnGoodsDesc,omitempty"`
	}
	refundInfoReq struct {
		RefundID string `json:"refundId"`
	}
	refundReasonsReq struct {
		OrderID       int64   `json:"orderId"`
		OrderEntryIDs []int64 `json:"orderEntryIds,omitempty"`
		GoodsStatus   string  `json:"goodsStatus"`
	}
	createRefundReq struct {
		OrderID        int64    `json:"orderId"`
		OrderEntryIDs  []int64  `json:"orderEntryIds,omitempty"`
		DisputeRequest string   `json:"disputeRequest"`
		ApplyPayment   int64    `json:"applyPayment"`
		ApplyCarriage  int64    `json:"applyCarriage"`
		ApplyReasonID  int64    `json:"applyReasonId"`
		Description    string   `json:"description"`
		GoodsStatus    string   `json:"goodsStatus"`
		Vouchers       []string `json:"vouchers,omitempty"`
	}
	goodsReturnReq struct {
		RefundID           string   `json:"refundId"`
		LogisticsCompanyNo string   `json:"logisticsCompanyNo"`
		FreightBill        string   `json:"freightBill"`
		Description        string   `json:"description,omitempty"`
		Vouchers           []string `json:"vouchers,omitempty"`
	}
)

// Response data, the fields the tests read.
type (
	refundOrderResp struct {
		CanEditFee                 bool            `json:"canEditFee"`
		GoodsStatus                int             `json:"goodsStatus"`
		PayOrderID                 string          `json:"payOrderId"`
		ReasonID                   int             `json:"reasonId"`
		RefundFee                  int64           `json:"refundFee"`
		RefundID                   string          `json:"refundId"`
		RefundStatus               json.RawMessage `json:"refundStatus"`
		RefundType                 int             `json:"refundType"`
		SellerRefuseReasonDescribe string          `json:"sellerRefuseReasonDescribe"`
		TimeoutDate                string          `json:"timeoutDate"`
		TimeoutType                string          `json:"timeoutType"`
	}
	purchaseLineResp struct {
		SalesOrderID        string `json:"salesOrderId"`
		PurchaseOrderLineID string `json:"purchaseOrderLineId"`
		PurchaseOrderID     string `json:"purchaseOrderId"`
		CreateTime          int64  `json:"createTime"`
	}
	logisticsResp struct {
		LogisticsNo      string          `json:"logisticsNo"`
		ReceiverAddress  json.RawMessage `json:"receiverAddress"`
		LogisticsCompany struct {
			Name    string `json:"logisticsCompanyName"`
			Code    string `json:"logisticsCompanyCode"`
			CodeSic string `json:"logisticCompanyCode"`
		} `json:"logisticsCompany"`
	}
	aggregateResp struct {
		RefundOrder       refundOrderResp  `json:"refundOrder"`
		PurchaseOrderLine purchaseLineResp `json:"purchaseOrderLine"`
		Logistics         *logisticsResp   `json:"logistics"`
	}
	renderResp struct {
		Currency            string `json:"currency"`
		DistributorID       string `json:"distributorId"`
		RefundOrderTemplate struct {
			GoodsStatusList []string `json:"goodsStatusList"`
			MaxRefundFee    struct {
				CanEditRefundFee bool  `json:"canEditRefundFee"`
				MaxRefundFee     int64 `json:"maxRefundFee"`
				MinRefundFee     int64 `json:"minRefundFee"`
			} `json:"maxRefundFee"`
			RefundReasons []struct {
				ReasonDesc string `json:"reasonDesc"`
				ReasonID   int    `json:"reasonId"`
				Tips       string `json:"tips"`
			} `json:"refundReasons"`
			RefundTypeList []string `json:"refundTypeList"`
		} `json:"refundOrderTemplate"`
		SaleFlag *bool `json:"saleFlag"`
	}
	submitRefundResp struct {
		SubmitSuccess bool   `json:"submitSuccess"`
		RefundID      string `json:"refundId"`
	}
	listRefundsResp struct {
		Total    int             `json:"total"`
		PageNo   int             `json:"pageNo"`
		PageSize int             `json:"pageSize"`
		List     []aggregateResp `json:"list"`
	}
	listMessagesResp struct {
		Total    int           `json:"total"`
		PageNo   int           `json:"pageNo"`
		PageSize int           `json:"pageSize"`
		List     []messageResp `json:"list"`
	}
	messageResp struct {
		MessageID  string `json:"messageId"`
		Owner      string `json:"owner"`
		Content    string `json:"content"`
		Images     string `json:"images"`
		CreateTime int64  `json:"createTime"`
	}
	queryRefundResp struct {
		RefundOrderAggregate aggregateResp `json:"refundOrderAggregate"`
	}
	returnLogisticsRenderResp struct {
		LogisticsCompanies []struct {
			Code string `json:"logisticsCompanyCode"`
		} `json:"logisticsCompanies"`
		ReceiverAddress struct {
			DetailAddress string `json:"detailAddress"`
		} `json:"receiverAddress"`
	}
	refundInfoResp struct {
		RefundID         string `json:"refundId"`
		OrderID          int64  `json:"orderId"`
		Status           string `json:"status"`
		DisputeType      int    `json:"disputeType"`
		GoodsReceived    bool   `json:"goodsReceived"`
		GoodsStatus      int    `json:"goodsStatus"`
		FreightBill      string `json:"freightBill"`
		OnlyRefund       bool   `json:"onlyRefund"`
		RefundGoods      bool   `json:"refundGoods"`
		CanRefundPayment int64  `json:"canRefundPayment"`
		RefundPayment    int64  `json:"refundPayment"`
		RejectReason     string `json:"rejectReason"`
		RejectTimes      int    `json:"rejectTimes"`
		GmtApply         string `json:"gmtApply"`
		GmtCreate        string `json:"gmtCreate"`
		GmtModified      string `json:"gmtModified"`
		GmtCompleted     string `json:"gmtCompleted"` // null decodes as ""
		GmtTimeOut       string `json:"gmtTimeOut"`
		ApplyPayment     int64  `json:"applyPayment"`
		BuyerSendGoods   bool   `json:"buyerSendGoods"`
	}
	refundReasonsResp struct {
		Reasons []struct {
			ID          int64 `json:"id"`
			NeedVoucher bool  `json:"needVoucher"`
		} `json:"reasons"`
	}
	createRefundResp struct {
		RefundID string `json:"refundId"`
	}
	goodsReturnResp struct {
		ErrorCode string `json:"errorCode"` // null decodes as ""
		ErrorInfo string `json:"errorInfo"`
		Success   bool   `json:"success"`
	}
	uploadVoucherResp struct {
		ImageDomain      string `json:"imageDomain"`
		ImageRelativeURL string `json:"imageRelativeURL"`
	}
	logisticsCompanyResp struct {
		CompanyNo string `json:"companyNo"`
	}
)

// status reads refundStatus as text (a string, or a number's digits).
func (r refundOrderResp) status() string {
	var s string
	if json.Unmarshal(r.RefundStatus, &s) == nil {
		return s
	}
	return string(r.RefundStatus)
}

// URL is the voucher reference A4 and A5 take: domain/relative path (upstream).
func (u uploadVoucherResp) URL() string {
	return u.ImageDomain + "/" + strings.TrimLeft(u.ImageRelativeURL, "/")
}

// refundStatuses are each platform's status names under the default profile.
var refundStatuses = map[string][]string{
	PlatformTaobao: {tbWaitAgree, tbWaitReturn, tbWaitConfirm, tbRefused, tbClosed, tbSuccess},
	Platform1688:   {abWaitAgree, abWaitModify, abWaitSend, abWaitReceive, abSuccess, abClose},
}

// terminalStatus reports whether a status name is an end (success or closed).
func terminalStatus(name string) bool {
	switch name {
	case tbClosed, tbSuccess, abSuccess, abClose:
		return true
	}
	return false
}
