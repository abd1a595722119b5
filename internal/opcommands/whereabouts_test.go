package opcommands

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// TestWhereaboutsOfACommandWithoutAVerdict: refundctl told an operator
// whose command had no verdict yet "the worker has not decided it yet (is
// it running?)" in every case, while in devstack the worker had taken the
// command and was waiting out the platform's rate limit. What JetStream's
// worker consumers know is said instead: none at all (a tool's reader or
// another platform's consumer does not count); one no worker asks (none
// runs); taken by a worker, and taken by one that no longer asks; held
// back by MaxAckPending while a worker asks; handled since; a consumer
// paused; two worker consumers, each said on its own.
func TestWhereaboutsOfACommandWithoutAVerdict(t *testing.T) {
	ns := eventstest.Start(t)
	js := ns.JetStream()
	ctx := context.Background()
	if err := events.EnsureWorkStreams(ctx, js, events.DefaultWorkStreamsConfig()); err != nil {
		t.Fatal(err)
	}
	publish := func(caseID int64) Ack {
		t.Helper()
		id, err := NewID()
		if err != nil {
			t.Fatal(err)
		}
		ack, err := Publish(ctx, js, refundflow.Command{ID: id, Kind: refundflow.InputResolve, Platform: refundflow.PlatformTaobao,
			CaseID: caseID, Resolve: &refundflow.Resolve{Action: refundflow.ResolveRetry}, Operator: "olga", IssuedAt: time.Now().UTC()})
		if err != nil {
			t.Fatal(err)
		}
		return ack
	}
	where := func(ack Ack, want ...string) {
		t.Helper()
		got, err := Whereabouts(ctx, js, ack)
		if err != nil {
			t.Fatalf("Whereabouts: %v", err)
		}
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("Whereabouts = %q; want it to say %q", got, w)
			}
		}
	}

	first := publish(1)
	where(first, "no worker consumer on stream COMMANDS takes "+first.Subject)

	// A consumer on other subjects, or a tool's reader (no acks), takes
	// nothing to decide.
	if _, err := js.CreateOrUpdateConsumer(ctx, first.Stream, jetstream.ConsumerConfig{Durable: "other",
		FilterSubject: events.SubjectCommands + ".1688.>", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, first.Stream, jetstream.ConsumerConfig{Durable: "reader",
		FilterSubject: events.SubjectCommands + ".>", AckPolicy: jetstream.AckNonePolicy}); err != nil {
		t.Fatal(err)
	}
	where(first, "no worker consumer on stream")

	cons, err := js.CreateOrUpdateConsumer(ctx, first.Stream, jetstream.ConsumerConfig{Durable: "worker",
		FilterSubject: events.SubjectCommands + ".>", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1})
	if err != nil {
		t.Fatal(err)
	}
	where(first, "no worker is asking for commands now (every worker's slots are taken, or none runs: is the worker running?)")

	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var taken jetstream.Msg
	for m := range batch.Messages() {
		taken = m
	}
	if taken == nil {
		t.Fatal("the worker's consumer handed out nothing")
	}
	where(first, "a worker took it, and no verdict was recorded yet", "no worker asks for more commands now")

	// A worker asks for more while it holds the first, all that
	// MaxAckPending 1 allows: the second waits in JetStream behind it.
	second := publish(2)
	asking := make(chan jetstream.MessageBatch, 1)
	go func() {
		b, err := cons.Fetch(1, jetstream.FetchMaxWait(30*time.Second))
		if err != nil {
			t.Errorf("the second pull: %v", err)
		}
		asking <- b
	}()
	eventstest.WaitFor(t, 10*time.Second, "the worker's pull request waiting", func() bool {
		ci, err := cons.Info(ctx)
		return err == nil && ci.NumWaiting > 0
	})
	where(second, "the workers hold as many commands unacknowledged as consumer worker allows (MaxAckPending 1)")
	got, _ := Whereabouts(ctx, js, first)
	if !strings.Contains(got, "a worker took it") || strings.Contains(got, "no worker asks") {
		t.Errorf("Whereabouts of the command in hand, a worker asking for more = %q; want it taken, and no doubt that a worker runs", got)
	}
	// A worker frozen with its pull request standing reads as one that
	// asks: what to look for then (devstack, a SIGSTOPped worker).
	if !strings.Contains(got, "if it stays so past the consumer's ack wait (30s), look at the worker that took it: a worker frozen with its request for commands standing still reads as asking") {
		t.Errorf("Whereabouts of the command in hand = %q; want what to do should the worker that took it be frozen", got)
	}
	if err := taken.Ack(); err != nil {
		t.Fatal(err)
	}
	if b := <-asking; b != nil {
		for m := range b.Messages() {
			_ = m.Ack()
		}
	}
	eventstest.WaitFor(t, 10*time.Second, "both acknowledged", func() bool {
		ci, err := cons.Info(ctx)
		return err == nil && ci.AckFloor.Stream >= second.Sequence
	})
	where(first, "a worker has handled it since its verdict was last read")

	// The consumer paused (an operator's hand on NATS).
	third := publish(3)
	if _, err := js.PauseConsumer(ctx, third.Stream, "worker", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	where(third, "consumer worker, which the workers take commands from, is paused for ", "(nats consumer resume COMMANDS worker)")

	// A second worker consumer (one left after WORKER_CONSUMER was
	// renamed): each has its own copy, and each is named with its own.
	if _, err := js.CreateOrUpdateConsumer(ctx, third.Stream, jetstream.ConsumerConfig{Durable: "worker-old",
		FilterSubject: events.SubjectCommands + ".>", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	where(third, "sent; 2 worker consumers on stream COMMANDS take it (each its own copy): ", "consumer worker: paused",
		"consumer worker-old: waiting, no worker asks for commands")
}
