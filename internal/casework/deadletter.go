package casework

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// deadMessage is what a dead letter keeps of a message: from the stream,
// or from deferred_inputs for one that waited there.
type deadMessage struct {
	events.DeadLetter      // Reason and Error are set when it dies
	deferred          bool // its deferred_inputs row goes with the dead letter
	// kept is the deferred_inputs key of a copy kept of a stream message
	// (a refund callback recorded before its verification); the copy goes
	// with the dead letter, or the timer would take up and apply a
	// callback an operator sees dead-lettered.
	kept string
	// touched is the case a command the worker failed on may have changed
	// (touchedCase), named in its verdict; 0: none known.
	touched int64
}

func deadLetterOf(source string, m jetstream.Msg, meta *jetstream.MsgMetadata, msgID string) deadMessage {
	return deadMessage{DeadLetter: events.DeadLetter{Source: source, MsgID: msgID, Subject: m.Subject(), Stream: meta.Stream,
		Sequence: meta.Sequence.Stream, Deliveries: meta.NumDelivered, Header: m.Headers(), Data: m.Data()}}
}

// deadLetterMsg dead-letters a stream message and terminates it; if the dead
// letter could not be stored the message is Nak'ed to try again (both writes
// are idempotent).
func (w *Worker) deadLetterMsg(ctx context.Context, m jetstream.Msg, d deadMessage, reason events.DeadReason, cause error) {
	// In progress until settled, as handle keeps a message: redelivered
	// while the dead letter is being written (a slow store, one away and
	// waited for), a copy would be applied beside it.
	stop := w.inProgress(m)
	seen := w.gate.generation()
	err := w.deadLetter(ctx, d, reason, cause)
	for again, held := w.holdStore(ctx, err, 0, seen); again; again, held = w.holdStore(ctx, err, held, seen) {
		seen = w.gate.generation()
		err = w.deadLetter(ctx, d, reason, cause)
	}
	stop()
	if err != nil {
		_ = m.NakWithDelay(w.cfg.RetryBase)
		return
	}
	if terr := m.TermWithReason(string(reason)); terr != nil {
		w.log.Warn("term", append(msgAttrs(d.Source, d.MsgID, d.Data), "err", terr)...)
	}
}

// deadLetter records a message in dead_letters (with, for one that waited
// in the store, the removal of its deferred_inputs row), then publishes its
// copy to deadletters.<source> as the protocol builds it (events.DeadLetter.Msg):
// the same reason code in the row, the Dl-Reason header, the Term and the
// metric.
func (w *Worker) deadLetter(ctx context.Context, d deadMessage, reason events.DeadReason, cause error) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	errText := excerpt.Of(cause.Error(), 500)
	if (reason == events.DeadWorkerFailed || reason == events.DeadDeliveryLimit) && d.Source == sourceCommands {
		d.touched = w.touchedCase(dctx, d.Data)
	}
	var stored bool // a new row (not the one an earlier delivery stored: applyLive)
	err := w.store.Update(dctx, func(tx *casestore.Tx) error {
		d.Reason, d.Error = reason, errText
		// A handler's own reason replaces a delivery_limit row written for a
		// copy it was still holding (limits.go).
		id, inserted, err := tx.InsertDeadLetter(dctx, casestore.DeadLetter{MsgID: d.MsgID, Subject: d.Subject, Headers: d.Header,
			Payload: d.Data, Reason: string(reason), Error: errText, Deliveries: int(d.Deliveries), Stream: d.Stream, StreamSeq: d.Sequence,
			Supersedes: string(events.DeadDeliveryLimit)})
		if err != nil {
			return err
		}
		stored = inserted
		if !inserted {
			// The message's row was there (an earlier delivery's, or the
			// handler's while a delivery limit was being settled): its
			// verdict, copy and log say what the row says.
			row, err := tx.DeadLetter(dctx, id)
			if err != nil {
				return err
			}
			d.Reason, d.Error = events.StoredDeadReason(row.Reason), row.Error
		}
		if o, ok := d.commandOutcome(id); ok {
			if err := tx.RecordCommandOutcome(dctx, o); err != nil {
				return err
			}
		}
		switch {
		case d.deferred:
			return tx.DeleteDeferred(dctx, d.MsgID)
		case d.kept != "":
			return tx.DeleteDeferred(dctx, d.kept)
		}
		return nil
	})
	if err == nil && stored {
		// Counted once, when the row is new: a copy that fails to publish
		// is tried again with the row there already.
		w.metrics.deadLetters.WithLabelValues(d.Source, string(reason)).Inc()
	}
	if err == nil {
		if _, perr := w.js.PublishMsg(dctx, d.Msg()); perr != nil {
			if !d.deferred {
				err = perr
			} else {
				// The row is the record (refundctl reads it); the stream copy
				// is for alerting and cannot be written again from here.
				w.log.Warn("dead letter stored; its stream copy failed", append(msgAttrs(d.Source, d.MsgID, d.Data), "err", perr)...)
			}
		}
	}
	if err != nil {
		w.log.Error("dead letter not stored; retrying later", append(msgAttrs(d.Source, d.MsgID, d.Data), "err", err)...)
		return err
	}
	w.metrics.messages.WithLabelValues(d.Source, "dead_letter").Inc()
	w.log.WarnContext(ctx, "dead letter", append(msgAttrs(d.Source, d.MsgID, d.Data), "reason", d.Reason, "err", d.Error)...)
	return nil
}

// commandOutcome is the verdict a dead command gets: rejected, with the
// dead-letter reason as its code and the error as its reason, so that the
// operator who issued it learns why (refundctl waits for it). The command id
// is the payload's own (a retried dead letter is republished under another
// Nats-Msg-Id); a payload that does not decode falls back to the message id.
// Not for callbacks.
func (d deadMessage) commandOutcome(deadLetterID int64) (casestore.CommandOutcome, bool) {
	if d.Source != sourceCommands {
		return casestore.CommandOutcome{}, false
	}
	id, caseID := commandOf(d.Data, d.MsgID)
	reason := d.Error
	if d.touched != 0 {
		caseID = d.touched
		reason = fmt.Sprintf("%s. Case %d may have changed before it failed, as after a crash: look at the case (its timeline shows what was done; its timer takes up what was left)", d.Error, d.touched)
	}
	return casestore.CommandOutcome{CommandID: id, Verdict: casestore.VerdictRejected, CaseID: caseID,
		Code: string(d.Reason), Reason: reason, DeadLetterID: deadLetterID}, true
}

// touchedCase is the case a command the worker failed on (worker_failed)
// or ended on (delivery_limit) may have changed before it failed, found as applying the command finds
// it (refundflow.Engine.CommandCase). Its verdict names it, so that an
// operator told "rejected" looks at the case rather than send the command
// again: the failure may have come after a platform call. 0 when none is
// found (or the store does not answer: the verdict then names none).
func (w *Worker) touchedCase(ctx context.Context, payload []byte) int64 {
	cmd, err := refundflow.DecodeCommand(payload)
	if err != nil {
		return 0
	}
	return w.engine.CommandCase(ctx, cmd)
}
