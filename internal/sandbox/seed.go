package sandbox

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
)

// RefundSeed describes a refund that exists on the platform without having
// been submitted through the API: the buyer applied on the platform's web
// page before the worker saw the order, or the worker's database was
// restored from a backup older than the refund. SeedRefund creates it, in
// any status of the platform's state machine, so a test can start from a
// platform that already knows more than the worker. Zero fields get the
// defaults noted; the form fields of the other platform must stay zero.
type RefundSeed struct {
	Platform   string    `json:"platform"`               // required: "taobao" or "1688"
	SubOrderID string    `json:"sub_order_id,omitempty"` // Taobao: required, the sub-order refunded
	OrderID    string    `json:"order_id,omitempty"`     // 1688: required; Taobao: optional, must be the sub-order's order (an auto-created one gets this id)
	RefundID   string    `json:"refund_id,omitempty"`    // default generated as the API does; Taobao 1-40 digits, 1688 "TQ" + 1-38 digits
	Status     string    `json:"status"`                 // required: any status of the platform's state machine, terminal ones included: one of the profile's names for it, or a phase name (closed, success, …)
	CreatedAt  time.Time `json:"created_at,omitzero"`    // RFC 3339; default now (Config.Now); not after now
	ModifiedAt time.Time `json:"modified_at,omitzero"`   // the last change (timeouts count from it); default CreatedAt; not before CreatedAt nor after now
	// PushCallback queues one ORDER_BUYER_VIEW_ORDER_BUYER_REFUND for the
	// seeded status. Off by default: a refund that predates the worker was
	// pushed (or not) long ago.
	PushCallback bool `json:"push_callback,omitempty"`

	// Taobao form (the profile's integers). Defaults: refund only with goods
	// not shipped, or return and refund with goods received for the phases
	// wait_buyer_return and wait_seller_receive; the first reason offered for
	// them; the whole refundable amount of the sub-order (fen).
	RefundType  int    `json:"refund_type,omitempty"`
	GoodsStatus int    `json:"goods_status,omitempty"`
	ReasonID    int    `json:"reason_id,omitempty"`
	RefundFee   int64  `json:"refund_fee,omitempty"`
	RefundDesc  string `json:"refund_desc,omitempty"`

	// 1688 form (the profile's strings). Defaults: disputeRequest refund
	// with goods status in_sale_wait_seller_send, or return_refund with
	// in_sale_buyer_received for the phases wait_buyer_return and
	// wait_seller_receive; the first reason for that goods status; the whole
	// refundable amount of the order (fen); no carriage.
	DisputeRequest  string `json:"dispute_request,omitempty"`
	GoodsStatus1688 string `json:"goods_status_1688,omitempty"`
	ApplyPayment    int64  `json:"apply_payment,omitempty"`
	ApplyCarriage   int64  `json:"apply_carriage,omitempty"`
	ApplyReasonID   int64  `json:"apply_reason_id,omitempty"`
	Description     string `json:"description,omitempty"` // 2-150 characters; default a fixed text

	// RefuseReason is the seller's reason in the seller_refused phase
	// (default the seller policy's); other statuses have none.
	RefuseReason string `json:"refuse_reason,omitempty"`
}

// SeedRefund creates a refund directly in the platform's state (see
// RefundSeed) and returns a copy of it. The refund then behaves exactly like
// one that reached its status through the API: it is listed (T1), queried
// (T10, A1) and acted on by the seller policy like any other; an open one
// holds its sub-order (Taobao) or order (1688), so a later submission is a
// duplicate (the duplicate_refund class), while a closed or successful one does not, and a
// successful one has used up its amount. It is not an API submission: no
// Stats counter moves, and no callback is pushed unless PushCallback.
//
// With Config.AutoCreate an unknown sub-order or order is created as the API
// would. Errors wrap ErrNotFound (unknown order), ErrConflict (refund id
// taken, or an open refund already holds the sub-order/order) or
// ErrIllegalState (order never paid, open refund on a cancelled order,
// nothing left to refund); anything else is an invalid seed.
func (s *Sandbox) SeedRefund(seed RefundSeed) (*Refund, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.markChanged()
	ref, err := s.seedRefundLocked(seed)
	if err != nil {
		return nil, fmt.Errorf("seed refund: %w", err)
	}
	return ref.clone(), nil
}

