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

	"github.com/refundhub/refundhub/internal/casestore"
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
// comes, then finds it in the inbox and is dropped. One that its own
// delivery is applying at that moment, here or in another process, is
// applied once: the engine looks a command up in the inbox on its case as
// read under the case's lock and after every wait for the case (the
// version check of its decision covers what commits after that read).

// floorMaxAge is how old the consumer's ack floor may be before it is read
// again. An older floor is lower, never wrong: the look-up only starts
// further back.
const floorMaxAge = time.Second

// maxEarlier bounds the messages one look-up reads under one name of a
// case (settled ones, and other cases' sharing the token, included): a
// backlog that long is read on by the next command's look-up, from where
// this one stopped (commandLog.settled).
const maxEarlier = 1000

// ackFloor is the command consumer's ack floor (a stream sequence), read
// at most once per floorMaxAge by whoever finds it old; the others go on
// with the older value meanwhile, except before the first read, which
// they wait for (floor 0 would look at every command of the case).
type ackFloor struct {
	seq     atomic.Uint64
	readAt  atomic.Int64 // unix nanoseconds; 0: never read
	reading sync.Mutex
}

// get returns the floor, reading it from cons first when it is old and
// nobody else is reading it. A failed read keeps the old floor (0 before
// the first: everything is looked at).
func (f *ackFloor) get(ctx context.Context, cons jetstream.Consumer) uint64 {
	at := f.readAt.Load()
	if time.Since(time.Unix(0, at)) < floorMaxAge {
		return f.seq.Load()
	}
	if at != 0 {
		if !f.reading.TryLock() {
			return f.seq.Load()
		}
	} else {
		f.reading.Lock()
		if f.readAt.Load() != 0 { // read while this one waited
			f.reading.Unlock()
			return f.seq.Load()
		}
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

	// settled remembers, by case key, a stream sequence up to which every
	// command of the key was found settled (applied, kept, dead-lettered):
	// a later look-up starts after it, so a backlog of one case's commands
	// is looked at once, not once per command behind it. Settled stays
	// settled. Keys at or under the ack floor are forgotten.
	mu      sync.Mutex
	settled map[string]uint64
	pruned  uint64 // the floor the map was last pruned at
	// failed: commands the worker failed on (a panic) when it applied
	// them first: left to their own deliveries from then on, not run
	// again, in this process, ahead of each later command of their case.
	failed map[uint64]bool
}

// fail records that the worker failed on the command at seq.
func (cl *commandLog) fail(seq uint64) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.failed == nil {
		cl.failed = map[uint64]bool{}
	}
	cl.failed[seq] = true
}

// failedOn reports whether the worker failed on the command at seq.
func (cl *commandLog) failedOn(seq uint64) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.failed[seq]
}

// from returns where the look-up of key's commands starts, the floor
// given: after what is known settled.
func (cl *commandLog) from(key string, floor uint64) uint64 {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if floor > cl.pruned+maxEarlier { // now and then, not on every look-up
		for k, q := range cl.settled {
			if q <= floor {
				delete(cl.settled, k)
			}
		}
		for q := range cl.failed {
			if q <= floor {
				delete(cl.failed, q)
			}
		}
		cl.pruned = floor
	}
	return max(floor, cl.settled[key]) + 1
}

// settle records that key's commands up to seq are settled.
func (cl *commandLog) settle(key string, seq uint64) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.settled == nil {
		cl.settled = map[string]uint64{}
	}
	cl.settled[key] = max(cl.settled[key], seq)
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
	type found struct {
		key string
		m   *jetstream.RawStreamMsg
	}
	var earlier []found
	open := map[string]bool{}     // keys none of whose commands was found unsettled yet
	looked := map[string]uint64{} // and up to where they were looked at
	for _, key := range keys {
		if _, dup := open[key]; key == "" || dup {
			continue
		}
		ms, upTo, err := cl.before(ctx, key, cl.from(key, floor), msg.Seq)
		if err != nil {
			return fmt.Errorf("commands issued before it for its case: %w", err)
		}
		open[key], looked[key] = true, upTo
		for _, m := range ms {
			earlier = append(earlier, found{key, m})
		}
	}
	slices.SortFunc(earlier, func(a, b found) int { return cmp.Compare(a.m.Sequence, b.m.Sequence) })
	for _, e := range earlier {
		settled, err := w.applyFirst(ctx, msg, e.m)
		if err != nil {
			// An earlier command failing holds back a later one, not a
			// copy of one applied already: that one is a duplicate.
			if seen, serr := w.store.InboxSeen(ctx, cmd.ID); serr == nil && seen {
				w.log.InfoContext(ctx, "a command issued before this one for its case failed; this one was applied already",
					"command", cmd.ID, "earlier_seq", e.m.Sequence, "err", err)
				return nil
			}
			return err
		}
		if !settled {
			open[e.key] = false
		} else if open[e.key] {
			cl.settle(e.key, e.m.Sequence)
		}
	}
	for key, ok := range open {
		if ok {
			cl.settle(key, looked[key]) // its commands up to there, all settled
		}
	}
	return nil
}

