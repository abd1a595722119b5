package casework

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// The consumers' own delivery limit (MaxDeliver, WORKER_MAX_DELIVER + 3) is
// reached only by a message that got no verdict from its handler that many
// times: the handler dead-letters a failing one before (handle). So either
// a worker process ended (a kill, out of memory, a crash no recover
// catches), lost its NATS connection or stopped while it held the message,
// each time: one that waits in a process is reported in progress
// (consume), and one a stopping process hands back counts once. The
// server then stops delivering it, and
// says so only in an advisory that the limit stream keeps
// (events.EnsureLimitStream). The worker turns each into a dead letter,
// delivery_limit, unless the message was settled after all: without it an
// operator's command would stay pending for ever, and a callback would be
// gone with no trace.

// sourceLimits names the limit stream's consumer among the bound ones.
const sourceLimits = "limits"

// errSubjectsOverlap is the server's error code (JSStreamSubjectOverlapErr)
// for a stream whose subjects another stream has: the one refusal that
// lasts. Others (no leader yet, resources) pass, and bind tries again.
const errSubjectsOverlap jetstream.ErrorCode = 10065

// keptHow is settledAs's answer for a message kept for its case's timer:
// not finished (the timer may still dead-letter it), so no dead letter is
// written for it, and none is discarded for it either.
const keptHow = "kept for its case's timer"

// bindLimits makes sure the limit stream exists and binds the worker's
// consumer on it, reading only its own consumers' advisories (another
// fleet's, under another WORKER_CONSUMER, may share the stream). A server
// that refuses the stream (its subjects overlap a stream that captures
// the advisories already, such as a monitoring stream on $JS.EVENT.>)
// does not keep the worker from its work: it runs without, said at error
// with what to do, and a nil consumer. An error is NATS not answering.
func (w *Worker) bindLimits(ctx context.Context) (jetstream.Consumer, error) {
	streams := []string{w.cfg.Stream.Name, w.cfg.WorkStreams.CommandStream}
	err := events.EnsureLimitStream(ctx, w.js, w.cfg.WorkStreams, streams...)
	var cons jetstream.Consumer
	if err == nil {
		cons, err = w.js.CreateOrUpdateConsumer(ctx, w.cfg.WorkStreams.LimitStream, w.limitConsumerConfig(streams))
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == errSubjectsOverlap {
		w.log.Error("running without the delivery limit stream: a message the consumers stop delivering (a process ended on it each time) "+
			"will leave no dead letter; narrow or remove the stream whose subjects overlap $JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES, then restart the worker",
			"stream", w.cfg.WorkStreams.LimitStream, "err", err)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("delivery limit stream %s: %w", w.cfg.WorkStreams.LimitStream, err)
	}
	return cons, nil
}

// limitConsumerConfig is the durable consumer on the limit stream, for
// the advisories of this worker's consumers on streams. No delivery limit
// of its own: an advisory is the only record of its message, and one that
// cannot be settled now (the store away) is tried again with backoff for
// as long as it takes.
func (w *Worker) limitConsumerConfig(streams []string) jetstream.ConsumerConfig {
	var filters []string
	for _, s := range streams {
		filters = append(filters, events.MaxDeliveriesSubject(s, w.cfg.Consumer))
	}
	return jetstream.ConsumerConfig{
		Durable:        w.cfg.Consumer,
		Description:    "refundhub worker: messages its consumers stopped delivering",
		FilterSubjects: filters,
		AckPolicy:      jetstream.AckExplicitPolicy,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckWait:        w.cfg.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  16,
	}
}

// consumeLimits hands the limit stream's advisories to handleLimit, one at
// a time: they are rare, and each is a few reads and a write.
func (w *Worker) consumeLimits(ctx, work context.Context, cons jetstream.Consumer) (jetstream.ConsumeContext, error) {
	return cons.Consume(func(m jetstream.Msg) {
		if ctx.Err() != nil || !w.track() {
			return // stopping: not acked, so delivered again later
		}
		defer w.wg.Done()
		w.handleLimit(work, m)
	}, jetstream.PullMaxMessages(2), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			w.log.Debug("consume", "source", sourceLimits, "err", err)
		}
	}))
}

