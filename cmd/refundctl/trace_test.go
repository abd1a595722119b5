package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/console"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/tracing/tracingtest"
)

// traceRequestArgs is a Taobao request published without waiting for the
// worker (no worker runs in these tests: the stored message is what they
// read).
func traceRequestArgs(id string) []string {
	return []string{"request", "--platform", "taobao", "--order", "3305075341149134260", "--sub-order", "3305075341149134261",
		"--type", "refund", "--goods-status", "1", "--reason-id", "1004", "--amount", "max", "--description", "not shipped in time",
		"--id", id, "--no-wait"}
}

// runTracedIn runs refundctl in-process with vars, its spans going to exp
// (nil: where OTEL_* in vars say).
func (e *env) runTracedIn(vars map[string]string, exp sdktrace.SpanExporter, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	err := runTraced(ctx, args, func(k string) string { return vars[k] }, &out, &errb, exp)
	return result{stdout: out.String(), stderr: errb.String(), err: err}
}

// traceParent splits a W3C traceparent into its trace and span ids.
func traceParent(t *testing.T, h string) (traceID, spanID string) {
	t.Helper()
	parts := strings.Split(h, "-")
	if len(parts) != 4 || parts[0] != "00" || len(parts[1]) != 32 || len(parts[2]) != 16 {
		t.Fatalf("traceparent %q: want 00-<32 hex>-<16 hex>-<flags>", h)
	}
	return parts[1], parts[2]
}

// noSecretIn fails the test if a span's attributes or resource hold one
// of secrets.
func noSecretIn(t *testing.T, spans tracetest.SpanStubs, secrets ...string) {
	t.Helper()
	for _, sp := range spans {
		attrs := append(sp.Attributes, sp.Resource.Attributes()...)
		for _, a := range attrs {
			for _, s := range secrets {
				if strings.Contains(a.Value.Emit(), s) || strings.Contains(sp.Name, s) {
					t.Errorf("span %q attribute %s holds a secret", sp.Name, a.Key)
				}
			}
		}
	}
}

