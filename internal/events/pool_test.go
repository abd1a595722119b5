package events_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
)

func newPool(t *testing.T, ns *eventstest.Server, n int, wait time.Duration) (*events.Publisher, []*nats.Conn) {
	t.Helper()
	var conns []*nats.Conn
	for i := range n {
		conns = append(conns, ns.Conn(events.ConnectOptions("pool-test-"+strconv.Itoa(i))...))
	}
	pub, err := events.NewPooledPublisher(conns, wait)
	if err != nil {
		t.Fatal(err)
	}
	return pub, conns
}

func parkedMsg() *nats.Msg {
	return &nats.Msg{Subject: events.ParkedSubject("taobao"), Data: []byte("x"), Header: nats.Header{events.HeaderParkReason: {"unknown_type"}}}
}

// publishAll publishes n messages with ids prefix-0…, failing the test on
// any error, and returns how many messages each connection sent meanwhile.
func publishAll(t *testing.T, pub *events.Publisher, conns []*nats.Conn, prefix string, n int) []uint64 {
	t.Helper()
	before := make([]uint64, len(conns))
	for i, nc := range conns {
		before[i] = nc.Stats().OutMsgs
	}
	for i := range n {
		if _, err := pub.Publish(context.Background(), parkedMsg(), prefix+strconv.Itoa(i)); err != nil {
			t.Fatalf("publish %s%d: %v", prefix, i, err)
		}
	}
	sent := make([]uint64, len(conns))
	for i, nc := range conns {
		sent[i] = nc.Stats().OutMsgs - before[i]
	}
	return sent
}

func TestNewPooledPublisherRejectsNoConnection(t *testing.T) {
	if _, err := events.NewPooledPublisher(nil, time.Second); err == nil {
		t.Error("NewPooledPublisher(nil) = nil error; want an error")
	}
	if _, err := events.NewPooledPublisher([]*nats.Conn{nil}, time.Second); err == nil {
		t.Error("NewPooledPublisher([nil]) = nil error; want an error")
	}
}

