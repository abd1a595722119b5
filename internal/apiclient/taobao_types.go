package apiclient

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/refundhub/refundhub/internal/platform"
)

// Taobao after-sales ("reverse order", 逆向单) wire types, reference §4. Field
// names are the documented ones. Where the reference marks a request or response
// UNKNOWN the shape below is the INFERRED best guess and says so.

// RefundOrder is the refund part of a reverse order (reference §4.2).
// RefundStatus keeps the raw form (string or number); the client maps it
// through the profile into Phase.
type RefundOrder struct {
	CanEditFee                 bool       `json:"canEditFee"`
	FeeTips                    string     `json:"feeTips"`
	GoodsStatus                int        `json:"goodsStatus"`
	PayOrderID                 FlexString `json:"payOrderId"`
	ReasonDesc                 string     `json:"reasonDesc"`
	ReasonID                   int        `json:"reasonId"`
	RefundDesc                 string     `json:"refundDesc"`
	RefundFee                  Amount     `json:"refundFee"`
	RefundID                   FlexString `json:"refundId"`
	RefundStatus               FlexString `json:"refundStatus"`
	RefundType                 int        `json:"refundType"`
	RemainingTime              string     `json:"remainingTime"`
	SellerRefuseReason         string     `json:"sellerRefuseReason"`
	SellerRefuseReasonDescribe string     `json:"sellerRefuseReasonDescribe"`
	TimeoutDate                string     `json:"timeoutDate"`
	TimeoutType                string     `json:"timeoutType"`

	// Phase is what RefundStatus means per the profile (not on the wire);
	// "" for a status the profile does not know.
	Phase platform.Phase `json:"-"`
}

// PurchaseOrderLine is the purchase line a reverse order belongs to (reference §4.2).
// Ids are strings in v1 objects and integers in v2 ones.
type PurchaseOrderLine struct {
	SalesOrderID        FlexString      `json:"salesOrderId"`
	SupplierID          FlexString      `json:"supplierId"`
	Quantity            int             `json:"quantity"`
	TotalPrice          Amount          `json:"totalPrice"`
	ItemTitle           string          `json:"itemTitle"`
	PostFee             Amount          `json:"postFee"`
	ProductFee          Amount          `json:"productFee"`
	SalesMarket         string          `json:"salesMarket"`
	PurchaseOrderLineID FlexString      `json:"purchaseOrderLineId"`
	CreateTime          FlexInt64       `json:"createTime"`
	PurchaseOrderID     FlexString      `json:"purchaseOrderId"`
	Price               Amount          `json:"price"`
	SupplierNick        string          `json:"supplierNick"`
	Currency            string          `json:"currency"`
	Properties          json.RawMessage `json:"properties,omitempty"` // object in the example, maybe a list
	ItemImageURL        string          `json:"itemImageUrl"`
}

// ReceiverAddress is where a return goes. The cancel response documents an
// object, the v2 query a plain string; a string decodes into DetailAddress.
type ReceiverAddress struct {
	Receiver      string `json:"receiver"`
	Phone         string `json:"phone"`
	DetailAddress string `json:"detailAddress"`
}

// UnmarshalJSON accepts the object form, a string or null.
func (r *ReceiverAddress) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		*r = ReceiverAddress{}
		return nil
	}
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*r = ReceiverAddress{DetailAddress: s}
		return nil
	}
	type plain ReceiverAddress
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*r = ReceiverAddress(p)
	return nil
}

// LogisticsCompany names a carrier. The cancel response spells the code key
// logisticCompanyCode (sic), the query logisticsCompanyCode; both decode.
type LogisticsCompany struct {
	LogisticsCompanyName string `json:"logisticsCompanyName"`
	LogisticsCompanyCode string `json:"logisticsCompanyCode"`
}

