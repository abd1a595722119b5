package casework

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// Commands for one case apply in the order they were issued, which is
// their order in the command stream, not the order JetStream delivers them
// in. The two differ whenever a command is delivered again: the server's
// redelivery queue puts a message it cannot hand to a waiting pull at its
// end, so the commands of a worker process that ended, lost its connection
// or handed them back come back rotated; and a command that failed and was
// asked for again later is overtaken by the next one. keyOrder (order.go)
// keeps the order only of what one process holds at once.
//
// So before a command is applied, applyEarlier looks up the commands
// issued for its case before it that are still unsettled: those after the
// consumer's ack floor (every message up to it is acknowledged: applied,
// kept for its case, or dead-lettered), by the case's subject token
// (events.CommandCaseFilter), under each name of the case
// (refundflow.Engine.CommandKeys). Each one not applied, kept or
// dead-lettered yet is applied first, here. Its own delivery, whenever it
// comes, then finds it in the inbox and is dropped. One that another
// process is applying at that moment is serialised by the case's lease
// and the inbox, as any second delivery is.

// floorMaxAge is how old the consumer's ack floor may be before it is read
// again. An older floor is lower, never wrong: the look-up only starts
// further back.
const floorMaxAge = time.Second

// maxEarlier bounds the commands looked at under one name of a case: more
// unsettled commands than this for one case is a backlog, not a
// reordering, and its own deliveries apply them.
const maxEarlier = 1000

// ackFloor is the command consumer's ack floor (a stream sequence), read
// at most once per floorMaxAge by whoever finds it old; the others go on
// with the older value meanwhile.
type ackFloor struct {
	seq     atomic.Uint64
	readAt  atomic.Int64 // unix nanoseconds; 0: never read
	reading sync.Mutex
}

// get returns the floor, reading it from cons first when it is old and
// nobody else is reading it. A failed read keeps the old floor (0 before
// the first: everything is looked at).
func (f *ackFloor) get(ctx context.Context, cons jetstream.Consumer) uint64 {
	if time.Since(time.Unix(0, f.readAt.Load())) < floorMaxAge || !f.reading.TryLock() {
		return f.seq.Load()
	}
	defer f.reading.Unlock()
	if info, err := cons.Info(ctx); err == nil {
		f.seq.Store(info.AckFloor.Stream)
		f.readAt.Store(time.Now().UnixNano())
	}
	return f.seq.Load()
}

// commandLog is where applyEarlier finds the commands issued before one:
// the command stream and its consumer (bind).
type commandLog struct {
	stream   jetstream.Stream
	consumer jetstream.Consumer
	floor    ackFloor
}

// applyEarlier applies, before cmd (msg), the commands for its case issued
// before it that are not settled yet (see above). A command kept for its
// case (msg.Deferred) was looked at when it came. The error is the store's
// or NATS's, or an earlier command's failure: cmd is tried again later,
// after it.
func (w *Worker) applyEarlier(ctx context.Context, msg *refundflow.Message, cmd refundflow.Command) error {
	cl := w.commandLog
	if cl == nil || msg.Deferred || msg.Stream != w.cfg.WorkStreams.CommandStream || msg.Seq == 0 {
		return nil
	}
	floor := cl.floor.get(ctx, cl.consumer)
	if msg.Seq <= floor+1 {
		return nil // nothing before it is unsettled
	}
	keys, err := w.engine.CommandKeys(ctx, cmd)
	if err != nil {
		return fmt.Errorf("commands issued before it for its case: %w", err)
	}
	var earlier []*jetstream.RawStreamMsg
	for _, key := range keys {
		if key == "" {
			continue
		}
		found, err := cl.before(ctx, key, floor+1, msg.Seq)
		if err != nil {
			return fmt.Errorf("commands issued before it for its case: %w", err)
		}
		earlier = append(earlier, found...)
	}
	slices.SortFunc(earlier, func(a, b *jetstream.RawStreamMsg) int { return cmp.Compare(a.Sequence, b.Sequence) })
	earlier = slices.CompactFunc(earlier, func(a, b *jetstream.RawStreamMsg) bool { return a.Sequence == b.Sequence })
	for _, e := range earlier {
		if err := w.applyFirst(ctx, msg, e); err != nil {
			return err
		}
	}
	return nil
}

// before returns the commands published under key's case token with a
// stream sequence from from to before it, whose own payload names key (a
// token can stand for more than one key).
func (cl *commandLog) before(ctx context.Context, key string, from, before uint64) ([]*jetstream.RawStreamMsg, error) {
	filter := events.CommandCaseFilter(key)
	var out []*jetstream.RawStreamMsg
	for seq, n := from, 0; seq < before && n < maxEarlier; n++ {
		m, err := cl.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		if m.Sequence >= before {
			break
		}
		if refundflow.OrderKey(m.Data) == key {
			out = append(out, m)
		}
		seq = m.Sequence + 1
	}
	return out, nil
}

// applyFirst applies e, a command issued before later for the same case,
// unless it is settled: applied (in the inbox), kept for its case (the
// engine puts later behind it), dead-lettered (a dead letter of its id or
// of its stream copy, not retried), or one that can never apply (its own
// delivery dead-letters it, or waits for its case). A command
// older than half the inbox's retention is left to its own delivery: its
// inbox row may be gone, and it would be applied twice.
func (w *Worker) applyFirst(ctx context.Context, later *refundflow.Message, e *jetstream.RawStreamMsg) error {
	cmd, err := refundflow.DecodeCommand(e.Data)
	if err != nil {
		return nil
	}
	log := w.log.With("command", later.ID, "earlier", cmd.ID, "earlier_seq", e.Sequence)
	if w.cfg.InboxRetention > 0 && time.Since(e.Time) > w.cfg.InboxRetention/2 {
		log.WarnContext(ctx, "an unsettled command issued before this one for its case is older than half WORKER_INBOX_RETENTION: left to its own delivery")
		return nil
	}
	// The cheap look first: an earlier command is most often applied.
	stream := w.cfg.WorkStreams.CommandStream
	if seen, err := w.store.InboxSeen(ctx, cmd.ID); err != nil || seen {
		return err
	}
	if kept, err := w.store.DeferredKept(ctx, cmd.ID); err != nil || kept {
		return err
	}
	if dead, err := w.store.DeadLettered(ctx, cmd.ID, stream, e.Sequence); err != nil || dead {
		return err
	}
	m := &refundflow.Message{ID: cmd.ID, Stream: stream, Seq: e.Sequence, Subject: e.Subject,
		Source: sourceCommands, Payload: e.Data}
	h, err := w.engine.HandleCommand(ctx, cmd, m)
	switch {
	case err == nil && h.Duplicate:
	case err == nil:
		w.metrics.earlier.Inc()
		log.InfoContext(ctx, "applied first a command issued before this one for its case, which JetStream had not delivered yet",
			"case", h.CaseID, "state", h.State, "code", h.Code, "deferred", h.Deferred)
	case errors.Is(err, refundflow.ErrPermanent), errors.Is(err, refundflow.ErrNoCase):
		log.InfoContext(ctx, "a command issued before this one for its case cannot apply: left to its own delivery", "err", err)
	default:
		return fmt.Errorf("command %s, issued before it for its case: %w", cmd.ID, err)
	}
	return nil
}
