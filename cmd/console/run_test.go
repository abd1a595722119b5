package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/refundhub/refundhub/internal/casestore/accountstest"
	"github.com/refundhub/refundhub/internal/testenv/syncbuf"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/envconfig/logtest"
	"github.com/refundhub/refundhub/internal/events/eventstest"
)

// Test accounts and secrets: olga (operator) and vic (viewer), each with
// a password and an API token, kept in the case store as hashes.
const (
	operatorName     = "olga"
	viewerName       = "vic"
	operatorPassword = "olga-password-3e9f1a77"
	viewerPassword   = "vic-password-b04c6d21"
	operatorToken    = "op-token-5c0ffee5c0ffee5c0ffee"
	viewerToken      = "view-token-0ddba110ddba110ddba1"
	sessionKey       = "console-session-key-do-not-print-0123456789"
)

// testSecrets are every credential the tests configure, and the hashes
// of the tokens: no answer or log line may hold one.
func testSecrets() []string {
	return []string{operatorToken, viewerToken, operatorPassword, viewerPassword, sessionKey,
		casestore.HashToken(operatorToken), casestore.HashToken(viewerToken)}
}

// seedAccounts adds olga and vic to the case store at path, as `refundctl
// console users add` and `tokens add` would.
func seedAccounts(t *testing.T, path string) {
	t.Helper()
	accountstest.AddAt(t, path,
		accountstest.Account{Name: operatorName, Password: operatorPassword, Token: operatorToken, Role: casestore.RoleOperator},
		accountstest.Account{Name: viewerName, Password: viewerPassword, Token: viewerToken, Role: casestore.RoleViewer})
}

// syncBuffer is a log and output sink the test reads while it is written.
type syncBuffer = syncbuf.Buffer

