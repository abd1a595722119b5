package casework

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/events/eventstest"
)

// countedMsg is a real JetStream message whose in-progress reports are
// counted.
type countedMsg struct {
	jetstream.Msg
	reports atomic.Int64
}

func (m *countedMsg) InProgress() error {
	m.reports.Add(1)
	return m.Msg.InProgress()
}

// oneMessage publishes a message on a fresh stream and pulls it with a
// consumer whose AckWait is ackWait; it returns the message and the
// consumer.
func oneMessage(t *testing.T, ackWait time.Duration) (*countedMsg, jetstream.Consumer) {
	t.Helper()
	ns := eventstest.Start(t)
	js := ns.JetStream()
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, "T", jetstream.ConsumerConfig{Durable: "w", AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.1", []byte("one")); err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return &countedMsg{Msg: m}, cons
}

// TestAMessageWaitingForASlotKeepsItsPlaceInLine: a message waiting for
// the only slot is reported in progress meanwhile, and when the slot comes
// free it goes to that message, not to a feed or sweep that asked after
// it. (The wait woke for each report and asked again, behind every later
// asker: the feeds went ahead, counted free slots and pulled more messages
// while the waiting ones piled up.)
func TestAMessageWaitingForASlotKeepsItsPlaceInLine(t *testing.T) {
	m, _ := oneMessage(t, 30*time.Millisecond) // reports every 10 ms
	w := &Worker{cfg: Config{AckWait: 30 * time.Millisecond}, sem: make(chan struct{}, 1), log: slog.New(slog.DiscardHandler)}
	w.sem <- struct{}{} // the only slot, busy
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // a failed test leaves no waiter behind
	got := make(chan bool, 1)
	go func() { got <- w.acquire(ctx, m) }()
	eventstest.WaitFor(t, 5*time.Second, "the message reported in progress while it waits", func() bool { return m.reports.Load() >= 2 })
	later := make(chan struct{})
	go func() { // a feed counting free slots, a sweep
		select {
		case w.sem <- struct{}{}:
			close(later)
		case <-ctx.Done():
		}
	}()
	seen := m.reports.Load()
	eventstest.WaitFor(t, 5*time.Second, "more reports while both wait", func() bool { return m.reports.Load() >= seen+3 })
	<-w.sem // the slot comes free
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("acquire = false; want the slot")
		}
	case <-later:
		t.Fatal("the slot went to the one that asked after the waiting message")
	}
	<-w.sem
	<-later
	reports := m.reports.Load()
	if reports < 3 {
		t.Errorf("%d in-progress reports while it waited; want one every third of AckWait", reports)
	}
}

// TestAMessageWaitingForASlotAtShutdownIsHandedBack: a message still
// waiting for a slot when the worker stops is handed back at once (Nak),
// for another process or the next start, not left until its AckWait runs
// out (a minute here).
func TestAMessageWaitingForASlotAtShutdownIsHandedBack(t *testing.T) {
	m, cons := oneMessage(t, time.Minute)
	w := &Worker{cfg: Config{AckWait: time.Minute}, sem: make(chan struct{}, 1), log: slog.New(slog.DiscardHandler)}
	w.sem <- struct{}{}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	w.dispatch(ctx, ctx, sourceCallbacks, m) // waits: the slot is taken
	stop()
	w.waiters.Wait()
	again, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatalf("the message after the stop: %v; want it delivered again at once", err)
	}
	if md, err := again.Metadata(); err != nil || md.NumDelivered != 2 || string(again.Data()) != "one" {
		t.Errorf("delivered again: %q, %+v, %v; want the same message, its second delivery", again.Data(), md, err)
	}
}
