package casework

import (
	"context"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/excerpt"
)

// deadMessage is what a dead letter keeps of a message: from the stream,
// or from deferred_inputs for one that waited there.
type deadMessage struct {
	source     string
	msgID      string
	subject    string
	stream     string
	seq        uint64
	deliveries uint64
	headers    nats.Header
	payload    []byte
	deferred   bool // its deferred_inputs row goes with the dead letter
}

func deadLetterOf(source string, m jetstream.Msg, meta *jetstream.MsgMetadata, msgID string) deadMessage {
	return deadMessage{source: source, msgID: msgID, subject: m.Subject(), stream: meta.Stream, seq: meta.Sequence.Stream,
		deliveries: meta.NumDelivered, headers: m.Headers(), payload: m.Data()}
}

// deadLetterMsg dead-letters a stream message and terminates it; if the dead
// letter could not be stored the message is Nak'ed to try again (both writes
// are idempotent).
func (w *Worker) deadLetterMsg(ctx context.Context, m jetstream.Msg, d deadMessage, reason events.DeadReason, cause error) {
	if err := w.deadLetter(ctx, d, reason, cause); err != nil {
		_ = m.NakWithDelay(w.cfg.RetryBase)
		return
	}
	if terr := m.TermWithReason(string(reason)); terr != nil {
		w.log.Warn("term", "msg", d.msgID, "err", terr)
	}
}

// deadLetter records a message in dead_letters (with, for one that waited
// in the store, the removal of its deferred_inputs row), then publishes it
// to deadletters.<source> with Dl-* headers: the same reason code in the
// row, the Dl-Reason header, the Term and the metric.
func (w *Worker) deadLetter(ctx context.Context, d deadMessage, reason events.DeadReason, cause error) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	errText := excerpt.Of(cause.Error(), 500)
	err := w.store.Update(dctx, func(tx *casestore.Tx) error {
		if _, _, err := tx.InsertDeadLetter(dctx, casestore.DeadLetter{MsgID: d.msgID, Subject: d.subject, Headers: d.headers,
			Payload: d.payload, Reason: string(reason), Error: errText, Deliveries: int(d.deliveries)}); err != nil {
			return err
		}
		if d.deferred {
			return tx.DeleteDeferred(dctx, d.msgID)
		}
		return nil
	})
	if err == nil {
		out := nats.NewMsg(events.DeadLetterSubject(d.source))
		out.Data = d.payload
		for k, v := range d.headers {
			if k != events.HeaderMsgID {
				out.Header[k] = v
			}
		}
		out.Header.Set(events.HeaderDeadReason, string(reason))
		out.Header.Set(events.HeaderDeadError, errText)
		out.Header.Set(events.HeaderDeadSubject, d.subject)
		out.Header.Set(events.HeaderDeadStream, d.stream)
		out.Header.Set(events.HeaderDeadSequence, strconv.FormatUint(d.seq, 10))
		out.Header.Set(events.HeaderDeadDeliveries, strconv.FormatUint(d.deliveries, 10))
		if _, perr := w.js.PublishMsg(dctx, out, jetstream.WithMsgID("dl:"+d.msgID)); perr != nil {
			if !d.deferred {
				err = perr
			} else {
				// The row is the record (refundctl reads it); the stream copy
				// is for alerting and cannot be written again from here.
				w.log.Warn("dead letter stored; its stream copy failed", "msg", d.msgID, "err", perr)
			}
		}
	}
	if err != nil {
		w.log.Error("dead letter not stored; retrying later", "source", d.source, "msg", d.msgID, "err", err)
		return err
	}
	w.metrics.deadLetters.WithLabelValues(d.source, string(reason)).Inc()
	w.metrics.messages.WithLabelValues(d.source, "dead_letter").Inc()
	w.log.Warn("dead letter", "source", d.source, "msg", d.msgID, "reason", reason, "err", errText)
	return nil
}
