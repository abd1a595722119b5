package tracing

import (
	"context"
	"log/slog"
	"slices"

	"go.opentelemetry.io/otel/trace"
)

// Log attribute keys LogHandler adds (docs/tracing.md).
const (
	LogTraceID = "trace_id"
	LogSpanID  = "span_id"
)

// attrsKey is the context key of WithLogAttrs' attributes.
type attrsKey struct{}

// WithLogAttrs returns ctx carrying attrs for every line logged with it
// through a LogHandler, whichever package logs it: the engine puts the
// case (and command) of the input it works on here, so that the platform
// client's lines about the calls it makes for the case name the case too.
// A key the line or its logger already has is not added again; a key ctx
// carries already takes the new value.
func WithLogAttrs(ctx context.Context, attrs ...slog.Attr) context.Context {
	prev, _ := ctx.Value(attrsKey{}).([]slog.Attr)
	kept := slices.DeleteFunc(slices.Clone(prev), func(p slog.Attr) bool {
		return slices.ContainsFunc(attrs, func(a slog.Attr) bool { return a.Key == p.Key })
	})
	return context.WithValue(ctx, attrsKey{}, append(kept, attrs...))
}

// LogHandler wraps h so that a record logged with a context (the *Context
// logging methods) carries the context's WithLogAttrs attributes and, when
// a span is recording, its trace_id and span_id: a log line leads to its
// trace, and a trace to its log lines. Without either the record passes
// through unchanged, at the cost of two context lookups.
func LogHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(*logHandler); ok {
		return h
	}
	return &logHandler{Handler: h}
}

type logHandler struct {
	slog.Handler
	keys []string // keys of the attributes given to WithAttrs, for the dedupe
}

// Handle adds the context's attributes and the span's ids to r.
func (l *logHandler) Handle(ctx context.Context, r slog.Record) error {
	if extra, ok := ctx.Value(attrsKey{}).([]slog.Attr); ok && len(extra) > 0 {
		have := slices.Clone(l.keys)
		r.Attrs(func(a slog.Attr) bool { have = append(have, a.Key); return true })
		for _, a := range extra {
			if !slices.Contains(have, a.Key) {
				r.AddAttrs(a)
				have = append(have, a.Key)
			}
		}
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String(LogTraceID, sc.TraceID().String()), slog.String(LogSpanID, sc.SpanID().String()))
	}
	return l.Handler.Handle(ctx, r)
}

// WithAttrs keeps the wrapper around the derived handler.
func (l *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	keys := slices.Clip(l.keys)
	for _, a := range attrs {
		keys = append(keys, a.Key)
	}
	return &logHandler{Handler: l.Handler.WithAttrs(attrs), keys: keys}
}

// WithGroup keeps the wrapper around the derived handler; attributes added
// later go inside the group.
func (l *logHandler) WithGroup(name string) slog.Handler {
	return &logHandler{Handler: l.Handler.WithGroup(name), keys: l.keys}
}
