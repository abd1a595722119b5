package intake_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/refundhub/refundhub/internal/callback/intake"
	"github.com/refundhub/refundhub/internal/events"
)

// TestTracedCallbackCarriesTraceparent: with a tracer, a callback gets a
// server span and a publish span beneath it, and the stored message's
// traceparent names the publish span, so the worker continues this trace.
// The token never appears in a span.
func TestTracedCallbackCarriesTraceparent(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	pub := &recordingPublisher{}
	h := newInProcess(t, intake.Config{Tracer: tp.Tracer("test")}, pub, nil, nil)
	req := httptest.NewRequest(http.MethodPost, "/callbacks/"+testToken, bytes.NewReader(goodOrder))
	req.Header.Set("Content-Type", "application/json")
	if w := serveWithin(t, h, req); w.Code != http.StatusOK {
		t.Fatalf("POST good order: %d %s; want 200", w.Code, w.Body)
	}
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans ended; want 2 (receive, publish)", len(spans))
	}
	publish, receive := spans[0], spans[1]
	if receive.Name() != "receive callback" || publish.Name() != "publish callback" {
		t.Fatalf("spans %q, %q; want publish callback, receive callback", publish.Name(), receive.Name())
	}
	if publish.Parent().SpanID() != receive.SpanContext().SpanID() {
		t.Errorf("publish span's parent = %s; want the receive span %s", publish.Parent().SpanID(), receive.SpanContext().SpanID())
	}
	if len(pub.headers) != 1 {
		t.Fatalf("%d messages published; want 1", len(pub.headers))
	}
	tpHeader := pub.headers[0].Get(events.HeaderTraceParent)
	want := "00-" + publish.SpanContext().TraceID().String() + "-" + publish.SpanContext().SpanID().String() + "-01"
	if tpHeader != want {
		t.Errorf("traceparent = %q; want %q (the publish span)", tpHeader, want)
	}
	for _, s := range spans {
		for _, a := range s.Attributes() {
			if bytes.Contains([]byte(a.Value.Emit()), []byte(testToken)) {
				t.Errorf("span %s attribute %s carries the callback token", s.Name(), a.Key)
			}
		}
	}
}

// BenchmarkHandleCallbackTraced is BenchmarkHandleCallback with tracing on
// (an SDK provider that records every span and exports none): what the two
// spans and the traceparent header cost per callback.
func BenchmarkHandleCallbackTraced(b *testing.B) {
	tp := sdktrace.NewTracerProvider()
	srv, err := intake.New(intake.Config{Token: testToken, Tracer: tp.Tracer("bench")}, &stubPublisher{},
		func(context.Context) error { return nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	body := bytes.NewReader(goodOrder)
	req := httptest.NewRequest(http.MethodPost, "/callbacks/"+testToken, body)
	req.Header.Set("Content-Type", "application/json")
	b.ReportAllocs()
	for b.Loop() {
		body.Reset(goodOrder)
		req.Body = io.NopCloser(body)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
