package events

import (
	"context"
	"net/http"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Trace context headers (W3C Trace Context), on every message a traced
// process publishes: callbacks from the receiver, commands from refundctl
// and the console. The worker continues the trace they name. refundctl
// sends the same headers with its requests to the console's API
// (InjectTraceHTTP), and the console continues them (ExtractTraceHTTP). The names are
// the W3C ones, lower case as the specification writes them, so any
// OpenTelemetry tool reading the stream understands them.
const (
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)

// traceContext is the one propagator: W3C traceparent and tracestate.
var traceContext propagation.TraceContext

// InjectTrace writes the span context of ctx into h (traceparent, and
// tracestate when there is one). Without a valid span in ctx it writes
// nothing, so an untraced publisher's messages stay as they were.
func InjectTrace(ctx context.Context, h nats.Header) {
	traceContext.Inject(ctx, headerCarrier(h))
}

// ExtractTrace returns ctx with the remote span context h names (its
// traceparent), for the consumer's span to continue the publisher's trace;
// ctx unchanged when h names none or a malformed one.
func ExtractTrace(ctx context.Context, h nats.Header) context.Context {
	if h.Get(HeaderTraceParent) == "" {
		return ctx
	}
	return traceContext.Extract(ctx, headerCarrier(h))
}

// RetriedTrace returns the span context a message sent again (a retried
// dead letter, a replay) was in before (HeaderRetryTraceParent), for the
// consumer's span to link to; false when h names none or a malformed one.
func RetriedTrace(h nats.Header) (trace.SpanContext, bool) {
	tp := h.Get(HeaderRetryTraceParent)
	if tp == "" {
		return trace.SpanContext{}, false
	}
	c := propagation.MapCarrier{HeaderTraceParent: tp}
	if ts := h.Get(HeaderRetryTraceState); ts != "" {
		c[HeaderTraceState] = ts
	}
	sc := trace.SpanContextFromContext(traceContext.Extract(context.Background(), c))
	return sc, sc.IsValid()
}

// InjectTraceHTTP writes the span context of ctx into the headers of an
// HTTP request, under the same W3C names: refundctl's span goes with its
// request to the console's API, whose command continues it (docs/tracing.md).
// Without a valid span in ctx it writes nothing.
func InjectTraceHTTP(ctx context.Context, h http.Header) {
	traceContext.Inject(ctx, propagation.HeaderCarrier(h))
}

// ExtractTraceHTTP is ExtractTrace for an incoming HTTP request's headers:
// ctx with the caller's span context, or unchanged when the request names
// none or a malformed one.
func ExtractTraceHTTP(ctx context.Context, h http.Header) context.Context {
	if h.Get(HeaderTraceParent) == "" {
		return ctx
	}
	return traceContext.Extract(ctx, propagation.HeaderCarrier(h))
}

// headerCarrier adapts nats.Header (case-sensitive keys) to the propagator.
type headerCarrier nats.Header

func (c headerCarrier) Get(key string) string { return nats.Header(c).Get(key) }

func (c headerCarrier) Set(key, value string) { c[key] = []string{value} }

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
