package casework

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/refundhub/refundhub/internal/testenv/syncbuf"
)

// fakeStore is a store that answers a ping, or not, and takes a write, or
// not, as the test says, and counts the pings and the writes tried.
type fakeStore struct {
	down   atomic.Bool // answers nothing
	full   atomic.Bool // answers, takes no write
	pings  atomic.Int64
	writes atomic.Int64
}

func (f *fakeStore) pingWrite(ctx context.Context) error {
	f.writes.Add(1)
	if err := f.answer(ctx); err != nil {
		return err
	}
	if f.full.Load() {
		return errFull
	}
	return nil
}

func (f *fakeStore) ping(ctx context.Context) error {
	f.pings.Add(1)
	return f.answer(ctx)
}

// answer is whether the store answers, uncounted.
func (f *fakeStore) answer(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if f.down.Load() {
		return errRefused
	}
	return nil
}

// errRefused is a store error casestore.Unavailable recognises.
var errRefused = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}

// errFull is a write the store refused, casestore.WriteRefused: a full
// disk, which the store's ping passes.
var errFull = fmt.Errorf("append timeline: %w", sqlite3.Error{Code: sqlite3.ErrFull})

// lockedBuffer is a log and output sink the test reads while it is written.
type lockedBuffer = syncbuf.Buffer

func newTestGate(t *testing.T) (*storeGate, *fakeStore, *lockedBuffer, context.CancelFunc) {
	t.Helper()
	f := &fakeStore{}
	var logs lockedBuffer
	stopping, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	return newStoreGate(f.ping, f.pingWrite, slog.New(slog.NewTextHandler(&logs, nil)), 10*time.Millisecond, stopping), f, &logs, stop
}

// eventually polls cond until it holds, for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); <-time.After(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestTheGateLetsAnErrorThroughWhenTheStoreAnswers: a broken connection
// that was not the store's (a platform call's looks the same) is not held:
// the store answers the gate's ping, and the message fails as any other.
// An error that is no outage at all is not even pinged for.
func TestTheGateLetsAnErrorThroughWhenTheStoreAnswers(t *testing.T) {
	g, f, logs, _ := newTestGate(t)
	if g.hold(context.Background(), errRefused, g.generation()) {
		t.Error("hold with the store answering: true; want false (not the store's error)")
	}
	if g.closed() || f.pings.Load() != 1 || logs.String() != "" {
		t.Errorf("closed %v, %d pings, logs %q; want open, one ping, nothing logged", g.closed(), f.pings.Load(), logs.String())
	}
	if g.trip(errors.New("constraint failed"), g.generation()) || f.pings.Load() != 1 {
		t.Errorf("trip on an error about the work: closed %v after %d pings; want open, no ping", g.closed(), f.pings.Load())
	}
}

