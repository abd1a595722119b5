package sandbox

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
)

// abGoods is what the buyer has of the goods in a 1688 refund, whatever the
// profile's goodsStatus strings are (alibaba.goods_status).
type abGoods int

const (
	abInSaleWaitSellerSend abGoods = iota
	abInSaleWaitBuyerReceive
	abInSaleBuyerReceived
	abAfterSaleNotReceived
	abAfterSaleReceived
)

// abGoodsOf reads a goodsStatus string under the profile.
func (s *Sandbox) abGoodsOf(goodsStatus string) (abGoods, bool) {
	i := slices.Index(s.prof.Alibaba.GoodsStatus.All(), goodsStatus)
	return abGoods(i), i >= 0
}

// abReason is a 1688 refund reason.
type abReason struct {
	id          int64
	name        string
	needVoucher bool
	noCarriage  bool
}

// alibabaReasons returns the reasons offered for a goods state. Ids and
// names are a GUESS modelled on 1688's buyer refund form.
func alibabaReasons(goods abGoods) []abReason {
	switch goods {
	case abInSaleWaitSellerSend:
		return []abReason{
			{20001, "我不想要了", false, false},
			{20002, "拍错/多拍", false, false},
			{20003, "卖家缺货", false, false},
			{20004, "未按约定时间发货", false, false},
		}
	case abInSaleWaitBuyerReceive, abAfterSaleNotReceived:
		return []abReason{
			{20011, "物流一直未送达", false, false},
			{20012, "我不想要了", false, true},
			{20013, "快递丢件/破损", true, false},
		}
	default: // goods received
		return []abReason{
			{20021, "质量问题", true, false},
			{20022, "商品与描述不符", true, false},
			{20023, "少件/漏发", true, false},
			{20024, "卖家发错货", true, false},
			{20025, "七天无理由退货", false, true},
		}
	}
}

// abReasonsFor returns the reasons for a goodsStatus string (none for an
// unknown one).
func (s *Sandbox) abReasonsFor(goodsStatus string) []abReason {
	g, ok := s.abGoodsOf(goodsStatus)
	if !ok {
		return nil
	}
	return alibabaReasons(g)
}

// abCompany is one carrier of A6 (upstream shape).
type abCompany struct {
	ID           int64  `json:"id"`
	CompanyName  string `json:"companyName"`
	CompanyNo    string `json:"companyNo"`
	CompanyPhone string `json:"companyPhone"`
	SupportPrint bool   `json:"supportPrint"`
	Spelling     string `json:"spelling"`
}

// alibabaCompanies is the A6 list (upstream shape; values a GUESS).
var alibabaCompanies = []abCompany{
	{ID: 1, CompanyName: "顺丰速运", CompanyNo: "SF", CompanyPhone: "95338", SupportPrint: true, Spelling: "shunfeng"},
	{ID: 2, CompanyName: "中通快递", CompanyNo: "ZTO", CompanyPhone: "95311", SupportPrint: true, Spelling: "zhongtong"},
	{ID: 3, CompanyName: "圆通速递", CompanyNo: "YTO", CompanyPhone: "95554", SupportPrint: true, Spelling: "yuantong"},
	{ID: 4, CompanyName: "申通快递", CompanyNo: "STO", CompanyPhone: "95543", SupportPrint: true, Spelling: "shentong"},
	{ID: 5, CompanyName: "韵达快递", CompanyNo: "YUNDA", CompanyPhone: "95546", SupportPrint: true, Spelling: "yunda"},
	{ID: 6, CompanyName: "EMS", CompanyNo: "EMS", CompanyPhone: "11183", SupportPrint: false, Spelling: "ems"},
	{ID: 7, CompanyName: "京东快递", CompanyNo: "JD", CompanyPhone: "950616", SupportPrint: false, Spelling: "jingdong"},
	{ID: 8, CompanyName: "德邦快递", CompanyNo: "DBKD", CompanyPhone: "95353", SupportPrint: true, Spelling: "debang"},
}

// alibabaOrderLocked finds a 1688 order, creating it (with the given
// sub-order ids) when AutoCreate is on.
func (s *Sandbox) alibabaOrderLocked(orderID int64, entryIDs []int64) (*Order, *apiError) {
	if orderID <= 0 {
		return nil, errf(classInvalid, "orderId %d 不合法 (want a positive integer)", orderID)
	}
	id := strconv.FormatInt(orderID, 10)
	if o := s.orders[orderKey(Platform1688, id)]; o != nil {
		for _, e := range entryIDs {
			if o.subOrder(strconv.FormatInt(e, 10)) == nil {
				return nil, errf(classInvalid, "orderEntryIds: %d 不属于订单 %s (not a sub-order of the order)", e, id)
			}
		}
		return o, nil
	}
	if !s.cfg.AutoCreate {
		return nil, errf(classNotFound, "订单不存在 (order %s not found)", id)
	}
	o := &Order{Platform: Platform1688, OrderID: id, AutoCreated: true}
	for _, e := range entryIDs {
		if e <= 0 {
			return nil, errf(classInvalid, "orderEntryIds: %d 不合法", e)
		}
		o.SubOrders = append(o.SubOrders, &SubOrder{SubOrderID: strconv.FormatInt(e, 10)})
	}
	if err := s.addOrderLocked(o); err != nil {
		return nil, errf(classInvalid, "%v", err)
	}
	return o, nil
}