// handleLimit settles one advisory, held through store outages like a
// message; acked once settled, else delivered again after a backoff.
func (w *Worker) handleLimit(ctx context.Context, m jetstream.Msg) {
	a, err := events.ParseDeliveryLimit(m.Data())
	if err != nil {
		// Only the server publishes on the stream's subjects.
		w.log.Error("delivery limit advisory unreadable: dropped", "subject", m.Subject(), "err", err)
		_ = m.TermWithReason("unreadable advisory")
		return
	}
	source := ""
	switch a.Stream {
	case w.cfg.Stream.Name:
		source = sourceCallbacks
	case w.cfg.WorkStreams.CommandStream:
		source = sourceCommands
	}
	if source == "" || a.Consumer != w.cfg.Consumer {
		// Kept before a rename of the consumer or a stream: that consumer's
		// messages are not this worker's to settle.
		w.log.Warn("delivery limit advisory of another consumer: left alone", "stream", a.Stream, "consumer", a.Consumer, "seq", a.StreamSeq)
		_ = m.Ack()
		return
	}
	if wait := w.limitSettleWait(m); wait > 0 || w.gate.closed() {
		_ = m.NakWithDelay(max(wait, w.cfg.AckWait/3))
		return
	}
	stop := w.inProgress(m)
	seen := w.gate.generation()
	err = w.settleLimit(ctx, source, a)
	for again, held := w.holdStore(ctx, err, 0, seen); again; again, held = w.holdStore(ctx, err, held, seen) {
		if wait := w.limitSettleWait(m); wait > 0 {
			// Back from an outage: the copies held through it go first.
			stop()
			_ = m.NakWithDelay(wait)
			return
		}
		seen = w.gate.generation()
		err = w.settleLimit(ctx, source, a)
	}
	stop()
	if err != nil {
		n := uint64(1)
		if meta, merr := m.Metadata(); merr == nil {
			n = meta.NumDelivered
		}
		w.log.Error("delivery limit not settled; retrying later", "source", source, "stream", a.Stream, "seq", a.StreamSeq, "err", err)
		_ = m.NakWithDelay(w.backoff(n))
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := m.DoubleAck(actx); err != nil {
		w.log.Warn("ack delivery limit advisory", "stream", a.Stream, "seq", a.StreamSeq, "err", err)
	}
}

// limitSettleWait is how long an advisory waits before it is settled: until
// AckWait has passed since the server gave the message up, and since the
// store last came back. A copy a process fetched before the limit is
// handled within that, as a rule (held through an outage, it is handled as
// soon as the store answers), and settles the message without a dead
// letter written and then discarded.
func (w *Worker) limitSettleWait(m jetstream.Msg) time.Duration {
	meta, err := m.Metadata()
	if err != nil {
		return 0
	}
	from := meta.Timestamp
	if opened := w.gate.lastOpened(); opened.After(from) {
		from = opened
	}
	return time.Until(from.Add(w.cfg.AckWait))
}

// settleLimit makes the message an advisory names a dead letter, unless
// it was settled after all (settledAs). A dead letter its handler stored,
// whose Term did not reach the server, is published again as a
// redelivery of it would be.
func (w *Worker) settleLimit(ctx context.Context, source string, a events.DeliveryLimit) error {
	raw, err := w.streamMsg(ctx, a.Stream, a.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		// Its stream's max age or a purge removed it: nothing is left to
		// keep or retry, and the log is its only record.
		w.log.Error("a message the consumer stopped delivering is no longer in its stream: nothing to dead-letter",
			"source", source, "stream", a.Stream, "seq", a.StreamSeq, "deliveries", a.Deliveries)
		return nil
	}
	if err != nil {
		return err
	}
	msgID := raw.Header.Get(events.HeaderMsgID)
	if msgID == "" {
		msgID = a.Stream + ":" + strconv.FormatUint(a.StreamSeq, 10)
	}
	d := deadMessage{DeadLetter: events.DeadLetter{Source: source, MsgID: msgID, Subject: raw.Subject, Stream: a.Stream,
		Sequence: a.StreamSeq, Deliveries: a.Deliveries, Header: raw.Header, Data: raw.Data}}
	attrs := append(msgAttrs(source, msgID, raw.Data), "seq", a.StreamSeq, "deliveries", a.Deliveries)
	dl, err := w.store.PendingDeadLetter(ctx, msgID, a.Stream, a.StreamSeq)
	switch {
	case err == nil && !dl.DiscardedAt.IsZero():
		return nil // settled after all (discardLimit), or by an operator
	case err == nil:
		// Stored by its handler or by an earlier try of this advisory:
		// published again (deduplicated by its id), as a redelivery would.
		if err := w.deadLetter(ctx, d, events.DeadReason(dl.Reason), errors.New(dl.Error)); err != nil {
			return err
		}
		if events.DeadReason(dl.Reason) != events.DeadDeliveryLimit {
			return nil
		}
	case !errors.Is(err, casestore.ErrNotFound):
		return err
	default:
		how, err := w.settledAs(ctx, d)
		if err != nil {
			return err
		}
		if how != "" {
			w.log.Info("the consumer stopped delivering a message that was settled: no dead letter", append(attrs, "settled", how)...)
			return nil
		}
		err = w.deadLetter(ctx, d, events.DeadDeliveryLimit, fmt.Errorf("the consumer stopped delivering it after %d deliveries, "+
			"none of which reached a verdict: a worker process ended (killed, out of memory, a crash), lost its NATS connection "+
			"or stopped while it held the message, each time; see the workers' logs and exits at that time", a.Deliveries))
		if err != nil {
			return err
		}
	}
	// A copy fetched before the limit may have been applied while the dead
	// letter was being written: each side looks for the other's commit
	// after its own (here, and the handler's discardLimit), so one of them
	// sees it. A failure here is the advisory's: it is tried again.
	how, err := w.settledAs(ctx, d)
	if err != nil || how == "" || how == keptHow {
		return err // a kept one is discarded once its take-up applies it (takeUp)
	}
	return w.discardLimit(ctx, d, how)
}

// settledAs says how the message of d was settled without a verdict its
// consumer saw, or "" if it was not: applied (its inbox row: a process
// ended after the commit, before the ack), kept in deferred_inputs for its
// case's timer, or, a command, given its verdict. The inbox key is the
// one apply uses: a callback's own id, a command's.
func (w *Worker) settledAs(ctx context.Context, d deadMessage) (string, error) {
	key := d.MsgID
	switch d.Source {
	case sourceCallbacks:
		if ev, err := w.parser.Parse(d.Data); err == nil {
			key = ev.ID
		}
	case sourceCommands:
		if cmd, err := refundflow.DecodeCommand(d.Data); err == nil {
			key = cmd.ID
			o, err := w.store.CommandOutcome(ctx, cmd.ID)
			switch {
			case err == nil && o.DeadLetterID == 0:
				return "its verdict is recorded (" + o.Verdict + ")", nil
			case err != nil && !errors.Is(err, casestore.ErrNotFound):
				return "", err
			}
		}
	}
	if seen, err := w.store.InboxSeen(ctx, key); err != nil || seen {
		return "applied", err
	}
	if kept, err := w.store.DeferredKept(ctx, key); err != nil || kept {
		return keptHow, err
	}
	return "", nil
}

// discardLimit discards the delivery_limit dead letter of d's stream copy,
// if it has one pending: its message was applied after all (how), by a
// copy a process had fetched before the server stopped delivering it, or
// just before the dead letter was written, or by its take-up after it was
// kept. Its error is the store's.
func (w *Worker) discardLimit(ctx context.Context, d deadMessage, how string) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	attrs := msgAttrs(d.Source, d.MsgID, d.Data)
	dl, err := w.store.PendingDeadLetterOfCopy(dctx, d.Stream, d.Sequence)
	switch {
	case errors.Is(err, casestore.ErrNotFound):
		return nil
	case err != nil:
		w.log.Warn("delivery_limit dead letter of a message settled after all: not looked up", append(attrs, "err", err)...)
		return err
	case events.DeadReason(dl.Reason) != events.DeadDeliveryLimit || !dl.DiscardedAt.IsZero():
		return nil
	}
	err = w.store.Update(dctx, func(tx *casestore.Tx) error {
		return tx.DiscardDeadLetter(dctx, dl.ID, casestore.WorkerDiscards, "settled after all ("+how+"): a copy fetched before the consumer stopped delivering it")
	})
	attrs = append(attrs, "dead_letter", dl.ID)
	switch {
	case errors.Is(err, casestore.ErrDeadLetterDiscarded), errors.Is(err, casestore.ErrDeadLetterRetried):
		return nil
	case err != nil:
		w.log.Warn("delivery_limit dead letter of a message settled after all: not discarded", append(attrs, "err", err)...)
		return err
	}
	w.log.Info("delivery_limit dead letter discarded: the message was settled after all", append(attrs, "settled", how)...)
	return nil
}

// streamMsg reads one message of a stream by its sequence.
func (w *Worker) streamMsg(ctx context.Context, stream string, seq uint64) (*jetstream.RawStreamMsg, error) {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := w.js.Stream(sctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	m, err := s.GetMsg(sctx, seq)
	if err != nil {
		return nil, fmt.Errorf("stream %s message %d: %w", stream, seq, err)
	}
	return m, nil
}