// before returns the commands published under key's case token with a
// stream sequence from from to before it, whose own payload names key (a
// token can stand for more than one key), and the sequence up to which it
// looked: before-1, unless it stopped after maxEarlier messages.
func (cl *commandLog) before(ctx context.Context, key string, from, before uint64) ([]*jetstream.RawStreamMsg, uint64, error) {
	filter := events.CommandCaseFilter(key)
	var out []*jetstream.RawStreamMsg
	seq := from
	for n := 0; seq < before; n++ {
		if n == maxEarlier {
			return out, seq - 1, nil
		}
		m, err := cl.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("commands on %s from #%d: %w", filter, seq, err)
		}
		if m.Sequence >= before {
			break
		}
		if refundflow.OrderKey(m.Data) == key {
			out = append(out, m)
		}
		seq = m.Sequence + 1
	}
	return out, before - 1, nil
}

// applyFirst applies e, a command issued before later for the same case,
// unless it is settled: applied (in the inbox), kept for its case (the
// engine puts later behind it), or dead-lettered (DeadLettered). It
// reports whether e is settled now. One that can never apply (it does not
// decode, the engine refuses it as permanent, the worker fails on it) or
// names an order with no case yet is left to its own delivery, which
// dead-letters it or waits for its case: not settled, and no error of
// later's. So is a command older than half the inbox's retention: its
// inbox row may be gone, and it would be applied twice.
func (w *Worker) applyFirst(ctx context.Context, later *refundflow.Message, e *jetstream.RawStreamMsg) (settled bool, err error) {
	cmd, err := refundflow.DecodeCommand(e.Data)
	if err != nil {
		return false, nil
	}
	if w.commandLog.failedOn(e.Sequence) {
		return false, nil
	}
	// The cheap look first: an earlier command is most often applied.
	stream := w.cfg.WorkStreams.CommandStream
	wrap := func(err error) error { // nil stays nil
		if err == nil {
			return nil
		}
		return fmt.Errorf("command %s, issued before it for its case: %w", cmd.ID, err)
	}
	if seen, err := w.store.InboxSeen(ctx, cmd.ID); err != nil || seen {
		return seen, wrap(err)
	}
	if kept, err := w.store.DeferredKept(ctx, cmd.ID); err != nil || kept {
		return kept, wrap(err)
	}
	if dead, err := w.store.DeadLettered(ctx, cmd.ID, stream, e.Sequence); err != nil || dead {
		return dead, wrap(err)
	}
	log := w.log.With("command", later.ID, "earlier", cmd.ID, "earlier_seq", e.Sequence)
	if w.cfg.InboxRetention > 0 && time.Since(e.Time) > w.cfg.InboxRetention/2 {
		log.WarnContext(ctx, "a command issued before this one for its case, not applied, is older than half WORKER_INBOX_RETENTION: left to its own delivery")
		return false, nil
	}
	m := &refundflow.Message{ID: cmd.ID, Stream: stream, Seq: e.Sequence, Subject: e.Subject,
		Source: sourceCommands, Payload: e.Data}
	var h refundflow.Handled
	if perr := w.guard(ctx, "earlier", func() { h, err = w.engine.HandleCommand(ctx, cmd, m) }); perr != nil {
		w.commandLog.fail(e.Sequence) // counted by guard; its own delivery dead-letters it
		log.ErrorContext(ctx, "the worker failed on a command issued before this one for its case: left to its own delivery", "err", perr)
		return false, nil
	}
	switch {
	case errors.Is(err, casestore.ErrUpdatePanicked):
		w.commandLog.fail(e.Sequence)
		w.metrics.panics.WithLabelValues("earlier").Inc()
		log.ErrorContext(ctx, "the worker failed on a command issued before this one for its case: left to its own delivery", "err", err)
		return false, nil
	case err == nil && h.Duplicate:
		return true, nil
	case err == nil && h.Deferred:
		log.InfoContext(ctx, "kept for its case a command issued before this one and not settled yet: this one goes behind it",
			"case", h.CaseID, "code", h.Code)
		return true, nil
	case err == nil:
		w.metrics.earlier.Inc()
		log.InfoContext(ctx, "applied first a command issued before this one for its case and not settled yet (delivered again behind it, or held by another process)",
			"case", h.CaseID, "state", h.State, "code", h.Code)
		return true, nil
	case errors.Is(err, refundflow.ErrPermanent), errors.Is(err, refundflow.ErrNoCase):
		log.InfoContext(ctx, "a command issued before this one for its case cannot apply now: left to its own delivery", "err", err)
		return false, nil
	}
	return false, wrap(err)
}
