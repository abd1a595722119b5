package refundflow

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/excerpt"
)

// decisionRecord is one decision to commit, with what it was decided from
// and what is recorded with it: the argument of persist and persistTx.
type decisionRecord struct {
	c    casestore.Case // the case decided on: the update checks its version
	cv   CaseView       // c's view, as decided on
	in   Input          // the input decided
	pv   *PlatformView  // the platform view fetched for the decision, if any
	dec  Decision
	ran  *stepRecord // the step whose result in carries, recorded now
	note string      // what the input was, for the timeline ("" for none)
	// final: the input's last decision (see isFinal). The input's message
	// (msg, if any) goes to the inbox and the case's lease is dropped in
	// the same transaction; msg is not recorded with any other decision.
	final bool
	msg   *Message
	// viewed: a platform read of the input got through (run.viewed).
	viewed bool
}

// persisted is what persistTx wrote.
type persisted struct {
	prior bool           // the side effect's intent already existed
	c     casestore.Case // the case as updated
}

// persist writes one decision in one transaction: the case (state, parked,
// wake, attention, documents, platform check), the settled intent, the
// recorded step result, the timeline, the new intent of a side effect and,
// for the last decision of an input, the inbox row. prior reports that the
// side effect's intent already existed.
func (e *Engine) persist(ctx context.Context, d decisionRecord) (prior bool, err error) {
	err = e.store.Update(context.WithoutCancel(ctx), func(tx *casestore.Tx) error {
		r, err := e.persistTx(ctx, tx, d)
		prior = r.prior
		return err
	})
	return prior, err
}

// persistTx is persist inside an open transaction. The statements keep
// this order: the case with its lease, the callback's inbox check, step,
// settled intent, timeline (the entries of the step, note and decision in
// one statement), new intent, inbox.
func (e *Engine) persistTx(ctx context.Context, tx *casestore.Tx, d decisionRecord) (persisted, error) {
	nc, err := d.caseRow(tx.Now())
	if err != nil {
		return persisted{}, err
	}
	// The case's lease goes with the case row: kept across the step to
	// come, let go with the input's last decision. Another process's
	// lease is a *casestore.LeasedError.
	keep := e.leaseTTL
	if d.final {
		keep = 0
	}
	updated, err := tx.UpdateCaseLeased(ctx, d.c, nc, e.owner, keep)
	if err != nil {
		return persisted{}, err
	}
	if d.dec.Outcome == OutcomeAct && d.dec.Code == CodeAdopted {
		// Another case may have taken the refund since it was read: the
		// adoption is then decided again, and refused naming it.
		other, err := tx.OpenCaseFollowing(ctx, d.c.Platform, d.dec.RefundID, d.c.ID)
		if err != nil {
			return persisted{}, err
		}
		if other != 0 {
			return persisted{}, fmt.Errorf("adopt refund %s: case %d follows it now: %w", d.dec.RefundID, other, casestore.ErrVersionConflict)
		}
	}
	claimed := false
	if d.in.Kind == InputCallback && d.msg != nil && d.msg.ID != "" {
		// The callback's own decision, dropped if another verification of
		// it (a redelivered copy, the timer's, in another process) has
		// applied it, so that a callback is applied once. One that
		// committed before this run read the case is found here
		// (casestore.ErrInInbox, out of this call or out of Update); one
		// that committed since changed the case's version, so the update
		// above fails first, and turn looks the callback up then
		// (appliedElsewhere). Its last decision writes the inbox row in
		// the same statement.
		claimed = d.final
		var err error
		if claimed {
			err = tx.InboxClaim(ctx, inboxEntry(d.msg))
		} else {
			err = tx.InboxAbsent(ctx, d.msg.ID)
		}
		if err != nil {
			return persisted{}, err
		}
	}
	timeline := make([]casestore.TimelineEntry, 0, 3)
	if d.ran != nil {
		entry, err := e.recordStep(ctx, tx, d.c.ID, d.ran)
		if err != nil {
			return persisted{}, err
		}
		timeline = append(timeline, entry)
	}
	if err := settleIntent(ctx, tx, d.dec.Resolve); err != nil {
		return persisted{}, err
	}
	if err := tx.AppendTimeline(ctx, d.entries(timeline, nc, tx.Now())...); err != nil {
		return persisted{}, err
	}
	prior, err := d.beginIntent(ctx, tx)
	if err != nil {
		return persisted{}, err
	}
	if o, ok := d.commandOutcome(); ok {
		if err := tx.RecordCommandOutcome(ctx, o); err != nil {
			return persisted{}, err
		}
	}
	if d.final && d.msg != nil && !claimed {
		// The input's message goes to the inbox, so that a redelivery is
		// dropped.
		if err := tx.InboxAdd(ctx, inboxEntry(d.msg)); err != nil {
			return persisted{}, err
		}
	}
	return persisted{prior: prior, c: updated}, nil
}

