package casework

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/delay"
	"github.com/refundhub/refundhub/internal/events"
)

// Message sources: the callback stream and the operator command stream
// (the names deferred inputs are stored under).
const (
	sourceCallbacks = casestore.SourceCallbacks
	sourceCommands  = casestore.SourceCommands
)

// boundConsumer is a durable consumer and the source its messages come from.
type boundConsumer struct {
	source   string
	consumer jetstream.Consumer
	// stream is the command stream, for the command consumer: where the
	// commands issued before one are looked up (earlier.go).
	stream jetstream.Stream
}

// bind makes sure the streams exist and binds the durable consumers on the
// callback, command and limit streams (limits.go), trying again with backoff (250 ms doubling
// to 5 s) until NATS answers: the worker may start before NATS or the
// receiver. While NATS is not up, it says so in those words rather than
// with the client's error ("outbound buffer limit exceeded"). It returns
// ctx's error if ctx ends first.
func (w *Worker) bind(ctx context.Context) ([]boundConsumer, error) {
	specs := []struct{ source, stream, filter string }{
		{sourceCallbacks, w.cfg.Stream.Name, events.SubjectAccepted + ".>"},
		{sourceCommands, w.cfg.WorkStreams.CommandStream, events.SubjectCommands + ".>"},
	}
	streamReported := false
	for attempt := 0; ; attempt++ {
		var bound []boundConsumer
		err := func() error {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := ensureCallbackStream(sctx, w.js, w.cfg.Stream, w.log, &streamReported); err != nil {
				return err
			}
			if err := events.EnsureWorkStreams(sctx, w.js, w.cfg.WorkStreams); err != nil {
				return err
			}
			// Before the consumers whose advisories it keeps: a limit
			// reached while it did not exist would leave no trace.
			lc, err := w.bindLimits(sctx)
			if err != nil {
				return err
			}
			if lc != nil {
				bound = append(bound, boundConsumer{source: sourceLimits, consumer: lc})
			}
			for _, sp := range specs {
				cons, err := w.js.CreateOrUpdateConsumer(sctx, sp.stream, w.consumerConfig(sp.filter))
				if err != nil {
					return fmt.Errorf("consumer %s on %s: %w", w.cfg.Consumer, sp.stream, err)
				}
				w.metrics.lag.add(sp.source, cons)
				bc := boundConsumer{source: sp.source, consumer: cons}
				if sp.source == sourceCommands {
					if bc.stream, err = w.js.Stream(sctx, sp.stream); err != nil {
						return fmt.Errorf("stream %s: %w", sp.stream, err)
					}
				}
				bound = append(bound, bc)
			}
			return nil
		}()
		if err == nil {
			return bound, nil
		}
		wait := delay.Doubling(250*time.Millisecond, 5*time.Second, attempt)
		if events.NotUp(w.js) {
			w.log.Warn(events.NotUpMessage, "retry_in", wait)
		} else {
			w.log.Warn("streams not ready; retrying", "err", err, "retry_in", wait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// consumerConfig is the durable pull consumer every worker process binds to.
// No BackOff: it would override AckWait (its first entry becomes AckWait);
// redelivery delays after failures come from NakWithDelay instead.
func (w *Worker) consumerConfig(filter string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       w.cfg.Consumer,
		Description:   "refundhub worker (shared by every worker process)",
		FilterSubject: filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       w.cfg.AckWait,
		MaxDeliver:    w.cfg.MaxDeliver + 3,
		MaxAckPending: w.cfg.MaxAckPending,
	}
}

// ensureCallbackStream makes sure the callback stream exists without taking
// its settings from the receiver, which owns them (it applies CALLBACK_MAX_BYTES
// and CALLBACK_STREAM_* with EnsureStream): rewriting them here would undo,
// on every worker start, settings the worker was never given, such as a
// MaxMsgSize raised for large pushes. A missing stream (the worker started
// first) is created from cfg, read by the same code as the receiver's. An
// existing one is left alone, and each setting that differs from cfg is
// named once at warn, for the operator to reconcile the two environments.
func ensureCallbackStream(ctx context.Context, js jetstream.JetStream, cfg events.StreamConfig, logger *slog.Logger, reported *bool) error {
	s, created, err := events.CreateStreamIfMissing(ctx, js, cfg)
	if err != nil {
		return err
	}
	if *reported {
		return nil
	}
	*reported = true
	if created {
		logger.Info("created the callback stream (no receiver had yet)", "stream", cfg.Name,
			"max_msg_size", cfg.MaxMsgSize, "max_bytes", cfg.MaxBytes, "max_age", cfg.MaxAge.String())
		return nil
	}
	if diffs := cfg.Differences(s.CachedInfo().Config); len(diffs) > 0 {
		logger.Warn("callback stream settings differ from this worker's; left as the receiver set them (stream vs worker)",
			"stream", cfg.Name, "differences", diffs)
	}
	return nil
}
