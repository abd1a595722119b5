package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// streamSettings is the part of a stream's configuration that deployments
// choose, read back from the server.
func streamSettings(t *testing.T, js jetstream.JetStream, name string) jetstream.StreamConfig {
	t.Helper()
	st, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatalf("stream %s info: %v", name, err)
	}
	return info.Config
}

// The receiver owns the callback stream's settings: one started with
// CALLBACK_MAX_BYTES=4 MiB raises MaxMsgSize to fit such bodies. A worker
// started afterwards without those variables (they are the receiver's) must
// leave the stream as it is; rewriting it to its own defaults would shrink
// MaxMsgSize back to 1 MiB and large pushes would get 503 until the receiver
// restarted.
func TestWorkerLeavesTheReceiversStreamSettingsAlone(t *testing.T) {
	s := newStack(t, sandbox.Faults{}, quickSeller, 1, nil)
	sc := events.DefaultStreamConfig()
	sc.Duplicates = 100 * time.Millisecond
	sc.MaxMsgSize = 4<<20 + 4096
	sc.MaxBytes = 256 << 20
	sc.MaxAge = 48 * time.Hour
	if _, err := events.EnsureStream(context.Background(), s.js, sc); err != nil {
		t.Fatalf("create the stream as the receiver would: %v", err)
	}
	before := streamSettings(t, s.js, sc.Name)

	w := s.start()

	after := streamSettings(t, s.js, sc.Name)
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"MaxMsgSize", after.MaxMsgSize, before.MaxMsgSize},
		{"MaxBytes", after.MaxBytes, before.MaxBytes},
		{"MaxAge", after.MaxAge, before.MaxAge},
		{"Duplicates", after.Duplicates, before.Duplicates},
		{"Replicas", after.Replicas, before.Replicas},
		{"Discard", after.Discard, before.Discard},
	} {
		if f.got != f.want {
			t.Errorf("after a worker start, stream %s = %v; want %v (the receiver's setting, unchanged)", f.name, f.got, f.want)
		}
	}
	// The worker says what it would have chosen differently, naming the field.
	if logs := w.errs.String(); !strings.Contains(logs, "max_msg_size") {
		t.Errorf("worker log does not name max_msg_size as differing from its settings:\n%s", logs)
	}
}

// A worker that starts before any receiver creates the callback stream, from
// the same variables the receiver reads: a CALLBACK_MAX_BYTES larger than
// the default MaxMsgSize must make the stream accept such bodies from the
// first creation, not only once a receiver has started and updated it.
func TestWorkerStartingFirstCreatesTheStreamAsTheReceiverWould(t *testing.T) {
	s := newStack(t, sandbox.Faults{}, quickSeller, 1, map[string]string{
		"CALLBACK_MAX_BYTES":        "2097152",
		"CALLBACK_STREAM_MAX_BYTES": "536870912",
		"CALLBACK_STREAM_MAX_AGE":   "72h",
	})
	if err := s.js.DeleteStream(context.Background(), events.DefaultStreamName); err != nil {
		t.Fatalf("delete the stack's stream: %v", err)
	}

	s.start()

	got := streamSettings(t, s.js, events.DefaultStreamName)
	if got.MaxMsgSize < 2097152 {
		t.Errorf("stream MaxMsgSize = %d; want at least CALLBACK_MAX_BYTES (2097152) so such bodies fit", got.MaxMsgSize)
	}
	if got.MaxBytes != 536870912 || got.MaxAge != 72*time.Hour || got.Discard != jetstream.DiscardNew {
		t.Errorf("stream MaxBytes, MaxAge, Discard = %d, %s, %v; want 536870912, 72h, DiscardNew", got.MaxBytes, got.MaxAge, got.Discard)
	}
}