func (s *Sandbox) alibabaRefundLocked(id string) (*Refund, *apiError) {
	if id == "" {
		return nil, errf(classMissing, "缺少必填参数 (missing required fields): refundId")
	}
	r := s.refunds[id]
	if r == nil || r.Platform != Platform1688 {
		return nil, errf(classNotFound, "售后单不存在 (refund %s not found)", excerpt.Of(id, 50))
	}
	return r, nil
}

// alibabaRefundInfo: A1. refundId in the JSON body or the query (both documented).
func (s *Sandbox) alibabaRefundInfo(r *http.Request, _ *apiCall) (any, *apiError) {
	body, e := readBody(r)
	if e != nil {
		return nil, e
	}
	id := r.URL.Query().Get("refundId")
	if len(bytes.TrimSpace(body)) > 0 {
		var req abInfoIn
		if _, e := decodeJSON(body, &req); e != nil {
			return nil, e
		}
		if req.RefundID != "" {
			id = req.RefundID
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, e := s.alibabaRefundLocked(id)
	if e != nil {
		return nil, e
	}
	return s.alibabaInfoLocked(ref), nil
}

// alibabaRefundReasons: A2.
func (s *Sandbox) alibabaRefundReasons(r *http.Request, _ *apiCall) (any, *apiError) {
	body, e := readBody(r)
	if e != nil {
		return nil, e
	}
	var req abReasonsIn
	if _, e := decodeJSON(body, &req, "orderId", "goodsStatus"); e != nil {
		return nil, e
	}
	if _, ok := s.abGoodsOf(req.GoodsStatus); !ok {
		return nil, s.badGoodsStatus(req.GoodsStatus)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, e := s.alibabaOrderLocked(req.OrderID, req.OrderEntryIDs); e != nil {
		return nil, e
	}
	resp := abReasonsOut{Reasons: []abReasonOut{}}
	for _, rs := range s.abReasonsFor(req.GoodsStatus) {
		tip := ""
		if rs.needVoucher {
			tip = "请上传商品问题照片作为凭证"
		}
		resp.Reasons = append(resp.Reasons, abReasonOut{ID: rs.id, Name: rs.name, NeedVoucher: rs.needVoucher,
			NoRefundCarriage: rs.noCarriage, Tip: tip})
	}
	return resp, nil
}

// alibabaUploadVoucher: A3, multipart field imageData, a jpg or png of at most 1 MiB.
func (s *Sandbox) alibabaUploadVoucher(r *http.Request, _ *apiCall) (any, *apiError) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return nil, errf(classInvalid, "请使用 multipart/form-data 上传 imageData (want multipart/form-data)")
	}
	mr := multipart.NewReader(io.LimitReader(r.Body, 2*maxVoucherSize), params["boundary"])
	var img []byte
	for parts := 0; ; parts++ {
		if parts > 10 {
			return nil, errf(classInvalid, "too many multipart parts")
		}
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, errf(classMalformed, "multipart 格式错误 (malformed multipart body)")
		}
		if p.FormName() != "imageData" {
			_, _ = io.Copy(io.Discard, io.LimitReader(p, 2*maxVoucherSize))
			continue
		}
		img, err = io.ReadAll(io.LimitReader(p, maxVoucherSize+1))
		if err != nil {
			return nil, errf(classMalformed, "multipart 格式错误 (malformed multipart body)")
		}
		break
	}
	if len(img) == 0 {
		return nil, errf(classMissing, "缺少必填参数 (missing required fields): imageData")
	}
	if len(img) > maxVoucherSize {
		return nil, errf(classInvalid, "图片超过 1MB (imageData exceeds %d bytes)", maxVoucherSize)
	}
	ext := ""
	switch http.DetectContentType(img) {
	case "image/jpeg":
		ext = ".jpg"
	case "image/png":
		ext = ".png"
	default:
		return nil, errf(classInvalid, "仅支持 jpg/png 图片 (imageData must be a jpg or png)")
	}
	resp := abVoucherOut{ImageDomain: "https://cbu01.alicdn.com",
		ImageRelativeURL: "img/ibank/" + s.now().In(s.prof.Zone()).Format("2006/01/02") + "/" + s.randDigits(10) + "_" + s.randDigits(10) + ext}
	s.mu.Lock()
	s.vouchers[resp.ImageDomain+"/"+resp.ImageRelativeURL] = struct{}{}
	s.mu.Unlock()
	return resp, nil
}

