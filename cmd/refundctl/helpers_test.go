package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/callback/intake"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
)

// testToken is the receiver token of the tests; no output may contain it.
const testToken = "tok-SECRET-abcdefghijklmnop"

// env is a fixture: an embedded JetStream with the product's streams, a temp
// store path and, when started, the real receiver over loopback HTTP.
type env struct {
	t      *testing.T
	ns     *eventstest.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	dbPath string
	vars   map[string]string

	recv *recorder // requests the receiver got, when started
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ns := eventstest.Start(t)
	nc := ns.Conn()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	ctx := context.Background()
	if _, err := events.EnsureStream(ctx, js, events.DefaultStreamConfig()); err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	if err := events.EnsureWorkStreams(ctx, js, events.DefaultWorkStreamsConfig()); err != nil {
		t.Fatalf("EnsureWorkStreams: %v", err)
	}
	e := &env{t: t, ns: ns, nc: nc, js: js, dbPath: filepath.Join(t.TempDir(), "refunds.db")}
	e.vars = map[string]string{
		"NATS_URL":       ns.URL(),
		"DB_PATH":        e.dbPath,
		"RECEIVER_URL":   "http://127.0.0.1:1", // nothing listens: set by startReceiver
		"CALLBACK_TOKEN": testToken,
		"USER":           "tester",
	}
	return e
}

// recorder records the requests passed to the real receiver handler.
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
	next http.Handler
}

type recorded struct {
	Method, Path, ContentType string
	Body                      []byte
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.reqs = append(r.reqs, recorded{req.Method, req.URL.Path, req.Header.Get("Content-Type"), body})
	r.mu.Unlock()
	req.Body = io.NopCloser(bytes.NewReader(body))
	r.next.ServeHTTP(w, req)
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

// startReceiver runs the real receiver handler (internal/callback/intake)
// publishing to the embedded JetStream.
func (e *env) startReceiver(signingSecrets ...string) {
	e.t.Helper()
	pub, err := events.NewPublisher(e.ns.Conn(), 5*time.Second)
	if err != nil {
		e.t.Fatalf("NewPublisher: %v", err)
	}
	srv, err := intake.New(intake.Config{Token: testToken, SigningSecrets: signingSecrets}, pub,
		func(context.Context) error { return nil }, slog.New(slog.DiscardHandler))
	if err != nil {
		e.t.Fatalf("intake.New: %v", err)
	}
	e.recv = &recorder{next: srv.Handler()}
	hs := httptest.NewServer(e.recv)
	e.t.Cleanup(hs.Close)
	e.vars["RECEIVER_URL"] = hs.URL
}

// result is one run of the CLI.
type result struct {
	stdout, stderr string
	err            error
}

func (r result) code() int { return exitCode(r.err) }

// line is what main would print on stderr.
func (r result) line() string {
	if r.err == nil {
		return ""
	}
	return "refundctl: " + errorLine(r.err)
}

// run runs refundctl in-process with the fixture's environment.
func (e *env) run(args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	err := run(ctx, args, func(k string) string { return e.vars[k] }, &out, &errb)
	r := result{stdout: out.String(), stderr: errb.String(), err: err}
	for _, s := range []string{r.stdout, r.stderr, r.line()} {
		if strings.Contains(s, testToken) {
			e.t.Fatalf("refundctl %v: output contains the callback token", args)
		}
	}
	return r
}

// mustRun runs and fails the test on an error.
func (e *env) mustRun(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.err != nil {
		e.t.Fatalf("refundctl %s: %v (stderr %q)", strings.Join(args, " "), r.err, r.stderr)
	}
	return r
}

// wantErr runs and checks the exit code and that the message contains want.
func (e *env) wantErr(code int, want string, args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.err == nil {
		e.t.Fatalf("refundctl %s: no error; want exit %d with %q (stdout %q)", strings.Join(args, " "), code, want, r.stdout)
	}
	if r.code() != code {
		e.t.Errorf("refundctl %s: exit %d; want %d (%s)", strings.Join(args, " "), r.code(), code, r.line())
	}
	if !strings.Contains(r.line(), want) {
		e.t.Errorf("refundctl %s: error %q; want it to contain %q", strings.Join(args, " "), r.line(), want)
	}
	if strings.Contains(r.line(), "\n") {
		e.t.Errorf("refundctl %s: error spans lines: %q", strings.Join(args, " "), r.line())
	}
	if strings.Contains(r.stderr, "Usage:") || strings.Contains(r.stdout, "Usage:") {
		e.t.Errorf("refundctl %s: printed usage on an error", strings.Join(args, " "))
	}
	return r
}

// streamCount is the number of messages in a stream.
func (e *env) streamCount(name string) uint64 {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), name)
	if err != nil {
		e.t.Fatalf("stream %s: %v", name, err)
	}
	return s.CachedInfo().State.Msgs
}

// lastMsg returns the last message stored on a subject.
func (e *env) lastMsg(stream, subject string) *jetstream.RawStreamMsg {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), stream)
	if err != nil {
		e.t.Fatalf("stream %s: %v", stream, err)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), subject)
	if err != nil {
		e.t.Fatalf("last message on %s: %v", subject, err)
	}
	return m
}

// capture subscribes (core NATS) to subject and returns the messages seen;
// it sees every publish, including ones the stream drops as duplicates.
func (e *env) capture(subjects ...string) *captured {
	e.t.Helper()
	c := &captured{}
	for _, subject := range subjects {
		sub, err := e.nc.Subscribe(subject, func(m *nats.Msg) {
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			c.mu.Unlock()
		})
		if err != nil {
			e.t.Fatalf("subscribe %s: %v", subject, err)
		}
		e.t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	if err := e.nc.Flush(); err != nil {
		e.t.Fatalf("flush: %v", err)
	}
	return c
}

type captured struct {
	mu   sync.Mutex
	msgs []*nats.Msg
}

func (c *captured) all() []*nats.Msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*nats.Msg(nil), c.msgs...)
}

// waitN waits until at least n messages were captured.
func (c *captured) waitN(t *testing.T, n int) []*nats.Msg {
	t.Helper()
	eventstest.WaitFor(t, 20*time.Second, "captured messages", func() bool { return len(c.all()) >= n })
	return c.all()
}

// openStore creates the store the worker would write.
func (e *env) openStore() *casestore.Store {
	e.t.Helper()
	st, err := casestore.Open(context.Background(), e.dbPath, nil)
	if err != nil {
		e.t.Fatalf("casestore.Open: %v", err)
	}
	e.t.Cleanup(func() { _ = st.Close() })
	return st
}

// decodeJSON decodes s into v, failing the test on error.
func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode JSON output: %v\n%s", err, s)
	}
}
