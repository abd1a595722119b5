package sandbox

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/callback"
)

// Status names per platform (Taobao: apiclient.TaobaoRefundStatus; 1688:
// apiclient.AlibabaRefundStatus).
var (
	tbWaitAgree   = string(apiclient.TaobaoWaitSellerAgree)
	tbWaitReturn  = string(apiclient.TaobaoWaitBuyerReturnGoods)
	tbWaitConfirm = string(apiclient.TaobaoWaitSellerConfirmGoods)
	tbRefused     = string(apiclient.TaobaoSellerRefuseBuyer)
	tbClosed      = string(apiclient.TaobaoRefundClosed)
	tbSuccess     = string(apiclient.TaobaoRefundSuccess)

	abWaitAgree   = string(apiclient.AlibabaWaitSellerAgree)
	abWaitModify  = string(apiclient.AlibabaWaitBuyerModify)
	abWaitSend    = string(apiclient.AlibabaWaitBuyerSend)
	abWaitReceive = string(apiclient.AlibabaWaitSellerReceive)
	abSuccess     = string(apiclient.AlibabaRefundSuccess)
	abClose       = string(apiclient.AlibabaRefundClose)
)

func (r *Refund) terminal() bool { return terminalStatus(r.Status) }

// terminalStatus reports whether a refund in status can no longer change.
func terminalStatus(status string) bool {
	switch status {
	case tbClosed, tbSuccess, abSuccess, abClose:
		return true
	}
	return false
}

func (r *Refund) waitingForSeller() bool { return r.Status == tbWaitAgree || r.Status == abWaitAgree }
func (r *Refund) waitingForReturn() bool { return r.Status == tbWaitReturn || r.Status == abWaitSend }
func (r *Refund) waitingForReceipt() bool {
	return r.Status == tbWaitConfirm || r.Status == abWaitReceive
}

func illegal(r *Refund, op string) *apiError {
	return errf(apiclient.CodeIllegalState, "退款单状态不允许该操作 (refund %s is %s; %s not allowed)", r.RefundID, r.Status, op)
}

// policyLocked returns the seller policy for an order: its own or the global one.
func (s *Sandbox) policyLocked(o *Order) SellerPolicy {
	if o != nil && o.Seller != nil {
		return *o.Seller
	}
	return s.seller
}

func (s *Sandbox) orderOfLocked(r *Refund) *Order {
	return s.orders[orderKey(r.Platform, r.OrderID)]
}

// setStatusLocked moves r to status, applies the effects of reaching it,
// pushes a refund callback and schedules the seller's next move. note is a
// system message recorded on Taobao refunds.
func (s *Sandbox) setStatusLocked(r *Refund, status, note string) {
	s.enterStatusLocked(r, status, note, s.now())
	s.emitRefundLocked(r)
	s.scheduleSellerLocked(r)
}

// enterStatusLocked moves r to status at the given time and applies the
// effects of reaching it (the open-refund rule, refunded amounts), without
// pushing or scheduling anything. It is apart from setStatusLocked because
// a seeded refund (SeedRefund) enters its status without a callback.
func (s *Sandbox) enterStatusLocked(r *Refund, status, note string, at time.Time) {
	s.log.Info("sandbox: refund status", "platform", r.Platform, "refund_id", r.RefundID, "from", r.Status, "to", status)
	r.Status = status
	r.History = append(r.History, status)
	r.ModifiedAt = at
	r.seq++
	o := s.orderOfLocked(r)
	if note != "" && r.Platform == PlatformTaobao {
		r.Messages = append(r.Messages, Message{ID: s.randDigits(12), Owner: "system", Content: note, CreatedAt: at})
	}
	if !r.terminal() {
		return
	}
	r.ClosedAt = at
	if s.openRefunds[r.openKey()] == r.RefundID {
		delete(s.openRefunds, r.openKey())
	}
	if status == tbSuccess && o != nil {
		r.RefundedAmount = r.RefundFee
		if so := o.subOrder(r.SubOrderID); so != nil {
			so.Refunded += r.RefundFee
		}
		o.Refunded += r.RefundFee
	}
	if status == abSuccess && o != nil {
		r.RefundedAmount = r.ApplyPayment
		o.Refunded += r.ApplyPayment
		o.RefundedFee += r.ApplyCarriage
	}
}

