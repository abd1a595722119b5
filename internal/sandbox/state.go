package sandbox

import (
	"slices"
	"time"

	"github.com/refundhub/refundhub/internal/platform"
)

// The refund state machines run on platform.Phase, the sandbox's own
// vocabulary; a phase becomes a wire name only when it is written out
// (wireStatus), so a profile with other status names changes what the
// sandbox says, not what it does.

// wireStatus is the platform's name of a phase under the profile.
func (s *Sandbox) wireStatus(platformName string, ph platform.Phase) string {
	if platformName == PlatformTaobao {
		return s.prof.TaobaoName(ph)
	}
	return s.prof.AlibabaName(ph)
}

// parsePhase reads a status given to the admin API: one of the platform's
// names under the profile, or a phase name.
func (s *Sandbox) parsePhase(platformName, status string) (platform.Phase, bool) {
	for _, ph := range platform.Phases() {
		facts := s.prof.Alibaba.RefundStatus
		if platformName == PlatformTaobao {
			facts = s.prof.Taobao.RefundStatus
		}
		if slices.Contains(facts[ph].Names, status) || string(ph) == status {
			return ph, true
		}
	}
	return "", false
}

// statusNames lists the platform's canonical names of every phase, for errors.
func (s *Sandbox) statusNames(platformName string) []string {
	var out []string
	for _, ph := range platform.Phases() {
		out = append(out, s.wireStatus(platformName, ph))
	}
	return out
}

func (r *Refund) terminal() bool { return r.Phase.Terminal() }

func (r *Refund) waitingForSeller() bool  { return r.Phase == platform.PhaseWaitSellerAgree }
func (r *Refund) waitingForReceipt() bool { return r.Phase == platform.PhaseWaitSellerReceive }

func illegal(r *Refund, op string) *apiError {
	return errf(classIllegal, "退款单状态不允许该操作 (refund %s is %s; %s not allowed)", r.RefundID, r.Status, op)
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

// setStatusLocked moves r to phase ph, applies the effects of reaching it,
// pushes a refund callback and schedules the seller's next move. note is a
// system message recorded on Taobao refunds.
func (s *Sandbox) setStatusLocked(r *Refund, ph platform.Phase, note string) {
	s.enterStatusLocked(r, ph, note, s.now())
	s.emitRefundLocked(r)
	s.scheduleSellerLocked(r)
}

// enterStatusLocked moves r to phase ph at the given time and applies the
// effects of reaching it (the open-refund rule, refunded amounts), without
// pushing or scheduling anything. It is apart from setStatusLocked because
// a seeded refund (SeedRefund) enters its status without a callback.
func (s *Sandbox) enterStatusLocked(r *Refund, ph platform.Phase, note string, at time.Time) {
	s.log.Info("sandbox: refund status", "platform", r.Platform, "refund_id", r.RefundID, "from", r.Phase, "to", ph)
	r.Phase, r.Status = ph, s.wireStatus(r.Platform, ph)
	r.History = append(r.History, ph)
	r.ModifiedAt = at
	r.seq++
	o := s.orderOfLocked(r)
	if note != "" && r.Platform == PlatformTaobao {
		r.Messages = append(r.Messages, Message{ID: s.randDigits(12), Owner: OwnerSystem, Content: note, CreatedAt: at})
	}
	if !r.terminal() {
		return
	}
	r.ClosedAt = at
	if s.openRefunds[r.openKey()] == r.RefundID {
		delete(s.openRefunds, r.openKey())
	}
	if ph != platform.PhaseSuccess || o == nil {
		return
	}
	if r.Platform == PlatformTaobao {
		r.RefundedAmount = r.RefundFee
		if so := o.subOrder(r.SubOrderID); so != nil {
			so.Refunded += r.RefundFee
		}
		o.Refunded += r.RefundFee
	} else {
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

// returnAsked reports whether the buyer asked for a return and refund
// (Taobao refundType return_and_refund, 1688 disputeRequest return_refund).
func (s *Sandbox) returnAsked(r *Refund) bool {
	if r.Platform == PlatformTaobao {
		return r.RefundType == s.prof.Taobao.RefundType.ReturnAndRefund
	}
	return r.DisputeRequest == s.prof.Alibaba.DisputeRequest.ReturnRefund
}

// sellerAgreeLocked: the seller agrees. A return-and-refund request (or a
// 1688 returnRefund) first waits for the goods; anything else is refunded.
func (s *Sandbox) sellerAgreeLocked(r *Refund) *apiError {
	if !r.waitingForSeller() {
		return illegal(r, "seller agree")
	}
	if s.returnAsked(r) {
		r.ReturnRequired = true
		s.setStatusLocked(r, platform.PhaseWaitBuyerReturn, "卖家同意退货，请寄回商品")
		return nil
	}
	s.setStatusLocked(r, platform.PhaseSuccess, "卖家同意退款，退款成功")
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
		r.Messages = append(r.Messages, Message{ID: s.randDigits(12), Owner: OwnerSeller, Content: reason, CreatedAt: s.now()})
	}
	s.setStatusLocked(r, platform.PhaseSellerRefused, "卖家拒绝了退款申请")
	return nil
}

// sellerRequireReturnLocked: the seller wants the goods back first.
func (s *Sandbox) sellerRequireReturnLocked(r *Refund) *apiError {
	if !r.waitingForSeller() {
		return illegal(r, "seller require return")
	}
	r.ReturnRequired = true
	s.setStatusLocked(r, platform.PhaseWaitBuyerReturn, "卖家要求退货，请寄回商品")
	return nil
}

// sellerReceiveLocked: the returned goods arrived; the refund succeeds.
func (s *Sandbox) sellerReceiveLocked(r *Refund) *apiError {
	if !r.waitingForReceipt() {
		return illegal(r, "seller receive")
	}
	s.setStatusLocked(r, platform.PhaseSuccess, "卖家确认收货，退款成功")
	return nil
}

// closeLocked closes any open refund (admin action; Taobao buyer cancel has its own rule).
func (s *Sandbox) closeLocked(r *Refund, note string) *apiError {
	if r.terminal() {
		return illegal(r, "close")
	}
	s.setStatusLocked(r, platform.PhaseClosed, note)
	return nil
}

// buyerCancelLocked is Taobao's buyer cancel: allowed before the goods are on their way back.
func (s *Sandbox) buyerCancelLocked(r *Refund) *apiError {
	switch r.Phase {
	case platform.PhaseWaitSellerAgree, platform.PhaseWaitBuyerReturn, platform.PhaseSellerRefused:
		s.setStatusLocked(r, platform.PhaseClosed, "买家撤销了退款申请")
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
