package sandbox

import (
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
)

const (
	distributorID = "1231294146025" // the documented example value
	currencyCNY   = "CNY"
	supplierID    = "2206588413420"
	supplierNick  = "沙箱旗舰店"

	// refundTimeout is how long a refund may wait in an open status before
	// the platform's deadline (Taobao timeoutDate, 1688 gmtTimeOut). A GUESS:
	// Taobao's usual seller response time.
	refundTimeout = 7 * 24 * time.Hour
)

// address is where returns go (both platforms).
type address struct {
	Receiver      string `json:"receiver"`
	Phone         string `json:"phone"`
	DetailAddress string `json:"detailAddress"`
}

var sellerAddress = address{Receiver: "沙箱售后", Phone: "13800000000", DetailAddress: "浙江省杭州市余杭区文一西路969号 沙箱退货仓"}

// tbGoods is what the buyer has of the goods, whatever the profile's
// goodsStatus integers are.
type tbGoods int

const (
	goodsNotShipped tbGoods = iota
	goodsNotReceived
	goodsReceived
)

// tbGoodsOf reads a goodsStatus integer under the profile.
func (s *Sandbox) tbGoodsOf(goodsStatus int) (tbGoods, bool) {
	g := s.prof.Taobao.GoodsStatus
	switch goodsStatus {
	case g.NotShipped:
		return goodsNotShipped, true
	case g.NotReceived:
		return goodsNotReceived, true
	case g.Received:
		return goodsReceived, true
	}
	return 0, false
}

// tbReason is a Taobao refund reason. NeedVoucher reasons require refundImages.
type tbReason struct {
	id          int
	desc        string
	needVoucher bool
}

// taobaoReasons returns the reasons offered for a return-and-refund (or
// refund-only) request and goods state. The list is a GUESS modelled on
// Taobao's buyer refund form.
func taobaoReasons(returnAndRefund bool, goods tbGoods) []tbReason {
	if returnAndRefund {
		return []tbReason{
			{4001, "七天无理由退换货", false},
			{4002, "质量问题", true},
			{4003, "商品与描述不符", true},
			{4004, "卖家发错货", true},
			{4005, "尺码/颜色不合适", false},
		}
	}
	switch goods {
	case goodsNotShipped:
		return []tbReason{
			{1001, "拍错/多拍/不想要", false},
			{1002, "协商一致退款", false},
			{1003, "缺货", false},
			{1004, "未按约定时间发货", false},
		}
	case goodsNotReceived:
		return []tbReason{
			{2001, "快递一直未送达", false},
			{2002, "拍错/多拍/不想要", false},
			{2003, "协商一致退款", false},
			{2004, "空包裹/少货", true},
		}
	default:
		return []tbReason{
			{3001, "商品破损/少件", true},
			{3002, "质量问题", true},
			{3003, "协商一致退款", false},
		}
	}
}

// reasonsFor returns the reasons for a refundType and goodsStatus already
// checked by checkTypeAndGoods.
func (s *Sandbox) reasonsFor(refundType, goodsStatus int) []tbReason {
	g, _ := s.tbGoodsOf(goodsStatus)
	return taobaoReasons(refundType == s.prof.Taobao.RefundType.ReturnAndRefund, g)
}

func (s *Sandbox) findTaobaoReason(refundType, goodsStatus, id int) (tbReason, bool) {
	for _, r := range s.reasonsFor(refundType, goodsStatus) {
		if r.id == id {
			return r, true
		}
	}
	return tbReason{}, false
}

// tbCompany is a return carrier of T3/T4.
type tbCompany struct {
	LogisticsCompanyName string `json:"logisticsCompanyName"`
	LogisticsCompanyCode string `json:"logisticsCompanyCode"`
}

// taobaoCompanies are the return carriers of T3/T4 (GUESS: common Chinese carriers).
var taobaoCompanies = []tbCompany{
	{LogisticsCompanyName: "顺丰速运", LogisticsCompanyCode: "SF"},
	{LogisticsCompanyName: "中通快递", LogisticsCompanyCode: "ZTO"},
	{LogisticsCompanyName: "圆通速递", LogisticsCompanyCode: "YTO"},
	{LogisticsCompanyName: "申通快递", LogisticsCompanyCode: "STO"},
	{LogisticsCompanyName: "韵达快递", LogisticsCompanyCode: "YUNDA"},
	{LogisticsCompanyName: "EMS", LogisticsCompanyCode: "EMS"},
	{LogisticsCompanyName: "京东快递", LogisticsCompanyCode: "JD"},
	{LogisticsCompanyName: "邮政快递包裹", LogisticsCompanyCode: "POSTB"},
}