func (s *Sandbox) seedRefundLocked(seed RefundSeed) (*Refund, error) {
	if seed.Platform != PlatformTaobao && seed.Platform != Platform1688 {
		return nil, fmt.Errorf("platform %q: want taobao or 1688", excerpt.Of(seed.Platform, 20))
	}
	phase, ok := s.parsePhase(seed.Platform, seed.Status)
	if !ok {
		return nil, fmt.Errorf("status %q: want one of %s", excerpt.Of(seed.Status, 40), strings.Join(s.statusNames(seed.Platform), ", "))
	}
	now := s.now()
	created, modified := seed.CreatedAt, seed.ModifiedAt
	if created.IsZero() {
		created = now
	}
	if modified.IsZero() {
		modified = created
	}
	if created.After(now) || modified.After(now) {
		return nil, errors.New("created_at and modified_at must not be in the future: the refund exists already")
	}
	if modified.Before(created) {
		return nil, errors.New("modified_at is before created_at")
	}
	if seed.RefuseReason != "" && phase != platform.PhaseSellerRefused {
		return nil, fmt.Errorf("refuse_reason is only for %s", s.wireStatus(seed.Platform, platform.PhaseSellerRefused))
	}
	if utf8.RuneCountInString(seed.RefuseReason) > 200 {
		return nil, errors.New("refuse_reason longer than 200 characters")
	}
	id := seed.RefundID
	if id != "" {
		if !validSeedRefundID(seed.Platform, id) {
			return nil, fmt.Errorf("refund_id %q: want 1-40 digits (taobao) or TQ and 1-38 digits (1688)", excerpt.Of(id, 50))
		}
		if _, taken := s.refunds[id]; taken {
			return nil, fmt.Errorf("%w: refund %s already exists", ErrConflict, id)
		}
	}

	ref := &Refund{Platform: seed.Platform, CreatedAt: created, Messages: []Message{}}
	var o *Order
	var err error
	if seed.Platform == PlatformTaobao {
		o, err = s.seedTaobaoFormLocked(ref, seed, phase)
	} else {
		o, err = s.seedAlibabaFormLocked(ref, seed, phase)
	}
	if err != nil {
		return nil, err
	}
	open := !phase.Terminal()
	switch {
	case o.PaidAt == nil:
		return nil, fmt.Errorf("%w: order %s was never paid (%s); nothing can have been refunded", ErrIllegalState, o.OrderID, o.Status)
	case open && o.Status == OrderCancel:
		return nil, fmt.Errorf("%w: order %s is cancelled; a cancelled order has no open refund", ErrIllegalState, o.OrderID)
	}
	if other, held := s.openRefunds[ref.openKey()]; held && open {
		return nil, fmt.Errorf("%w: %s already has open refund %s (one open refund per sub-order/order)", ErrConflict, ref.openKey(), other)
	}
	if id == "" {
		id = s.newRefundIDLocked(seed.Platform)
	}
	ref.RefundID = id
	if ref.Return != nil {
		ref.Return.SubmittedAt = modified
	}
	if phase == platform.PhaseSellerRefused {
		ref.RefuseReason, ref.RejectTimes = seed.RefuseReason, 1
		if ref.RefuseReason == "" {
			ref.RefuseReason = s.policyLocked(o).RefuseReason
		}
		if seed.Platform == PlatformTaobao { // as sellerRefuseLocked writes it: the reason in the conversation
			ref.Messages = append(ref.Messages, Message{ID: s.randDigits(12), Owner: OwnerSeller, Content: ref.RefuseReason, CreatedAt: modified})
		}
	}
	s.refunds[id] = ref
	o.RefundIDs = append(o.RefundIDs, id)
	if open {
		s.openRefunds[ref.openKey()] = id
	}
	s.enterStatusLocked(ref, phase, "", modified)
	if seed.PushCallback {
		s.emitRefundLocked(ref)
	}
	s.scheduleSellerLocked(ref)
	return ref, nil
}

