package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/envconfig/logtest"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
)

// TestLogsOneFormat: a receiver started and stopped cleanly writes only
// JSON log lines on stderr (the address it listens on included: it used to
// print "receiver listening on http://…" as a plain line), nothing on
// stdout, no warning, and names the NATS it was given, without the user
// info (it logged "nats":"" when no connection had a URL yet).
func TestLogsOneFormat(t *testing.T) {
	ns := eventstest.Start(t)
	natsURL := strings.Replace(ns.URL(), "nats://", "nats://alice:s3cret-pass@", 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, envFunc(map[string]string{
			"RECEIVER_ADDR": "127.0.0.1:0", "NATS_URL": natsURL, "CALLBACK_TOKEN": token, "LOG_FORMAT": "json",
		}), &stdout, &stderr)
	}()
	var base string
	eventstest.WaitFor(t, 30*time.Second, "receiver to listen", func() bool {
		base = listenURL(stderr.String())
		return base != ""
	})
	eventstest.WaitFor(t, 30*time.Second, "/readyz 200", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run = %v; want a clean stop", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}

	if stdout.String() != "" {
		t.Errorf("stdout = %q; want nothing (logs go to stderr)", stdout.String())
	}
	logs := stderr.String()
	lines := logtest.Parse(t, logs)
	logtest.Quiet(t, lines)
	l := logtest.Find(lines, "receiver listening")
	if got, want := l["nats"], ns.URL(); got != want {
		t.Errorf(`"receiver listening" nats = %v; want %q`, got, want)
	}
	if got := l["publish_timeout"]; got != "500ms" {
		t.Errorf(`"receiver listening" publish_timeout = %v; want "500ms"`, got)
	}
	if strings.Contains(logs, "s3cret-pass") || strings.Contains(logs, "alice") {
		t.Errorf("the NATS user info appears in the logs:\n%s", logs)
	}
	if logtest.Find(lines, "stopped") == nil {
		t.Errorf("no \"stopped\" line:\n%s", logs)
	}
}

// TestReceiverBeforeNATSSaysSo: a receiver started before NATS said
// `ensure stream failed; retrying … err="ensure stream CALLBACKS: nats:
// outbound buffer limit exceeded"`. It now says NATS is not up yet, in the
// worker's words, names the NATS it waits for, and stops cleanly.
func TestReceiverBeforeNATSSaysSo(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	natsURL := "nats://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, envFunc(map[string]string{
			"RECEIVER_ADDR": "127.0.0.1:0", "NATS_URL": natsURL, "CALLBACK_TOKEN": token,
		}), &stderr, &stderr)
	}()
	eventstest.WaitFor(t, 20*time.Second, "the not-up message", func() bool {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, stderr.String())
		default:
		}
		return strings.Contains(stderr.String(), events.NotUpMessage)
	})
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("run did not stop after cancel:\n%s", stderr.String())
	}
	logs := stderr.String()
	if strings.Contains(logs, "outbound buffer limit") {
		t.Errorf("the client's error leaked into the waiting message:\n%s", logs)
	}
	lines := logtest.Parse(t, logs)
	if got := logtest.Find(lines, "receiver listening")["nats"]; got != natsURL {
		t.Errorf(`"receiver listening" nats = %v; want %q`, got, natsURL)
	}
	for _, l := range lines {
		if l.Level() == "WARN" && l.Msg() != events.NotUpMessage || l.Level() == "ERROR" {
			t.Errorf("while NATS is down, only %q should warn; got %v", events.NotUpMessage, l)
		}
	}
}
