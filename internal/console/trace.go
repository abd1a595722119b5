package console

import (
	"context"
	"errors"
	"strconv"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// continueTrace makes the caller's trace (a traceparent header: refundctl
// sends one when it traces) the parent of the spans a request to the API
// starts, so that a command sent through the API is one trace from
// refundctl to the worker. It sits behind authenticate: only an
// authenticated caller joins its trace. Pages and forms do not take one (a
// browser sends none), so a form's command starts its own trace. Without a
// tracer it is not in the chain at all.
func (s *Server) continueTrace(next echo.HandlerFunc) echo.HandlerFunc {
	if s.tracer == nil {
		return next
	}
	return func(c echo.Context) error {
		req := c.Request()
		if ctx := events.ExtractTraceHTTP(req.Context(), req.Header); ctx != req.Context() {
			c.SetRequest(req.WithContext(ctx))
		}
		return next(c)
	}
}

// issueSpan starts the span of one command the console issues (issue), a
// child of ctx's span when there is one (continueTrace), else the root of
// a new trace; opcommands.Publish puts its context in the command's
// traceparent. Its attributes name the command, never its payload (a
// message's text, a phone number) or the caller's credentials. Without a
// tracer it returns ctx and a span that records nothing.
func (s *Server) issueSpan(ctx context.Context, cmd refundflow.Command) (context.Context, trace.Span) {
	if s.tracer == nil {
		return ctx, trace.SpanFromContext(context.Background()) // the no-op span
	}
	return s.tracer.Start(ctx, "issue command", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("command", cmd.ID), attribute.String("command.kind", string(cmd.Kind)),
			attribute.String("platform", string(cmd.Platform)), attribute.Int64("case", cmd.CaseID)))
}

// endIssueSpan records what became of the command on its span and ends
// it: the verdict and whether the publish was a duplicate, or an error
// status with the error's code (never its text, which may quote input).
func endIssueSpan(span trace.Span, out issued, err error) {
	if !span.IsRecording() {
		return
	}
	if err != nil {
		code := "error"
		var e *Error
		if errors.As(err, &e) {
			code = e.Code
		}
		span.SetStatus(codes.Error, code)
	} else {
		span.SetAttributes(attribute.String("verdict", out.Verdict.Verdict), attribute.Bool("duplicate", out.Ack.Duplicate))
		if out.Verdict.CaseID != 0 { // a request's new case
			span.SetAttributes(attribute.Int64("case", out.Verdict.CaseID))
		}
	}
	span.End()
}

// retrySpan starts the span of a retry of dead letters ids (one, or a bulk
// selection) the console makes for its caller: a retry is an operator's
// command, so it starts a trace of its own (or, through the API,
// continues the caller's: continueTrace), which the republished messages
// carry to the worker (deadletters.Settler.Retry; the worker's spans link
// to the trace each message died in). Without a tracer it returns ctx and
// a span that records nothing.
func (s *Server) retrySpan(ctx context.Context, ids []int64) (context.Context, trace.Span) {
	if s.tracer == nil {
		return ctx, trace.SpanFromContext(context.Background()) // the no-op span
	}
	return s.tracer.Start(ctx, "retry dead letters", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.Int("dead_letters.count", len(ids)),
			attribute.Int64Slice("dead_letters", ids[:min(len(ids), maxSpanIDs)])))
}

// maxSpanIDs bounds the dead letter ids a span names: a bulk retry may
// take thousands, and a span is not the place to list them (the log line
// and each letter's history are).
const maxSpanIDs = 20

// endRetrySpan records how many letters were retried and ends the span,
// with an error status when any was not (never an error's text).
func endRetrySpan(span trace.Span, retried, notRetried int) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attribute.Int("retried", retried))
	if notRetried > 0 {
		span.SetStatus(codes.Error, "not retried: "+strconv.Itoa(notRetried))
	}
	span.End()
}

// replaySpan starts the span of a replay of callback seq into the stream
// that the console makes for its caller (the case page's Replay button,
// POST /api/v1/replay): like a retry, an operator's command, in a trace of
// its own or an API caller's, which the replayed message carries to the
// worker (replay.ToStream). Without a tracer it returns ctx and a span
// that records nothing.
func (s *Server) replaySpan(ctx context.Context, seq uint64) (context.Context, trace.Span) {
	if s.tracer == nil {
		return ctx, trace.SpanFromContext(context.Background()) // the no-op span
	}
	return s.tracer.Start(ctx, "replay callback", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.Int64("seq", int64(seq))))
}
