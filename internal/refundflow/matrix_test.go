package refundflow

import (
	"testing"
)

// The matrix: every state × every input, for each platform, without a
// platform view. Cells read "act:<new state>+<step>" or "<outcome>/<code>".
// Columns:
//
//	req    the case's own request again       req2   a different valid request
//	ship   report shipment SF/W1              cancel cancel command
//	msg    send a message                     cb     callback
//	timer  timer                              recon  reconcile tick
//	ok     the state's own step succeeded     fail   …failed permanently
//	trans  …failed transiently
//
// For states that run no step, ok/fail/trans carry a submit result (stale).
// The fixtures hold no open intent: a submitting case without one is one
// whose every attempt the platform refused (not applied), so nothing of it
// is on the platform: its timer submits again without asking first, and a
// cancel ends it locally.
// The same command again in a state that runs a read step re-runs it (a
// redelivery after a transient failure); elsewhere it is a duplicate.
var columns = []string{"req", "req2", "ship", "cancel", "msg", "cb", "timer", "recon", "ok", "fail", "trans"}

const (
	dup     = "noop/duplicate"
	open    = "reject/case_open"
	notNow  = "reject/not_now"
	fetchV  = "fetch/verify"
	stale   = "noop/stale_result"
	retry   = "retry/transient"
	parked  = "act:needs_attention"
	finRej  = "reject/case_finished"
	finNoop = "noop/terminal"
	invalid = "reject/invalid_case"
	noSup   = "reject/not_supported"
)

var terminalRow = [11]string{finRej, finRej, finRej, finRej, finRej, finNoop, finNoop, finNoop, finNoop, finNoop, finNoop}

var taobaoMatrix = map[State][11]string{
	StateRequested:             {"act:rendering+render", "act:rendering+render", notNow, "act:cancelled", notNow, fetchV, "act:rendering+render", "act:rendering+render", stale, stale, stale},
	StateRendering:             {"act:rendering+render", open, notNow, "act:cancelled", notNow, fetchV, "act:rendering+render", "act:rendering+render", "act:submitting+submit", parked, retry},
	StateUploadingVouchers:     {invalid, invalid, invalid, invalid, invalid, invalid, invalid, invalid, invalid, invalid, invalid},
	StateSubmitting:            {dup, open, notNow, "act:cancelled", notNow, fetchV, "act:submitting+submit", "act:submitting+submit", "act:waiting_seller", parked, retry},
	StateWaitingSeller:         {dup, open, notNow, "act:cancelling+cancel", "act:waiting_seller+message", fetchV, fetchV, fetchV, stale, stale, stale},
	StateModifyRendering:       {dup, open, notNow, "act:cancelling+cancel", "act:modify_rendering+message", fetchV, fetchV, fetchV, "act:modifying+modify", parked, retry},
	StateModifying:             {dup, open, notNow, "act:cancelling+cancel", "act:modifying+message", fetchV, fetchV, fetchV, "act:waiting_seller", parked, retry},
	StateWaitingReturnShipment: {dup, open, "act:return_rendering+return_render", "act:cancelling+cancel", "act:waiting_return_shipment+message", fetchV, fetchV, fetchV, stale, stale, stale},
	StateReturnRendering:       {dup, open, "act:return_rendering+return_render", "act:cancelling+cancel", "act:return_rendering+message", fetchV, fetchV, fetchV, "act:return_submitting+return_submit", parked, retry},
	StateReturnSubmitting:      {dup, open, dup, "act:cancelling+cancel", "act:return_submitting+message", fetchV, fetchV, fetchV, "act:waiting_seller_receive", parked, retry},
	StateWaitingSellerReceive:  {dup, open, dup, "act:cancelling+cancel", "act:waiting_seller_receive+message", fetchV, fetchV, fetchV, stale, stale, stale},
	StateCancelling:            {dup, open, notNow, dup, "act:cancelling+message", fetchV, fetchV, fetchV, "act:cancelled", parked, retry},
	StateNeedsAttention:        {dup, open, notNow, "act:cancelling+cancel", "act:needs_attention+message", fetchV, fetchV, fetchV, stale, stale, stale},
	StateSucceeded:             terminalRow,
	StateClosed:                terminalRow,
	StateCancelled:             terminalRow,
	StateClosedLocally:         terminalRow,
}

