package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/refundhub/refundhub/internal/apiclient"
)

const (
	distributorID = "1231294146025" // the documented example value
	currencyCNY   = "CNY"
	supplierID    = "2206588413420"
	supplierNick  = "沙箱旗舰店"
)

// sellerAddress is where returns go (both platforms).
var sellerAddress = apiclient.ReceiverAddress{Receiver: "沙箱售后", Phone: "13800000000",
	DetailAddress: "浙江省杭州市余杭区文一西路969号 沙箱退货仓"}

// tbReason is a Taobao refund reason. NeedVoucher reasons require refundImages.
type tbReason struct {
	id          int
	desc        string
	needVoucher bool
}

// taobaoReasons returns the reasons offered for a refund type and goods
// status. The list is a GUESS modelled on Taobao's buyer refund form.
func taobaoReasons(refundType, goodsStatus int) []tbReason {
	if refundType == apiclient.TaobaoReturnAndRefund {
		return []tbReason{
			{4001, "七天无理由退换货", false},
			{4002, "质量问题", true},
			{4003, "商品与描述不符", true},
			{4004, "卖家发错货", true},
			{4005, "尺码/颜色不合适", false},
		}
	}
	switch goodsStatus {
	case apiclient.TaobaoGoodsNotShipped:
		return []tbReason{
			{1001, "拍错/多拍/不想要", false},
			{1002, "协商一致退款", false},
			{1003, "缺货", false},
			{1004, "未按约定时间发货", false},
		}
	case apiclient.TaobaoGoodsNotReceived:
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

func findTaobaoReason(refundType, goodsStatus, id int) (tbReason, bool) {
	for _, r := range taobaoReasons(refundType, goodsStatus) {
		if r.id == id {
			return r, true
		}
	}
	return tbReason{}, false
}

// taobaoCompanies are the return carriers of T3/T4 (GUESS: common Chinese carriers).
var taobaoCompanies = []apiclient.LogisticsCompany{
	{LogisticsCompanyName: "顺丰速运", LogisticsCompanyCode: "SF"},
	{LogisticsCompanyName: "中通快递", LogisticsCompanyCode: "ZTO"},
	{LogisticsCompanyName: "圆通速递", LogisticsCompanyCode: "YTO"},
	{LogisticsCompanyName: "申通快递", LogisticsCompanyCode: "STO"},
	{LogisticsCompanyName: "韵达快递", LogisticsCompanyCode: "YUNDA"},
	{LogisticsCompanyName: "EMS", LogisticsCompanyCode: "EMS"},
	{LogisticsCompanyName: "京东快递", LogisticsCompanyCode: "JD"},
	{LogisticsCompanyName: "邮政快递包裹", LogisticsCompanyCode: "POSTB"},
}

func checkTypeAndGoods(refundType, goodsStatus int) *apiError {
	if refundType != apiclient.TaobaoRefundOnly && refundType != apiclient.TaobaoReturnAndRefund {
		return errf(apiclient.CodeInvalidParam, "refundType %d 不合法 (want 1 refund only or 2 return and refund)", refundType)
	}
	if goodsStatus < apiclient.TaobaoGoodsNotShipped || goodsStatus > apiclient.TaobaoGoodsReceived {
		return errf(apiclient.CodeInvalidParam, "goodsStatus %d 不合法 (want 1 not shipped, 2 not received, 3 received)", goodsStatus)
	}
	if refundType == apiclient.TaobaoReturnAndRefund && goodsStatus == apiclient.TaobaoGoodsNotShipped {
		return errf(apiclient.CodeInvalidParam, "未发货的商品不能退货退款 (refundType 2 needs goodsStatus 2 or 3)")
	}
	return nil
}

// taobaoSubOrderLocked finds a sub-order, creating an order for it when AutoCreate is on.
func (s *Sandbox) taobaoSubOrderLocked(id string) (*Order, *SubOrder, *apiError) {
	if !validID(id) {
		return nil, nil, errf(apiclient.CodeInvalidParam, "subOrderId %q 格式错误 (want 1-40 characters of [0-9A-Za-z_-])", truncate(id, 50))
	}
	if o := s.subOrders[id]; o != nil {
		return o, o.subOrder(id), nil
	}
	if !s.cfg.AutoCreate {
		return nil, nil, errf(apiclient.CodeNotFound, "子订单不存在 (sub-order %s not found)", id)
	}
	o := &Order{Platform: PlatformTaobao, SubOrders: []*SubOrder{{SubOrderID: id}}, AutoCreated: true}
	if err := s.addOrderLocked(o); err != nil {
		return nil, nil, errf(apiclient.CodeInvalidParam, "%v", err)
	}
	return o, o.subOrder(id), nil
}

func (s *Sandbox) taobaoRefundLocked(id string) (*Refund, *apiError) {
	if id == "" {
		return nil, errf(apiclient.CodeMissingParam, "缺少必填参数 (missing required fields): refundId")
	}
	r := s.refunds[id]
	if r == nil || r.Platform != PlatformTaobao {
		return nil, errf(apiclient.CodeNotFound, "逆向单不存在 (refund %s not found)", truncate(id, 50))
	}
	return r, nil
}

func maxFee(so *SubOrder) int64 { return so.Amount - so.Refunded }

func feeTips(max int64) string {
	return fmt.Sprintf("最多可退 ¥%d.%02d", max/100, max%100)
}

// taobaoRender: T2.
func (s *Sandbox) taobaoRender(r *http.Request, _ *apiCall) (any, *apiError) {
	body, e := readBody(r)
	if e != nil {
		return nil, e
	}
	var req apiclient.RenderRequest
	if _, e := decodeJSON(body, &req, "subOrderId", "refundType", "goodsStatus"); e != nil {
		return nil, e
	}
	if e := checkTypeAndGoods(req.RefundType, req.GoodsStatus); e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, so, e := s.taobaoSubOrderLocked(req.SubOrderID)
	if e != nil {
		return nil, e
	}
	max := maxFee(so)
	_, open := s.openRefunds[PlatformTaobao+":"+so.SubOrderID]
	saleFlag := o.paid() && max >= 1 && !open
	reasons := []apiclient.RefundReason{}
	for _, rs := range taobaoReasons(req.RefundType, req.GoodsStatus) {
		tips := ""
		if rs.needVoucher {
			tips = "需要上传凭证 (refundImages required)"
		}
		reasons = append(reasons, apiclient.RefundReason{ReasonDesc: rs.desc, ReasonID: rs.id, Tips: tips})
	}
	refundTypes := []string{"1", "2"}
	if req.GoodsStatus == apiclient.TaobaoGoodsNotShipped {
		refundTypes = []string{"1"}
	}
	goodsList := []string{"1", "2", "3"}
	if req.RefundType == apiclient.TaobaoReturnAndRefund {
		goodsList = []string{"2", "3"}
	}
	if max < 0 {
		max = 0
	}
	return apiclient.RenderResponse{
		Currency:      currencyCNY,
		DistributorID: distributorID,
		RefundOrderTemplate: apiclient.RefundOrderTemplate{
			GoodsStatusList: goodsList,
			MaxRefundFee: apiclient.MaxRefundFee{CanEditRefundFee: true, FeeTips: feeTips(max),
				MaxRefundFee: apiclient.Amount(max), MinRefundFee: 1, RefundFee: apiclient.Amount(max)},
			RefundOrder: apiclient.RefundOrder{CanEditFee: true, FeeTips: feeTips(max), GoodsStatus: req.GoodsStatus,
				PayOrderID: apiclient.FlexString(o.OrderID), RefundFee: apiclient.Amount(max), RefundType: req.RefundType},
			RefundReasons:  reasons,
			RefundTypeList: refundTypes,
		},
		SaleFlag: &saleFlag,
	}, nil
}

// validateTaobaoForm checks reason, vouchers, fee and description of a submit or modify.
func validateTaobaoForm(so *SubOrder, refundType, goodsStatus, reasonID int, fee int64, desc, images string) (tbReason, *apiError) {
	rs, ok := findTaobaoReason(refundType, goodsStatus, reasonID)
	if !ok {
		return rs, errf(apiclient.CodeInvalidParam, "reasonId %d 不在可选原因中 (not a rendered reason for refundType %d, goodsStatus %d)", reasonID, refundType, goodsStatus)
	}
	if rs.needVoucher && images == "" {
		return rs, errf(apiclient.CodeMissingParam, "该退款原因需要上传凭证 (reason %d requires refundImages)", reasonID)
	}
	max := maxFee(so)
	if max < 1 {
		return rs, errf(apiclient.CodeIllegalState, "子订单已无可退金额 (nothing left to refund on %s)", so.SubOrderID)
	}
	if fee < 1 || fee > max {
		return rs, errf(apiclient.CodeInvalidParam, "refundFee %d 超出范围 (want 1..%d)", fee, max)
	}
	if utf8.RuneCountInString(desc) > 200 {
		return rs, errf(apiclient.CodeInvalidParam, "refundDesc 超过 200 字 (too long)")
	}
	if len(images) > 2000 {
		return rs, errf(apiclient.CodeInvalidParam, "refundImages 过长 (over 2000 bytes)")
	}
	return rs, nil
}

// taobaoSubmit: T7.
func (s *Sandbox) taobaoSubmit(r *http.Request, _ *apiCall) (any, *apiError) {
	body, e := readBody(r)
	if e != nil {
		return nil, e
	}
	var req apiclient.SubmitRefundRequest
	if _, e := decodeJSON(body, &req, "subOrderId", "refundType", "goodsStatus", "reasonId", "refundFee"); e != nil {
		return nil, e
	}
	if e := checkTypeAndGoods(req.RefundType, req.GoodsStatus); e != nil {
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
		return nil, errf(apiclient.CodeDuplicateRefund, "该子订单已有进行中的退款 (sub-order %s already has open refund %s)", so.SubOrderID, open)
	}
	if !o.paid() {
		return nil, errf(apiclient.CodeIllegalState, "订单未支付或已取消 (order %s is %s)", o.OrderID, o.Status)
	}
	rs, e := validateTaobaoForm(so, req.RefundType, req.GoodsStatus, req.ReasonID, int64(req.RefundFee), req.RefundDesc, req.RefundImages)
	if e != nil {
		return nil, e
	}
	now := s.now()
	ref := &Refund{Platform: PlatformTaobao, RefundID: s.newRefundIDLocked(PlatformTaobao), OrderID: o.OrderID,
		SubOrderID: so.SubOrderID, CreatedAt: now, RefundType: req.RefundType, GoodsStatus: req.GoodsStatus,
		ReasonID: rs.id, ReasonDesc: rs.desc, RefundFee: int64(req.RefundFee), RefundDesc: req.RefundDesc,
		RefundImages: req.RefundImages, Messages: []Message{}}
	s.refunds[ref.RefundID] = ref
	s.openRefunds[key] = ref.RefundID
	o.RefundIDs = append(o.RefundIDs, ref.RefundID)
	if req.RefundDesc != "" {
		ref.Messages = append(ref.Messages, Message{ID: s.randDigits(12), Owner: "buyer", Content: req.RefundDesc, Images: req.RefundImages, CreatedAt: now})
	}
	s.setStatusLocked(ref, tbWaitAgree, "买家发起了退款申请")
	return apiclient.SubmitRefundResponse{Currency: currencyCNY, DistributorID: distributorID, SubmitSuccess: true,
		RefundID: apiclient.FlexString(ref.RefundID)}, nil
}

func (s *Sandbox) newRefundIDLocked(platform string) string {
	for {
		var id string
		if platform == PlatformTaobao {
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
	body, e := readBody(r)
	if e != nil {
		return nil, e
	}
	var req apiclient.ModifyRefundRequest
	if _, e := decodeJSON(body, &req, "refundId", "refundType", "goodsStatus", "reasonId", "refundFee"); e != nil {
		return nil, e
	}
	if e := checkTypeAndGoods(req.RefundType, req.GoodsStatus); e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, e := s.taobaoRefundLocked(req.RefundID)
	if e != nil {
		return nil, e
	}
	if ref.Status != tbWaitAgree && ref.Status != tbRefused {
		return nil, illegal(ref, "modify")
	}
	o := s.orderOfLocked(ref)
	so := o.subOrder(ref.SubOrderID)
	rs, e := validateTaobaoForm(so, req.RefundType, req.GoodsStatus, req.ReasonID, int64(req.RefundFee), req.RefundDesc, req.RefundImages)
	if e != nil {
		return nil, e
	}
	ref.RefundType, ref.GoodsStatus, ref.ReasonID, ref.ReasonDesc = req.RefundType, req.GoodsStatus, rs.id, rs.desc
	ref.RefundFee, ref.RefundDesc, ref.RefundImages = int64(req.RefundFee), req.RefundDesc, req.RefundImages
	ref.RefuseReason = ""
	s.setStatusLocked(ref, tbWaitAgree, "买家修改了退款申请")
	return apiclient.ModifyRefundResponse{Currency: currencyCNY, DistributorID: distributorID, ModifySuccess: true}, nil
}

// taobaoCancel: T5 (GET, refundId in the path or the query).
func (s *Sandbox) taobaoCancel(r *http.Request, c *apiCall) (any, *apiError) {
	id := c.pathRefundID
	if id == "" {
		id = r.URL.Query().Get("refundId")
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
	return apiclient.CancelResponse{DistributorID: distributorID, Currency: currencyCNY, CancelSuccess: true,
		RefundOrderAggregate: s.taobaoAggregateLocked(ref)}, nil
}

// taobaoQuery: T10 (GET ?refundId=).
func (s *Sandbox) taobaoQuery(r *http.Request, c *apiCall) (any, *apiError) {
	id := c.pathRefundID
	if id == "" {
		id = r.URL.Query().Get("refundId")
	}
	s.mu.Lock()
	ref, e := s.taobaoRefundLocked(id)
	if e != nil {
		s.mu.Unlock()
		return nil, e
	}
	resp := apiclient.QueryRefundResponse{DistributorID: distributorID, Currency: currencyCNY,
		RefundOrderAggregate: s.taobaoAggregateLocked(ref)}
	status := ref.Status
	s.mu.Unlock()
	if !s.cfg.TaobaoNumericStatus {
		return resp, nil
	}
	// The v2 query documents refundStatus as an integer (reference §4.2).
	code, ok := taobaoStatusCode(status)
	if !ok {
		return resp, nil
	}
	return numericStatus{resp, code}, nil
}

// numericStatus marshals a QueryRefundResponse with refundStatus as a number.
type numericStatus struct {
	resp apiclient.QueryRefundResponse
	code int
}

func (n numericStatus) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(n.resp)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	var agg map[string]json.RawMessage
	if err := json.Unmarshal(m["refundOrderAggregate"], &agg); err != nil {
		return nil, err
	}
	var ro map[string]json.RawMessage
	if err := json.Unmarshal(agg["refundOrder"], &ro); err != nil {
		return nil, err
	}
	ro["refundStatus"] = json.RawMessage(strconv.Itoa(n.code))
	if agg["refundOrder"], err = json.Marshal(ro); err != nil {
		return nil, err
	}
	if m["refundOrderAggregate"], err = json.Marshal(agg); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// taobaoStatusCode inverts apiclient.DefaultTaobaoStatusCodes.
func taobaoStatusCode(status string) (int, bool) {
	for code, name := range apiclient.DefaultTaobaoStatusCodes() {
		if string(name) == status {
			return code, true
		}
	}
	return 0, false
}

// taobaoList: T1.
func (s *Sandbox) taobaoList(r *http.Request, _ *apiCall) (any, *apiError) {
	body, e := readBody(r)
	if e != nil {
		return nil, e
	}
	var req apiclient.ListRefundsRequest
	if _, e := decodeJSON(body, &req, "pageSize"); e != nil {
		return nil, e
	}
	if req.PageSize < 1 || req.PageSize > MaxListPageSize {
		return nil, errf(apiclient.CodeInvalidParam, "pageSize %d 不合法 (want 1..%d)", req.PageSize, MaxListPageSize)
	}
	if req.PageNo == 0 {
		req.PageNo = 1
	}
	if req.PageNo < 1 || req.PageNo > 100000 {
		return nil, errf(apiclient.CodeInvalidParam, "pageNo %d 不合法 (want >= 1)", req.PageNo)
	}
	var wantStatus string
	if req.RefundStatus != nil {
		name, ok := apiclient.DefaultTaobaoStatusCodes()[*req.RefundStatus]
		if !ok {
			return nil, errf(apiclient.CodeInvalidParam, "refundStatus %d 不合法 (want 0..5)", *req.RefundStatus)
		}
		wantStatus = string(name)
	}
	if req.RefundStartTime < 0 || req.RefundEndTime < 0 {
		return nil, errf(apiclient.CodeInvalidParam, "refundStartTime/refundEndTime must be milliseconds >= 0")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	candidates := s.refunds
	if req.PurchaseOrderID != "" {
		// The order's own refunds only: a list by order must not cost a scan
		// of every refund the sandbox holds (benchmarks open thousands).
		candidates = map[string]*Refund{}
		if o := s.orders[orderKey(PlatformTaobao, req.PurchaseOrderID)]; o != nil {
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
		case req.RefundID != "" && ref.RefundID != req.RefundID,
			req.PurchaseOrderID != "" && ref.OrderID != req.PurchaseOrderID,
			req.SalesOrderID != "" && (o == nil || o.OrderNo != req.SalesOrderID),
			wantStatus != "" && ref.Status != wantStatus,
			req.RefundStartTime > 0 && ref.CreatedAt.UnixMilli() < req.RefundStartTime,
			req.RefundEndTime > 0 && ref.CreatedAt.UnixMilli() > req.RefundEndTime:
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
	size := req.PageSize
	if limit := s.faults.TaobaoListMaxPageSize; limit > 0 && size > limit {
		size = limit // the platform's page, not the one asked for: pages are cut with it
	}
	total := len(matched)
	resp := taobaoListPage{Total: &total, PageNo: req.PageNo, PageSize: size, List: []apiclient.RefundOrderAggregate{}}
	if s.faults.TaobaoListOmitTotal {
		resp.Total = nil
	}
	start := (req.PageNo - 1) * size
	for i := start; i < len(matched) && i < start+size; i++ {
		resp.List = append(resp.List, s.taobaoAggregateLocked(matched[i]))
	}
	return resp, nil
}

// taobaoListPage is T1's data: apiclient.ListRefundsResponse's shape, with
// total a pointer so Faults.TaobaoListOmitTotal can leave the key out.
type taobaoListPage struct {
	Total    *int                             `json:"total,omitempty"`
	PageNo   int                              `json:"pageNo"`
	PageSize int                              `json:"pageSize"`
	List     []apiclient.RefundOrderAggregate `json:"list"`
}

// taobaoSubmitMessage: T6.
func (s *Sandbox) taobaoSubmitMessage(r *http.Request, _ *apiCall) (any, *apiError) {
	body, e := readBody(r)
	if e != nil {
		return nil, e
	}
	var req apiclient.SubmitMessageRequest
	if _, e := decodeJSON(body, &req, "refundId", "refundMessage"); e != nil {
		return nil, e
	}
	if utf8.RuneCountInString(req.RefundMessage) > 500 {
		return nil, errf(apiclient.CodeInvalidParam, "refundMessage 超过 500 字 (too long)")
	}
	if len(req.RefundImages) > 2000 {
		return nil, errf(apiclient.CodeInvalidParam, "refundImages 过长 (over 2000 bytes)")
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
	return apiclient.SubmitMessageResponse{Currency: currencyCNY, DistributorID: distributorID, MessageSubmitSuccess: true}, nil
}

// taobaoListMessages: T8.
func (s *Sandbox) taobaoListMessages(r *http.Request, _ *apiCall) (any, *apiError) {
	body, e := readBody(r)
	if e != nil {
		return nil, e
	}
	var req apiclient.ListMessagesRequest
	if _, e := decodeJSON(body, &req, "refundId", "pageSize"); e != nil {
		return nil, e
	}
	if req.PageSize < 1 || req.PageSize > MaxListPageSize {
		return nil, errf(apiclient.CodeInvalidParam, "pageSize %d 不合法 (want 1..%d)", req.PageSize, MaxListPageSize)
	}
	if req.PageNo == 0 {
		req.PageNo = 1
	}
	if req.PageNo < 1 || req.PageNo > 100000 {
		return nil, errf(apiclient.CodeInvalidParam, "pageNo %d 不合法 (want >= 1)", req.PageNo)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, e := s.taobaoRefundLocked(req.RefundID)
	if e != nil {
		return nil, e
	}
	resp := apiclient.ListMessagesResponse{Total: len(ref.Messages), PageNo: req.PageNo, PageSize: req.PageSize,
		List: []apiclient.RefundMessage{}}
	start := (req.PageNo - 1) * req.PageSize
	for i := start; i < len(ref.Messages) && i < start+req.PageSize; i++ {
		m := ref.Messages[i]
		resp.List = append(resp.List, apiclient.RefundMessage{MessageID: apiclient.FlexString(m.ID), Owner: m.Owner,
			Content: m.Content, Images: m.Images, CreateTime: apiclient.FlexInt64(m.CreatedAt.UnixMilli())})
	}
	return resp, nil
}

// taobaoReturnLogisticsRender: T3 (GET ?refundId=). Only while the seller waits for the return.
func (s *Sandbox) taobaoReturnLogisticsRender(r *http.Request, c *apiCall) (any, *apiError) {
	id := c.pathRefundID
	if id == "" {
		id = r.URL.Query().Get("refundId")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, e := s.taobaoRefundLocked(id)
	if e != nil {
		return nil, e
	}
	if ref.Status != tbWaitReturn {
		return nil, illegal(ref, "return logistics render")
	}
	agg := s.taobaoAggregateLocked(ref)
	return apiclient.ReturnLogisticsRenderResponse{Currency: currencyCNY, DistributorID: distributorID,
		LogisticsCompanies: slices.Clone(taobaoCompanies), ReceiverAddress: sellerAddress, RefundOrderAggregate: &agg}, nil
}

// taobaoReturnLogisticsSubmit: T4.
func (s *Sandbox) taobaoReturnLogisticsSubmit(r *http.Request, _ *apiCall) (any, *apiError) {
	body, e := readBody(r)
	if e != nil {
		return nil, e
	}
	var req apiclient.ReturnLogisticsSubmitRequest
	if _, e := decodeJSON(body, &req, "refundId", "logisticsCompanyCode", "logisticsNo"); e != nil {
		return nil, e
	}
	if len(req.BuyerPhone) > 30 || utf8.RuneCountInString(req.ReturnGoodsDesc) > 200 {
		return nil, errf(apiclient.CodeInvalidParam, "buyerPhone or returnGoodsDesc too long")
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
		return nil, errf(apiclient.CodeIllegalState, "退货物流已提交 (refund %s already has return logistics %s)", ref.RefundID, ref.Return.TrackingNo)
	}
	if ref.Status != tbWaitReturn {
		return nil, illegal(ref, "return logistics submit")
	}
	var company *apiclient.LogisticsCompany
	for i := range taobaoCompanies {
		if taobaoCompanies[i].LogisticsCompanyCode == req.LogisticsCompanyCode {
			company = &taobaoCompanies[i]
		}
	}
	if company == nil {
		return nil, errf(apiclient.CodeInvalidParam, "logisticsCompanyCode %q 不在可选物流公司中 (see the return logistics render)", truncate(req.LogisticsCompanyCode, 40))
	}
	if !validTracking(req.LogisticsNo) {
		return nil, errf(apiclient.CodeInvalidParam, "logisticsNo %q 格式错误 (want 6-40 letters or digits)", truncate(req.LogisticsNo, 50))
	}
	ref.Return = &ReturnShipment{CompanyCode: company.LogisticsCompanyCode, CompanyName: company.LogisticsCompanyName,
		TrackingNo: req.LogisticsNo, BuyerPhone: req.BuyerPhone, Description: req.ReturnGoodsDesc, SubmittedAt: s.now()}
	s.setStatusLocked(ref, tbWaitConfirm, "买家已退货，等待卖家确认收货")
	return apiclient.ReturnLogisticsSubmitResponse{Currency: currencyCNY, DistributorID: distributorID, SubmitSuccess: true}, nil
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

// taobaoAggregateLocked renders a refund as the documented refundOrderAggregate.
func (s *Sandbox) taobaoAggregateLocked(ref *Refund) apiclient.RefundOrderAggregate {
	o := s.orderOfLocked(ref)
	var so *SubOrder
	if o != nil {
		so = o.subOrder(ref.SubOrderID)
	}
	if o == nil || so == nil { // cannot happen: refunds keep their order
		o, so = &Order{OrderID: ref.OrderID}, &SubOrder{SubOrderID: ref.SubOrderID, Quantity: 1}
	}
	ro := apiclient.RefundOrder{
		CanEditFee:         ref.Status == tbWaitAgree || ref.Status == tbRefused,
		FeeTips:            feeTips(max(maxFee(so), 0)),
		GoodsStatus:        ref.GoodsStatus,
		PayOrderID:         apiclient.FlexString(o.OrderID),
		ReasonDesc:         ref.ReasonDesc,
		ReasonID:           ref.ReasonID,
		RefundDesc:         ref.RefundDesc,
		RefundFee:          apiclient.Amount(ref.RefundFee),
		RefundID:           apiclient.FlexString(ref.RefundID),
		RefundStatus:       apiclient.FlexString(ref.Status),
		RefundType:         ref.RefundType,
		SellerRefuseReason: ref.RefuseReason,
	}
	if !ref.terminal() {
		deadline := ref.ModifiedAt.Add(7 * 24 * time.Hour)
		ro.TimeoutDate = fmtTime(deadline)
		ro.RemainingTime = strconv.FormatInt(max(deadline.Sub(s.now()).Milliseconds(), 0), 10)
		switch {
		case ref.waitingForSeller():
			ro.TimeoutType = "SELLER_AGREE"
		case ref.waitingForReturn():
			ro.TimeoutType = "BUYER_RETURN_GOODS"
		case ref.waitingForReceipt():
			ro.TimeoutType = "SELLER_CONFIRM_GOODS"
		case ref.Status == tbRefused:
			ro.TimeoutType = "BUYER_MODIFY"
		}
	}
	if ref.Status == tbRefused {
		ro.SellerRefuseReasonDescribe = ref.RefuseReason
	}
	qty := so.Quantity
	if qty < 1 {
		qty = 1
	}
	agg := apiclient.RefundOrderAggregate{
		RefundOrder: ro,
		PurchaseOrderLine: apiclient.PurchaseOrderLine{
			SalesOrderID:        apiclient.FlexString(o.OrderNo),
			SupplierID:          supplierID,
			Quantity:            qty,
			TotalPrice:          apiclient.Amount(so.Amount + so.PostFee),
			ItemTitle:           so.Title,
			PostFee:             apiclient.Amount(so.PostFee),
			ProductFee:          apiclient.Amount(so.Amount),
			SalesMarket:         "taobao",
			PurchaseOrderLineID: apiclient.FlexString(so.SubOrderID),
			CreateTime:          apiclient.FlexInt64(o.CreatedAt.UnixMilli()),
			PurchaseOrderID:     apiclient.FlexString(o.OrderID),
			Price:               apiclient.Amount(so.Amount / int64(qty)),
			SupplierNick:        supplierNick,
			Currency:            currencyCNY,
			ItemImageURL:        "https://img.alicdn.com/imgextra/sandbox/" + so.SubOrderID + ".jpg",
		},
	}
	if ref.ReturnRequired || ref.Return != nil {
		lg := &apiclient.Logistics{ReceiverAddress: sellerAddress, SellerAgreeReturnDescribe: "同意退货，请按地址寄回并填写物流单号"}
		if ref.Return != nil {
			lg.ReturnGoodsDesc, lg.BuyerPhone, lg.LogisticsNo = ref.Return.Description, ref.Return.BuyerPhone, ref.Return.TrackingNo
			lg.LogisticsCompany = apiclient.LogisticsCompany{LogisticsCompanyName: ref.Return.CompanyName,
				LogisticsCompanyCode: ref.Return.CompanyCode}
		}
		agg.Logistics = lg
	}
	return agg
}
