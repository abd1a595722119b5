package events_test

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
)

// fakeStream answers publishes on subj like a stream would, with
// {"stream":"FAKE","seq":N}, N counting from 1; hold lets a test keep replies
// back and send them when it likes.
type fakeStream struct {
	t    *testing.T
	nc   *nats.Conn
	mu   sync.Mutex
	seq  uint64
	hold bool
	held []string // reply subjects not answered yet
	got  chan string
}

func newFakeStream(t *testing.T, ns *eventstest.Server, subj string, hold bool) *fakeStream {
	t.Helper()
	f := &fakeStream{t: t, nc: ns.Conn(), hold: hold, got: make(chan string, 16)}
	if _, err := f.nc.Subscribe(subj, func(m *nats.Msg) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.hold {
			f.held = append(f.held, m.Reply)
			f.got <- m.Reply
			return
		}
		f.seq++
		_ = f.nc.Publish(m.Reply, []byte(`{"stream":"FAKE","seq":`+strconv.FormatUint(f.seq, 10)+`}`))
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return f
}

// release answers every held publish (late, from the publisher's view) and
// stops holding.
func (f *fakeStream) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.held {
		f.seq++
		_ = f.nc.Publish(r, []byte(`{"stream":"FAKE","seq":`+strconv.FormatUint(f.seq, 10)+`}`))
	}
	f.held = nil
	f.hold = false
	if err := f.nc.Flush(); err != nil {
		f.t.Fatal(err)
	}
}

func newTestPublisher(t *testing.T, nc *nats.Conn, wait time.Duration) *events.Publisher {
	t.Helper()
	pub, err := events.NewPublisher(nc, wait)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func fakeMsg(subj string) *nats.Msg {
	return &nats.Msg{Subject: subj, Data: []byte("x"), Header: nats.Header{events.HeaderPlatform: {"1688"}}}
}

// TestPublisherLateReplyAfterTimeout: a PubAck that arrives after the wait
// ran out is dropped (no panic, no leak into a later publish), and the next
// publish gets its own ack.
func TestPublisherLateReplyAfterTimeout(t *testing.T) {
	ns := eventstest.Start(t)
	f := newFakeStream(t, ns, "fake.>", true)
	pub := newTestPublisher(t, ns.Conn(), 200*time.Millisecond)
	ctx := context.Background()

	start := time.Now()
	_, err := pub.Publish(ctx, fakeMsg("fake.a"), "id-1")
	if !errors.Is(err, events.ErrPublishTimeout) {
		t.Fatalf("publish without an answer = %v; want ErrPublishTimeout", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("timed out after %s; want about the 200ms wait", d)
	}
	select {
	case <-f.got:
	default:
		t.Fatal("the fake stream never saw the publish")
	}
	f.release() // seq 1 goes to a reply subject nobody waits for any more

	for i := range 20 {
		ack, err := pub.Publish(ctx, fakeMsg("fake.a"), "id-"+strconv.Itoa(i+2))
		if err != nil || ack.Stream != "FAKE" || ack.Sequence != uint64(i+2) {
			t.Fatalf("publish #%d after a late reply = %+v, %v; want seq %d", i+2, ack, err, i+2)
		}
	}
}

// TestPublisherConcurrentAcksGoToTheirPublishers: many publishers at once
// each get the ack of their own message from a real stream.
func TestPublisherConcurrentAcksGoToTheirPublishers(t *testing.T) {
	ns := eventstest.Start(t)
	pub := newTestPublisher(t, ns.Conn(), 5*time.Second)
	ctx := context.Background()
	st, err := events.EnsureStream(ctx, pub.JetStream(), events.DefaultStreamConfig())
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	var wg sync.WaitGroup
	acks := make([]events.Ack, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			m := fakeMsg(events.AcceptedSubject("1688", "ORDER_CREATE"))
			m.Data = []byte(strconv.Itoa(i))
			acks[i], errs[i] = pub.Publish(ctx, m, "id-"+strconv.Itoa(i))
		})
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("publish %d: %v", i, errs[i])
		}
		if seen[acks[i].Sequence] {
			t.Fatalf("seq %d acked twice", acks[i].Sequence)
		}
		seen[acks[i].Sequence] = true
		m, err := st.GetMsg(ctx, acks[i].Sequence)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Data) != strconv.Itoa(i) || m.Header.Get(events.HeaderMsgID) != "id-"+strconv.Itoa(i) {
			t.Errorf("publish %d got the ack of seq %d, which holds %q (%s)", i, acks[i].Sequence, m.Data, m.Header.Get(events.HeaderMsgID))
		}
	}
}

