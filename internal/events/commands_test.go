package events_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
)

func TestEnsureWorkStreams(t *testing.T) {
	ns := eventstest.Start(t)
	js := ns.JetStream()
	ctx := context.Background()
	cfg := events.DefaultWorkStreamsConfig()
	for i := range 2 {
		if err := events.EnsureWorkStreams(ctx, js, cfg); err != nil {
			t.Fatalf("EnsureWorkStreams #%d: %v", i+1, err)
		}
	}
	id := "cmd-00000001"
	subj := events.CommandSubject("taobao", "cancel")
	for i := range 2 {
		ack, err := js.Publish(ctx, subj, []byte(`{}`), jetstream.WithMsgID(id))
		if err != nil {
			t.Fatal(err)
		}
		if ack.Stream != events.DefaultCommandStreamName || ack.Duplicate != (i == 1) {
			t.Errorf("publish #%d: %+v; want stream COMMANDS, duplicate=%v", i+1, ack, i == 1)
		}
	}
	ack, err := js.Publish(ctx, events.DeadLetterSubject("callbacks"), []byte(`{}`))
	if err != nil || ack.Stream != events.DefaultDeadLetterStreamName {
		t.Fatalf("dead letter publish: %+v, %v", ack, err)
	}
	bad := cfg
	bad.DeadLetterStream = bad.CommandStream
	if err := events.EnsureWorkStreams(ctx, js, bad); err == nil {
		t.Error("EnsureWorkStreams accepted identical stream names")
	}
	bad = cfg
	bad.Replicas = 0
	if err := events.EnsureWorkStreams(ctx, js, bad); err == nil {
		t.Error("EnsureWorkStreams accepted 0 replicas")
	}
}
