package refundflow

import (
	"slices"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/platform"
)

// Platform is the marketplace a case belongs to: platform.ID, the one type
// for it (the short names below read well in this package).
type Platform = platform.ID

// Platforms.
const (
	PlatformTaobao = platform.Taobao
	Platform1688   = platform.Alibaba1688
)

// State is where a case stands. States fall in phases (see Rank); a case
// never moves to an earlier phase, whatever the platform view says.
type State string

// Case states. "Ours" states are work in progress on our side (a step to run);
// "waiting" states wait for the seller, the platform or the operator.
const (
	// StateRequested: the operator asked for a refund; nothing sent yet.
	StateRequested State = "requested"
	// StateRendering: reading the refund form (Taobao render: reasons and fee
	// bounds) or the refund reasons (1688). Read-only.
	StateRendering State = "rendering"
	// StateUploadingVouchers: 1688 only, the chosen reason needs vouchers.
	StateUploadingVouchers State = "uploading_vouchers"
	// StateSubmitting: submitting the refund (Taobao submit, 1688 create).
	// A side effect: guarded by an intent row.
	StateSubmitting State = "submitting"
	// StateWaitingSeller: the refund exists; the seller has to agree.
	StateWaitingSeller State = "waiting_seller"
	// StateModifyRendering: Taobao, after the seller refused: reading the
	// refund form again for the operator's modified request (reasons and
	// fee bounds). Read-only; the refund stays as it is on the platform.
	StateModifyRendering State = "modify_rendering"
	// StateModifying: Taobao, modifying the refused refund (T9). A side
	// effect: guarded by an intent row. The refund then waits for the
	// seller again.
	StateModifying State = "modifying"
	// StateWaitingReturnShipment: the seller wants the goods back; waiting for
	// the operator to report the shipment (company and waybill).
	StateWaitingReturnShipment State = "waiting_return_shipment"
	// StateReturnRendering: reading the carriers the return may use (Taobao
	// return-logistics render, 1688 logistics-company list). Read-only.
	StateReturnRendering State = "return_rendering"
	// StateReturnSubmitting: submitting the return shipment. A side effect.
	StateReturnSubmitting State = "return_submitting"
	// StateWaitingSellerReceive: the return is on its way; the seller has to
	// confirm receipt.
	StateWaitingSellerReceive State = "waiting_seller_receive"
	// StateCancelling: cancelling the refund on the platform (Taobao). A side effect.
	StateCancelling State = "cancelling"
	// StateNeedsAttention: stopped until an operator or the platform moves it;
	// CaseView.Parked says where it stopped, Attention why.
	StateNeedsAttention State = "needs_attention"
	// StateSucceeded: the platform refunded. Terminal.
	StateSucceeded State = "succeeded"
	// StateClosed: the platform closed the refund without refunding. Terminal.
	StateClosed State = "closed"
	// StateCancelled: cancelled on our command. Terminal.
	StateCancelled State = "cancelled"
	// StateClosedLocally: an operator closed the case with a note
	// (refundctl resolve --close) without touching the platform, as the way
	// out of needs_attention when the platform offers none. Terminal.
	StateClosedLocally State = "closed_locally"
)

// States lists every state, in rank order.
func States() []State {
	return []State{StateRequested, StateRendering, StateUploadingVouchers, StateSubmitting,
		StateWaitingSeller, StateModifyRendering, StateModifying, StateWaitingReturnShipment, StateReturnRendering, StateReturnSubmitting,
		StateWaitingSellerReceive, StateCancelling, StateNeedsAttention,
		StateSucceeded, StateClosed, StateCancelled, StateClosedLocally}
}

// TerminalStates lists the final states. Which states are final is the
// store's fact (its open-case indexes depend on it): casestore.TerminalStates.
func TerminalStates() []State {
	var out []State
	for _, s := range casestore.TerminalStates() {
		out = append(out, State(s))
	}
	return out
}

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	_, ok := stateRank[s]
	return ok || s == StateNeedsAttention
}

// Terminal reports whether nothing can change the case any more.
func (s State) Terminal() bool { return slices.Contains(casestore.TerminalStates(), string(s)) }

