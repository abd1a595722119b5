// Taobao's wire shapes: the request and response bodies of T1-T9 and the
// refundOrderAggregate a refund is rendered as.

package sandbox

import (
	"strconv"

	"github.com/refundhub/refundhub/internal/platform"
)

// Taobao request bodies as documented (T2, T6) or INFERRED (T4, T7, T8, T9;
// reference §4.3). T1's body is read field by field: the profile names its
// filter and paging fields.
type (
	tbRenderIn struct {
		SubOrderID  string `json:"subOrderId"`
		RefundType  int    `json:"refundType"`
		GoodsStatus int    `json:"goodsStatus"`
	}
	tbFormIn struct { // T7 (subOrderId) and T9 (refundId)
		SubOrderID   string   `json:"subOrderId"`
		RefundID     string   `json:"refundId"`
		RefundType   int      `json:"refundType"`
		GoodsStatus  int      `json:"goodsStatus"`
		ReasonID     int      `json:"reasonId"`
		RefundFee    amountIn `json:"refundFee"`
		RefundDesc   string   `json:"refundDesc"`
		RefundImages string   `json:"refundImages"`
	}
	tbMessageIn struct {
		RefundID      string `json:"refundId"`
		RefundMessage string `json:"refundMessage"`
		RefundImages  string `json:"refundImages"`
	}
	tbListMessagesIn struct {
		RefundID string `json:"refundId"`
		PageNo   int    `json:"pageNo"`
		PageSize int    `json:"pageSize"`
	}
	tbLogisticsIn struct {
		RefundID             string `json:"refundId"`
		LogisticsCompanyCode string `json:"logisticsCompanyCode"`
		LogisticsNo          string `json:"logisticsNo"`
		BuyerPhone           string `json:"buyerPhone"`
		ReturnGoodsDesc      string `json:"returnGoodsDesc"`
	}
)

