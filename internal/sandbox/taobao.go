package sandbox

import (
	"net/http"
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

// taobaoSubOrderLocked finds a sub-order, creating an order for it when AutoCreate is on.
func (s *Sandbox) taobaoSubOrderLocked(id string) (*Order, *SubOrder, *apiError) {
	return s.taobaoSubOrderInLocked(id, "")
}

// taobaoSubOrderInLocked is taobaoSubOrderLocked for a caller that may name
// the order (a seed's order_id). An auto-created order carries the id asked
// for, so GET /_sandbox/orders/{id} finds it: orderID when given, else the
// sub-order's own id, as the Taobao API names only the sub-order (and a
// one-item Taobao order's id equals its line's). Only when that id already
// belongs to another order is one generated, rather than failing a demo
// request over a clash the caller never asked about.
func (s *Sandbox) taobaoSubOrderInLocked(id, orderID string) (*Order, *SubOrder, *apiError) {
	if !validID(id) {
		return nil, nil, errf(classInvalid, "subOrderId %q 格式错误 (want 1-40 characters of [0-9A-Za-z_-])", excerpt.Of(id, 50))
	}
	if o := s.subOrders[id]; o != nil {
		return o, o.subOrder(id), nil
	}
	if !s.cfg.AutoCreate {
		return nil, nil, errf(classNotFound, "子订单不存在 (sub-order %s not found)", id)
	}
	if orderID == "" {
		orderID = id
		if _, taken := s.orders[orderKey(PlatformTaobao, orderID)]; taken {
			orderID = ""
		}
	}
	o := &Order{Platform: PlatformTaobao, OrderID: orderID, SubOrders: []*SubOrder{{SubOrderID: id}}, AutoCreated: true}
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
		ref.Messages = append(ref.Messages, Message{ID: s.randDigits(12), Owner: OwnerBuyer, Content: req.RefundDesc, Images: req.RefundImages, CreatedAt: now})
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
	s.stats.Modifications[ref.RefundID]++
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

const (
	// aggSeed is SEED-003's (the cancel's): receiverAddress an object,
	// logisticCompanyCode (sic). The list (T1, response UNKNOWN) and the
	// return logistics render (T3, UNKNOWN) use it too.
	aggSeed aggStyle = iota
	// aggQuery is DOC-TB-QUERY-V2's: receiverAddress a string,
	// logisticsCompanyCode.
	aggQuery
)

// deadline is when an open refund's current wait times out (the platform's
// timeoutDate / gmtTimeOut): refundTimeout after its last change.
func (s *Sandbox) deadline(ref *Refund) (time.Time, bool) {
	if ref.terminal() {
		return time.Time{}, false
	}
	return ref.ModifiedAt.Add(refundTimeout), true
}