func validSeedRefundID(platform, id string) bool {
	digits := id
	if platform == Platform1688 {
		var ok bool
		if digits, ok = strings.CutPrefix(id, "TQ"); !ok {
			return false
		}
	}
	if len(id) > 40 || digits == "" {
		return false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// seedOrderErr turns the API's order lookup error into a SeedRefund error.
func seedOrderErr(e *apiError) error {
	if e.Class == classNotFound {
		return fmt.Errorf("%w: %s", ErrNotFound, e.Msg)
	}
	return errors.New(e.Msg)
}

// seedTaobaoFormLocked finds the sub-order and fills ref's Taobao form,
// validated as a submission would be. A closed refund gave nothing back, so
// its fee may be up to the whole sub-order although later refunds succeeded.
func (s *Sandbox) seedTaobaoFormLocked(ref *Refund, seed RefundSeed, phase platform.Phase) (*Order, error) {
	if seed.DisputeRequest != "" || seed.GoodsStatus1688 != "" || seed.ApplyPayment != 0 || seed.ApplyCarriage != 0 ||
		seed.ApplyReasonID != 0 || seed.Description != "" {
		return nil, errors.New("1688 form fields on a taobao refund")
	}
	if seed.SubOrderID == "" {
		return nil, errors.New("sub_order_id is required for taobao")
	}
	o, so, e := s.taobaoSubOrderInLocked(seed.SubOrderID, seed.OrderID)
	if e != nil {
		return nil, seedOrderErr(e)
	}
	if seed.OrderID != "" && seed.OrderID != o.OrderID {
		return nil, fmt.Errorf("order_id %q: sub-order %s belongs to order %s", excerpt.Of(seed.OrderID, 50), so.SubOrderID, o.OrderID)
	}
	returned := phase == platform.PhaseWaitBuyerReturn || phase == platform.PhaseWaitSellerReceive
	rt, gs := s.prof.Taobao.RefundType, s.prof.Taobao.GoodsStatus
	refundType, goods := seed.RefundType, seed.GoodsStatus
	if refundType == 0 {
		refundType = rt.RefundOnly
		if returned {
			refundType = rt.ReturnAndRefund
		}
	}
	if goods == 0 {
		goods = gs.NotShipped
		if returned || refundType == rt.ReturnAndRefund {
			goods = gs.Received
		}
	}
	if e := s.checkTypeAndGoods(refundType, goods); e != nil {
		return nil, errors.New(e.Msg)
	}
	reasonID := seed.ReasonID
	if reasonID == 0 {
		reasonID = s.reasonsFor(refundType, goods)[0].id
	}
	rs, ok := s.findTaobaoReason(refundType, goods, reasonID)
	if !ok {
		return nil, fmt.Errorf("reason_id %d: not a reason offered for refund_type %d, goods_status %d", reasonID, refundType, goods)
	}
	limit := maxFee(so)
	if phase == platform.PhaseClosed {
		limit = so.Amount
	}
	if limit < 1 {
		return nil, fmt.Errorf("%w: nothing left to refund on sub-order %s", ErrIllegalState, so.SubOrderID)
	}
	fee := seed.RefundFee
	if fee == 0 {
		fee = limit
	}
	if fee < 1 || fee > limit {
		return nil, fmt.Errorf("refund_fee %d: want 1..%d", fee, limit)
	}
	if utf8.RuneCountInString(seed.RefundDesc) > 200 {
		return nil, errors.New("refund_desc longer than 200 characters")
	}
	ref.OrderID, ref.SubOrderID = o.OrderID, so.SubOrderID
	ref.RefundType, ref.GoodsStatus, ref.ReasonID, ref.ReasonDesc = refundType, goods, rs.id, rs.desc
	ref.RefundFee, ref.RefundDesc = fee, seed.RefundDesc
	if seed.RefundDesc != "" {
		ref.Messages = append(ref.Messages, Message{ID: s.randDigits(12), Owner: OwnerBuyer, Content: seed.RefundDesc, CreatedAt: ref.CreatedAt})
	}
	goodsBack := phase == platform.PhaseWaitSellerReceive || phase == platform.PhaseSuccess && refundType == rt.ReturnAndRefund
	ref.ReturnRequired = returned || goodsBack
	if goodsBack {
		c := taobaoCompanies[0]
		ref.Return = &ReturnShipment{CompanyCode: c.LogisticsCompanyCode, CompanyName: c.LogisticsCompanyName,
			TrackingNo: c.LogisticsCompanyCode + s.randDigits(12)}
	}
	return o, nil
}

// seedAlibabaFormLocked finds the order and fills ref's 1688 form, validated
// as a creation would be (vouchers are not required: a seeded refund has
// none). A closed refund may ask for up to the whole order.
func (s *Sandbox) seedAlibabaFormLocked(ref *Refund, seed RefundSeed, phase platform.Phase) (*Order, error) {
	if seed.SubOrderID != "" || seed.RefundType != 0 || seed.GoodsStatus != 0 || seed.ReasonID != 0 || seed.RefundFee != 0 ||
		seed.RefundDesc != "" {
		return nil, errors.New("taobao form fields on a 1688 refund")
	}
	if seed.OrderID == "" {
		return nil, errors.New("order_id is required for 1688")
	}
	orderID, err := strconv.ParseInt(seed.OrderID, 10, 64)
	if err != nil || orderID <= 0 {
		return nil, fmt.Errorf("order_id %q: 1688 order ids are positive integers", excerpt.Of(seed.OrderID, 50))
	}
	o, e := s.alibabaOrderLocked(orderID, nil)
	if e != nil {
		return nil, seedOrderErr(e)
	}
	returned := phase == platform.PhaseWaitBuyerReturn || phase == platform.PhaseWaitSellerReceive
	d, gs := s.prof.Alibaba.DisputeRequest, s.prof.Alibaba.GoodsStatus
	dispute, goods := seed.DisputeRequest, seed.GoodsStatus1688
	if dispute == "" {
		dispute = d.Refund
		if returned {
			dispute = d.ReturnRefund
		}
	}
	if goods == "" {
		goods = gs.InSaleWaitSellerSend
		if returned || dispute == d.ReturnRefund {
			goods = gs.InSaleBuyerReceived
		}
	}
	if e := s.checkDispute(dispute, goods); e != nil {
		return nil, errors.New(e.Msg)
	}
	reasons := s.abReasonsFor(goods)
	reasonID := seed.ApplyReasonID
	if reasonID == 0 {
		reasonID = reasons[0].id
	}
	i := slices.IndexFunc(reasons, func(r abReason) bool { return r.id == reasonID })
	if i < 0 {
		return nil, fmt.Errorf("apply_reason_id %d: not a reason offered for goods status %s", reasonID, goods)
	}
	reason := reasons[i]
	limit, carriageLimit := o.Amount-o.Refunded, o.Carriage-o.RefundedFee
	if phase == platform.PhaseClosed {
		limit, carriageLimit = o.Amount, o.Carriage
	}
	if limit < 1 {
		return nil, fmt.Errorf("%w: nothing left to refund on order %s", ErrIllegalState, o.OrderID)
	}
	pay := seed.ApplyPayment
	if pay == 0 {
		pay = limit
	}
	if pay < 1 || pay > limit {
		return nil, fmt.Errorf("apply_payment %d: want 1..%d", pay, limit)
	}
	if seed.ApplyCarriage < 0 || seed.ApplyCarriage > carriageLimit {
		return nil, fmt.Errorf("apply_carriage %d: want 0..%d", seed.ApplyCarriage, carriageLimit)
	}
	desc := seed.Description
	if desc == "" {
		desc = "买家在平台页面发起的售后"
	}
	if n := utf8.RuneCountInString(desc); n < 2 || n > 150 {
		return nil, fmt.Errorf("description: want 2-150 characters, got %d", n)
	}
	ref.OrderID = o.OrderID
	ref.DisputeRequest, ref.GoodsStatusStr, ref.ApplyReasonID, ref.ApplyReason = dispute, goods, reason.id, reason.name
	ref.ApplyPayment, ref.ApplyCarriage, ref.Description = pay, seed.ApplyCarriage, desc
	goodsBack := phase == platform.PhaseWaitSellerReceive || phase == platform.PhaseSuccess && dispute == d.ReturnRefund
	ref.ReturnRequired = returned || goodsBack
	if goodsBack {
		c := alibabaCompanies[0]
		ref.Return = &ReturnShipment{CompanyCode: c.CompanyNo, CompanyName: c.CompanyName, TrackingNo: c.CompanyNo + s.randDigits(12)}
	}
	return o, nil
}