// Taobao response objects (reference §4.2; SEED-003, SEED-004, DOC-TB-QUERY-V2).
type (
	tbRefundOrder struct {
		CanEditFee                 bool   `json:"canEditFee"`
		FeeTips                    string `json:"feeTips"`
		GoodsStatus                int    `json:"goodsStatus"`
		PayOrderID                 string `json:"payOrderId"`
		ReasonDesc                 string `json:"reasonDesc"`
		ReasonID                   int    `json:"reasonId"`
		RefundDesc                 string `json:"refundDesc"`
		RefundFee                  money  `json:"refundFee"`
		RefundID                   string `json:"refundId"`
		RefundStatus               any    `json:"refundStatus"` // the profile's name, or its code in the numeric v2 query
		RefundType                 int    `json:"refundType"`
		RemainingTime              string `json:"remainingTime"`
		SellerRefuseReason         string `json:"sellerRefuseReason"`
		SellerRefuseReasonDescribe string `json:"sellerRefuseReasonDescribe"`
		TimeoutDate                string `json:"timeoutDate"`
		TimeoutType                string `json:"timeoutType"`
	}
	tbProperties struct {
		ValueID   int64  `json:"valueId"`
		ValueName string `json:"valueName"`
		PropID    int64  `json:"propId"`
		PropName  string `json:"propName"`
	}
	tbPurchaseLine struct {
		SalesOrderID        string       `json:"salesOrderId"`
		SupplierID          string       `json:"supplierId"`
		Quantity            int          `json:"quantity"`
		TotalPrice          money        `json:"totalPrice"`
		ItemTitle           string       `json:"itemTitle"`
		PostFee             money        `json:"postFee"`
		ProductFee          money        `json:"productFee"`
		SalesMarket         string       `json:"salesMarket"`
		PurchaseOrderLineID string       `json:"purchaseOrderLineId"`
		CreateTime          int64        `json:"createTime"` // ms
		PurchaseOrderID     string       `json:"purchaseOrderId"`
		Price               money        `json:"price"`
		SupplierNick        string       `json:"supplierNick"`
		Currency            string       `json:"currency"`
		Properties          tbProperties `json:"properties"`
		ItemImageURL        string       `json:"itemImageUrl"`
	}
	// tbLogistics is SEED-003's logistics: the company code key is spelled
	// logisticCompanyCode there (sic), and kept so.
	tbLogistics struct {
		ReturnGoodsDesc           string  `json:"returnGoodsDesc"`
		BuyerPhone                string  `json:"buyerPhone"`
		SellerAgreeReturnDescribe string  `json:"sellerAgreeReturnDescribe"`
		LogisticsNo               string  `json:"logisticsNo"`
		ReceiverAddress           address `json:"receiverAddress"`
		LogisticsCompany          struct {
			LogisticsCompanyName string `json:"logisticsCompanyName"`
			LogisticCompanyCode  string `json:"logisticCompanyCode"`
		} `json:"logisticsCompany"`
	}
	// tbQueryLogistics is DOC-TB-QUERY-V2's logistics: receiverAddress a
	// string, the code key spelled logisticsCompanyCode. logisticsNo is not
	// in the (possibly partial) excerpt; INFERRED from the cancel's.
	tbQueryLogistics struct {
		ReceiverAddress           string    `json:"receiverAddress"`
		ReturnGoodsDesc           string    `json:"returnGoodsDesc"`
		BuyerPhone                string    `json:"buyerPhone"`
		LogisticsCompany          tbCompany `json:"logisticsCompany"`
		SellerAgreeReturnDescribe string    `json:"sellerAgreeReturnDescribe"`
		LogisticsNo               string    `json:"logisticsNo"`
	}
	tbAggregate struct {
		RefundOrder       tbRefundOrder  `json:"refundOrder"`
		PurchaseOrderLine tbPurchaseLine `json:"purchaseOrderLine"`
		Logistics         any            `json:"logistics"` // tbLogistics or tbQueryLogistics
	}
	tbMaxRefundFee struct {
		CanEditRefundFee bool   `json:"canEditRefundFee"`
		FeeTips          string `json:"feeTips"`
		MaxRefundFee     money  `json:"maxRefundFee"`
		MinRefundFee     money  `json:"minRefundFee"`
		RefundFee        money  `json:"refundFee"`
	}
	tbReasonOut struct {
		ReasonDesc string `json:"reasonDesc"`
		ReasonID   int    `json:"reasonId"`
		Tips       string `json:"tips"`
	}
	tbRenderOut struct {
		Currency            string `json:"currency"`
		DistributorID       string `json:"distributorId"`
		RefundOrderTemplate struct {
			GoodsStatusList []string       `json:"goodsStatusList"`
			MaxRefundFee    tbMaxRefundFee `json:"maxRefundFee"`
			RefundOrder     tbRefundOrder  `json:"refundOrder"`
			RefundReasons   []tbReasonOut  `json:"refundReasons"`
			RefundTypeList  []string       `json:"refundTypeList"`
		} `json:"refundOrderTemplate"`
		SaleFlag *bool `json:"saleFlag,omitempty"` // v2 render only (DOC-TB-RENDER-V2)
	}
	tbCancelOut struct {
		DistributorID        string      `json:"distributorId"`
		Currency             string      `json:"currency"`
		CancelSuccess        bool        `json:"cancelSuccess"`
		RefundOrderAggregate tbAggregate `json:"refundOrderAggregate"`
	}
	tbQueryOut struct {
		DistributorID        string      `json:"distributorId"`
		Currency             string      `json:"currency"`
		RefundOrderAggregate tbAggregate `json:"refundOrderAggregate"`
	}
	tbMessageOut struct {
		Currency             string `json:"currency"`
		DistributorID        string `json:"distributorId"`
		MessageSubmitSuccess bool   `json:"messageSubmitSuccess"`
	}
	tbSubmitOut struct {
		Currency      string `json:"currency"`
		DistributorID string `json:"distributorId"`
		SubmitSuccess bool   `json:"submitSuccess"`
		RefundID      string `json:"refundId,omitempty"` // T7 only
	}
	tbModifyOut struct {
		Currency      string `json:"currency"`
		DistributorID string `json:"distributorId"`
		ModifySuccess bool   `json:"modifySuccess"`
	}
	tbMessage struct {
		MessageID  string `json:"messageId"`
		Owner      string `json:"owner"`
		Content    string `json:"content"`
		Images     string `json:"images"`
		CreateTime int64  `json:"createTime"` // ms
	}
	tbListMessagesOut struct {
		Total    int         `json:"total"`
		PageNo   int         `json:"pageNo"`
		PageSize int         `json:"pageSize"`
		List     []tbMessage `json:"list"`
	}
	tbLogisticsRenderOut struct {
		Currency             string       `json:"currency"`
		DistributorID        string       `json:"distributorId"`
		LogisticsCompanies   []tbCompany  `json:"logisticsCompanies"`
		ReceiverAddress      address      `json:"receiverAddress"`
		RefundOrderAggregate *tbAggregate `json:"refundOrderAggregate"`
	}
)

// aggStyle is which documented refundOrderAggregate to write.
type aggStyle int