// checkTypeAndGoods validates refundType and goodsStatus against the
// profile's integers: refund only or return and refund; not shipped, not
// received or received; no return of goods never shipped.
func (s *Sandbox) checkTypeAndGoods(refundType, goodsStatus int) *apiError {
	rt, g := s.prof.Taobao.RefundType, s.prof.Taobao.GoodsStatus
	if refundType != rt.RefundOnly && refundType != rt.ReturnAndRefund {
		return errf(classInvalid, "refundType %d 不合法 (want %d refund only or %d return and refund)", refundType, rt.RefundOnly, rt.ReturnAndRefund)
	}
	goods, ok := s.tbGoodsOf(goodsStatus)
	if !ok {
		return errf(classInvalid, "goodsStatus %d 不合法 (want %d not shipped, %d not received, %d received)", goodsStatus, g.NotShipped, g.NotReceived, g.Received)
	}
	if refundType == rt.ReturnAndRefund && goods == goodsNotShipped {
		return errf(classInvalid, "未发货的商品不能退货退款 (refundType %d needs goodsStatus %d or %d)", rt.ReturnAndRefund, g.NotReceived, g.Received)
	}
	return nil
}

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

// taobaoSubOrderLocked finds a sub-order, creating an order for it when AutoCreate is on.
func (s *Sandbox) taobaoSubOrderLocked(id string) (*Order, *SubOrder, *apiError) {
	if !validID(id) {
		return nil, nil, errf(classInvalid, "subOrderId %q 格式错误 (want 1-40 characters of [0-9A-Za-z_-])", excerpt.Of(id, 50))
	}
	if o := s.subOrders[id]; o != nil {
		return o, o.subOrder(id), nil
	}
	if !s.cfg.AutoCreate {
		return nil, nil, errf(classNotFound, "子订单不存在 (sub-order %s not found)", id)
	}
	o := &Order{Platform: PlatformTaobao, SubOrders: []*SubOrder{{SubOrderID: id}}, AutoCreated: true}
	if err := s.addOrderLocked(o); err != nil {
		return nil, nil, errf(classInvalid, "%v", err)
	}
	return o, o.subOrder(id), nil
}

func (s *Sandbox) taobaoRefundLocked(id string) (*Refund, *apiError) {
	if id == "" {
		return nil, errf(classMissing, "缺少必填参数 (missing required fields): refundId")
	}
	r := s.refunds[id]
	if r == nil || r.Platform != PlatformTaobao {
		return nil, errf(classNotFound, "逆向单不存在 (refund %s not found)", excerpt.Of(id, 50))
	}
	return r, nil
}

func maxFee(so *SubOrder) int64 { return so.Amount - so.Refunded }

func feeTips(max int64) string {
	return "最多可退 ¥" + platform.FenToYuan(max)
}