// TestPublisherNoResponders: nobody listening on the subject is retried
// within the wait (a stream appearing in time takes the message) and
// reported once the wait is over.
func TestPublisherNoResponders(t *testing.T) {
	ns := eventstest.Start(t)
	pub := newTestPublisher(t, ns.Conn(), 300*time.Millisecond)
	ctx := context.Background()

	start := time.Now()
	_, err := pub.Publish(ctx, fakeMsg("nobody.x"), "id-1")
	if !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("publish with no responders = %v; want nats.ErrNoResponders", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("gave up after %s; want retries for most of the 300ms wait", d)
	}

	long := newTestPublisher(t, ns.Conn(), 10*time.Second)
	done := make(chan error, 1)
	go func() {
		ack, err := long.Publish(ctx, fakeMsg("late.x"), "id-2")
		if err == nil && ack.Stream != "FAKE" {
			err = errors.New("ack from " + ack.Stream)
		}
		done <- err
	}()
	newFakeStream(t, ns, "late.>", false)
	if err := <-done; err != nil {
		t.Fatalf("publish while the responder came up = %v; want its ack", err)
	}
}

// TestPublisherClosed: after the connection is closed, publishes fail at
// once with ErrNotConnected.
func TestPublisherClosed(t *testing.T) {
	ns := eventstest.Start(t)
	newFakeStream(t, ns, "fake.>", false)
	ctx := context.Background()

	nc := ns.Conn()
	pub := newTestPublisher(t, nc, 2*time.Second)
	if _, err := pub.Publish(ctx, fakeMsg("fake.a"), "id-1"); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	start := time.Now()
	if _, err := pub.Publish(ctx, fakeMsg("fake.a"), "id-2"); !errors.Is(err, events.ErrNotConnected) {
		t.Errorf("publish on a closed connection = %v; want ErrNotConnected", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("publish on a closed connection took %s; want an immediate failure", d)
	}
}

// TestPublisherContextCancelled: a cancelled request context stops the
// publish before it starts.
func TestPublisherContextCancelled(t *testing.T) {
	ns := eventstest.Start(t)
	newFakeStream(t, ns, "fake.>", false)
	pub := newTestPublisher(t, ns.Conn(), 2*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := pub.Publish(ctx, fakeMsg("fake.a"), "id-1"); !errors.Is(err, context.Canceled) {
		t.Errorf("publish with a cancelled context = %v; want context.Canceled", err)
	}
}

// TestPublisherConcurrentTimeoutsAndLateReplies: under concurrent publishes
// where some acks come after the wait ran out, every publish ends with either
// its own ack or ErrPublishTimeout; no late ack reaches another publisher.
func TestPublisherConcurrentTimeoutsAndLateReplies(t *testing.T) {
	ns := eventstest.Start(t)
	// The responder acks message n with seq n, at once when n is even and
	// after 300ms (past the 100ms wait) when it is odd.
	rc := ns.Conn()
	if _, err := rc.Subscribe("slow.>", func(m *nats.Msg) {
		n, err := strconv.Atoi(string(m.Data))
		if err != nil {
			t.Errorf("responder got %q", m.Data)
			return
		}
		ack := []byte(`{"stream":"FAKE","seq":` + strconv.Itoa(n) + `}`)
		if n%2 == 0 {
			_ = rc.Publish(m.Reply, ack)
			return
		}
		time.AfterFunc(300*time.Millisecond, func() { _ = rc.Publish(m.Reply, ack) })
	}); err != nil {
		t.Fatal(err)
	}
	if err := rc.Flush(); err != nil {
		t.Fatal(err)
	}
	pub, _ := newPool(t, ns, 2, 100*time.Millisecond)
	ctx := context.Background()
	const rounds, n = 3, 64
	for round := range rounds {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				seq := round*n + i + 1
				m := fakeMsg("slow.x")
				m.Data = []byte(strconv.Itoa(seq))
				ack, err := pub.Publish(ctx, m, "id-"+strconv.Itoa(seq))
				switch {
				case seq%2 == 1 && !errors.Is(err, events.ErrPublishTimeout):
					t.Errorf("publish %d (acked late) = %+v, %v; want ErrPublishTimeout", seq, ack, err)
				case seq%2 == 0 && (err != nil || ack.Sequence != uint64(seq)):
					t.Errorf("publish %d (acked at once) = %+v, %v; want its own seq %d", seq, ack, err, seq)
				}
			})
		}
		wg.Wait()
	}
}

