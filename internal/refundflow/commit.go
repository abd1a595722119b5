package refundflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/refundhub/refundhub/internal/casestore"
)

// persist writes one decision in one transaction: the case (state, parked,
// wake, attention, documents, platform check), the settled intent, the
// recorded step result, the timeline, the new intent of a side effect and,
// for the last decision of an input, the inbox row. prior reports that the
// side effect's intent already existed.
func (e *Engine) persist(ctx context.Context, c casestore.Case, cv CaseView, in Input, pv *PlatformView,
	dec Decision, ran *stepRecord, inbox *Message, note string, final bool) (prior bool, err error) {
	err = e.store.Update(context.WithoutCancel(ctx), func(tx *casestore.Tx) error {
		r, err := e.persistTx(ctx, tx, c, cv, in, pv, dec, ran, inbox, note, final, false)
		prior = r.prior
		return err
	})
	return prior, err
}

// persisted is what persistTx wrote.
type persisted struct {
	prior bool           // the side effect's intent already existed
	c     casestore.Case // the case as updated
}

// persistTx is persist inside an open transaction.
//
// It takes the case's lease unless leased says this transaction already did.
// The timeline entries (step, note, decision) go in with one statement.
func (e *Engine) persistTx(ctx context.Context, tx *casestore.Tx, c casestore.Case, cv CaseView, in Input, pv *PlatformView,
	dec Decision, ran *stepRecord, inbox *Message, note string, final, leased bool) (out persisted, err error) {
	var prior bool
	err = func() error {
		if !leased {
			u, err := tx.TakeLease(ctx, c.ID, e.owner, e.leaseTTL)
			if errors.Is(err, casestore.ErrLeased) {
				return &leasedError{until: u, err: err}
			}
			if err != nil {
				return err
			}
		}
		timeline := make([]casestore.TimelineEntry, 0, 3)
		nc := c
		nc.State, nc.ParkedState, nc.NextWakeAt = string(dec.State), string(dec.Parked), dec.WakeAt
		if dec.Outcome == OutcomeAct || dec.Outcome == OutcomeNoOp {
			// A no-op may raise a flag too (waiting for evidence) or end one.
			if dec.Attention != nil {
				nc.AttentionCode, nc.AttentionMessage = dec.Attention.Code, dec.Attention.Message
			} else if dec.State != StateNeedsAttention {
				nc.AttentionCode, nc.AttentionMessage = "", ""
			}
		}
		if final || (ran != nil && (ran.err == nil || !ran.err.Transient)) {
			nc.FailedInputs = 0 // the case got somewhere: the retry backoff starts over
		}
		if dec.Outcome == OutcomeAct {
			if dec.RefundID != "" {
				nc.RefundID = dec.RefundID
			}
			for _, d := range []struct {
				v   any
				dst *json.RawMessage
			}{{dec.Request, &nc.Request}, {dec.Plan, &nc.Plan}, {dec.Shipment, &nc.Shipment}} {
				if isNilDoc(d.v) {
					continue
				}
				b, err := json.Marshal(d.v)
				if err != nil {
					return err
				}
				*d.dst = b
			}
		}
		if in.Kind == InputReconcile {
			// Checked now, even when the decision needed no view (a case
			// before submission): the reconciler moves on to staler cases.
			nc.LastPlatformCheckAt = tx.Now()
		}
		if pv != nil {
			nc.LastPlatformCheckAt = tx.Now()
			if pv.Found {
				nc.PlatformStatus = pv.Status(cv.Platform)
			}
		}
		updated, err := tx.UpdateCaseFrom(ctx, c, nc)
		if err != nil {
			return err
		}
		out.c = updated
		if ran != nil {
			entry, err := e.recordStep(ctx, tx, c.ID, ran)
			if err != nil {
				return err
			}
			timeline = append(timeline, entry)
		}
		if r := dec.Resolve; r != nil {
			res := casestore.StepResult{Status: casestore.StepDone, Outcome: jsonObj("note", r.Note)}
			if !r.Done {
				res.Status, res.ErrorCode, res.ErrorMessage = casestore.StepFailed, r.Code, r.Note
			}
			if err := tx.FinishStep(ctx, r.Key, res); err != nil {
				return err
			}
		}
		// Quiet: a timer or reconcile tick that changed nothing is not
		// worth a timeline entry (the check time is still recorded).
		unchanged := dec.Step == nil && dec.Resolve == nil && dec.RefundID == "" && dec.Request == nil &&
			dec.Plan == nil && dec.Shipment == nil && dec.State == cv.State && dec.Parked == cv.Parked &&
			nc.AttentionCode == c.AttentionCode && ran == nil &&
			!(dec.Code == CodeInFlight && !dec.WakeAt.Equal(c.NextWakeAt)) // a wait for an attempt in flight is shown once
		if unchanged && (in.Kind == InputTimer || in.Kind == InputReconcile) {
			note = ""
		}
		if note != "" {
			timeline = append(timeline, casestore.TimelineEntry{CaseID: c.ID, Kind: timelineKind(in.Kind), Summary: note})
		}
		quiet := unchanged && (in.Kind == InputTimer || in.Kind == InputReconcile)
		if pv != nil && len(pv.Foreign) > 0 && !quiet {
			timeline = append(timeline, casestore.TimelineEntry{CaseID: c.ID, Kind: casestore.KindNote,
				Summary: fmt.Sprintf("refund %s on the platform predates this case's submission: someone else's, not taken as this case's",
					strings.Join(pv.Foreign, ", "))})
		}
		detail := map[string]any{"input": in.Kind, "outcome": dec.Outcome, "code": dec.Code, "from": cv.State, "to": dec.State}
		if pv != nil {
			detail["platformFound"], detail["platformStatus"], detail["platformRefundId"] = pv.Found, pv.Status(cv.Platform), pv.RefundID
			if len(pv.Foreign) > 0 {
				detail["foreignRefunds"] = pv.Foreign
			}
		}
		if dec.Step != nil {
			detail["step"], detail["key"] = dec.Step.Name, dec.Step.Key
		}
		db, _ := json.Marshal(detail)
		summary := fmt.Sprintf("%s %s: %s", dec.Outcome, dec.Code, clipN(dec.Reason, 300))
		if !quiet {
			timeline = append(timeline, casestore.TimelineEntry{CaseID: c.ID, Kind: casestore.KindDecision,
				Summary: summary, Detail: db})
		}
		if err := tx.AppendTimeline(ctx, timeline...); err != nil {
			return err
		}
		if dec.Outcome == OutcomeAct && dec.Step != nil && dec.Step.Name.SideEffect() {
			a, p, err := tx.BeginStep(ctx, c.ID, string(dec.Step.Name), dec.Step.Key, stepSummary(c, dec.Step))
			if err != nil {
				return err
			}
			// An existing row that is finished, or an intent we did not
			// expect to resume, must not be called again.
			prior = p && !(dec.Step.Resume && a.Status == casestore.StepIntent)
		}
		if inbox != nil {
			if _, err := tx.InboxRecord(ctx, inboxEntry(inbox)); err != nil {
				return err
			}
		}
		if final {
			return tx.DropLease(ctx, c.ID, e.owner)
		}
		return nil
	}()
	out.prior = prior
	return out, err
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
	summary := fmt.Sprintf("%s ok", r.step)
	if r.err != nil {
		summary = fmt.Sprintf("%s failed (%s): %s", r.step, r.err.Code, clipN(r.err.Message, 300))
		if r.err.Transient {
			summary = fmt.Sprintf("%s failed transiently (%s): %s", r.step, r.err.Code, clipN(r.err.Message, 300))
		}
	}
	if r.requestID != "" {
		summary += " requestId=" + r.requestID
	}
	switch {
	case r.key == "":
		if _, err := tx.RecordStep(ctx, caseID, string(r.step), r.request, res); err != nil {
			return casestore.TimelineEntry{}, err
		}
	case r.err != nil && (!r.err.NotApplied || r.resume):
		// Outcome unknown (of this attempt, or of an earlier one under the
		// same key when this one was refused): the intent stays open and the
		// next attempt asks the platform first, trusting "no effect" only
		// Policy.InFlight after now (the request may still arrive).
		if err := tx.MarkAttempt(ctx, r.key); err != nil {
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

func isNilDoc(v any) bool {
	switch d := v.(type) {
	case *Request:
		return d == nil
	case *Plan:
		return d == nil
	case *Shipment:
		return d == nil
	}
	return true
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

func jsonObj(k, v string) string {
	b, _ := json.Marshal(map[string]string{k: v})
	return string(b)
}

func clipN(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