// taobaoRender: T2. saleFlag is sent only when the profile puts the render
// on the v2 family (DOC-TB-RENDER-V2 adds it; SEED-004's /open page has none).
func (s *Sandbox) taobaoRender(r *http.Request, _ *apiCall) (any, *apiError) {
	body, e := readBody(r)
	if e != nil {
		return nil, e
	}
	var req tbRenderIn
	if _, e := decodeJSON(body, &req, "subOrderId", "refundType", "goodsStatus"); e != nil {
		return nil, e
	}
	if e := s.checkTypeAndGoods(req.RefundType, req.GoodsStatus); e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, so, e := s.taobaoSubOrderLocked(req.SubOrderID)
	if e != nil {
		return nil, e
	}
	max := max(maxFee(so), 0)
	_, open := s.openRefunds[PlatformTaobao+":"+so.SubOrderID]
	rt, g := s.prof.Taobao.RefundType, s.prof.Taobao.GoodsStatus
	itoa := strconv.Itoa
	var out tbRenderOut
	out.Currency, out.DistributorID = currencyCNY, distributorID
	tpl := &out.RefundOrderTemplate
	for _, rs := range s.reasonsFor(req.RefundType, req.GoodsStatus) {
		tips := ""
		if rs.needVoucher {
			tips = "需要上传凭证 (refundImages required)"
		}
		tpl.RefundReasons = append(tpl.RefundReasons, tbReasonOut{ReasonDesc: rs.desc, ReasonID: rs.id, Tips: tips})
	}
	tpl.RefundTypeList = []string{itoa(rt.RefundOnly), itoa(rt.ReturnAndRefund)}
	if goods, _ := s.tbGoodsOf(req.GoodsStatus); goods == goodsNotShipped {
		tpl.RefundTypeList = []string{itoa(rt.RefundOnly)}
	}
	tpl.GoodsStatusList = []string{itoa(g.NotShipped), itoa(g.NotReceived), itoa(g.Received)}
	if req.RefundType == rt.ReturnAndRefund {
		tpl.GoodsStatusList = []string{itoa(g.NotReceived), itoa(g.Received)}
	}
	tpl.MaxRefundFee = tbMaxRefundFee{CanEditRefundFee: true, FeeTips: feeTips(max), MaxRefundFee: s.tbMoney(max),
		MinRefundFee: s.tbMoney(1), RefundFee: s.tbMoney(max)}
	tpl.RefundOrder = tbRefundOrder{CanEditFee: true, FeeTips: feeTips(max), GoodsStatus: req.GoodsStatus,
		PayOrderID: o.OrderID, RefundFee: s.tbMoney(max), RefundStatus: "", RefundType: req.RefundType}
	if s.prof.Endpoint(platform.TaobaoRender).Family == "v2" {
		out.SaleFlag = ptr(o.paid() && max >= 1 && !open)
	}
	return out, nil
}

// taobaoForm reads and checks the form of a submit (T7) or modify (T9).
func (s *Sandbox) taobaoForm(r *http.Request, idField string) (tbFormIn, int64, *apiError) {
	var req tbFormIn
	body, e := readBody(r)
	if e != nil {
		return req, 0, e
	}
	if _, e := decodeJSON(body, &req, idField, "refundType", "goodsStatus", "reasonId", "refundFee"); e != nil {
		return req, 0, e
	}
	if e := s.checkTypeAndGoods(req.RefundType, req.GoodsStatus); e != nil {
		return req, 0, e
	}
	fee, e := s.fen(req.RefundFee, true, "refundFee")
	return req, fee, e
}

// validateTaobaoForm checks reason, vouchers, fee and description of a submit or modify.
func (s *Sandbox) validateTaobaoForm(so *SubOrder, req tbFormIn, fee int64) (tbReason, *apiError) {
	rs, ok := s.findTaobaoReason(req.RefundType, req.GoodsStatus, req.ReasonID)
	if !ok {
		return rs, errf(classInvalid, "reasonId %d 不在可选原因中 (not a rendered reason for refundType %d, goodsStatus %d)", req.ReasonID, req.RefundType, req.GoodsStatus)
	}
	if rs.needVoucher && req.RefundImages == "" {
		return rs, errf(classMissing, "该退款原因需要上传凭证 (reason %d requires refundImages)", req.ReasonID)
	}
	max := maxFee(so)
	if max < 1 {
		return rs, errf(classIllegal, "子订单已无可退金额 (nothing left to refund on %s)", so.SubOrderID)
	}
	if fee < 1 || fee > max {
		return rs, errf(classInvalid, "refundFee %s 超出范围 (want %s..%s)", feeText(s, fee), feeText(s, 1), feeText(s, max))
	}
	if utf8.RuneCountInString(req.RefundDesc) > 200 {
		return rs, errf(classInvalid, "refundDesc 超过 200 字 (too long)")
	}
	if len(req.RefundImages) > 2000 {
		return rs, errf(classInvalid, "refundImages 过长 (over 2000 bytes)")
	}
	return rs, nil
}

// feeText writes a Taobao amount as it travels, for error messages.
func feeText(s *Sandbox, fen int64) string {
	b, _ := s.tbMoney(fen).MarshalJSON()
	return string(b)
}