// TestTheGateHoldsEveryHandlerUntilTheStoreAnswers: with the store down,
// every handler that meets the outage waits; one line says the store is
// unreachable and one that it is back, whatever the number of handlers;
// then each is let go to try its work again.
func TestTheGateHoldsEveryHandlerUntilTheStoreAnswers(t *testing.T) {
	g, f, logs, _ := newTestGate(t)
	f.down.Store(true)
	const handlers = 5
	results := make(chan bool, handlers)
	for range handlers {
		go func() { results <- g.hold(context.Background(), errRefused, g.generation()) }()
	}
	eventually(t, "every handler held", func() bool { return g.waiting.Load() == handlers })
	eventually(t, "the probe to try a write", func() bool { return f.writes.Load() > 0 })
	select {
	case r := <-results:
		t.Fatalf("a handler was let go (%v) with the store still down", r)
	default:
	}
	if g.trip(errRefused, g.generation()) != true {
		t.Error("trip while closed: false; want true (the sweeps skip their tick)")
	}
	f.down.Store(false)
	for range handlers {
		select {
		case r := <-results:
			if !r {
				t.Error("hold after the store came back: false; want true (try the work again)")
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a handler still held 30 s after the store came back")
		}
	}
	if g.closed() {
		t.Error("the gate is still closed with the store back")
	}
	if n := strings.Count(logs.String(), "case store unreachable"); n != 1 {
		t.Errorf("%d 'unreachable' lines for one outage; want 1:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "case store reachable again"); n != 1 {
		t.Errorf("%d 'reachable again' lines; want 1:\n%s", n, logs.String())
	}
}

// TestTheGateLetsGoWhenTheWorkerStops: a worker stopping during an outage
// hands its held messages back at once (nothing of theirs is in flight)
// rather than after the shutdown timeout, and holds nothing new.
func TestTheGateLetsGoWhenTheWorkerStops(t *testing.T) {
	g, f, _, stop := newTestGate(t)
	f.down.Store(true)
	result := make(chan bool, 1)
	go func() { result <- g.hold(context.Background(), errRefused, g.generation()) }()
	eventually(t, "the handler held", func() bool { return g.waiting.Load() == 1 })
	stop()
	select {
	case r := <-result:
		if r {
			t.Error("hold when stopping: true; want false (the message goes back as after any failure)")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("hold did not return 10 s after the worker began to stop")
	}
	if g.hold(context.Background(), errRefused, g.generation()) {
		t.Error("a new hold while stopping: true; want false at once")
	}
}

// TestTheGateHoldsAWriteTheStoreRefusedThoughItAnswers: a full disk leaves
// the store answering its ping, which used to let the failure through,
// counted against the message. A write the store itself refused is held
// without that ping, until the probe's own write goes through.
func TestTheGateHoldsAWriteTheStoreRefusedThoughItAnswers(t *testing.T) {
	g, f, logs, _ := newTestGate(t)
	f.full.Store(true)
	result := make(chan bool, 1)
	go func() { result <- g.hold(context.Background(), errFull, g.generation()) }()
	eventually(t, "the handler held", func() bool { return g.waiting.Load() == 1 })
	eventually(t, "the probe to try a write twice", func() bool { return f.writes.Load() >= 2 })
	select {
	case r := <-result:
		t.Fatalf("the handler was let go (%v) with the disk still full", r)
	default:
	}
	if f.pings.Load() != 0 {
		t.Errorf("%d pings that only ask whether the store answers; want none (a full disk passes them)", f.pings.Load())
	}
	f.full.Store(false)
	select {
	case r := <-result:
		if !r {
			t.Error("hold once the store took a write: false; want true (try the work again)")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the handler still held 30 s after the store took a write")
	}
	if !strings.Contains(logs.String(), "database or disk is full") {
		t.Errorf("the log does not name the refused write:\n%s", logs.String())
	}
}

// TestAGateThatFlapsProbesLessOften: a store with room for the probe's
// write but not for every batch lets the gate open and close again at
// once. Each outage that follows another within storeProbeMax goes on from
// the last one's backoff, so that held messages (each retry may call the
// platform) are tried ever less often, not at the first step's pace.
func TestAGateThatFlapsProbesLessOften(t *testing.T) {
	g, _, _, _ := newTestGate(t) // base 10 ms
	for i := range 4 {
		closedAt := time.Now()
		if !g.hold(context.Background(), errFull, g.generation()) {
			t.Fatal("hold of a refused write: false; want true once the probe's write goes through")
		}
		// Timers never fire early: the outage lasted at least the backoff
		// of its first probe, 10 ms doubled once per outage before it.
		if min := (10 * time.Millisecond) << i; time.Since(closedAt) < min {
			t.Errorf("outage %d, right after the last: over in %s; want its first probe after %s at least", i+1, time.Since(closedAt), min)
		}
	}
}

// TestARefusedWriteIsHeldWithoutACount: a message is held through at most
// maxHeldOutages outages of a store that went away (one whose statement
// crashes the database must run out of deliveries), but a write the store
// refused (a full disk) is held however often it comes back, uncounted.
func TestARefusedWriteIsHeldWithoutACount(t *testing.T) {
	g, f, _, _ := newTestGate(t)
	w := &Worker{gate: g}
	if again, held := w.holdStore(context.Background(), errFull, maxHeldOutages, g.generation()); !again || held != maxHeldOutages {
		t.Errorf("a refused write after %d outages: again %v, held %d; want held again, uncounted", maxHeldOutages, again, held)
	}
	if again, held := w.holdStore(context.Background(), errRefused, 0, g.generation()); again || held != 0 {
		t.Errorf("a broken connection with the store answering: again %v, held %d; want it to go on as any failure", again, held)
	}
	f.down.Store(true)
	pings := f.pings.Load()
	if again, held := w.holdStore(context.Background(), errRefused, maxHeldOutages, g.generation()); again || held != maxHeldOutages || g.closed() || f.pings.Load() != pings {
		t.Errorf("a store gone away a fourth time: again %v, held %d, gate closed %v after %d pings; want the failure counted, not held",
			again, held, g.closed(), f.pings.Load()-pings)
	}
	if again, _ := w.holdStore(context.Background(), errors.New("constraint failed"), 0, g.generation()); again {
		t.Error("an error about the work: held; want it to go on as any failure")
	}
}

// TestARefusedWriteFromBeforeTheStoreCameBackIsTriedAgainAtOnce: work of a
// batch that failed on a full disk, but slow to report it, used to close
// the gate again after the probe's write had gone through, and everyone
// waited out another probe with the store taking writes. Such a stale
// refusal is tried again at once, without closing the gate; a refusal of
// work begun since closes it as before.
func TestARefusedWriteFromBeforeTheStoreCameBackIsTriedAgainAtOnce(t *testing.T) {
	g, f, _, _ := newTestGate(t)
	f.full.Store(true)
	before := g.generation()
	done := make(chan bool, 1)
	go func() { done <- g.hold(context.Background(), errFull, before) }()
	eventually(t, "the probe to try a write", func() bool { return f.writes.Load() > 0 })
	f.full.Store(false)
	if !<-done {
		t.Fatal("hold once the store took a write: false; want true")
	}
	writes := f.writes.Load()
	if !g.hold(context.Background(), errFull, before) || g.closed() || f.writes.Load() != writes {
		t.Errorf("a refusal of work begun before the store came back: gate closed %v, %d more probes; want a retry at once, the gate open",
			g.closed(), f.writes.Load()-writes)
	}
	if g.trip(errFull, before) || g.closed() {
		t.Error("a sweep's refusal from before the store came back closed the gate")
	}
	f.full.Store(true)
	if !g.trip(errFull, g.generation()) {
		t.Error("a refusal of work begun since: the gate stayed open; want it closed")
	}
}
