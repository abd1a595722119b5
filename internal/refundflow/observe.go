package refundflow

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// logKey is the context key of the logger process sets up for one input.
type logKey struct{}

// withInputLog returns ctx carrying the engine's logger with the attributes
// of one input on one case: "case" always and, for an operator command,
// "command" (its id, the one refundctl printed). Every line logged about the
// input, however deep, names the case and the command through it
// (e.logger(ctx)), and carries the trace id when the lines are logged with
// ctx (the *Context methods) and a span is active (tracing.LogHandler).
func (e *Engine) withInputLog(ctx context.Context, caseID int64, in Input) context.Context {
	attrs := []any{"case", caseID}
	if isCommand(in.Kind) && in.ID != "" {
		attrs = append(attrs, "command", in.ID)
	}
	return context.WithValue(ctx, logKey{}, e.log.With(attrs...))
}

// logger is the logger for ctx: the input's (withInputLog) inside process,
// else the engine's own, whose lines name their case themselves.
func (e *Engine) logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(logKey{}).(*slog.Logger); ok {
		return l
	}
	return e.log
}

// startSpan starts one of the engine's spans for the case.
func (e *Engine) startSpan(ctx context.Context, name string, caseID int64, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return e.tracer.Start(ctx, name, trace.WithAttributes(append(attrs, attribute.Int64("case", caseID))...))
}

// endSpan ends span, marking it failed when err is set. The error's text
// stays out of the span: it may quote a platform answer.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, "failed")
	}
	span.End()
}
