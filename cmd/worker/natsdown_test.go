package main

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWorkerBeforeNATSSaysSo: a worker started before NATS said
// "ensure stream CALLBACKS: nats: outbound buffer limit exceeded" every 2 s.
// It now says NATS is not up yet, waits with backoff, and stops cleanly when
// told to.
func TestWorkerBeforeNATSSaysSo(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	natsAddr := ln.Addr().String()
	ln.Close() // nothing listens there now
	metrics, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := metrics.Addr().String()
	metrics.Close()
	env := map[string]string{
		"NATS_URL": "nats://" + natsAddr, "DB_PATH": filepath.Join(t.TempDir(), "refunds.db"),
		"UPSTREAM_ACCESS_KEY": "k", "UPSTREAM_ACCESS_SECRET": "s", "UPSTREAM_USER_ID": "u",
		"WORKER_METRICS_ADDR": metricsAddr, "LOG_FORMAT": "text",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, &stderr, &stderr) }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), "NATS is not up yet") {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 'NATS is not up yet' line:\n%s", stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "outbound buffer limit") {
		t.Errorf("the client's error leaked into the waiting message:\n%s", stderr.String())
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("run did not stop after cancel:\n%s", stderr.String())
	}
}
