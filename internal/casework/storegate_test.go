package casework

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fakeStore is a store that answers a ping, or not, as the test says, and
// counts the pings.
type fakeStore struct {
	down  atomic.Bool
	pings atomic.Int64
}

func (f *fakeStore) ping(ctx context.Context) error {
	f.pings.Add(1)
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

// lockedBuffer is a log sink the gate's goroutines can share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newTestGate(t *testing.T) (*storeGate, *fakeStore, *lockedBuffer, context.CancelFunc) {
	t.Helper()
	f := &fakeStore{}
	var logs lockedBuffer
	stopping, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	return newStoreGate(f.ping, slog.New(slog.NewTextHandler(&logs, nil)), 10*time.Millisecond, stopping), f, &logs, stop
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
	if g.hold(context.Background(), errRefused) {
		t.Error("hold with the store answering: true; want false (not the store's error)")
	}
	if g.closed() || f.pings.Load() != 1 || logs.String() != "" {
		t.Errorf("closed %v, %d pings, logs %q; want open, one ping, nothing logged", g.closed(), f.pings.Load(), logs.String())
	}
	if g.trip(errors.New("constraint failed")) || f.pings.Load() != 1 {
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
		go func() { results <- g.hold(context.Background(), errRefused) }()
	}
	eventually(t, "every handler held", func() bool { return g.waiting.Load() == handlers })
	eventually(t, "the probe to ping again", func() bool { return f.pings.Load() > handlers })
	select {
	case r := <-results:
		t.Fatalf("a handler was let go (%v) with the store still down", r)
	default:
	}
	if g.trip(errRefused) != true {
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
	go func() { result <- g.hold(context.Background(), errRefused) }()
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
	if g.hold(context.Background(), errRefused) {
		t.Error("a new hold while stopping: true; want false at once")
	}
}
