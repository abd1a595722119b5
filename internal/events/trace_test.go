package events

import (
	"context"
	"net/http"
	"testing"

	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TestTraceHeaders: a span's context travels in traceparent and comes back
// out as the remote parent; without a span nothing is written, and a
// malformed traceparent yields no parent rather than an error.
func TestTraceHeaders(t *testing.T) {
	h := nats.Header{}
	InjectTrace(context.Background(), h)
	if len(h) != 0 {
		t.Fatalf("InjectTrace without a span wrote %v; want nothing", h)
	}
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "publish")
	defer span.End()
	InjectTrace(ctx, h)
	sc := span.SpanContext()
	if got, want := h.Get(HeaderTraceParent), "00-"+sc.TraceID().String()+"-"+sc.SpanID().String()+"-01"; got != want {
		t.Errorf("traceparent = %q; want %q", got, want)
	}
	remote := trace.SpanContextFromContext(ExtractTrace(context.Background(), h))
	if !remote.IsRemote() || remote.TraceID() != sc.TraceID() || remote.SpanID() != sc.SpanID() {
		t.Errorf("ExtractTrace = %v; want the remote span %s/%s", remote, sc.TraceID(), sc.SpanID())
	}
	bad := nats.Header{HeaderTraceParent: []string{"00-nothex-01"}}
	if sc := trace.SpanContextFromContext(ExtractTrace(context.Background(), bad)); sc.IsValid() {
		t.Errorf("ExtractTrace(malformed) = %v; want no span context", sc)
	}
}

// TestTraceHTTPHeaders: the same round trip over an HTTP request's
// headers, whose names net/http canonicalises (Traceparent): the span
// comes back out as the remote parent, nothing is written without one, and
// a malformed header yields no parent.
func TestTraceHTTPHeaders(t *testing.T) {
	h := http.Header{}
	InjectTraceHTTP(context.Background(), h)
	if len(h) != 0 {
		t.Fatalf("InjectTraceHTTP without a span wrote %v; want nothing", h)
	}
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "refundctl request")
	defer span.End()
	InjectTraceHTTP(ctx, h)
	sc := span.SpanContext()
	if got, want := h.Get(HeaderTraceParent), "00-"+sc.TraceID().String()+"-"+sc.SpanID().String()+"-01"; got != want {
		t.Errorf("traceparent = %q; want %q", got, want)
	}
	remote := trace.SpanContextFromContext(ExtractTraceHTTP(context.Background(), h))
	if !remote.IsRemote() || remote.TraceID() != sc.TraceID() || remote.SpanID() != sc.SpanID() {
		t.Errorf("ExtractTraceHTTP = %v; want the remote span %s/%s", remote, sc.TraceID(), sc.SpanID())
	}
	bad := http.Header{}
	bad.Set(HeaderTraceParent, "00-nothex-01")
	if sc := trace.SpanContextFromContext(ExtractTraceHTTP(context.Background(), bad)); sc.IsValid() {
		t.Errorf("ExtractTraceHTTP(malformed) = %v; want no span context", sc)
	}
}