var alibabaMatrix = map[State][11]string{
	StateRequested:             {"act:rendering+reasons", "act:rendering+reasons", notNow, "act:cancelled", noSup, fetchV, "act:rendering+reasons", "act:rendering+reasons", stale, stale, stale},
	StateRendering:             {"act:rendering+reasons", open, notNow, "act:cancelled", noSup, fetchV, "act:rendering+reasons", "act:rendering+reasons", "act:submitting+submit", parked, retry},
	StateUploadingVouchers:     {"act:uploading_vouchers+upload_vouchers", open, notNow, "act:cancelled", noSup, fetchV, "act:uploading_vouchers+upload_vouchers", "act:uploading_vouchers+upload_vouchers", "act:submitting+submit", parked, retry},
	StateSubmitting:            {dup, open, notNow, "act:cancelled", noSup, fetchV, "act:submitting+submit", "act:submitting+submit", "act:waiting_seller", parked, retry},
	StateWaitingSeller:         {dup, open, notNow, noSup, noSup, fetchV, fetchV, fetchV, stale, stale, stale},
	StateModifyRendering:       {invalid, invalid, invalid, invalid, invalid, invalid, invalid, invalid, invalid, invalid, invalid},
	StateModifying:             {invalid, invalid, invalid, invalid, invalid, invalid, invalid, invalid, invalid, invalid, invalid},
	StateWaitingReturnShipment: {dup, open, "act:return_rendering+return_render", noSup, noSup, fetchV, fetchV, fetchV, stale, stale, stale},
	StateReturnRendering:       {dup, open, "act:return_rendering+return_render", noSup, noSup, fetchV, fetchV, fetchV, "act:return_submitting+return_submit", parked, retry},
	StateReturnSubmitting:      {dup, open, dup, noSup, noSup, fetchV, fetchV, fetchV, "act:waiting_seller_receive", parked, retry},
	StateWaitingSellerReceive:  {dup, open, dup, noSup, noSup, fetchV, fetchV, fetchV, stale, stale, stale},
	StateCancelling:            {invalid, invalid, invalid, invalid, invalid, invalid, invalid, invalid, invalid, invalid, invalid},
	StateNeedsAttention:        {dup, open, notNow, noSup, noSup, fetchV, fetchV, fetchV, stale, stale, stale},
	StateSucceeded:             terminalRow,
	StateClosed:                terminalRow,
	StateCancelled:             terminalRow,
	StateClosedLocally:         terminalRow,
}

// matrixInput builds column col's input for case c.
func matrixInput(c CaseView, col string) Input {
	in := Input{Now: now}
	step := stepOf(c.Platform, c.State)
	if step == "" || c.State == StateNeedsAttention || c.State.Terminal() {
		step = StepSubmit
	}
	switch col {
	case "req", "req2":
		r := requestFor(c.Platform)
		if col == "req2" {
			r.Amount = 300
		}
		in.Kind, in.Request = InputRequestRefund, &r
	case "ship":
		sh := shipment
		in.Kind, in.Shipment = InputReportShipment, &sh
	case "cancel":
		in.Kind = InputCancel
	case "msg":
		in.Kind, in.Message = InputSendMessage, "when will you refund?"
	case "cb":
		in.Kind = InputCallback
	case "timer":
		in.Kind = InputTimer
	case "recon":
		in.Kind = InputReconcile
	case "ok":
		in.Kind, in.Result = InputStepResult, okResult(step)
	case "fail":
		in.Kind, in.Result = InputStepResult, failResult(step, false)
	case "trans":
		in.Kind, in.Result = InputStepResult, failResult(step, true)
	}
	return in
}

func TestDecideMatrix(t *testing.T) {
	for _, tc := range []struct {
		platform Platform
		matrix   map[State][11]string
	}{{PlatformTaobao, taobaoMatrix}, {Platform1688, alibabaMatrix}} {
		for _, s := range States() {
			row, ok := tc.matrix[s]
			if !ok {
				t.Errorf("%s matrix has no row for state %s", tc.platform, s)
				continue
			}
			for i, col := range columns {
				c := fixture(tc.platform, s)
				in := matrixInput(c, col)
				got := decider.Decide(c, nil, in)
				if cell(got) != row[i] {
					t.Errorf("%s %s × %s = %s (%s); want %s", tc.platform, s, col, cell(got), got.Reason, row[i])
				}
				if got.Outcome != OutcomeAct && (got.State != c.State || got.Parked != c.Parked || got.Step != nil) {
					t.Errorf("%s %s × %s: outcome %s changed state to %s/%s or has a step", tc.platform, s, col, got.Outcome, got.State, got.Parked)
				}
			}
		}
	}
}
