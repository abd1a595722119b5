package replay_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