// taobaoSubmit: T7.
func (s *Sandbox) taobaoSubmit(r *http.Request, _ *apiCall) (any, *apiError) {
	req, fee, e := s.taobaoForm(r, "subOrderId")
	if e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, so, e := s.taobaoSubOrderLocked(req.SubOrderID)
	if e != nil {
		return nil, e
	}
	key := PlatformTaobao + ":" + so.SubOrderID
	s.stats.RefundSubmissions[key]++
	if open, ok := s.openRefunds[key]; ok {
		s.stats.DuplicateSubmissions++
		return nil, errf(classDuplicate, "该子订单已有进行中的退款 (sub-order %s already has open refund %s)", so.SubOrderID, open)
	}
	if !o.paid() {
		return nil, errf(classIllegal, "订单未支付或已取消 (order %s is %s)", o.OrderID, o.Status)
	}
	rs, e := s.validateTaobaoForm(so, req, fee)
	if e != nil {
		return nil, e
	}
	now := s.now()
	ref := &Refund{Platform: PlatformTaobao, RefundID: s.newRefundIDLocked(PlatformTaobao), OrderID: o.OrderID,
		SubOrderID: so.SubOrderID, CreatedAt: now, RefundType: req.RefundType, GoodsStatus: req.GoodsStatus,
		ReasonID: rs.id, ReasonDesc: rs.desc, RefundFee: fee, RefundDesc: req.RefundDesc,
		RefundImages: req.RefundImages, Messages: []Message{}}
	s.refunds[ref.RefundID] = ref
	s.openRefunds[key] = ref.RefundID
	o.RefundIDs = append(o.RefundIDs, ref.RefundID)
	if req.RefundDesc != "" {
		ref.Messages = append(ref.Messages, Message{ID: s.randDigits(12), Owner: "buyer", Content: req.RefundDesc, Images: req.RefundImages, CreatedAt: now})
	}
	s.setStatusLocked(ref, platform.PhaseWaitSellerAgree, "买家发起了退款申请")
	return tbSubmitOut{Currency: currencyCNY, DistributorID: distributorID, SubmitSuccess: true, RefundID: ref.RefundID}, nil
}

func (s *Sandbox) newRefundIDLocked(platformName string) string {
	for {
		var id string
		if platformName == PlatformTaobao {
			id = s.randDigits(19)
		} else {
			id = "TQ" + s.randDigits(16)
		}
		if _, ok := s.refunds[id]; !ok {
			return id
		}
	}
}

// taobaoModify: T9.
func (s *Sandbox) taobaoModify(r *http.Request, _ *apiCall) (any, *apiError) {
	req, fee, e := s.taobaoForm(r, "refundId")
	if e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, e := s.taobaoRefundLocked(req.RefundID)
	if e != nil {
		return nil, e
	}
	if ref.Phase != platform.PhaseWaitSellerAgree && ref.Phase != platform.PhaseSellerRefused {
		return nil, illegal(ref, "modify")
	}
	o := s.orderOfLocked(ref)
	so := o.subOrder(ref.SubOrderID)
	rs, e := s.validateTaobaoForm(so, req, fee)
	if e != nil {
		return nil, e
	}
	ref.RefundType, ref.GoodsStatus, ref.ReasonID, ref.ReasonDesc = req.RefundType, req.GoodsStatus, rs.id, rs.desc
	ref.RefundFee, ref.RefundDesc, ref.RefundImages = fee, req.RefundDesc, req.RefundImages
	ref.RefuseReason = ""
	s.setStatusLocked(ref, platform.PhaseWaitSellerAgree, "买家修改了退款申请")
	return tbModifyOut{Currency: currencyCNY, DistributorID: distributorID, ModifySuccess: true}, nil
}

// taobaoCancel: T5 (refundId in the path, or the query).
func (s *Sandbox) taobaoCancel(r *http.Request, c *apiCall) (any, *apiError) {
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
	s.stats.Cancels[ref.RefundID]++
	if e := s.buyerCancelLocked(ref); e != nil {
		return nil, e
	}
	return tbCancelOut{DistributorID: distributorID, Currency: currencyCNY, CancelSuccess: true,
		RefundOrderAggregate: s.taobaoAggregateLocked(ref, aggSeed)}, nil
}

