package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/refundhub/refundhub/internal/tracing/tracer"
)

// traceRun is the trace of one refundctl run when OTEL_* turn tracing on
// (docs/tracing.md): a root span named for the subcommand ("refundctl
// request", "refundctl dead-letters retry"), in whose context the command
// works, so that the commands it publishes (opcommands.Publish) and its
// requests to the console's API (remote) carry its traceparent and the
// worker's and the console's spans join its trace. The zero value is off:
// no provider, no span, the command's context untouched.
type traceRun struct {
	provider *tracer.Provider
	span     trace.Span
}

// traceShutdownWait bounds the export of the run's spans at exit: a
// collector that is down must not hold an operator's terminal for long.
const traceShutdownWait = 5 * time.Second

// startTrace builds the provider a.cfg.Tracing asks for and, when it is
// on, starts cmd's span and makes it cmd's context. The exporter connects
// lazily: a collector that is down costs the span, never the command; a
// provider that cannot be built costs the trace, with a warning.
func (a *app) startTrace(cmd *cobra.Command) error {
	if !a.cfg.Tracing.On() {
		return nil
	}
	p, err := tracer.NewProvider(cmd.Context(), a.cfg.Tracing, "refundctl")
	if err != nil { // the command runs all the same (loadConfig says why)
		fmt.Fprintf(a.stderr, "refundctl: warning: tracing off: %v\n", err)
		return nil
	}
	// The span's name is the command path only: never an argument or a
	// flag's value (a description, a note, a waybill).
	ctx, span := p.Tracer("github.com/refundhub/refundhub/refundctl").Start(cmd.Context(), cmd.CommandPath())
	cmd.SetContext(ctx)
	a.trace = traceRun{provider: p, span: span}
	return nil
}

// endTrace ends the run's span, with an error status naming the exit
// status (exitCode: never the error's text, which may quote input), and
// exports it before refundctl exits. A failed export is a warning on
// stderr, not the command's error.
func (a *app) endTrace(ctx context.Context, err error) {
	if a.trace.span == nil {
		return
	}
	if err != nil {
		a.trace.span.SetStatus(codes.Error, "exit "+strconv.Itoa(exitCode(err)))
	}
	a.trace.span.End()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), traceShutdownWait)
	defer cancel()
	if serr := a.trace.provider.Shutdown(sctx); serr != nil {
		fmt.Fprintf(a.stderr, "refundctl: warning: %v\n", serr)
	}
	a.trace = traceRun{}
}
