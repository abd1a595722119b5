package opcommands

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/events"
)

// ReasonHandledSince is where a command is (CodeUndecided) when a worker
// has decided it since its verdict was read as pending.
const ReasonHandledSince = "sent, and a worker has handled it since its verdict was last read: read it again"

// CodeUndecided is a pending verdict's code when its reason is where
// JetStream has the command (Whereabouts): sent, and not yet decided.
const CodeUndecided = "undecided"

// Whereabouts is where a published command the worker gave no verdict on
// is, as the worker consumers on its stream (durable pull consumers with
// explicit acks whose filter takes its subject: not a tool's ordered
// reader) see it, for the operator who would otherwise be left asking
// whether the worker runs at all:
//
//   - a worker has taken it (JetStream delivered it): it is being decided,
//     which waits for the platform when the decision needs its word (a
//     rate limit, a slow answer) or for another input of its case; or it
//     has been handled since the verdict was read (acknowledged);
//   - JetStream still holds it: the consumer is paused; the workers hold
//     as many messages unacknowledged as it allows (MaxAckPending, a
//     stopped worker's among them until their ack wait passes); a worker
//     asks and is about to get it; or none asks (its slots all taken, or
//     none runs: a consumer shows no pull request waiting either way);
//   - no worker consumer takes its subject: no worker has ever run
//     against this stream.
//
// It is read once, when the wait for a verdict ends; an error means only
// that JetStream could not say (the caller keeps the plain pending).
func Whereabouts(ctx context.Context, js jetstream.JetStream, ack Ack) (string, error) {
	s, err := js.Stream(ctx, ack.Stream)
	if err != nil {
		return "", fmt.Errorf("stream %s: %w", ack.Stream, err)
	}
	var takers []*jetstream.ConsumerInfo
	list := s.ListConsumers(ctx)
	for ci := range list.Info() {
		if ci != nil && workerLike(ci.Config) && takes(ci.Config, ack.Subject) {
			takers = append(takers, ci)
		}
	}
	if err := list.Err(); err != nil {
		return "", fmt.Errorf("consumers of %s: %w", ack.Stream, err)
	}
	if len(takers) == 0 {
		return fmt.Sprintf("sent; no worker takes commands: no worker consumer on stream %s takes %s (has a worker ever run against this NATS?)",
			ack.Stream, ack.Subject), nil
	}
	if len(takers) > 1 {
		// Each worker consumer gets its own copy of the command (an old
		// one left after WORKER_CONSUMER was renamed, another fleet's):
		// summed, one's state would read as the others'.
		parts := make([]string, 0, len(takers))
		for _, ci := range takers {
			parts = append(parts, "consumer "+ci.Name+": "+whereIn(ci, ack).short)
		}
		return fmt.Sprintf("sent; %d worker consumers on stream %s take it (each its own copy): %s", len(takers), ack.Stream,
			strings.Join(parts, "; ")), nil
	}
	return whereIn(takers[0], ack).long, nil
}

// where is a command's place in one worker consumer, said at length (one
// consumer) and briefly (one of several).
type where struct{ long, short string }

// whereIn is where command ack is in consumer ci.
func whereIn(ci *jetstream.ConsumerInfo, ack Ack) where {
	switch {
	case ci.AckFloor.Stream >= ack.Sequence:
		return where{ReasonHandledSince, "handled it (read the verdict again)"}
	case ci.Delivered.Stream >= ack.Sequence:
		out := "sent; a worker took it, and no verdict was recorded yet: a decision that needs the platform's word waits for the platform " +
			"(a rate limit, a slow answer: the worker's log says which), and a command waits while another input of its case is handled"
		if ci.NumWaiting == 0 {
			out += "; no worker asks for more commands now (busy, or stopped: is the worker running? " +
				"A command a stopped worker held is handed out again once its ack wait has passed)"
		} else if ci.Config.AckWait > 0 {
			out += fmt.Sprintf("; if it stays so past the consumer's ack wait (%s), look at the worker that took it: "+
				"a worker frozen with its request for commands standing still reads as asking", ci.Config.AckWait)
		}
		return where{out, "a worker took it, no verdict yet"}
	case ci.Paused:
		paused := "is paused"
		if left := ci.PauseRemaining.Round(time.Second); left > 0 {
			paused = fmt.Sprintf("is paused for %s more", left)
		}
		return where{fmt.Sprintf("sent; waiting in JetStream: consumer %s, which the workers take commands from, %s "+
			"(nats consumer resume %s %s)", ci.Name, paused, ci.Stream, ci.Name), fmt.Sprintf("paused (nats consumer resume %s %s)", ci.Stream, ci.Name)}
	case ci.Config.MaxAckPending > 0 && ci.NumAckPending >= ci.Config.MaxAckPending:
		return where{fmt.Sprintf("sent; waiting in JetStream: the workers hold as many commands unacknowledged as consumer %s allows "+
			"(MaxAckPending %d), perhaps a stopped worker's among them until their ack wait passes; it is handed out as they are acknowledged",
			ci.Name, ci.Config.MaxAckPending), fmt.Sprintf("waiting, MaxAckPending (%d) reached", ci.Config.MaxAckPending)}
	case ci.NumWaiting > 0:
		return where{"sent; waiting in JetStream, and a worker is asking for commands: it should take it next", "waiting, a worker asks for commands"}
	}
	held := ""
	switch {
	case ci.NumAckPending == 1:
		held = ", 1 command in hand"
	case ci.NumAckPending > 1:
		held = fmt.Sprintf(", %d commands in hand", ci.NumAckPending)
	}
	return where{"sent; waiting in JetStream: no worker is asking for commands now (every worker's slots are taken" + held +
		", or none runs: is the worker running?); it is decided once a worker takes it", "waiting, no worker asks for commands"}
}

// workerLike reports whether a consumer configured as cfg is one a
// worker binds (casework's consumerConfig): durable, pulled, acknowledged
// one by one. An ordered or push consumer (a tool reading the stream)
// takes no command to decide it.
func workerLike(cfg jetstream.ConsumerConfig) bool {
	return cfg.Durable != "" && cfg.DeliverSubject == "" && cfg.AckPolicy == jetstream.AckExplicitPolicy
}

// takes reports whether a consumer configured as cfg takes subject.
func takes(cfg jetstream.ConsumerConfig, subject string) bool {
	filters := filtersOf(cfg)
	return len(filters) == 0 || slices.ContainsFunc(filters, func(f string) bool { return events.SubjectMatches(f, subject) })
}

// filtersOf is the subject filters of a consumer configured as cfg, its
// one and its many (none: it takes every subject of its stream).
func filtersOf(cfg jetstream.ConsumerConfig) []string {
	filters := slices.Clone(cfg.FilterSubjects)
	if cfg.FilterSubject != "" {
		filters = append(filters, cfg.FilterSubject)
	}
	return filters
}