// scheduleSellerLocked queues the seller's next move on r under its order's policy.
func (s *Sandbox) scheduleSellerLocked(r *Refund) {
	p := s.policyLocked(s.orderOfLocked(r))
	if p.Decision == DecisionManual {
		return
	}
	switch {
	case r.waitingForSeller():
		s.scheduleLocked(r, taskDecide, p.DecideAfter)
	case r.waitingForReceipt():
		s.scheduleLocked(r, taskReceive, p.ReceiveAfter)
	}
}

// sellerAgreeLocked: the seller agrees. A return-and-refund request (or a
// 1688 returnRefund) first waits for the goods; anything else is refunded.
func (s *Sandbox) sellerAgreeLocked(r *Refund) *apiError {
	if !r.waitingForSeller() {
		return illegal(r, "seller agree")
	}
	switch r.Platform {
	case PlatformTaobao:
		if r.RefundType == apiclient.TaobaoReturnAndRefund {
			r.ReturnRequired = true
			s.setStatusLocked(r, tbWaitReturn, "卖家同意退货，请寄回商品")
			return nil
		}
		s.setStatusLocked(r, tbSuccess, "卖家同意退款，退款成功")
	default:
		if r.DisputeRequest == apiclient.AlibabaDisputeReturnRefund {
			r.ReturnRequired = true
			s.setStatusLocked(r, abWaitSend, "")
			return nil
		}
		s.setStatusLocked(r, abSuccess, "")
	}
	return nil
}

// sellerRefuseLocked: the seller refuses with reason.
func (s *Sandbox) sellerRefuseLocked(r *Refund, reason string) *apiError {
	if !r.waitingForSeller() {
		return illegal(r, "seller refuse")
	}
	if reason == "" {
		reason = DefaultRefuseReason
	}
	r.RefuseReason = reason
	r.RejectTimes++
	if r.Platform == PlatformTaobao {
		r.Messages = append(r.Messages, Message{ID: s.randDigits(12), Owner: "seller", Content: reason, CreatedAt: s.now()})
		s.setStatusLocked(r, tbRefused, "卖家拒绝了退款申请")
		return nil
	}
	s.setStatusLocked(r, abWaitModify, "")
	return nil
}

// sellerRequireReturnLocked: the seller wants the goods back first.
func (s *Sandbox) sellerRequireReturnLocked(r *Refund) *apiError {
	if !r.waitingForSeller() {
		return illegal(r, "seller require return")
	}
	r.ReturnRequired = true
	if r.Platform == PlatformTaobao {
		s.setStatusLocked(r, tbWaitReturn, "卖家要求退货，请寄回商品")
		return nil
	}
	s.setStatusLocked(r, abWaitSend, "")
	return nil
}

// sellerReceiveLocked: the returned goods arrived; the refund succeeds.
func (s *Sandbox) sellerReceiveLocked(r *Refund) *apiError {
	if !r.waitingForReceipt() {
		return illegal(r, "seller receive")
	}
	if r.Platform == PlatformTaobao {
		s.setStatusLocked(r, tbSuccess, "卖家确认收货，退款成功")
		return nil
	}
	s.setStatusLocked(r, abSuccess, "")
	return nil
}

// closeLocked closes any open refund (admin action; Taobao buyer cancel has its own rule).
func (s *Sandbox) closeLocked(r *Refund, note string) *apiError {
	if r.terminal() {
		return illegal(r, "close")
	}
	if r.Platform == PlatformTaobao {
		s.setStatusLocked(r, tbClosed, note)
		return nil
	}
	s.setStatusLocked(r, abClose, "")
	return nil
}

// buyerCancelLocked is Taobao's buyer cancel: allowed before the goods are on their way back.
func (s *Sandbox) buyerCancelLocked(r *Refund) *apiError {
	switch r.Status {
	case tbWaitAgree, tbWaitReturn, tbRefused:
		s.setStatusLocked(r, tbClosed, "买家撤销了退款申请")
		return nil
	}
	return illegal(r, "cancel")
}