// TestPublisherWaitIsBounded: a publish nobody acks fails once the wait is
// over: never earlier, and not much later.
func TestPublisherWaitIsBounded(t *testing.T) {
	ns := eventstest.Start(t)
	newFakeStream(t, ns, "fake.>", true)
	const wait = 120 * time.Millisecond
	pub := newTestPublisher(t, ns.Conn(), wait)
	for i := range 3 {
		start := time.Now()
		_, err := pub.Publish(context.Background(), fakeMsg("fake.a"), "id-"+strconv.Itoa(i))
		d := time.Since(start)
		if !errors.Is(err, events.ErrPublishTimeout) {
			t.Fatalf("publish without an answer = %v; want ErrPublishTimeout", err)
		}
		if d < wait || d > wait+time.Second {
			t.Errorf("publish without an answer gave up after %s; want the wait %s (never less)", d, wait)
		}
	}
}

// TestPublisherIdleLeavesNoGoroutine: the goroutine that bounds waits runs
// only while publishes are in flight.
func TestPublisherIdleLeavesNoGoroutine(t *testing.T) {
	ns := eventstest.Start(t)
	newFakeStream(t, ns, "fake.>", false)
	pub := newTestPublisher(t, ns.Conn(), 2*time.Second)
	ctx := context.Background()
	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if _, err := pub.Publish(ctx, fakeMsg("fake.a"), "id-"+strconv.Itoa(i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines 5s after the last publish; %d before the publishes", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPublisherDuplicatesAndOutage(t *testing.T) {
	ns := eventstest.Start(t)
	nc := ns.Conn(events.ConnectOptions("events-test")...)
	pub, err := events.NewPublisher(nc, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := events.EnsureStream(ctx, pub.JetStream(), events.DefaultStreamConfig())
	if err != nil {
		t.Fatal(err)
	}
	msg := func() *nats.Msg {
		return &nats.Msg{Subject: events.ParkedSubject("taobao"), Data: []byte("x"), Header: nats.Header{events.HeaderParkReason: {"unknown_type"}}}
	}
	a1, err := pub.Publish(ctx, msg(), "id-1")
	if err != nil || a1.Duplicate || a1.Stream != events.DefaultStreamName {
		t.Fatalf("first publish = %+v, %v; want a new message", a1, err)
	}
	a2, err := pub.Publish(ctx, msg(), "id-1")
	if err != nil || !a2.Duplicate || a2.Sequence != a1.Sequence {
		t.Fatalf("second publish = %+v, %v; want duplicate of seq %d", a2, err, a1.Sequence)
	}
	stored, err := st.GetMsg(ctx, a1.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Header.Get(events.HeaderMsgID) != "id-1" || stored.Header.Get(events.HeaderParkReason) != "unknown_type" {
		t.Errorf("stored headers = %v", stored.Header)
	}

	// A subject outside the stream: no responders, reported as an error fast.
	if _, err := pub.Publish(ctx, &nats.Msg{Subject: "elsewhere.x", Header: nats.Header{}}, "id-2"); err == nil {
		t.Error("publish outside the stream: want an error")
	}

	ns.Stop()
	eventstest.WaitFor(t, 10*time.Second, "client to notice the outage", func() bool { return !nc.IsConnected() })
	start := time.Now()
	_, err = pub.Publish(ctx, msg(), "id-3")
	if !errors.Is(err, events.ErrNotConnected) {
		t.Errorf("publish during outage = %v; want ErrNotConnected", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("publish during outage took %s; want an immediate failure", d)
	}

	ns.Restart()
	eventstest.WaitFor(t, 30*time.Second, "reconnect", nc.IsConnected)
	if a, err := pub.Publish(ctx, msg(), "id-3"); err != nil || a.Duplicate {
		t.Fatalf("publish after restart = %+v, %v", a, err)
	}
}

func TestReconnectDelay(t *testing.T) {
	for attempt, max := range map[int]time.Duration{1: 125 * time.Millisecond, 3: 500 * time.Millisecond, 50: 6250 * time.Millisecond} {
		if d := events.ReconnectDelay(attempt); d <= 0 || d > max {
			t.Errorf("ReconnectDelay(%d) = %s; want in (0, %s]", attempt, d, max)
		}
	}
}
