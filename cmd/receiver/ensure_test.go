package main

import (
	"bytes"
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
)

// TestEnsureLoopStopsQuietly: a stop that comes while the stream is being
// ensured (a reconnect's kick pending as the receiver shuts down) ends the
// loop without a warning. It logged "ensure stream failed; retrying" with
// "context canceled" at WARN, which a clean stop must never do (seen in CI
// as TestLogsOneFormat failing). With a cancelled context and a kick both
// ready, the loop's select picks either; twenty runs make the old code's
// pass all but impossible.
func TestEnsureLoopStopsQuietly(t *testing.T) {
	ns := eventstest.Start(t)
	pub, err := events.NewPublisher(ns.Conn(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		var logs bytes.Buffer
		logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		kick := make(chan struct{}, 1)
		kick <- struct{}{}
		var ok atomic.Bool
		done := make(chan struct{})
		go func() { defer close(done); ensureLoop(ctx, pub, events.DefaultStreamConfig(), &ok, kick, logger) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("ensureLoop did not return after its context was cancelled")
		}
		if logs.Len() != 0 {
			t.Fatalf("a stopped ensure loop logged:\n%s", logs.String())
		}
	}
}