// taobaoQuery: T10 (?refundId=). With Config.TaobaoNumericStatus the
// refundStatus is the profile's number (the v2 query documents an integer).
func (s *Sandbox) taobaoQuery(r *http.Request, c *apiCall) (any, *apiError) {
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
	agg := s.taobaoAggregateLocked(ref, aggQuery)
	if s.cfg.TaobaoNumericStatus {
		agg.RefundOrder.RefundStatus = s.prof.TaobaoCode(ref.Phase)
	}
	return tbQueryOut{DistributorID: distributorID, Currency: currencyCNY, RefundOrderAggregate: agg}, nil
}

// taobaoList: T1. The filter and paging field names, the first page and the
// answer's items and total field names are the profile's (taobao.list); the
// refundStatus filter is the profile's number of a phase.
func (s *Sandbox) taobaoList(r *http.Request, _ *apiCall) (any, *apiError) {
	body, e := readBody(r)
	if e != nil {
		return nil, e
	}
	l := s.prof.Taobao.List
	fields, e := decodeJSON(body, nil, l.PageSizeField)
	if e != nil {
		return nil, e
	}
	var (
		refundID, orderID, salesOrderID string
		status                          *int
		start, end                      int64
		pageNo, pageSize                int
	)
	for _, f := range []struct {
		name string
		dst  any
	}{{"refundId", &refundID}, {l.OrderFilterField, &orderID}, {"salesOrderId", &salesOrderID}, {"refundStatus", &status},
		{"refundStartTime", &start}, {"refundEndTime", &end}, {l.PageNoField, &pageNo}, {l.PageSizeField, &pageSize}} {
		if e := field(fields, f.name, f.dst); e != nil {
			return nil, e
		}
	}
	maxSize := max(MaxListPageSize, l.MaxPageSize)
	if pageSize < 1 || pageSize > maxSize {
		return nil, errf(classInvalid, "%s %d 不合法 (want 1..%d)", l.PageSizeField, pageSize, maxSize)
	}
	if _, given := fields[l.PageNoField]; !given || (pageNo == 0 && l.FirstPage == 1) {
		pageNo = l.FirstPage // 0 is what a client that omits an empty field means by "the first page"
	}
	if pageNo < l.FirstPage || pageNo > 100000 {
		return nil, errf(classInvalid, "%s %d 不合法 (want >= %d)", l.PageNoField, pageNo, l.FirstPage)
	}
	var wantPhase platform.Phase
	if status != nil {
		for _, ph := range platform.Phases() {
			if s.prof.TaobaoCode(ph) == *status {
				wantPhase = ph
			}
		}
		if wantPhase == "" {
			return nil, errf(classInvalid, "refundStatus %d 不合法 (not a status code)", *status)
		}
	}
	if start < 0 || end < 0 {
		return nil, errf(classInvalid, "refundStartTime/refundEndTime must be milliseconds >= 0")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	candidates := s.refunds
	if orderID != "" {
		// The order's own refunds only: a list by order must not cost a scan
		// of every refund the sandbox holds (benchmarks open thousands).
		candidates = map[string]*Refund{}
		if o := s.orders[orderKey(PlatformTaobao, orderID)]; o != nil {
			for _, id := range o.RefundIDs {
				if ref := s.refunds[id]; ref != nil {
					candidates[id] = ref
				}
			}
		}
	}
	var matched []*Refund
	for _, ref := range candidates {
		if ref.Platform != PlatformTaobao {
			continue
		}
		o := s.orderOfLocked(ref)
		switch {
		case refundID != "" && ref.RefundID != refundID,
			orderID != "" && ref.OrderID != orderID,
			salesOrderID != "" && (o == nil || o.OrderNo != salesOrderID),
			wantPhase != "" && ref.Phase != wantPhase,
			start > 0 && ref.CreatedAt.UnixMilli() < start,
			end > 0 && ref.CreatedAt.UnixMilli() > end:
			continue
		}
		matched = append(matched, ref)
	}
	sort.Slice(matched, func(i, j int) bool {
		if !matched[i].CreatedAt.Equal(matched[j].CreatedAt) {
			return matched[i].CreatedAt.Before(matched[j].CreatedAt)
		}
		return matched[i].RefundID < matched[j].RefundID
	})
	size := pageSize
	if limit := s.faults.TaobaoListMaxPageSize; limit > 0 && size > limit {
		size = limit // the platform's page, not the one asked for: pages are cut with it
	}
	items := []tbAggregate{}
	first := (pageNo - l.FirstPage) * size
	for i := first; i < len(matched) && i < first+size; i++ {
		items = append(items, s.taobaoAggregateLocked(matched[i], aggSeed))
	}
	out := map[string]any{l.ItemsField: items, l.PageNoField: pageNo, l.PageSizeField: size}
	if !s.faults.TaobaoListOmitTotal {
		out[l.TotalField] = len(matched)
	}
	return out, nil
}

// taobaoSubmitMessage: T6.
func (s *Sandbox) taobaoSubmitMessage(r *http.Request, _ *apiCall) (any, *apiError) {
	body, e := readBody(r)
	if e != nil {
		return nil, e
	}
	var req tbMessageIn
	if _, e := decodeJSON(body, &req, "refundId", "refundMessage"); e != nil {
		return nil, e
	}
	if utf8.RuneCountInString(req.RefundMessage) > 500 {
		return nil, errf(classInvalid, "refundMessage 超过 500 字 (too long)")
	}
	if len(req.RefundImages) > 2000 {
		return nil, errf(classInvalid, "refundImages 过长 (over 2000 bytes)")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, e := s.taobaoRefundLocked(req.RefundID)
	if e != nil {
		return nil, e
	}
	if ref.terminal() {
		return nil, illegal(ref, "message")
	}
	ref.Messages = append(ref.Messages, Message{ID: s.randDigits(12), Owner: "buyer", Content: req.RefundMessage,
		Images: req.RefundImages, CreatedAt: s.now()})
	return tbMessageOut{Currency: currencyCNY, DistributorID: distributorID, MessageSubmitSuccess: true}, nil
}

// taobaoListMessages: T8 (shape INFERRED; not the profile's T1 list).
func (s *Sandbox) taobaoListMessages(r *http.Request, _ *apiCall) (any, *apiError) {
	body, e := readBody(r)
	if e != nil {
		return nil, e
	}
	var req tbListMessagesIn
	if _, e := decodeJSON(body, &req, "refundId", "pageSize"); e != nil {
		return nil, e
	}
	if req.PageSize < 1 || req.PageSize > MaxListPageSize {
		return nil, errf(classInvalid, "pageSize %d 不合法 (want 1..%d)", req.PageSize, MaxListPageSize)
	}
	if req.PageNo == 0 {
		req.PageNo = 1
	}
	if req.PageNo < 1 || req.PageNo > 100000 {
		return nil, errf(classInvalid, "pageNo %d 不合法 (want >= 1)", req.PageNo)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, e := s.taobaoRefundLocked(req.RefundID)
	if e != nil {
		return nil, e
	}
	out := tbListMessagesOut{Total: len(ref.Messages), PageNo: req.PageNo, PageSize: req.PageSize, List: []tbMessage{}}
	start := (req.PageNo - 1) * req.PageSize
	for i := start; i < len(ref.Messages) && i < start+req.PageSize; i++ {
		m := ref.Messages[i]
		out.List = append(out.List, tbMessage{MessageID: m.ID, Owner: m.Owner, Content: m.Content, Images: m.Images,
			CreateTime: m.CreatedAt.UnixMilli()})
	}
	return out, nil
}

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

// aggStyle is which documented refundOrderAggregate to write.
type aggStyle int

const (
	// aggSeed is SEED-003's (the cancel's): receiverAddress an object,
	// logisticCompanyCode (sic). The list (T1, response UNKNOWN) and the
	// return logistics render (T3, UNKNOWN) use it too.
	aggSeed aggStyle = iota
	// aggQuery is DOC-TB-QUERY-V2's: receiverAddress a string,
	// logisticsCompanyCode.
	aggQuery
)

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

// deadline is when an open refund's current wait times out (the platform's
// timeoutDate / gmtTimeOut): refundTimeout after its last change.
func (s *Sandbox) deadline(ref *Refund) (time.Time, bool) {
	if ref.terminal() {
		return time.Time{}, false
	}
	return ref.ModifiedAt.Add(refundTimeout), true
}
