package refundflow

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/refundhub/refundhub/internal/tracing"
)

// logKey is the context key of the logger process sets up for one input.
type logKey struct{}

// withInputLog returns ctx carrying the engine's logger with the attributes
// of one input on one case: "case" always and, for an operator command,
// "command" (its id, the one refundctl printed). Every line the engine logs
// about the input names the case and the command through it (e.logger(ctx)),
// and carries the trace id when logged with ctx (the *Context methods) while
// a span is active (tracing.LogHandler). The same attributes go into ctx
// for tracing.LogHandler, so that the platform client's lines about the
// input's calls name the case and command as well.
func (e *Engine) withInputLog(ctx context.Context, caseID int64, in Input) context.Context {
	attrs := []slog.Attr{slog.Int64("case", caseID)}
	if isCommand(in.Kind) && in.ID != "" {
		attrs = append(attrs, slog.String("command", in.ID))
	}
	ctx = tracing.WithLogAttrs(ctx, attrs...)
	return context.WithValue(ctx, logKey{}, slog.New(e.log.Handler().WithAttrs(attrs)))
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
