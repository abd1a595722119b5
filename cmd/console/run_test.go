package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/console"
	"github.com/refundhub/refundhub/internal/envconfig/logtest"
	"github.com/refundhub/refundhub/internal/events/eventstest"
)

// Test secrets: the tokens reach the console only as hashes.
const (
	operatorToken = "op-token-5c0ffee5c0ffee5c0ffee"
	viewerToken   = "view-token-0ddba110ddba110ddba1"
	sessionKey    = "console-session-key-do-not-print-0123456789"
)

// syncBuffer is an io.Writer safe for run's writes and the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func envFunc(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// consoleEnv is the environment of a console on natsURL and dbPath, with
// an operator and a viewer.
func consoleEnv(natsURL, dbPath string) map[string]string {
	return map[string]string{
		"CONSOLE_ADDR": "127.0.0.1:0", "NATS_URL": natsURL, "DB_PATH": dbPath, "LOG_FORMAT": "json",
		"CONSOLE_TOKENS":      "olga:operator:" + console.HashToken(operatorToken) + ",vic:viewer:" + console.HashToken(viewerToken),
		"CONSOLE_SESSION_KEY": sessionKey,
	}
}

var listenLine = regexp.MustCompile(`"url":"(http://[^"]+)"`)

// startConsole runs the console through run until the test ends, and
// returns its base URL once it is ready, and its log.
func startConsole(t *testing.T, env map[string]string) (string, *syncBuffer) {
	t.Helper()
	base, logs, stop := startConsoleStop(t, env)
	t.Cleanup(func() { stop(30 * time.Second) })
	return base, logs
}

// startConsoleStop is startConsole for a test that stops the console
// itself: stop cancels run's context and fails the test unless run
// returns cleanly within the time given.
func startConsoleStop(t *testing.T, env map[string]string) (string, *syncBuffer, func(within time.Duration)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, envFunc(env), &stdout, &stderr) }()
	var once sync.Once
	stop := func(within time.Duration) {
		t.Helper()
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run = %v; want a clean stop", err)
				}
			case <-time.After(within):
				t.Errorf("run did not return within %v of cancel", within)
			}
			if stdout.String() != "" {
				t.Errorf("stdout = %q; want nothing (logs go to stderr)", stdout.String())
			}
		})
	}
	t.Cleanup(func() { stop(30 * time.Second) })
	var base string
	eventstest.WaitFor(t, 30*time.Second, "console to listen", func() bool {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, stderr.String())
		default:
		}
		if m := listenLine.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
		}
		return base != ""
	})
	eventstest.WaitFor(t, 30*time.Second, "/readyz 200", func() bool {
		return get(t, base+"/readyz", viewerToken).status == http.StatusOK
	})
	return base, &stderr, stop
}

type answer struct {
	status int
	body   string
}

func get(t *testing.T, url, token string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b)}
}

// newStoreFile creates a case store as the worker would, and closes it.
func newStoreFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "refunds.db")
	st, err := casestore.Open(context.Background(), path, nil)
	if err != nil {
		t.Fatalf("casestore.Open: %v", err)
	}
	st.Close()
	return path
}

// TestRun: the console started through run on a real NATS and case store
// is ready, answers /healthz without credentials and the rest only with
// them, logs JSON only, never a secret, and stops cleanly.
func TestRun(t *testing.T) {
	ns := eventstest.Start(t)
	base, logs := startConsole(t, consoleEnv(ns.URL(), newStoreFile(t)))
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{"/healthz", "", 200},
		{"/readyz", "", 401},
		{"/readyz", viewerToken, 200},
		{"/metrics", operatorToken, 200},
		{"/api/v1/cases", "", 401},
		{"/api/v1/cases", viewerToken, 200},
		{"/", "", 303},
	} {
		if got := get(t, base+tc.path, tc.token); got.status != tc.want {
			t.Errorf("GET %s (token %v) = %d; want %d", tc.path, tc.token != "", got.status, tc.want)
		}
	}
	lines := logtest.Parse(t, logs.String())
	logtest.Quiet(t, lines)
	for _, secret := range []string{operatorToken, viewerToken, sessionKey} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log holds a secret (%.10s…)", secret)
		}
	}
}

// TestShutdownEndsStreams: SIGTERM (run's context) ends open event
// streams, so run returns well within CONSOLE_SHUTDOWN_TIMEOUT instead of
// waiting it out, and the client sees its stream end.
func TestShutdownEndsStreams(t *testing.T) {
	ns := eventstest.Start(t)
	env := consoleEnv(ns.URL(), newStoreFile(t))
	env["CONSOLE_SHUTDOWN_TIMEOUT"] = "1m"
	base, _, stop := startConsoleStop(t, env)
	req, err := http.NewRequest(http.MethodGet, base+"/api/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+viewerToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /api/v1/events: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/events = %d; want 200", resp.StatusCode)
	}
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, resp.Body)
		ended <- err
	}()
	stop(10 * time.Second)
	select {
	case err := <-ended:
		if err != nil {
			t.Errorf("event stream ended with %v; want a clean end", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("event stream still open after run returned")
	}
}

// TestConfigErrors: without accounts or a session key the console does
// not start, says what to set, and never quotes the key.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  map[string]string
		want string
	}{
		{"no tokens", map[string]string{"CONSOLE_TOKENS": ""}, "CONSOLE_TOKENS"},
		{"no key", map[string]string{"CONSOLE_SESSION_KEY": ""}, "CONSOLE_SESSION_KEY is not set"},
		{"short key", map[string]string{"CONSOLE_SESSION_KEY": "short-secret-key"}, "at least 32"},
		{"bad role", map[string]string{"CONSOLE_TOKENS": "a:root:" + console.HashToken("x")}, "viewer or operator"},
		{"both token sources", map[string]string{"CONSOLE_TOKENS_FILE": "/nonexistent"}, "both set"},
	} {
		env := consoleEnv("nats://127.0.0.1:1", "/nonexistent.db")
		for k, v := range tc.set {
			env[k] = v
		}
		var out syncBuffer
		err := run(context.Background(), nil, envFunc(env), &out, &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: run = %v; want an error mentioning %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "short-secret-key") {
			t.Errorf("%s: the error quotes the key: %v", tc.name, err)
		}
	}
}

// TestRunWaitsForTheWorkersSchema: started beside a worker that has created
// the case store but not yet set it up (schema version 0; a Procfile runner
// starts every process at once), the console waits, saying why, instead of
// exiting (which would stop every process under the runner), and serves
// once the worker has migrated the file.
func TestRunWaitsForTheWorkersSchema(t *testing.T) {
	ns := eventstest.Start(t)
	path := filepath.Join(t.TempDir(), "refunds.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil { // what the worker's first open leaves for an instant
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, envFunc(consoleEnv(ns.URL(), path)), &stdout, &stderr) }()
	eventstest.WaitFor(t, 30*time.Second, "the console to wait for the schema", func() bool {
		select {
		case err := <-done:
			t.Fatalf("run returned while the store was at schema version 0: %v\n%s", err, stderr.String())
		default:
		}
		return strings.Contains(stderr.String(), "waiting for a worker of this version")
	})
	st, err := casestore.Open(ctx, path, nil) // the worker migrates
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	var base string
	eventstest.WaitFor(t, 30*time.Second, "the console to listen and be ready", func() bool {
		if m := listenLine.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
		}
		return base != "" && get(t, base+"/readyz", viewerToken).status == http.StatusOK
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run = %v; want a clean stop", err)
	}
}