// TestCommandStartsATrace: with tracing on, refundctl request (local mode,
// publishing to JetStream) is one root span named "refundctl request",
// and the command's stored NATS message carries a traceparent naming that
// very span (its trace id and span id), so the worker's spans for it
// continue refundctl's trace. The span holds no secret. With tracing off,
// the same command is stored without a traceparent and nothing is
// exported.
func TestCommandStartsATrace(t *testing.T) {
	e := newEnv(t)
	exp := tracetest.NewInMemoryExporter()

	r := e.runTracedIn(e.vars, tracingtest.Kept{InMemoryExporter: exp}, traceRequestArgs("trace-ctl-0001")...)
	if r.err != nil {
		t.Fatalf("refundctl request: %v (stderr %q)", r.err, r.stderr)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Name != "refundctl request" {
		t.Fatalf("spans = %v; want one, refundctl request", spanNames(spans))
	}
	sp := spans[0]
	if sp.Parent.IsValid() {
		t.Errorf("refundctl request has parent %s; want it to start the trace", sp.Parent.SpanID())
	}
	if !sp.EndTime.After(sp.StartTime) {
		t.Errorf("span not ended (start %v, end %v)", sp.StartTime, sp.EndTime)
	}
	m := e.lastMsg(events.DefaultCommandStreamName, "commands.taobao.request_refund.>")
	if got := m.Header.Get(events.HeaderMsgID); got != "trace-ctl-0001" {
		t.Fatalf("last request command is %q; want trace-ctl-0001", got)
	}
	traceID, spanID := traceParent(t, m.Header.Get(events.HeaderTraceParent))
	if traceID != sp.SpanContext.TraceID().String() || spanID != sp.SpanContext.SpanID().String() {
		t.Errorf("message traceparent %s/%s; want refundctl's span %s/%s", traceID, spanID,
			sp.SpanContext.TraceID(), sp.SpanContext.SpanID())
	}
	noSecretIn(t, spans, testToken, e.dbPath)

	// Off (the default): no traceparent, no span.
	exp.Reset()
	off := e.run(traceRequestArgs("trace-ctl-0002")...)
	if off.err != nil {
		t.Fatalf("refundctl request untraced: %v", off.err)
	}
	m = e.lastMsg(events.DefaultCommandStreamName, "commands.taobao.request_refund.>")
	if got := m.Header.Get(events.HeaderMsgID); got != "trace-ctl-0002" {
		t.Fatalf("last request command is %q; want trace-ctl-0002", got)
	}
	if h := m.Header.Get(events.HeaderTraceParent); h != "" {
		t.Errorf("untraced command has traceparent %q; want none", h)
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("untraced run exported %d spans; want none", n)
	}
}

func spanNames(spans tracetest.SpanStubs) []string {
	out := make([]string, len(spans))
	for i, sp := range spans {
		out[i] = sp.Name
	}
	return out
}

// collector is an OTLP/HTTP endpoint that records the export requests it
// gets, for the tests that go through OTEL_* and the real exporter.
type collector struct {
	mu     sync.Mutex
	bodies [][]byte
	paths  []string
	keys   []string // the api-key header of each request
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.bodies, c.paths, c.keys = append(c.bodies, b), append(c.paths, r.URL.Path), append(c.keys, r.Header.Get("Api-Key"))
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

// TestCommandTraceExportedBeforeExit: configured by OTEL_* alone, as an
// operator would, refundctl exports its span to the collector before run
// returns (the provider is shut down, not left to a background batcher
// that dies with the process): by then the collector has had an OTLP
// request on /v1/traces, with the configured header, holding the trace id
// the command's traceparent names and the span's name.
func TestCommandTraceExportedBeforeExit(t *testing.T) {
	e := newEnv(t)
	col := &collector{}
	srv := httptest.NewServer(col)
	t.Cleanup(srv.Close)
	vars := maps.Clone(e.vars)
	vars["OTEL_TRACES_EXPORTER"] = "otlp"
	vars["OTEL_EXPORTER_OTLP_ENDPOINT"] = srv.URL
	vars["OTEL_EXPORTER_OTLP_HEADERS"] = "api-key=collector-key-SECRET"

	r := e.runTracedIn(vars, nil, traceRequestArgs("trace-ctl-0003")...)
	if r.err != nil || r.stderr != "" {
		t.Fatalf("refundctl request: %v (stderr %q)", r.err, r.stderr)
	}
	m := e.lastMsg(events.DefaultCommandStreamName, "commands.taobao.request_refund.>")
	traceID, _ := traceParent(t, m.Header.Get(events.HeaderTraceParent))
	raw, err := hex.DecodeString(traceID)
	if err != nil {
		t.Fatal(err)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	var found bool
	for i, b := range col.bodies {
		if col.paths[i] != "/v1/traces" || col.keys[i] != "collector-key-SECRET" {
			t.Errorf("export %d: path %s, api-key %q; want /v1/traces with the configured key", i, col.paths[i], col.keys[i])
		}
		found = found || bytes.Contains(b, raw) && bytes.Contains(b, []byte("refundctl request"))
	}
	if !found {
		t.Errorf("collector got %d exports; none holds trace %s and the span refundctl request", len(col.bodies), traceID)
	}
}

// TestRemoteCommandContinuesTrace: in remote mode (REFUNDHUB_URL), the
// refundctl run's span goes with its request to the console's API, whose
// span for the command it issues is that span's child in the same trace;
// the command's NATS message names the console's span, so the worker
// continues one trace from refundctl through the console. No span holds
// the console token.
func TestRemoteCommandContinuesTrace(t *testing.T) {
	e := newEnv(t)
	e.openStore() // the worker's store, which the console reads
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	url := startTracedConsole(e, tp)

	saved := maps.Clone(e.vars)
	vars := maps.Clone(saved)
	vars["REFUNDHUB_URL"], vars["REFUNDHUB_TOKEN"] = url, consoleOperatorToken
	vars["DB_PATH"], vars["NATS_URL"] = t.TempDir()+"/none.db", "nats://127.0.0.1:1"
	r := e.runTracedIn(vars, tracingtest.Kept{InMemoryExporter: exp}, traceRequestArgs("trace-ctl-0004")...)
	if r.err != nil {
		t.Fatalf("refundctl request (remote): %v (stderr %q)", r.err, r.stderr)
	}

	spans := exp.GetSpans()
	var ctl, issue *tracetest.SpanStub
	for i := range spans {
		switch spans[i].Name {
		case "refundctl request":
			ctl = &spans[i]
		case "issue command":
			issue = &spans[i]
		}
	}
	if ctl == nil || issue == nil {
		t.Fatalf("spans = %v; want refundctl request and the console's issue command", spanNames(spans))
	}
	if ctl.Parent.IsValid() {
		t.Errorf("refundctl request has parent %s; want it to start the trace", ctl.Parent.SpanID())
	}
	if issue.SpanContext.TraceID() != ctl.SpanContext.TraceID() || issue.Parent.SpanID() != ctl.SpanContext.SpanID() {
		t.Errorf("issue command in trace %s under %s; want trace %s under refundctl's span %s", issue.SpanContext.TraceID(),
			issue.Parent.SpanID(), ctl.SpanContext.TraceID(), ctl.SpanContext.SpanID())
	}
	m := e.lastMsg(events.DefaultCommandStreamName, "commands.taobao.request_refund.>")
	traceID, spanID := traceParent(t, m.Header.Get(events.HeaderTraceParent))
	if traceID != ctl.SpanContext.TraceID().String() || spanID != issue.SpanContext.SpanID().String() {
		t.Errorf("message traceparent %s/%s; want refundctl's trace %s, the console's span %s", traceID, spanID,
			ctl.SpanContext.TraceID(), issue.SpanContext.SpanID())
	}
	noSecretIn(t, spans, consoleOperatorToken, casestore.HashToken(consoleOperatorToken), testToken)
}

// startTracedConsole is startConsole with the console's spans going to tp.
func startTracedConsole(e *env, tp *sdktrace.TracerProvider) string {
	t := e.t
	t.Helper()
	st, err := casestore.OpenReadOnly(context.Background(), e.dbPath, nil)
	if err != nil {
		t.Fatalf("OpenReadOnly: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	seedConsoleAccounts(t, e.dbPath)
	srv, err := console.New(console.Config{SessionKey: []byte(strings.Repeat("k", 32)), VerdictWait: time.Second},
		console.Deps{Store: st, JetStream: e.js, Ready: func(context.Context) error { return nil },
			Logger: slog.New(slog.DiscardHandler), Tracer: tp.Tracer("console")})
	if err != nil {
		t.Fatalf("console.New: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return hs.URL
}

// TestTracingMisconfiguredWarnsAndRuns: a tracing setting refundctl cannot
// use (an exporter other SDKs know, such as console; a malformed header
// list) turns its tracing off with one warning on stderr that names the
// variable (never a header's value), and the command runs as without it.
// An operator's shell may carry OTEL_* set for other tools: tracing is a
// courtesy, and must not stand between them and a refund.
func TestTracingMisconfiguredWarnsAndRuns(t *testing.T) {
	e := newEnv(t)
	e.openStore() // an empty store to list
	plain := e.mustRun("list")
	for _, tc := range []struct {
		name  string
		vars  map[string]string
		names string // the variable the warning names
	}{
		{"exporter", map[string]string{"OTEL_TRACES_EXPORTER": "console"}, "OTEL_TRACES_EXPORTER"},
		{"exporters", map[string]string{"OTEL_TRACES_EXPORTER": "otlp,console"}, "OTEL_TRACES_EXPORTER"},
		{"headers", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_HEADERS": "api-key-s3cret"}, "OTEL_EXPORTER_OTLP_HEADERS"},
		{"endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{"two at once", map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_EXPORTER_OTLP_HEADERS": "api-key-s3cret"}, "OTEL_EXPORTER_OTLP_HEADERS"},
	} {
		vars := tc.vars
		t.Run(tc.name, func(t *testing.T) {
			old := maps.Clone(e.vars)
			defer func() { e.vars = old }()
			maps.Copy(e.vars, vars)
			r := e.run("list")
			if r.err != nil {
				t.Fatalf("refundctl list with %v: %v; want it to run", vars, r.err)
			}
			if r.stdout != plain.stdout {
				t.Errorf("stdout %q; want what list prints without it, %q", r.stdout, plain.stdout)
			}
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "refundctl: warning: tracing off: ") || !strings.Contains(lines[0], tc.names) {
				t.Errorf("stderr %q; want one warning line that tracing is off, naming %s", r.stderr, tc.names)
			}
			if strings.Contains(r.stderr, "s3cret") {
				t.Errorf("stderr %q quotes the header's value", r.stderr)
			}
		})
	}
}

// TestDeadLetterRetryIsTheRunsTrace: refundctl dead-letters retry, traced,
// republishes the letter in its own run's trace (the message's
// traceparent is the run's span), keeping the trace the letter died in as
// Rh-Traceparent for the worker to link to.
func TestDeadLetterRetryIsTheRunsTrace(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	const first = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := context.Background()
	if err := st.Update(ctx, func(tx *casestore.Tx) error {
		_, _, err := tx.InsertDeadLetter(ctx, casestore.DeadLetter{MsgID: "cmd-trace-dead-1", Subject: "commands.taobao.cancel",
			Headers: map[string][]string{"Cmd-Kind": {"cancel"}, events.HeaderTraceParent: {first}},
			Payload: []byte(`{"id":"cmd-trace-dead-1","kind":"cancel","platform":"taobao","caseId":7}`),
			Reason:  string(events.DeadMaxDeliveries), Error: "platform unreachable", Deliveries: 5})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	exp := tracetest.NewInMemoryExporter()
	if r := e.runTracedIn(e.vars, tracingtest.Kept{InMemoryExporter: exp}, "dead-letters", "retry", "1"); r.err != nil {
		t.Fatalf("refundctl dead-letters retry: %v (stderr %q)", r.err, r.stderr)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Name != "refundctl dead-letters retry" {
		t.Fatalf("spans = %v; want one, refundctl dead-letters retry", spanNames(spans))
	}
	m := e.lastMsg(events.DefaultCommandStreamName, "commands.taobao.cancel")
	traceID, spanID := traceParent(t, m.Header.Get(events.HeaderTraceParent))
	if traceID != spans[0].SpanContext.TraceID().String() || spanID != spans[0].SpanContext.SpanID().String() {
		t.Errorf("retried message traceparent %s/%s; want the run's span %s/%s", traceID, spanID,
			spans[0].SpanContext.TraceID(), spans[0].SpanContext.SpanID())
	}
	if got := m.Header.Get(events.HeaderRetryTraceParent); got != first {
		t.Errorf("%s = %q; want the trace the letter died in, %q", events.HeaderRetryTraceParent, got, first)
	}
}
