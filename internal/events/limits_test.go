package events_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
)

// serverAdvisory is a delivery limit advisory as nats-server v2.15 writes
// it (JSConsumerDeliveryExceededAdvisory).
const serverAdvisory = `{"type":"io.nats.jetstream.advisory.v1.max_deliver","id":"Xh5Vt9kQ2b8Zr1","timestamp":"2026-12-04T19:30:00.123456789Z","stream":"COMMANDS","consumer":"refund-worker","stream_seq":42,"deliveries":15}`

func TestParseDeliveryLimit(t *testing.T) {
	a, err := events.ParseDeliveryLimit([]byte(serverAdvisory))
	if err != nil || a.Stream != "COMMANDS" || a.Consumer != "refund-worker" || a.StreamSeq != 42 || a.Deliveries != 15 {
		t.Fatalf("ParseDeliveryLimit = %+v, %v; want COMMANDS, refund-worker, #42, 15 deliveries", a, err)
	}
	for _, tc := range []struct{ name, in, says string }{
		{"not JSON", `max_deliver`, "invalid character"},
		{"another advisory", `{"type":"io.nats.jetstream.advisory.v1.nak","stream":"COMMANDS","consumer":"w","stream_seq":1}`, `type "io.nats.jetstream.advisory.v1.nak"`},
		{"no stream", `{"type":"io.nats.jetstream.advisory.v1.max_deliver","consumer":"w","stream_seq":1}`, "no stream or consumer"},
		{"no sequence", `{"type":"io.nats.jetstream.advisory.v1.max_deliver","stream":"COMMANDS","consumer":"w"}`, "no stream sequence"},
		{"a negative sequence", `{"type":"io.nats.jetstream.advisory.v1.max_deliver","stream":"COMMANDS","consumer":"w","stream_seq":-1}`, "cannot unmarshal"},
	} {
		if _, err := events.ParseDeliveryLimit([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: error %v; want one saying %q", tc.name, err, tc.says)
		}
	}
}

func FuzzParseDeliveryLimit(f *testing.F) {
	f.Add([]byte(serverAdvisory))
	f.Add([]byte(`{"type":"io.nats.jetstream.advisory.v1.max_deliver","stream":"","consumer":"w","stream_seq":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := events.ParseDeliveryLimit(b)
		if err == nil && (a.Stream == "" || a.Consumer == "" || a.StreamSeq == 0) {
			t.Fatalf("accepted %q as %+v", b, a)
		}
	})
}

// TestTheLimitStreamKeepsTheServersAdvisory: a consumer that reaches its
// MaxDeliver makes the server publish an advisory only to whoever listens
// then; the limit stream listens, and keeps it (as the server writes it,
// which ParseDeliveryLimit reads) for a worker that was not up.
func TestTheLimitStreamKeepsTheServersAdvisory(t *testing.T) {
	ns := eventstest.Start(t)
	js := ns.JetStream()
	ctx := context.Background()
	cfg := events.DefaultWorkStreamsConfig()
	if err := events.EnsureWorkStreams(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := events.EnsureLimitStream(ctx, js, cfg, cfg.CommandStream); err != nil {
			t.Fatalf("EnsureLimitStream #%d: %v", i+1, err)
		}
	}
	if _, err := js.Publish(ctx, events.CommandSubject("taobao", "cancel", ""), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, cfg.CommandStream, jetstream.ConsumerConfig{Durable: "w",
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: 100 * time.Millisecond, MaxDeliver: 2})
	if err != nil {
		t.Fatal(err)
	}
	limits, err := js.Stream(ctx, cfg.LimitStream)
	if err != nil {
		t.Fatal(err)
	}
	// Fetched and never acked: delivered twice, then given up once the
	// second AckWait is over (the server's check of its pending messages,
	// or the next pull).
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := cons.FetchNoWait(1); err != nil {
			t.Fatal(err)
		}
		if info, err := limits.Info(ctx); err == nil && info.State.Msgs == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no advisory kept in the limit stream after 10 s")
		}
		<-time.After(50 * time.Millisecond)
	}
	m, err := limits.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	a, err := events.ParseDeliveryLimit(m.Data)
	if err != nil || a.Stream != cfg.CommandStream || a.Consumer != "w" || a.StreamSeq != 1 || a.Deliveries != 2 {
		t.Fatalf("kept advisory %s: %+v, %v; want COMMANDS #1 of w, 2 deliveries", m.Data, a, err)
	}
	if m.Subject != events.MaxDeliveriesSubject(cfg.CommandStream, "w") {
		t.Errorf("kept under %s; want %s", m.Subject, events.MaxDeliveriesSubject(cfg.CommandStream, "w"))
	}
}

// TestTheLimitStreamKeepsEveryFleetsSubjects: a worker fleet with other
// stream names shares the limit stream; each start adds its subjects and
// keeps the others' (rewriting them, two fleets took turns losing each
// other's advisories).
func TestTheLimitStreamKeepsEveryFleetsSubjects(t *testing.T) {
	ns := eventstest.Start(t)
	js := ns.JetStream()
	ctx := context.Background()
	cfg := events.DefaultWorkStreamsConfig()
	for _, streams := range [][]string{{"CALLBACKS", "COMMANDS"}, {"CALLBACKS_B", "COMMANDS_B"}, {"CALLBACKS", "COMMANDS"}} {
		if err := events.EnsureLimitStream(ctx, js, cfg, streams...); err != nil {
			t.Fatal(err)
		}
	}
	s, err := js.Stream(ctx, cfg.LimitStream)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{events.MaxDeliveriesSubject("CALLBACKS", "*"), events.MaxDeliveriesSubject("COMMANDS", "*"),
		events.MaxDeliveriesSubject("CALLBACKS_B", "*"), events.MaxDeliveriesSubject("COMMANDS_B", "*")}
	if got := s.CachedInfo().Config.Subjects; !slices.Equal(got, want) {
		t.Errorf("limit stream subjects %v; want %v", got, want)
	}
}
