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
// consumers know is said instead: no consumer at all; one no worker asks
// (none runs); one a worker asks, the command behind one in hand; taken
// by a worker, and taken by one that no longer asks.
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
	where(first, "no consumer on stream COMMANDS takes "+first.Subject)

	// Another stream's consumer, or one on other subjects, takes nothing.
	if _, err := js.CreateOrUpdateConsumer(ctx, first.Stream, jetstream.ConsumerConfig{Durable: "other",
		FilterSubject: events.SubjectCommands + ".1688.>", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	where(first, "no consumer on stream")

	cons, err := js.CreateOrUpdateConsumer(ctx, first.Stream, jetstream.ConsumerConfig{Durable: "worker",
		FilterSubject: events.SubjectCommands + ".>", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1})
	if err != nil {
		t.Fatal(err)
	}
	where(first, "no worker has asked for commands", "is the worker running?")

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
	where(first, "a worker took it at ", "has not decided it yet", "no worker asks for commands now")

	// A worker asks for more while it holds the first (MaxAckPending 1):
	// the second waits in JetStream behind it.
	second := publish(2)
	asking := make(chan jetstream.MessageBatch, 1)
	go func() {
		b, _ := cons.Fetch(1, jetstream.FetchMaxWait(30*time.Second))
		asking <- b
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ci, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ci.NumWaiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker's pull request never showed as waiting")
		}
		<-time.After(10 * time.Millisecond)
	}
	where(second, "a worker is asking for commands: it takes it next")
	where(first, "a worker took it at ", "has not decided it yet")
	got, _ := Whereabouts(ctx, js, first)
	if strings.Contains(got, "no worker asks") {
		t.Errorf("Whereabouts of the command in hand, a worker asking for more = %q; want no doubt that a worker runs", got)
	}
	if err := taken.Ack(); err != nil {
		t.Fatal(err)
	}
	for m := range (<-asking).Messages() {
		_ = m.Ack()
	}
}

// TestSubjectMatches: NATS subject matching as consumers filter.
func TestSubjectMatches(t *testing.T) {
	for _, tc := range []struct {
		filter, subject string
		want            bool
	}{
		{"commands.>", "commands.taobao.resolve.case:7", true},
		{"commands.>", "commands", false},
		{"commands.*.resolve.>", "commands.taobao.resolve.case:7", true},
		{"commands.*.resolve.>", "commands.taobao.cancel.case:7", false},
		{"commands.taobao.resolve.case:7", "commands.taobao.resolve.case:7", true},
		{"commands.taobao.resolve", "commands.taobao.resolve.case:7", false},
		{"commands.1688.>", "commands.taobao.resolve.case:7", false},
		{">", "commands.taobao.resolve.case:7", true},
	} {
		if got := subjectMatches(tc.filter, tc.subject); got != tc.want {
			t.Errorf("subjectMatches(%q, %q) = %v; want %v", tc.filter, tc.subject, got, tc.want)
		}
	}
}
