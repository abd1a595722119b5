package events_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
)

func TestEnsureStreamIsIdempotent(t *testing.T) {
	ns := eventstest.Start(t)
	js := ns.JetStream()
	ctx := context.Background()
	cfg := events.DefaultStreamConfig()
	for i := range 2 {
		s, err := events.EnsureStream(ctx, js, cfg)
		if err != nil {
			t.Fatalf("EnsureStream #%d: %v", i+1, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c := info.Config
		if c.Storage != jetstream.FileStorage || c.Discard != jetstream.DiscardNew || c.MaxAge != 7*24*time.Hour || c.Duplicates != 2*time.Minute ||
			c.Replicas != 1 || c.MaxBytes != events.DefaultMaxBytes || strings.Join(c.Subjects, " ") != "callbacks.> parked.callbacks.>" {
			t.Errorf("stream config = %+v; want the documented defaults", c)
		}
	}
	// Changing a limit updates the stream in place and keeps its messages.
	if _, err := js.Publish(ctx, events.AcceptedSubject("1688", "ORDER_CREATE"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	cfg.MaxAge = 48 * time.Hour
	s, err := events.EnsureStream(ctx, js, cfg)
	if err != nil {
		t.Fatalf("EnsureStream with new MaxAge: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxAge != 48*time.Hour || info.State.Msgs != 1 {
		t.Errorf("after update: MaxAge %s, %d msgs; want 48h, 1", info.Config.MaxAge, info.State.Msgs)
	}
}

// CreateStreamIfMissing is for a process that does not own the stream's
// settings: it creates a missing stream from its config, and leaves an
// existing one exactly as its owner configured it.
func TestCreateStreamIfMissingLeavesAnExistingStreamAlone(t *testing.T) {
	ns := eventstest.Start(t)
	js := ns.JetStream()
	ctx := context.Background()
	owner := events.DefaultStreamConfig()
	owner.MaxMsgSize = 4<<20 + 4096
	owner.MaxAge = 48 * time.Hour
	if _, err := events.EnsureStream(ctx, js, owner); err != nil {
		t.Fatal(err)
	}

	mine := events.DefaultStreamConfig()
	s, created, err := events.CreateStreamIfMissing(ctx, js, mine)
	if err != nil || created {
		t.Fatalf("CreateStreamIfMissing(existing) = created %v, %v; want the existing stream", created, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxMsgSize != owner.MaxMsgSize || info.Config.MaxAge != owner.MaxAge {
		t.Errorf("after CreateStreamIfMissing: MaxMsgSize %d, MaxAge %s; want the owner's %d, %s",
			info.Config.MaxMsgSize, info.Config.MaxAge, owner.MaxMsgSize, owner.MaxAge)
	}
	got := strings.Join(mine.Differences(info.Config), "; ")
	want := "max_age 48h0m0s vs 168h0m0s; max_msg_size 4198400 vs 1048576"
	if got != want {
		t.Errorf("Differences = %q; want %q", got, want)
	}
	if d := owner.Differences(info.Config); len(d) != 0 {
		t.Errorf("owner.Differences(its own stream) = %q; want none", d)
	}

	if err := js.DeleteStream(ctx, owner.Name); err != nil {
		t.Fatal(err)
	}
	s, created, err = events.CreateStreamIfMissing(ctx, js, mine)
	if err != nil || !created {
		t.Fatalf("CreateStreamIfMissing(missing) = created %v, %v; want it created", created, err)
	}
	info, err = s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := mine.Differences(info.Config); len(d) != 0 {
		t.Errorf("created stream differs from its config: %q", d)
	}
}

func TestStreamConfigValidate(t *testing.T) {
	good := events.DefaultStreamConfig()
	if err := good.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for name, mut := range map[string]func(*events.StreamConfig){
		"empty name":        func(c *events.StreamConfig) { c.Name = "" },
		"dotted name":       func(c *events.StreamConfig) { c.Name = "A.B" },
		"zero age":          func(c *events.StreamConfig) { c.MaxAge = 0 },
		"tiny dupe window":  func(c *events.StreamConfig) { c.Duplicates = time.Millisecond },
		"window beyond age": func(c *events.StreamConfig) { c.MaxAge = time.Minute; c.Duplicates = time.Hour },
		"zero replicas":     func(c *events.StreamConfig) { c.Replicas = 0 },
		"zero bytes":        func(c *events.StreamConfig) { c.MaxBytes = 0 },
	} {
		c := good
		mut(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate = nil; want an error", name)
		}
	}
}

// TestFullStreamRefusesInsteadOfDropping: when the stream is full a publish
// fails (the receiver answers 503 and the platform retries) and the callbacks
// already acknowledged stay.
func TestFullStreamRefusesInsteadOfDropping(t *testing.T) {
	ns := eventstest.Start(t)
	js := ns.JetStream()
	ctx := context.Background()
	cfg := events.DefaultStreamConfig()
	cfg.MaxBytes = 4096
	s, err := events.EnsureStream(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(strings.Repeat("x", 500))
	var refused error
	for i := 0; i < 20 && refused == nil; i++ {
		_, refused = js.Publish(ctx, events.AcceptedSubject("1688", "ORDER_CREATE"), body)
	}
	if refused == nil {
		t.Fatal("a full stream kept accepting publishes")
	}
	if _, err := s.GetMsg(ctx, 1); err != nil {
		t.Fatalf("first acknowledged message gone after the stream filled up: %v", err)
	}
}
