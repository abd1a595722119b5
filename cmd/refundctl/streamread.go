package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// streamRange is a bounded read of the callback stream.
type streamRange struct {
	subjects []string  // subject filters; none: every subject
	fromSeq  uint64    // first sequence; 0: from since, or from the start
	since    time.Time // first stored time, when fromSeq is 0
	toSeq    uint64    // last sequence (inclusive); 0: no bound but the one below
}

// streamMsg is one message of a read, with the read's last sequence (so a
// reader can tell how much of the range is left).
type streamMsg struct {
	msg  jetstream.Msg
	meta *jetstream.MsgMetadata
	last uint64
}

// readStream reads r from the callback stream with an ephemeral ordered
// consumer (no acks, deleted by the server when idle: the stream itself is
// not changed) and calls visit for each message in order, until visit says
// stop, the range ends or nothing more matches. It never reads past the
// stream's last sequence when it started, so a replay into the same stream
// never reads its own output and a read ends while callbacks keep arriving.
func (a *app) readStream(ctx context.Context, js jetstream.JetStream, r streamRange, visit func(streamMsg) (more bool, err error)) error {
	ictx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	stream, err := js.Stream(ictx, a.cfg.Stream)
	cancel()
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("stream %s not found (is the receiver running?)", a.cfg.Stream)
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", a.cfg.Stream, err)
	}
	end := stream.CachedInfo().State.LastSeq
	if r.toSeq != 0 && r.toSeq < end {
		end = r.toSeq
	}
	if end == 0 || r.fromSeq > end {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: r.subjects, InactiveThreshold: time.Minute}
	switch {
	case r.fromSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.fromSeq
	case !r.since.IsZero():
		since := r.since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	default:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	}
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("read stream %s: %w", a.cfg.Stream, err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch, err := cons.FetchNoWait(100)
		if err != nil {
			return fmt.Errorf("read stream %s: %w", a.cfg.Stream, err)
		}
		got := 0
		done := false
		for msg := range batch.Messages() {
			if done {
				continue // drain the batch
			}
			got++
			meta, err := msg.Metadata()
			if err != nil {
				return fmt.Errorf("read stream %s: %w", a.cfg.Stream, err)
			}
			seq := meta.Sequence.Stream
			if seq > end {
				done = true
				continue
			}
			more, err := visit(streamMsg{msg: msg, meta: meta, last: end})
			if err != nil {
				return err
			}
			if !more || seq >= end || meta.NumPending == 0 {
				done = true
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("read stream %s: %w", a.cfg.Stream, err)
		}
		if done || got == 0 {
			return nil
		}
	}
}