// commandOutcome is the verdict d gives an operator command, when d is the
// command's own decision (not that of a step it led to, nor one that only
// settled an intent before deciding the command again). A duplicate is
// rejected: it changed nothing, and the verdict names the case it repeats.
func (d decisionRecord) commandOutcome() (casestore.CommandOutcome, bool) {
	if !isCommand(d.in.Kind) || d.in.ID == "" || d.dec.Reapply {
		return casestore.CommandOutcome{}, false
	}
	o := casestore.CommandOutcome{CommandID: d.in.ID, Verdict: casestore.VerdictApplied, CaseID: d.c.ID,
		Code: d.dec.Code, Reason: excerpt.Of(d.dec.Reason, maxOutcomeReason)}
	if d.dec.Outcome == OutcomeReject || (d.dec.Outcome == OutcomeNoOp && d.dec.Code == CodeDuplicate) ||
		(d.dec.Outcome == OutcomeAct && d.dec.Code == CodeOrderEnded && d.in.Kind == InputRequestRefund) {
		// An order that ended ends the request it opened: the case is
		// finished, but what the operator asked for was not done.
		o.Verdict = casestore.VerdictRejected
	}
	return o, true
}

// maxOutcomeReason bounds the reason kept with a command's verdict.
const maxOutcomeReason = 2000

// caseRow is the case row after d: state, parked state, wake, attention,
// the retry count, refund id and documents, and the platform check.
func (d decisionRecord) caseRow(now time.Time) (casestore.Case, error) {
	dec, nc := d.dec, d.c
	nc.State, nc.ParkedState, nc.NextWakeAt = string(dec.State), string(dec.Parked), dec.WakeAt
	if dec.Outcome == OutcomeAct || dec.Outcome == OutcomeNoOp {
		// A no-op may raise a flag too (waiting for evidence) or end one.
		if dec.Attention != nil {
			nc.AttentionCode, nc.AttentionMessage = dec.Attention.Code, dec.Attention.Message
		} else if dec.State != StateNeedsAttention {
			nc.AttentionCode, nc.AttentionMessage = "", ""
		}
	}
	switch {
	case nc.AttentionCode != CodeWorkerEnded:
		nc.HeldCode, nc.HeldMessage = "", ""
	case dec.Held != nil:
		nc.HeldCode, nc.HeldMessage = dec.Held.Code, dec.Held.Message
	}
	// The case got somewhere: the retry backoff starts over, and the flag
	// goes with its count. Not with a refusal that read nothing, which
	// changes nothing: the failures it came between go on, at their
	// backoff. One whose read got through (an intent settled first, the
	// refund looked up) shows the platform answers again.
	if (d.final && (dec.Outcome != OutcomeReject || d.viewed)) || (d.ran != nil && (d.ran.err == nil || !d.ran.err.Transient)) {
		nc.FailedInputs = 0
		if nc.AttentionCode == AttnInputsFailing && dec.Attention == nil {
			nc.AttentionCode, nc.AttentionMessage = "", ""
		}
	}
	if dec.Outcome == OutcomeAct {
		if dec.RefundID != "" {
			nc.RefundID = dec.RefundID
		}
		if err := setDocs(&nc, dec); err != nil {
			return nc, err
		}
	}
	// A reconcile input counts as a check even when the decision needed no
	// view (a case before submission): the reconciler moves on to staler
	// cases.
	// A view read for an adoption is the case's only if it was adopted.
	own := d.pv != nil && (d.pv.Adopting == nil || (dec.Outcome == OutcomeAct && dec.Code == CodeAdopted))
	if d.in.Kind == InputReconcile || own {
		nc.LastPlatformCheckAt = now
	}
	if own && d.pv.Found {
		nc.PlatformStatus = d.pv.Status(d.cv.Platform)
	}
	if dec.Outcome == OutcomeAct && dec.PlatformStatus != nil {
		nc.PlatformStatus = *dec.PlatformStatus
	}
	if dec.Outcome == OutcomeAct && dec.OrderEventsSeen > nc.OrderEventsSeen {
		nc.OrderEventsSeen = dec.OrderEventsSeen
	}
	return nc, nil
}

