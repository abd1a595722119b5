package replay_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/replay"
)

// TestOne: one message is read by its sequence, and a sequence the stream
// does not hold is refused as never stored or as gone, never answered
// with the next message the ordered consumer would deliver.
func TestOne(t *testing.T) {
	ctx := context.Background()
	js := eventstest.Start(t).JetStream()
	st, err := events.EnsureStream(ctx, js, events.DefaultStreamConfig())
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		m := &nats.Msg{Subject: "callbacks.1688.ORDER_CREATE", Data: []byte(`{"i":` + strconv.Itoa(i) + `}`),
			Header: nats.Header{events.HeaderType: {"ORDER_CREATE"}}}
		if _, err := js.PublishMsg(ctx, m, jetstream.WithMsgID("id-"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.DeleteMsg(ctx, 2); err != nil {
		t.Fatal(err)
	}
	rd := replay.Reader{JS: js, Stream: events.DefaultStreamName, Timeout: 5 * time.Second}

	it, err := rd.One(ctx, 3)
	if err != nil || it.Seq != 3 || it.MsgID != "id-3" || string(it.Data) != `{"i":3}` || it.Subject != "callbacks.1688.ORDER_CREATE" ||
		it.Header.Get(events.HeaderType) != "ORDER_CREATE" || it.Time.IsZero() {
		t.Errorf("One(3) = %+v, %v; want message 3 with its id, bytes, headers and time", it, err)
	}
	if _, err := rd.One(ctx, 2); !errors.Is(err, replay.ErrGone) {
		t.Errorf("One(2) after its deletion = %v; want ErrGone", err)
	}
	if _, err := rd.One(ctx, 4); !errors.Is(err, replay.ErrNotStored) {
		t.Errorf("One(4) beyond the last = %v; want ErrNotStored", err)
	}
	none := replay.Reader{JS: js, Stream: "NOPE", Timeout: 5 * time.Second}
	if _, err := none.One(ctx, 1); !errors.Is(err, replay.ErrNoStream) || err.Error() != "stream NOPE not found (is the receiver running?)" {
		t.Errorf("One on a missing stream = %v; want ErrNoStream", err)
	}

	// Into the stream again: inside the duplicate window it is kept once.
	stored, err := replay.ToStream(ctx, js, it)
	if err != nil || !stored.Duplicate || stored.Seq != 3 || stored.Stream != events.DefaultStreamName {
		t.Errorf("ToStream(message 3) = %+v, %v; want a duplicate of seq 3", stored, err)
	}
}

// TestToStreamJoinsTheReplayersTrace: a replay into the stream is sent in
// the replayer's trace (its span the message's traceparent), with the
// trace the stored message was in kept as Rh-Traceparent for the worker's
// span to link to; the other headers are the stored ones.
func TestToStreamJoinsTheReplayersTrace(t *testing.T) {
	ctx := context.Background()
	js := eventstest.Start(t).JetStream()
	st, err := events.EnsureStream(ctx, js, events.DefaultStreamConfig())
	if err != nil {
		t.Fatal(err)
	}
	const first = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	it := replay.Item{Subject: "callbacks.1688.ORDER_CREATE", MsgID: "id-replayed", Data: []byte(`{"i":1}`),
		Header: nats.Header{events.HeaderType: {"ORDER_CREATE"}, events.HeaderTraceParent: {first}, "Nats-Msg-Id": {"id-replayed"}}}
	replayer := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{7}, SpanID: trace.SpanID{8}, TraceFlags: trace.FlagsSampled})
	stored, err := replay.ToStream(trace.ContextWithSpanContext(ctx, replayer), js, it)
	if err != nil || stored.Duplicate {
		t.Fatalf("ToStream = %+v, %v; want it stored", stored, err)
	}
	m, err := st.GetMsg(ctx, stored.Seq)
	if err != nil {
		t.Fatal(err)
	}
	want := "00-" + replayer.TraceID().String() + "-" + replayer.SpanID().String() + "-01"
	if got := m.Header.Get(events.HeaderTraceParent); got != want {
		t.Errorf("replayed traceparent %q; want the replayer's %q", got, want)
	}
	if got := m.Header.Get(events.HeaderRetryTraceParent); got != first {
		t.Errorf("replayed %s %q; want the stored trace %q", events.HeaderRetryTraceParent, got, first)
	}
	if m.Header.Get(events.HeaderType) != "ORDER_CREATE" || m.Header.Get("Nats-Msg-Id") != "id-replayed" {
		t.Errorf("replayed headers %v; want the stored ones, and its id", m.Header)
	}
}
