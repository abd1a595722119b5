package main

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/envconfig/logtest"
	"github.com/refundhub/refundhub/internal/events/eventstest"
)

// TestLogsOneFormat: a worker started and stopped cleanly writes only JSON
// log lines on stderr (its metrics address included: it used to print
// "worker: metrics on http://…" as a plain line on stdout), nothing on
// stdout, durations as text, and nothing at warn or above.
func TestLogsOneFormat(t *testing.T) {
	ns := eventstest.Start(t)
	env := map[string]string{
		"NATS_URL": ns.URL(), "DB_PATH": filepath.Join(t.TempDir(), "refunds.db"),
		"UPSTREAM_ACCESS_KEY": "k", "UPSTREAM_ACCESS_SECRET": "s", "UPSTREAM_USER_ID": "u",
		"WORKER_METRICS_ADDR": "127.0.0.1:0", "LOG_FORMAT": "json",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, &stdout, &stderr) }()
	waitFor(t, 30*time.Second, "worker ready", func() bool {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, stderr.String())
		default:
		}
		m := metricsLine.FindStringSubmatch(stderr.String())
		if m == nil {
			return false
		}
		resp, err := http.Get("http://" + m[1] + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Logf("readyz %d\n%s", resp.StatusCode, stderr.String())
		}
		return resp.StatusCode == http.StatusOK
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run = %v; want a clean stop", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("run did not stop after cancel:\n%s", stderr.String())
	}
	if stdout.String() != "" {
		t.Errorf("stdout = %q; want nothing (logs go to stderr)", stdout.String())
	}
	lines := logtest.Parse(t, stderr.String())
	logtest.Quiet(t, lines)
	for _, msg := range []string{"metrics listening", "worker started", "worker stopped"} {
		if logtest.Find(lines, msg) == nil {
			t.Errorf("no %q line:\n%s", msg, stderr.String())
		}
	}
	if got := logtest.Find(lines, "stopping: no new messages; waiting for in-flight steps")["timeout"]; got != "30s" {
		t.Errorf(`"stopping" timeout = %v; want "30s" (a duration as text)`, got)
	}
}