// Publishes are spread over every connection of the pool.
func TestPooledPublisherUsesEveryConnection(t *testing.T) {
	ns := eventstest.Start(t)
	pub, conns := newPool(t, ns, 3, 2*time.Second)
	ctx := context.Background()
	st, err := events.EnsureStream(ctx, pub.JetStream(), events.DefaultStreamConfig())
	if err != nil {
		t.Fatal(err)
	}
	sent := publishAll(t, pub, conns, "spread-", 30)
	for i, n := range sent {
		if n < 5 {
			t.Errorf("connection #%d sent %d of 30 publishes; want about a third", i, n)
		}
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 30 {
		t.Errorf("stream has %d messages; want 30", info.State.Msgs)
	}
}

// With one connection closed, publishes, Connected and JetStream use the
// others; with all closed, publishes fail at once with ErrNotConnected.
func TestPooledPublisherSkipsAClosedConnection(t *testing.T) {
	ns := eventstest.Start(t)
	pub, conns := newPool(t, ns, 2, 2*time.Second)
	ctx := context.Background()
	if _, err := events.EnsureStream(ctx, pub.JetStream(), events.DefaultStreamConfig()); err != nil {
		t.Fatal(err)
	}

	conns[0].Close()
	if !pub.Connected() {
		t.Error("Connected() = false with one of two connections up; want true")
	}
	if _, err := pub.JetStream().Stream(ctx, events.DefaultStreamName); err != nil {
		t.Errorf("JetStream().Stream with the first connection closed: %v; want the stream through the second", err)
	}
	sent := publishAll(t, pub, conns, "one-down-", 10)
	if sent[1] != 10 {
		t.Errorf("the open connection sent %d of 10 publishes; want all", sent[1])
	}

	conns[1].Close()
	if pub.Connected() {
		t.Error("Connected() = true with every connection closed; want false")
	}
	start := time.Now()
	if _, err := pub.Publish(ctx, parkedMsg(), "all-down"); !errors.Is(err, events.ErrNotConnected) {
		t.Errorf("publish with every connection closed = %v; want ErrNotConnected", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("publish with every connection closed took %s; want an immediate failure", d)
	}
}

// A connection closed while a publish on it waits for its ack: the publish
// is tried again on the other connection at once, not after the wait.
func TestPooledPublisherRetriesWhenItsConnectionCloses(t *testing.T) {
	ns := eventstest.Start(t)
	// The responder keeps the first publish unanswered and acks the others.
	rc := ns.Conn()
	first := make(chan struct{})
	var once sync.Once
	if _, err := rc.Subscribe("held.>", func(m *nats.Msg) {
		held := false
		once.Do(func() { held = true; close(first) })
		if !held {
			_ = rc.Publish(m.Reply, []byte(`{"stream":"FAKE","seq":7}`))
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := rc.Flush(); err != nil {
		t.Fatal(err)
	}
	const wait = 5 * time.Second
	pub, conns := newPool(t, ns, 2, wait)
	before := []uint64{conns[0].Stats().OutMsgs, conns[1].Stats().OutMsgs}
	type result struct {
		ack events.Ack
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		m := &nats.Msg{Subject: "held.x", Data: []byte("x"), Header: nats.Header{}}
		ack, err := pub.Publish(context.Background(), m, "id-held")
		done <- result{ack, err}
	}()
	select {
	case <-first:
	case <-time.After(wait):
		t.Fatal("the responder never got the publish")
	}
	for i, nc := range conns {
		if nc.Stats().OutMsgs > before[i] {
			nc.Close()
		}
	}
	r := <-done
	if r.err != nil || r.ack.Sequence != 7 {
		t.Fatalf("publish whose connection closed = %+v, %v; want the ack through the other connection", r.ack, r.err)
	}
	if d := time.Since(start); d > wait/2 {
		t.Errorf("publish whose connection closed took %s; want a retry well before the %s wait", d, wait)
	}
}

// A NATS outage takes every connection of the pool down; after the server
// is back, every connection reconnects and publishes use all of them again.
func TestPooledPublisherOutageAndRecovery(t *testing.T) {
	ns := eventstest.Start(t)
	pub, conns := newPool(t, ns, 2, time.Second)
	ctx := context.Background()
	if _, err := events.EnsureStream(ctx, pub.JetStream(), events.DefaultStreamConfig()); err != nil {
		t.Fatal(err)
	}
	publishAll(t, pub, conns, "before-", 4)

	ns.Stop()
	eventstest.WaitFor(t, 10*time.Second, "the pool to notice the outage", func() bool { return !pub.Connected() })
	start := time.Now()
	if _, err := pub.Publish(ctx, parkedMsg(), "during"); !errors.Is(err, events.ErrNotConnected) {
		t.Errorf("publish during the outage = %v; want ErrNotConnected", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("publish during the outage took %s; want an immediate failure", d)
	}

	ns.Restart()
	eventstest.WaitFor(t, 30*time.Second, "every connection to reconnect", func() bool {
		for _, nc := range conns {
			if !nc.IsConnected() {
				return false
			}
		}
		return true
	})
	for i, n := range publishAll(t, pub, conns, "after-", 10) {
		if n == 0 {
			t.Errorf("connection #%d sent none of 10 publishes after the restart; want its share", i)
		}
	}
}

// A connection that has never reached its server (started while NATS was
// down, RetryOnFailedConnect) counts as not connected: a publish on it
// fails with ErrNotConnected, and a pool moves on to a connected one.
func TestPooledPublisherSkipsAConnectionThatNeverConnected(t *testing.T) {
	up := eventstest.Start(t)
	down := eventstest.Start(t)
	down.Stop()
	never := down.Conn(events.ConnectOptions("never-connected")...)
	ctx := context.Background()

	alone, err := events.NewPublisher(never, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alone.Publish(ctx, parkedMsg(), "alone"); !errors.Is(err, events.ErrNotConnected) {
		t.Errorf("publish on a connection that never connected = %v; want ErrNotConnected", err)
	}

	good := up.Conn(events.ConnectOptions("connected")...)
	pub, err := events.NewPooledPublisher([]*nats.Conn{never, good}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Connected() {
		t.Error("Connected() = false with one connection up; want true")
	}
	if _, err := events.EnsureStream(ctx, pub.JetStream(), events.DefaultStreamConfig()); err != nil {
		t.Fatalf("EnsureStream through the connected connection: %v", err)
	}
	if sent := publishAll(t, pub, []*nats.Conn{never, good}, "skip-", 6); sent[1] != 6 {
		t.Errorf("the connected connection sent %d of 6 publishes; want all", sent[1])
	}
}