// setDocs stores the documents dec replaces (Request, Plan, Shipment) in c.
func setDocs(c *casestore.Case, dec Decision) error {
	if err := setDoc(&c.Request, dec.Request); err != nil {
		return err
	}
	if err := setDoc(&c.Plan, dec.Plan); err != nil {
		return err
	}
	return setDoc(&c.Shipment, dec.Shipment)
}

// setDoc encodes doc into dst unless doc is nil (the document is kept).
func setDoc[T any](dst *json.RawMessage, doc *T) error {
	if doc == nil {
		return nil
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	*dst = b
	return nil
}

// settleIntent records how the decision settled the case's open intent
// (Decision.Resolve), if it did.
func settleIntent(ctx context.Context, tx *casestore.Tx, r *Resolution) error {
	if r == nil {
		return nil
	}
	res := casestore.StepResult{Status: casestore.StepDone, Outcome: jsonObj("note", r.Note)}
	if !r.Done {
		res.Status, res.ErrorCode, res.ErrorMessage = casestore.StepFailed, r.Code, r.Note
	}
	return tx.FinishStep(ctx, r.Key, res)
}

// quiet reports a timer or reconcile tick that changed nothing (nc is the
// case row after it): not worth a timeline entry, though the check time is
// still recorded.
func (d decisionRecord) quiet(nc casestore.Case) bool {
	if d.in.Kind != InputTimer && d.in.Kind != InputReconcile {
		return false
	}
	dec := d.dec
	return dec.Step == nil && dec.Resolve == nil && dec.RefundID == "" && dec.Request == nil &&
		dec.Plan == nil && dec.Shipment == nil && dec.State == d.cv.State && dec.Parked == d.cv.Parked &&
		nc.AttentionCode == d.c.AttentionCode && d.ran == nil &&
		!(dec.Code == CodeInFlight && !dec.WakeAt.Equal(d.c.NextWakeAt)) // a wait for an attempt in flight is shown once
}

// entries appends d's timeline entries to timeline (which holds the step's,
// if one ran): the note, refunds seen that predate the case, and the
// decision; none for a quiet tick.
func (d decisionRecord) entries(timeline []casestore.TimelineEntry, nc casestore.Case, now time.Time) []casestore.TimelineEntry {
	if d.quiet(nc) {
		return timeline
	}
	if d.note != "" {
		timeline = append(timeline, casestore.TimelineEntry{CaseID: d.c.ID, Kind: timelineKind(d.in.Kind), Summary: d.note,
			Detail: d.callbackDetail(now)})
	}
	if d.pv != nil && len(d.pv.Foreign) > 0 {
		timeline = append(timeline, casestore.TimelineEntry{CaseID: d.c.ID, Kind: casestore.KindNote,
			Summary: fmt.Sprintf("refund %s on the platform predates this case's submission: someone else's, not taken as this case's",
				strings.Join(d.pv.Foreign, ", "))})
	}
	return append(timeline, d.decisionEntry())
}

// CallbackDetail is the detail of a callback's own timeline entry. Stream,
// Seq and MsgID name the stream message it came from (what the console's
// replay re-delivers); LagMs is the time from the receiver taking the
// callback in to the transaction that recorded it (Message.Lag, to the
// transaction's clock), absent when the receive time is unknown.
type CallbackDetail struct {
	Stream string `json:"stream,omitempty"`
	Seq    uint64 `json:"seq,omitempty"`
	MsgID  string `json:"msgId,omitempty"` // Nats-Msg-Id (stream:seq for a message without one)
	LagMs  *int64 `json:"lagMs,omitempty"`
}

// OrderEventDetail is the detail of an order callback's entry on each
// open case of its order: the event kept (its id among the order events,
// type and status) and, as for any callback, the stream message it came
// from and its lag.
type OrderEventDetail struct {
	OrderEvent  int64  `json:"orderEvent"`
	Type        string `json:"type"`
	OrderStatus string `json:"orderStatus,omitempty"`
	CallbackDetail
}

// callbackDetail is d's CallbackDetail (see callbackDetail); none for
// other inputs. A callback whose message has no payload to keep (a test's
// delivery) is recorded here, with its first decision, not before.
func (d decisionRecord) callbackDetail(now time.Time) json.RawMessage {
	if d.in.Kind != InputCallback {
		return nil
	}
	return callbackDetail(d.msg, now)
}

// callbackDetail is the CallbackDetail of msg's timeline entry, recorded
// in a transaction at now (at which Message.Lag is set); none for no
// message.
func callbackDetail(msg *Message, now time.Time) json.RawMessage {
	detail := msg.detail(now)
	if detail == (CallbackDetail{}) {
		return nil
	}
	b, _ := json.Marshal(detail)
	return b
}

// detail is the CallbackDetail of msg recorded at now (setting its lag);
// empty for no message.
func (msg *Message) detail(now time.Time) CallbackDetail {
	if msg == nil {
		return CallbackDetail{}
	}
	detail := CallbackDetail{MsgID: msg.ID}
	if msg.Stream != "" && msg.Seq != 0 {
		detail.Stream, detail.Seq = msg.Stream, msg.Seq
	}
	if !msg.ReceivedAt.IsZero() {
		lag := msg.applied(now).Milliseconds()
		detail.LagMs = &lag
	}
	return detail
}

// decisionEntry is the decision's timeline entry, with what it was decided
// from in its detail.
func (d decisionRecord) decisionEntry() casestore.TimelineEntry {
	dec, pv := d.dec, d.pv
	detail := map[string]any{"input": d.in.Kind, "outcome": dec.Outcome, "code": dec.Code, "from": d.cv.State, "to": dec.State}
	if pv != nil {
		detail["platformFound"], detail["platformStatus"], detail["platformRefundId"] = pv.Found, pv.Status(d.cv.Platform), pv.RefundID
		if len(pv.Foreign) > 0 {
			detail["foreignRefunds"] = pv.Foreign
		}
	}
	if dec.Step != nil {
		detail["step"], detail["key"] = dec.Step.Name, dec.Step.Key
	}
	db, _ := json.Marshal(detail)
	return casestore.TimelineEntry{CaseID: d.c.ID, Kind: casestore.KindDecision,
		Summary: fmt.Sprintf("%s %s: %s", dec.Outcome, dec.Code, excerpt.Of(dec.Reason, 300)), Detail: db}
}

// beginIntent records the intent of the side effect d acts on, before it is
// called. prior reports that the intent existed already and the step must
// not be called again: an existing row that is finished, or an intent the
// step does not expect to resume.
func (d decisionRecord) beginIntent(ctx context.Context, tx *casestore.Tx) (prior bool, err error) {
	st := d.dec.Step
	if d.dec.Outcome != OutcomeAct || st == nil || !st.Name.SideEffect() {
		return false, nil
	}
	a, p, err := tx.BeginStep(ctx, d.c.ID, string(st.Name), st.Key, stepSummary(d.c, st))
	if err != nil {
		return false, err
	}
	return p && !(st.Resume && a.Status == casestore.StepIntent), nil
}

// recordStep records a step that ran: FinishStep for side effects (unless
// the failure left the outcome open: the intent then stays open), RecordStep
// for reads. It returns the step's timeline entry (with the platform's
// requestId) for the caller to append with its others.
func (e *Engine) recordStep(ctx context.Context, tx *casestore.Tx, caseID int64, r *stepRecord) (casestore.TimelineEntry, error) {
	res := casestore.StepResult{Status: casestore.StepDone, Outcome: r.outcome, RequestID: r.requestID}
	if r.err != nil {
		res.Status, res.ErrorCode, res.ErrorMessage = casestore.StepFailed, r.err.Code, r.err.Message
	}
	summary := r.summary()
	switch {
	case r.key == "":
		if err := tx.RecordStep(ctx, caseID, string(r.step), r.request, res); err != nil {
			return casestore.TimelineEntry{}, err
		}
	case r.err != nil && (!r.err.NotApplied || r.resume):
		// Outcome unknown (of this attempt, or of an earlier one under the
		// same key when this one was refused): the intent stays open and the
		// next attempt asks the platform first, trusting "no effect" only
		// Policy.InFlight after now (the request may still arrive).
		if err := tx.MarkAttempt(ctx, r.key, r.err.Code, r.err.Message, r.err.Refused); err != nil {
			return casestore.TimelineEntry{}, err
		}
		if r.err.NotApplied {
			summary += "; refused, but an earlier attempt may have taken effect: intent left open"
		} else {
			summary += "; outcome unknown: intent left open"
		}
	case r.err != nil:
		// The platform certainly did not apply it: the intent is closed,
		// and a later attempt goes out under a new key without asking first.
		if err := tx.FinishStep(ctx, r.key, res); err != nil {
			return casestore.TimelineEntry{}, err
		}
		summary += "; not applied"
	default:
		if err := tx.FinishStep(ctx, r.key, res); err != nil {
			return casestore.TimelineEntry{}, err
		}
	}
	d, _ := json.Marshal(map[string]any{"step": r.step, "key": r.key, "requestId": r.requestID, "ms": r.dur.Milliseconds()})
	return casestore.TimelineEntry{CaseID: caseID, Kind: casestore.KindStep, Summary: summary, Detail: d}, nil
}

func timelineKind(k InputKind) casestore.TimelineKind {
	switch k {
	case InputCallback:
		return casestore.KindCallback
	case InputTimer:
		return casestore.KindTimer
	case InputReconcile:
		return casestore.KindReconcile
	case InputStepResult:
		return casestore.KindDecision
	default:
		return casestore.KindCommand
	}
}

// summary is how the step went, for its timeline entry; recordStep adds
// what became of its intent.
func (r *stepRecord) summary() string {
	s := fmt.Sprintf("%s ok", r.step)
	if r.err != nil {
		s = fmt.Sprintf("%s failed (%s): %s", r.step, r.err.Code, excerpt.Of(r.err.Message, MaxAttentionText))
		if r.err.Transient {
			s = fmt.Sprintf("%s failed transiently (%s): %s", r.step, r.err.Code, excerpt.Of(r.err.Message, MaxAttentionText))
		}
	}
	if r.requestID != "" {
		s += " requestId=" + r.requestID
	}
	return s
}

func jsonObj(k, v string) string {
	b, _ := json.Marshal(map[string]string{k: v})
	return string(b)
}
