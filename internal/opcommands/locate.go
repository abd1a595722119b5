package opcommands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/replay"
)

// LocateLimit is how many of a command stream's messages Locate reads at
// most: the newest after the workers' acknowledgement floor.
const LocateLimit = 5000

// ErrNotLocated is Locate's error for a command whose message it did not
// find among those it read: never published, published to a stream no
// longer holding it, or older than the messages read.
var ErrNotLocated = errors.New("command not found among the command stream's unacknowledged messages")

// Locate finds the message of command id on the stream that takes
// commands, for a verdict read without the acknowledgement of its
// publish (wait --command, a batch's row read later): its subject, stream
// and sequence, which Whereabouts needs. A command with no verdict is not
// acknowledged by a worker consumer (its verdict commits first; one the
// worker keeps for its case is found by PendingFor instead), so the read
// starts after the lowest acknowledgement floor of the worker consumers,
// and reads at most the newest limit messages from there, with an
// ephemeral ordered consumer (the stream is not changed). timeout bounds
// each JetStream request.
func Locate(ctx context.Context, js jetstream.JetStream, id string, limit uint64, timeout time.Duration) (Ack, error) {
	subjects := events.SubjectCommands + ".>"
	name, err := js.StreamNameBySubject(ctx, subjects)
	if err != nil {
		return Ack{}, fmt.Errorf("the stream taking %s: %w", subjects, err)
	}
	s, err := js.Stream(ctx, name)
	if err != nil {
		return Ack{}, fmt.Errorf("stream %s: %w", name, err)
	}
	state := s.CachedInfo().State
	from := state.FirstSeq
	floor, seen := uint64(0), false
	list := s.ListConsumers(ctx)
	for ci := range list.Info() {
		if ci == nil || !workerLike(ci.Config) || !takesEvery(ci.Config) {
			continue // (a floor over some commands says nothing of the others)
		}
		if !seen || ci.AckFloor.Stream < floor {
			floor, seen = ci.AckFloor.Stream, true
		}
	}
	if err := list.Err(); err != nil {
		return Ack{}, fmt.Errorf("consumers of %s: %w", name, err)
	}
	from = max(from, floor+1)
	if limit > 0 && state.LastSeq >= limit {
		from = max(from, state.LastSeq-limit+1)
	}
	var found Ack
	rd := replay.Reader{JS: js, Stream: name, Timeout: timeout}
	err = rd.Read(ctx, replay.Range{Subjects: []string{subjects}, FromSeq: from}, func(m replay.Msg) (bool, error) {
		if m.Msg.Headers().Get(events.HeaderMsgID) != id {
			return true, nil
		}
		found = Ack{Subject: m.Msg.Subject(), Stream: name, Sequence: m.Meta.Sequence.Stream}
		return false, nil
	})
	switch {
	case err != nil:
		return Ack{}, err
	case found.Sequence == 0:
		return Ack{}, fmt.Errorf("%s (%s, from sequence %d): %w", id, name, from, ErrNotLocated)
	}
	return found, nil
}

// takesEvery reports whether a consumer configured as cfg takes every
// command subject: no filter, or one that is the whole of commands.>.
func takesEvery(cfg jetstream.ConsumerConfig) bool {
	filters := filtersOf(cfg)
	return len(filters) == 0 || slices.ContainsFunc(filters, func(f string) bool { return f == events.SubjectCommands+".>" || f == ">" })
}
