// Package tracingtest helps tests collect the spans of a process run
// through its run function, which shuts its tracer provider down on the
// way out.
package tracingtest

import (
	"context"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Kept is an in-memory exporter whose spans outlive the shutdown of the
// provider it is given to: tracetest.InMemoryExporter forgets its spans on
// Shutdown, which refundctl's and the console's run call before they
// return, before a test can read them.
type Kept struct{ *tracetest.InMemoryExporter }

// Shutdown keeps the spans.
func (Kept) Shutdown(context.Context) error { return nil }