// taobaoAggregateLocked renders a refund as a refundOrderAggregate. Every
// documented key is written; logistics is present with empty values until
// the seller asks for the goods back.
func (s *Sandbox) taobaoAggregateLocked(ref *Refund, style aggStyle) tbAggregate {
	o := s.orderOfLocked(ref)
	var so *SubOrder
	if o != nil {
		so = o.subOrder(ref.SubOrderID)
	}
	if o == nil || so == nil { // cannot happen: refunds keep their order
		o, so = &Order{OrderID: ref.OrderID}, &SubOrder{SubOrderID: ref.SubOrderID, Quantity: 1}
	}
	ro := tbRefundOrder{
		CanEditFee:         ref.Phase == platform.PhaseWaitSellerAgree || ref.Phase == platform.PhaseSellerRefused,
		FeeTips:            feeTips(max(maxFee(so), 0)),
		GoodsStatus:        ref.GoodsStatus,
		PayOrderID:         o.OrderID,
		ReasonDesc:         ref.ReasonDesc,
		ReasonID:           ref.ReasonID,
		RefundDesc:         ref.RefundDesc,
		RefundFee:          s.tbMoney(ref.RefundFee),
		RefundID:           ref.RefundID,
		RefundStatus:       ref.Status,
		RefundType:         ref.RefundType,
		SellerRefuseReason: ref.RefuseReason,
	}
	if deadline, ok := s.deadline(ref); ok {
		ro.TimeoutDate = s.fmtTime(deadline)
		ro.RemainingTime = strconv.FormatInt(max(deadline.Sub(s.now()).Milliseconds(), 0), 10)
		switch ref.Phase {
		case platform.PhaseWaitSellerAgree:
			ro.TimeoutType = "SELLER_AGREE"
		case platform.PhaseWaitBuyerReturn:
			ro.TimeoutType = "BUYER_RETURN_GOODS"
		case platform.PhaseWaitSellerReceive:
			ro.TimeoutType = "SELLER_CONFIRM_GOODS"
		case platform.PhaseSellerRefused:
			ro.TimeoutType = "BUYER_MODIFY"
		}
	}
	if ref.Phase == platform.PhaseSellerRefused {
		ro.SellerRefuseReasonDescribe = ref.RefuseReason
	}
	qty := max(so.Quantity, 1)
	line := tbPurchaseLine{
		SalesOrderID:        o.OrderNo,
		SupplierID:          supplierID,
		Quantity:            qty,
		TotalPrice:          s.tbMoney(so.Amount + so.PostFee),
		ItemTitle:           so.Title,
		PostFee:             s.tbMoney(so.PostFee),
		ProductFee:          s.tbMoney(so.Amount),
		SalesMarket:         "taobao",
		PurchaseOrderLineID: so.SubOrderID,
		CreateTime:          o.CreatedAt.UnixMilli(),
		PurchaseOrderID:     o.OrderID,
		Price:               s.tbMoney(so.Amount / int64(qty)),
		SupplierNick:        supplierNick,
		Currency:            currencyCNY,
		// GUESS: every sandbox item has one SKU property (Taobao's colour prop id).
		Properties:   tbProperties{ValueID: 28341, ValueName: "默认", PropID: 1627207, PropName: "颜色分类"},
		ItemImageURL: "https://img.alicdn.com/imgextra/sandbox/" + so.SubOrderID + ".jpg",
	}
	var addr address
	var agreed string
	if ref.ReturnRequired || ref.Return != nil {
		addr, agreed = sellerAddress, "同意退货，请按地址寄回并填写物流单号"
	}
	var ret ReturnShipment
	if ref.Return != nil {
		ret = *ref.Return
	}
	agg := tbAggregate{RefundOrder: ro, PurchaseOrderLine: line}
	switch style {
	case aggQuery:
		agg.Logistics = tbQueryLogistics{ReceiverAddress: addr.DetailAddress, ReturnGoodsDesc: ret.Description,
			BuyerPhone: ret.BuyerPhone, LogisticsCompany: tbCompany{LogisticsCompanyName: ret.CompanyName, LogisticsCompanyCode: ret.CompanyCode},
			SellerAgreeReturnDescribe: agreed, LogisticsNo: ret.TrackingNo}
	default:
		lg := tbLogistics{ReturnGoodsDesc: ret.Description, BuyerPhone: ret.BuyerPhone, SellerAgreeReturnDescribe: agreed,
			LogisticsNo: ret.TrackingNo, ReceiverAddress: addr}
		lg.LogisticsCompany.LogisticsCompanyName, lg.LogisticsCompany.LogisticCompanyCode = ret.CompanyName, ret.CompanyCode
		agg.Logistics = lg
	}
	return agg
}