// UnmarshalJSON accepts both spellings of the code key.
func (l *LogisticsCompany) UnmarshalJSON(b []byte) error {
	var raw struct {
		Name  string     `json:"logisticsCompanyName"`
		Code  FlexString `json:"logisticsCompanyCode"`
		Code2 FlexString `json:"logisticCompanyCode"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	l.LogisticsCompanyName = raw.Name
	l.LogisticsCompanyCode = string(raw.Code)
	if l.LogisticsCompanyCode == "" {
		l.LogisticsCompanyCode = string(raw.Code2)
	}
	return nil
}

// Logistics is the return-shipment part of a reverse order (reference §4.2).
type Logistics struct {
	ReturnGoodsDesc           string           `json:"returnGoodsDesc"`
	BuyerPhone                string           `json:"buyerPhone"`
	SellerAgreeReturnDescribe string           `json:"sellerAgreeReturnDescribe"`
	LogisticsNo               string           `json:"logisticsNo"`
	ReceiverAddress           ReceiverAddress  `json:"receiverAddress"`
	LogisticsCompany          LogisticsCompany `json:"logisticsCompany"`
}

// RefundOrderAggregate is the documented "逆向聚合信息": refund, purchase line and logistics.
type RefundOrderAggregate struct {
	RefundOrder       RefundOrder       `json:"refundOrder"`
	PurchaseOrderLine PurchaseOrderLine `json:"purchaseOrderLine"`
	Logistics         *Logistics        `json:"logistics,omitempty"`
}

// ListRefundsRequest is the body of T1 POST /open/order/refund/queryList (reference §4.3).
type ListRefundsRequest struct {
	RefundID        string `json:"refundId,omitempty"`
	PurchaseOrderID string `json:"purchaseOrderId,omitempty"`
	SalesOrderID    string `json:"salesOrderId,omitempty"`
	RefundStatus    *int   `json:"refundStatus,omitempty"`
	RefundStartTime int64  `json:"refundStartTime,omitempty"`
	RefundEndTime   int64  `json:"refundEndTime,omitempty"`
	PageNo          int    `json:"pageNo,omitempty"`
	PageSize        int    `json:"pageSize"`
}

// ListRefundsResponse is T1's data. INFERRED (the response is UNKNOWN): a page
// of aggregates.
type ListRefundsResponse struct {
	Total    int                    `json:"total"`
	PageNo   int                    `json:"pageNo"`
	PageSize int                    `json:"pageSize"`
	List     []RefundOrderAggregate `json:"list"`
	// HasTotal reports that the answer carried a total (a decoded Total of 0
	// is otherwise "none" or "no refunds"): a caller walking the pages can
	// only trust a total that was given.
	HasTotal bool `json:"-"`
}

// decodeListPage decodes a list page under the profile's field names, and
// notes whether the total was present (and not null). The page number is
// reported counting from 1 whatever the platform's first page is.
func decodeListPage(b []byte, f platform.ListFacts) (ListRefundsResponse, error) {
	var r ListRefundsResponse
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return r, err
	}
	if v, ok := fields[f.ItemsField]; ok {
		if err := json.Unmarshal(v, &r.List); err != nil {
			return r, fmt.Errorf("%s: %w", f.ItemsField, err)
		}
	}
	number := func(key string) (int, bool, error) {
		v, ok := fields[key]
		if !ok || string(bytes.TrimSpace(v)) == "null" {
			return 0, false, nil
		}
		var n FlexInt
		if err := json.Unmarshal(v, &n); err != nil {
			return 0, false, fmt.Errorf("%s: %w", key, err)
		}
		return int(n), true, nil
	}
	var err error
	if r.Total, r.HasTotal, err = number(f.TotalField); err != nil {
		return r, err
	}
	pageNo, hasPageNo, err := number(f.PageNoField)
	if err != nil {
		return r, err
	}
	if hasPageNo {
		r.PageNo = pageNo - f.FirstPage + 1
	}
	if r.PageSize, _, err = number(f.PageSizeField); err != nil {
		return r, err
	}
	return r, nil
}

// RenderRequest is the body of T2 POST /open/order/refund/render.
type RenderRequest struct {
	SubOrderID  string `json:"subOrderId"`
	RefundType  int    `json:"refundType"`
	GoodsStatus int    `json:"goodsStatus"`
}

// MaxRefundFee gives the fee bounds of a refund form.
type MaxRefundFee struct {
	CanEditRefundFee bool   `json:"canEditRefundFee"`
	FeeTips          string `json:"feeTips"`
	MaxRefundFee     Amount `json:"maxRefundFee"`
	MinRefundFee     Amount `json:"minRefundFee"`
	RefundFee        Amount `json:"refundFee"`
}

// RefundReason is a reason the seller's form offers.
type RefundReason struct {
	ReasonDesc string `json:"reasonDesc"`
	ReasonID   int    `json:"reasonId"`
	Tips       string `json:"tips"`
}

// RefundOrderTemplate is the rendered refund form.
type RefundOrderTemplate struct {
	GoodsStatusList []string       `json:"goodsStatusList"`
	MaxRefundFee    MaxRefundFee   `json:"maxRefundFee"`
	RefundOrder     RefundOrder    `json:"refundOrder"`
	RefundReasons   []RefundReason `json:"refundReasons"`
	RefundTypeList  []string       `json:"refundTypeList"`
}

// RenderResponse is T2's data (RefundRenderVO). SaleFlag is v2-only: nil when absent.
type RenderResponse struct {
	Currency            string              `json:"currency"`
	DistributorID       FlexString          `json:"distributorId"`
	RefundOrderTemplate RefundOrderTemplate `json:"refundOrderTemplate"`
	SaleFlag            *bool               `json:"saleFlag,omitempty"`
}

// ReturnLogisticsRenderResponse is T3's data. INFERRED (UNKNOWN upstream): the
// carriers the return may use, where to send it, and the reverse order.
type ReturnLogisticsRenderResponse struct {
	Currency             string                `json:"currency"`
	DistributorID        FlexString            `json:"distributorId"`
	LogisticsCompanies   []LogisticsCompany    `json:"logisticsCompanies"`
	ReceiverAddress      ReceiverAddress       `json:"receiverAddress"`
	RefundOrderAggregate *RefundOrderAggregate `json:"refundOrderAggregate,omitempty"`
}

// ReturnLogisticsSubmitRequest is T4's body. INFERRED (UNKNOWN upstream) from
// the documented logistics object.
type ReturnLogisticsSubmitRequest struct {
	RefundID             string `json:"refundId"`
	LogisticsCompanyCode string `json:"logisticsCompanyCode"`
	LogisticsNo          string `json:"logisticsNo"`
	BuyerPhone           string `json:"buyerPhone,omitempty"`
	ReturnGoodsDesc      string `json:"returnGoodsDesc,omitempty"`
}

// ReturnLogisticsSubmitResponse is T4's data. INFERRED.
type ReturnLogisticsSubmitResponse struct {
	Currency      string     `json:"currency"`
	DistributorID FlexString `json:"distributorId"`
	SubmitSuccess bool       `json:"submitSuccess"`
}

// CancelResponse is T5's data (CancelRefundOrderVO).
type CancelResponse struct {
	DistributorID        FlexString           `json:"distributorId"`
	Currency             string               `json:"currency"`
	CancelSuccess        bool                 `json:"cancelSuccess"`
	RefundOrderAggregate RefundOrderAggregate `json:"refundOrderAggregate"`
}

// SubmitMessageRequest is the body of T6 POST /open/order/refund/submit/message.
// RefundImages' format is UNKNOWN (INFERRED: a URL or a comma-separated list).
type SubmitMessageRequest struct {
	RefundID      string `json:"refundId"`
	RefundMessage string `json:"refundMessage"`
	RefundImages  string `json:"refundImages,omitempty"`
}

// SubmitMessageResponse is T6's data.
type SubmitMessageResponse struct {
	Currency             string     `json:"currency"`
	DistributorID        FlexString `json:"distributorId"`
	MessageSubmitSuccess bool       `json:"messageSubmitSuccess"`
}

// SubmitRefundRequest is T7's body. INFERRED (UNKNOWN upstream) from the render
// request and the refundOrder object.
type SubmitRefundRequest struct {
	SubOrderID   string `json:"subOrderId"`
	RefundType   int    `json:"refundType"`
	GoodsStatus  int    `json:"goodsStatus"`
	ReasonID     int    `json:"reasonId"`
	RefundFee    Amount `json:"refundFee"`
	RefundDesc   string `json:"refundDesc,omitempty"`
	RefundImages string `json:"refundImages,omitempty"`
}

// SubmitRefundResponse is T7's data. INFERRED.
type SubmitRefundResponse struct {
	Currency      string     `json:"currency"`
	DistributorID FlexString `json:"distributorId"`
	SubmitSuccess bool       `json:"submitSuccess"`
	RefundID      FlexString `json:"refundId"`
}

// ListMessagesRequest is T8's body. INFERRED.
type ListMessagesRequest struct {
	RefundID string `json:"refundId"`
	PageNo   int    `json:"pageNo,omitempty"`
	PageSize int    `json:"pageSize"`
}

// RefundMessage is one message on a reverse order. INFERRED.
type RefundMessage struct {
	MessageID  FlexString `json:"messageId"`
	Owner      string     `json:"owner"` // "buyer", "seller" or "system"
	Content    string     `json:"content"`
	Images     string     `json:"images"`
	CreateTime FlexInt64  `json:"createTime"` // milliseconds
}

// ListMessagesResponse is T8's data. INFERRED.
type ListMessagesResponse struct {
	Total    int             `json:"total"`
	PageNo   int             `json:"pageNo"`
	PageSize int             `json:"pageSize"`
	List     []RefundMessage `json:"list"`
}

// ModifyRefundRequest is T9's body. INFERRED: the refund id plus T7's fields.
type ModifyRefundRequest struct {
	RefundID     string `json:"refundId"`
	RefundType   int    `json:"refundType"`
	GoodsStatus  int    `json:"goodsStatus"`
	ReasonID     int    `json:"reasonId"`
	RefundFee    Amount `json:"refundFee"`
	RefundDesc   string `json:"refundDesc,omitempty"`
	RefundImages string `json:"refundImages,omitempty"`
}

// ModifyRefundResponse is T9's data. INFERRED.
type ModifyRefundResponse struct {
	Currency      string     `json:"currency"`
	DistributorID FlexString `json:"distributorId"`
	ModifySuccess bool       `json:"modifySuccess"`
}

// QueryRefundResponse is T10's data (TaoBaoRefundOrderDetailDTO).
type QueryRefundResponse struct {
	DistributorID        FlexString           `json:"distributorId"`
	Currency             string               `json:"currency"`
	RefundOrderAggregate RefundOrderAggregate `json:"refundOrderAggregate"`
}