func envFunc(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// consoleEnv is the environment of a console on natsURL and dbPath.
func consoleEnv(natsURL, dbPath string) map[string]string {
	return map[string]string{
		"CONSOLE_ADDR": "127.0.0.1:0", "NATS_URL": natsURL, "DB_PATH": dbPath, "LOG_FORMAT": "json",
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
	return startConsoleTraced(t, env, nil)
}

// startConsoleTraced is startConsoleStop through runTraced: the console's
// spans go to spans (nil: where env's OTEL_* say).
func startConsoleTraced(t *testing.T, env map[string]string, spans sdktrace.SpanExporter) (string, *syncBuffer, func(within time.Duration)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- runTraced(ctx, nil, envFunc(env), &stdout, &stderr, spans) }()
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

// newStoreFile creates a case store as the worker would, with the test
// accounts (seedAccounts), and closes it.
func newStoreFile(t *testing.T) string {
	t.Helper()
	path := newEmptyStoreFile(t)
	seedAccounts(t, path)
	return path
}

// newEmptyStoreFile creates a case store as the worker would, without
// accounts, and closes it.
func newEmptyStoreFile(t *testing.T) string {
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
	for _, secret := range testSecrets() {
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

// TestConfigErrors: without a session key, or with one of the retired
// account lists (CONSOLE_TOKENS, CONSOLE_TOKENS_FILE) still set, the
// console does not start, says in one line what to do instead, and never
// quotes the key or the list.
func TestConfigErrors(t *testing.T) {
	const list = "a:operator:5e7b1084a4a427147ae5e91132e25c37dd5a67c116f947ce428ca490fa9bb3b4"
	for _, tc := range []struct {
		name string
		set  map[string]string
		want string
	}{
		{"no key", map[string]string{"CONSOLE_SESSION_KEY": ""}, "CONSOLE_SESSION_KEY is not set"},
		{"short key", map[string]string{"CONSOLE_SESSION_KEY": "short-secret-key"}, "at least 32"},
		{"token list", map[string]string{"CONSOLE_TOKENS": list}, "CONSOLE_TOKENS is no longer read"},
		{"token file", map[string]string{"CONSOLE_TOKENS_FILE": "/etc/console-tokens"}, "CONSOLE_TOKENS_FILE is no longer read"},
		// Platform credentials are optional (the reasons look-up), but
		// half of them is a mistake, said without the secret.
		{"half the platform credentials", map[string]string{"UPSTREAM_ACCESS_SECRET": "upstream-s3cret"},
			"UPSTREAM_ACCESS_KEY and UPSTREAM_USER_ID are not set"},
	} {
		env := consoleEnv("nats://127.0.0.1:1", "/nonexistent.db")
		for k, v := range tc.set {
			env[k] = v
		}
		var out syncBuffer
		err := run(context.Background(), nil, envFunc(env), &out, &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: run = %v; want an error mentioning %q", tc.name, err, tc.want)
			continue
		}
		if strings.Contains(tc.name, "token") && !strings.Contains(err.Error(), "refundctl console users add") {
			t.Errorf("%s: run = %v; want it to name refundctl console users add", tc.name, err)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: the error spans lines: %q", tc.name, err)
		}
		for _, secret := range []string{"short-secret-key", list, "5e7b1084a4a4", "upstream-s3cret"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: the error quotes a secret: %v", tc.name, err)
			}
		}
	}
}

// TestConfigUpstream: the console's platform connection (the request
// form's reasons look-up) is off without credentials and read as the
// worker reads it with them.
func TestConfigUpstream(t *testing.T) {
	env := consoleEnv("nats://127.0.0.1:1", "/nonexistent.db")
	cfg, err := loadConfig(envFunc(env))
	if err != nil || cfg.Upstream != nil {
		t.Fatalf("without credentials: %+v, %v; want no platform connection", cfg.Upstream, err)
	}
	env["UPSTREAM_ACCESS_KEY"], env["UPSTREAM_ACCESS_SECRET"], env["UPSTREAM_USER_ID"] = "k", "s", "42"
	env["UPSTREAM_BASE_URL"] = "http://127.0.0.1:9"
	cfg, err = loadConfig(envFunc(env))
	if err != nil || cfg.Upstream == nil || cfg.Upstream.BaseURL != "http://127.0.0.1:9" || cfg.Upstream.AccessKey != "k" || cfg.Upstream.Profile == nil {
		t.Fatalf("with credentials: %+v, %v; want the platform connection read as the worker reads it", cfg.Upstream, err)
	}
}

// TestRunWithoutAccounts: on a case store with no account yet the console
// starts, logs how to create one, and refuses a token; an account and
// token added while it runs work at once.
func TestRunWithoutAccounts(t *testing.T) {
	ns := eventstest.Start(t)
	path := newEmptyStoreFile(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, envFunc(consoleEnv(ns.URL(), path)), &stdout, &stderr) }()
	var base string
	eventstest.WaitFor(t, 30*time.Second, "the console to listen", func() bool {
		select {
		case err := <-done:
			t.Fatalf("run returned without accounts: %v\n%s", err, stderr.String())
		default:
		}
		if m := listenLine.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
		}
		return base != ""
	})
	if !strings.Contains(stderr.String(), "refundctl console users add") {
		t.Errorf("log without accounts = %s; want a line naming refundctl console users add", stderr.String())
	}
	login := func() int {
		t.Helper()
		form := url.Values{"name": {operatorName}, "password": {operatorPassword}}
		return post(t, base+"/login", "", form).status
	}
	// A login now would be compared at the default bcrypt cost, seconds
	// under the race detector; internal/console's tests cover unknown
	// names. The token is looked up by its hash: cheap.
	if got := get(t, base+"/api/v1/cases", operatorToken).status; got != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/cases before the token exists = %d; want 401", got)
	}
	seedAccounts(t, path)
	if got := login(); got != http.StatusSeeOther {
		t.Errorf("login once the account exists = %d; want 303", got)
	}
	if got := get(t, base+"/api/v1/cases", operatorToken).status; got != http.StatusOK {
		t.Errorf("GET /api/v1/cases once the token exists = %d; want 200", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run = %v; want a clean stop", err)
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
	seedAccounts(t, path)
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