// stateRank orders the phases. States of one phase share a rank: the platform
// never reports our own in-progress states, so only phases are compared.
var stateRank = map[State]int{
	StateRequested:             10,
	StateRendering:             20,
	StateUploadingVouchers:     20,
	StateSubmitting:            20,
	StateWaitingSeller:         30,
	StateModifyRendering:       30,
	StateModifying:             30,
	StateWaitingReturnShipment: 40,
	StateReturnRendering:       50,
	StateReturnSubmitting:      50,
	StateWaitingSellerReceive:  60,
	StateCancelling:            90,
	StateSucceeded:             100,
	StateClosed:                100,
	StateCancelled:             100,
	StateClosedLocally:         100,
}

// Rank is the phase of a state: a case only ever moves to an equal or higher
// rank. A needs_attention case ranks as the state it is parked at.
func Rank(s, parked State) int {
	if s == StateNeedsAttention {
		return stateRank[parked] // 0 for an unknown parked state
	}
	return stateRank[s]
}

// RequestReplaces reports whether a request for a case in state s (parked
// at parked), with the platform's refund refundID, replaces the request the
// case has: the case stopped before its refund reached the platform (no
// refund id, stopped no later than submitting: a reason the form does not
// offer, an amount out of its bounds, a voucher it refused), so a corrected
// request starts it again instead of being refused as case_open. One
// still in requested is replaced too. Not a case stopped with attention
// on a submission that may be on the platform (CodeUnverifiable: its
// intent may be settled "unverified", leaving no refund id and no open
// intent) or that the platform kept refusing (CodeResendsFailed): a
// second submission could be a second refund. The decider (onRequest) and
// the console's offer of "request again" both ask this.
func RequestReplaces(s, parked State, refundID, attention string) bool {
	return s == StateRequested ||
		(s == StateNeedsAttention && refundID == "" && Rank(s, parked) <= stateRank[StateSubmitting] &&
			attention != CodeUnverifiable && attention != CodeResendsFailed)
}

// Resting reports whether a case in state s is out of the steps its last
// decision started: it waits on the seller, the buyer's shipment or the
// operator, or it has ended. refundctl reports a command's verdict once
// its case rests (or carries a flag): "applied: case 12 is
// needs_attention (why)" rather than "is rendering".
func (s State) Resting() bool {
	return s.waiting() || s == StateNeedsAttention || s.Terminal()
}

// waiting reports whether the state waits on the seller or the platform.
func (s State) waiting() bool {
	return s == StateWaitingSeller || s == StateWaitingReturnShipment || s == StateWaitingSellerReceive
}

// StepName names a platform call the worker makes for a case.
type StepName string

// Steps. SideEffect reports which ones change the platform and so go through
// the intent protocol.
const (
	StepRender         StepName = "render"          // Taobao T2 render
	StepReasons        StepName = "reasons"         // 1688 A2 refund reasons
	StepUploadVouchers StepName = "upload_vouchers" // 1688 A3 voucher upload
	StepSubmit         StepName = "submit"          // Taobao T7 submit, 1688 A4 create
	StepReturnRender   StepName = "return_render"   // Taobao T3 return-logistics render, 1688 A6 companies
	StepReturnSubmit   StepName = "return_submit"   // Taobao T4 return-logistics submit, 1688 A5 goods return
	StepCancel         StepName = "cancel"          // Taobao T5 cancel
	StepMessage        StepName = "message"         // Taobao T6 message
	StepModify         StepName = "modify"          // Taobao T9 modify a refused refund
)

// SideEffect reports whether the step changes the platform: it must be
// recorded as an intent before the call, and an intent without a result is
// reconciled against the platform before the step is ever sent again.
// Voucher upload only stores an image and is safe to repeat.
func (n StepName) SideEffect() bool {
	return n == StepSubmit || n == StepReturnSubmit || n == StepCancel || n == StepMessage || n == StepModify
}

// stepOf is the step a work-in-progress state runs.
func stepOf(p Platform, s State) StepName {
	switch s {
	case StateRequested, StateRendering:
		if p == Platform1688 {
			return StepReasons
		}
		return StepRender
	case StateUploadingVouchers:
		return StepUploadVouchers
	case StateSubmitting:
		return StepSubmit
	case StateReturnRendering:
		return StepReturnRender
	case StateReturnSubmitting:
		return StepReturnSubmit
	case StateCancelling:
		return StepCancel
	case StateModifyRendering:
		return StepRender
	case StateModifying:
		return StepModify
	}
	return ""
}
