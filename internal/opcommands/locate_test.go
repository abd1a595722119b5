package opcommands

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// TestLocateFindsACommandWithoutItsPublishAck: wait --command knows only
// a command's id; Locate finds its message (subject, stream, sequence)
// among those the workers have not acknowledged, within its limit, and
// says ErrNotLocated for one it does not hold there.
func TestLocateFindsACommandWithoutItsPublishAck(t *testing.T) {
	ns := eventstest.Start(t)
	js := ns.JetStream()
	ctx := context.Background()
	if err := events.EnsureWorkStreams(ctx, js, events.DefaultWorkStreamsConfig()); err != nil {
		t.Fatal(err)
	}
	var ids []string
	var acks []Ack
	for i := range 3 {
		id, err := NewID()
		if err != nil {
			t.Fatal(err)
		}
		ack, err := Publish(ctx, js, refundflow.Command{ID: id, Kind: refundflow.InputResolve, Platform: refundflow.PlatformTaobao,
			CaseID: int64(i + 1), Resolve: &refundflow.Resolve{Action: refundflow.ResolveRetry}, Operator: "olga", IssuedAt: time.Now().UTC()})
		if err != nil {
			t.Fatal(err)
		}
		ids, acks = append(ids, id), append(acks, ack)
	}
	locate := func(id string, limit uint64) (Ack, error) {
		t.Helper()
		return Locate(ctx, js, id, limit, 5*time.Second)
	}
	for i, id := range ids {
		if got, err := locate(id, LocateLimit); err != nil || got != (Ack{Subject: acks[i].Subject, Stream: acks[i].Stream, Sequence: acks[i].Sequence}) {
			t.Errorf("Locate(command %d) = %+v, %v; want %+v", i, got, err, acks[i])
		}
	}
	if _, err := locate("cmd-never-published", LocateLimit); !errors.Is(err, ErrNotLocated) {
		t.Errorf("Locate(a command never published) = %v; want ErrNotLocated", err)
	}
	// Only the newest limit messages are read.
	if _, err := locate(ids[0], 2); !errors.Is(err, ErrNotLocated) {
		t.Errorf("Locate(the oldest, limit 2) = %v; want ErrNotLocated", err)
	}
	if got, err := locate(ids[1], 2); err != nil || got.Sequence != acks[1].Sequence {
		t.Errorf("Locate(the second, limit 2) = %+v, %v; want sequence %d", got, err, acks[1].Sequence)
	}

	// A consumer on some commands only (the third's subject), which has
	// acknowledged them: its floor says nothing of the others.
	ack := func(name, filter string) {
		t.Helper()
		cons, err := js.CreateOrUpdateConsumer(ctx, acks[0].Stream, jetstream.ConsumerConfig{Durable: name, FilterSubject: filter,
			AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			t.Fatal(err)
		}
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	ack("third-only", acks[2].Subject)
	if got, err := locate(ids[1], LocateLimit); err != nil || got.Sequence != acks[1].Sequence {
		t.Errorf("Locate(the second, a consumer of the third's subject past it) = %+v, %v; want sequence %d", got, err, acks[1].Sequence)
	}
	// A worker consumer acknowledged the first: the read starts after it.
	// Another worker consumer (an old one left after a rename) that has
	// acknowledged nothing holds the read at its floor: the lowest wins.
	if _, err := js.CreateOrUpdateConsumer(ctx, acks[0].Stream, jetstream.ConsumerConfig{Durable: "worker-old",
		FilterSubject: events.SubjectCommands + ".>", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	ack("worker", events.SubjectCommands+".>")
	if got, err := locate(ids[0], LocateLimit); err != nil || got.Sequence != acks[0].Sequence {
		t.Errorf("Locate(the first, acknowledged by one worker consumer of two) = %+v, %v; want sequence %d", got, err, acks[0].Sequence)
	}
	if err := js.DeleteConsumer(ctx, acks[0].Stream, "worker-old"); err != nil {
		t.Fatal(err)
	}
	if _, err := locate(ids[0], LocateLimit); !errors.Is(err, ErrNotLocated) {
		t.Errorf("Locate(an acknowledged command) = %v; want ErrNotLocated (read from after the floor)", err)
	}
	if got, err := locate(ids[1], LocateLimit); err != nil || got.Sequence != acks[1].Sequence {
		t.Errorf("Locate(the second, the first acknowledged) = %+v, %v; want sequence %d", got, err, acks[1].Sequence)
	}
}