// decide applies the seller policy to a refund waiting for the seller.
func (s *Sandbox) decideLocked(r *Refund) {
	p := s.policyLocked(s.orderOfLocked(r))
	switch p.Decision {
	case DecisionAgree:
		_ = s.sellerAgreeLocked(r)
	case DecisionRefuse:
		_ = s.sellerRefuseLocked(r, p.RefuseReason)
	case DecisionRequireReturn:
		_ = s.sellerRequireReturnLocked(r)
	}
}

// emitRefundLocked queues an ORDER_BUYER_VIEW_ORDER_BUYER_REFUND push.
func (s *Sandbox) emitRefundLocked(r *Refund) {
	body := callback.RefundBody{
		RefundID:     apiclient.FlexString(r.RefundID),
		OrderID:      apiclient.FlexString(r.OrderID),
		SubOrderID:   apiclient.FlexString(r.SubOrderID),
		RefundStatus: apiclient.FlexString(r.Status),
		RefundAmount: apiclient.Amount(r.RefundFee),
	}
	platform := callback.PlatformTaobao
	if r.Platform == Platform1688 {
		platform = callback.Platform1688
		body.RefundAmount = apiclient.Amount(r.ApplyPayment)
	}
	b, _ := json.Marshal(body) // plain strings and ints
	s.emitLocked(callback.TypeOrderRefund, platform, string(b), r.RefundID)
}

// emitOrderLocked queues an order message (ORDER_CREATE, ORDER_PAY_SUCCESS, …).
func (s *Sandbox) emitOrderLocked(o *Order, messageType string) {
	payStatus := 1 // observed with unpaid and cancelled-unpaid orders; 2 once paid (INFERRED meaning)
	var payTime *string
	if o.PaidAt != nil {
		payStatus = 2
		t := fmtTime(*o.PaidAt)
		payTime = &t
	}
	var closeReason *string
	if o.CloseReason != "" {
		c := o.CloseReason
		closeReason = &c
	}
	body := callback.OrderBody{
		OrderID:       apiclient.FlexString(o.OrderID),
		OrderNo:       o.OrderNo,
		OrderStatus:   o.Status,
		PayStatus:     payStatus,
		TotalAmount:   apiclient.Amount(o.Amount + o.Carriage),
		ShippingFee:   apiclient.Amount(o.Carriage),
		ProductAmount: apiclient.Amount(o.Amount),
		RefundAmount:  apiclient.Amount(o.Refunded),
		CloseReason:   closeReason,
		TbCreateTime:  fmtTime(o.CreatedAt),
		PayTime:       payTime,
	}
	platform := callback.PlatformTaobao
	if o.Platform == Platform1688 {
		platform = callback.Platform1688
	}
	b, _ := json.Marshal(body)
	// refundStatus is null in every documented example; FlexString would marshal "".
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	m["refundStatus"] = nil
	b, _ = json.Marshal(m)
	s.emitLocked(messageType, platform, string(b), o.OrderID)
}

func (s *Sandbox) emitLocked(messageType string, platform callback.Platform, body, subject string) {
	env := callback.Envelope{
		MessageType:     messageType,
		MessageBody:     body,
		MessagePlatform: platform,
		Timestamp:       strconv.FormatInt(s.now().UnixMilli(), 10),
	}
	f := s.faults
	s.cb.enqueue(s, env, subject, s.cfg.CallbackURL != "", f.DropPushRate, f.DuplicatePushRate, f.ReorderPushRate)
}

// Scheduled seller moves.
type taskKind int

const (
	taskDecide taskKind = iota
	taskReceive
)

type task struct {
	at        time.Time
	order     uint64
	refundID  string
	refundSeq uint64
	kind      taskKind
}

// taskQueue is a min-heap by (at, order).
type taskQueue []task

func (q taskQueue) Len() int { return len(q) }
func (q taskQueue) Less(i, j int) bool {
	if q[i].at.Equal(q[j].at) {
		return q[i].order < q[j].order
	}
	return q[i].at.Before(q[j].at)
}
func (q taskQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *taskQueue) Push(x any)   { *q = append(*q, x.(task)) }
func (q *taskQueue) Pop() any {
	old := *q
	t := old[len(old)-1]
	*q = old[:len(old)-1]
	return t
}