// alibabaCreateRefund: A4.
func (s *Sandbox) alibabaCreateRefund(r *http.Request, _ *apiCall) (any, *apiError) {
	body, e := readBody(r)
	if e != nil {
		return nil, e
	}
	var req abCreateIn
	if _, e := decodeJSON(body, &req, "orderId", "disputeRequest", "applyPayment", "applyCarriage",
		"applyReasonId", "description", "goodsStatus"); e != nil {
		return nil, e
	}
	pay, e := s.fen(req.ApplyPayment, false, "applyPayment")
	if e != nil {
		return nil, e
	}
	carriage, e := s.fen(req.ApplyCarriage, false, "applyCarriage")
	if e != nil {
		return nil, e
	}
	if e := s.checkDispute(req.DisputeRequest, req.GoodsStatus); e != nil {
		return nil, e
	}
	switch {
	case pay < 1:
		return nil, errf(classInvalid, "applyPayment %s 不合法 (want at least 1 fen)", req.ApplyPayment.text)
	case carriage < 0:
		return nil, errf(classInvalid, "applyCarriage %s 不合法 (want >= 0)", req.ApplyCarriage.text)
	case utf8.RuneCountInString(req.Description) < 2 || utf8.RuneCountInString(req.Description) > 150:
		return nil, errf(classInvalid, "description 长度需在 2-150 字之间 (got %d characters)", utf8.RuneCountInString(req.Description))
	case len(req.Vouchers) > 5:
		return nil, errf(classInvalid, "vouchers 最多 5 张 (got %d)", len(req.Vouchers))
	case len(req.OrderEntryIDs) > 100 || len(req.OrderEntryCountList) > 100:
		return nil, errf(classInvalid, "too many orderEntryIds")
	}
	for i, v := range req.Vouchers {
		if v == "" || len(v) > 1024 {
			return nil, errf(classInvalid, "vouchers[%d] 不合法 (want a URL from the voucher upload)", i)
		}
	}
	for i, ec := range req.OrderEntryCountList {
		if ec.ID <= 0 || ec.Count < 1 {
			return nil, errf(classInvalid, "orderEntryCountList[%d] 不合法 (want id > 0, count >= 1)", i)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, e := s.alibabaOrderLocked(req.OrderID, req.OrderEntryIDs)
	if e != nil {
		return nil, e
	}
	key := Platform1688 + ":" + o.OrderID
	s.stats.RefundSubmissions[key]++
	if open, ok := s.openRefunds[key]; ok {
		s.stats.DuplicateSubmissions++
		return nil, errf(classDuplicate, "该订单已有进行中的售后 (order %s already has open refund %s)", o.OrderID, open)
	}
	if !o.paid() {
		return nil, errf(classIllegal, "订单未支付或已取消 (order %s is %s)", o.OrderID, o.Status)
	}
	var reason *abReason
	for _, rs := range s.abReasonsFor(req.GoodsStatus) {
		if rs.id == req.ApplyReasonID {
			reason = &rs
		}
	}
	if reason == nil {
		return nil, errf(classInvalid, "applyReasonId %d 不在可选原因中 (see the refund reasons for goodsStatus %s)", req.ApplyReasonID, req.GoodsStatus)
	}
	if reason.needVoucher && len(req.Vouchers) == 0 {
		return nil, errf(classMissing, "该退款原因需要上传凭证 (reason %d requires vouchers)", reason.id)
	}
	if max := o.Amount - o.Refunded; pay > max {
		return nil, errf(classInvalid, "applyPayment %s 超过可退金额 %s (exceeds the refundable amount)", req.ApplyPayment.text, moneyText(s.abMoney(max)))
	}
	if max := o.Carriage - o.RefundedFee; carriage > max {
		return nil, errf(classInvalid, "applyCarriage %s 超过可退运费 %s (exceeds the refundable carriage)", req.ApplyCarriage.text, moneyText(s.abMoney(max)))
	}
	ref := &Refund{Platform: Platform1688, RefundID: s.newRefundIDLocked(Platform1688), OrderID: o.OrderID,
		CreatedAt: s.now(), DisputeRequest: req.DisputeRequest, GoodsStatusStr: req.GoodsStatus,
		ApplyPayment: pay, ApplyCarriage: carriage, ApplyReasonID: reason.id,
		ApplyReason: reason.name, Description: req.Description, Vouchers: slices.Clone(req.Vouchers),
		OrderEntryIDs: slices.Clone(req.OrderEntryIDs), Messages: []Message{}}
	s.refunds[ref.RefundID] = ref
	s.openRefunds[key] = ref.RefundID
	o.RefundIDs = append(o.RefundIDs, ref.RefundID)
	s.setStatusLocked(ref, platform.PhaseWaitSellerAgree, "")
	return abCreateOut{RefundID: ref.RefundID}, nil
}

// moneyText writes an amount as it travels, for error messages.
func moneyText(m money) string {
	b, _ := m.MarshalJSON()
	return string(b)
}

// badGoodsStatus is the error for a goodsStatus the profile does not list.
func (s *Sandbox) badGoodsStatus(goodsStatus string) *apiError {
	return errf(classInvalid, "goodsStatus %q 不合法 (want one of %s)", excerpt.Of(goodsStatus, 40),
		strings.Join(s.prof.Alibaba.GoodsStatus.All(), ", "))
}

// checkDispute validates disputeRequest and goodsStatus against the
// profile's strings: a return and refund only once the goods were received.
func (s *Sandbox) checkDispute(dispute, goodsStatus string) *apiError {
	d := s.prof.Alibaba.DisputeRequest
	if dispute != d.Refund && dispute != d.ReturnRefund {
		return errf(classInvalid, "disputeRequest %q 不合法 (want %s or %s)", excerpt.Of(dispute, 40), d.Refund, d.ReturnRefund)
	}
	if _, ok := s.abGoodsOf(goodsStatus); !ok {
		return s.badGoodsStatus(goodsStatus)
	}
	if g := s.prof.Alibaba.GoodsStatus; dispute == d.ReturnRefund && !g.Received(goodsStatus) {
		return errf(classInvalid, "未收到货不能申请退货退款 (%s needs goodsStatus %s or %s)", d.ReturnRefund, g.InSaleBuyerReceived, g.AfterSaleReceived)
	}
	return nil
}

// goodsReturnFailure is A5's nested business error: envelope success, data
// {success false, errorCode, errorInfo}; errorCode is the class's envelope
// code as a string.
func (s *Sandbox) goodsReturnFailure(class platform.ErrorClass, info string) abGoodsReturnOut {
	return abGoodsReturnOut{Success: false, ErrorCode: ptr(strconv.Itoa(s.code(class))), ErrorInfo: ptr(info)}
}

// alibabaGoodsReturn: A5.
func (s *Sandbox) alibabaGoodsReturn(r *http.Request, _ *apiCall) (any, *apiError) {
	body, e := readBody(r)
	if e != nil {
		return nil, e
	}
	var req abGoodsReturnIn
	if _, e := decodeJSON(body, &req, "refundId", "logisticsCompanyNo", "freightBill"); e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, e := s.alibabaRefundLocked(req.RefundID)
	if e != nil {
		return nil, e
	}
	s.stats.ReturnLogisticsSubmissions[ref.RefundID]++
	if ref.Return != nil {
		s.stats.DuplicateSubmissions++
		return s.goodsReturnFailure(classIllegal, "该退款已提交过退货物流 (return already submitted: "+ref.Return.TrackingNo+")"), nil
	}
	if ref.Phase != platform.PhaseWaitBuyerReturn {
		return s.goodsReturnFailure(classIllegal, "退款单状态不允许退货 (refund is "+ref.Status+"; want "+
			s.prof.AlibabaName(platform.PhaseWaitBuyerReturn)+")"), nil
	}
	var company *abCompany
	for i := range alibabaCompanies {
		if alibabaCompanies[i].CompanyNo == req.LogisticsCompanyNo {
			company = &alibabaCompanies[i]
		}
	}
	if company == nil {
		return s.goodsReturnFailure(classInvalid, "物流公司编码不存在 (logisticsCompanyNo not in the logistics company list)"), nil
	}
	if !validTracking(req.FreightBill) {
		return s.goodsReturnFailure(classInvalid, "运单号格式错误 (freightBill: want 6-40 letters or digits)"), nil
	}
	if n := utf8.RuneCountInString(req.Description); req.Description != "" && (n < 2 || n > 200) {
		return s.goodsReturnFailure(classInvalid, "description 长度需在 2-200 字之间"), nil
	}
	if len(req.Vouchers) > 10 {
		return s.goodsReturnFailure(classInvalid, "vouchers 最多 10 张"), nil
	}
	ref.Return = &ReturnShipment{CompanyCode: company.CompanyNo, CompanyName: company.CompanyName, TrackingNo: req.FreightBill,
		Description: req.Description, Vouchers: slices.Clone(req.Vouchers), SubmittedAt: s.now()}
	s.setStatusLocked(ref, platform.PhaseWaitSellerReceive, "")
	return abGoodsReturnOut{Success: true}, nil
}

// alibabaLogisticsCompanies: A6.
func (s *Sandbox) alibabaLogisticsCompanies(*http.Request, *apiCall) (any, *apiError) {
	return slices.Clone(alibabaCompanies), nil
}
