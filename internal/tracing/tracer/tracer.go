// Package tracer builds the OpenTelemetry tracer provider of one process
// from a tracing.Config: none when tracing is off (Tracer returns nil, and
// the hot paths, the receiver's handler first, skip every span, so tracing
// costs nothing when it is not wanted), an OTLP exporter over http/protobuf
// or grpc when it is on.
package tracer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/refundhub/refundhub/internal/tracing"
)

// Provider owns the tracer provider of one process, when tracing is on.
type Provider struct {
	sdk *sdktrace.TracerProvider // nil when off
}

// NewProvider builds the provider c asks for: none when c is off. service is the
// default service name (the binary's). The OTLP exporter connects lazily, so
// a collector that is down costs dropped spans, never a failed start.
func NewProvider(ctx context.Context, c tracing.Config, service string) (*Provider, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.On() {
		return &Provider{}, nil
	}
	name := c.ServiceName
	if name == "" {
		name = service
	}
	res := resource.NewSchemaless(attribute.String("service.name", name))
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample()))}
	if c.SpanExporter != nil {
		opts = append(opts, sdktrace.WithSyncer(c.SpanExporter))
	} else {
		exp, err := otlpExporter(ctx, c)
		if err != nil {
			return nil, err
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	return &Provider{sdk: sdktrace.NewTracerProvider(opts...)}, nil
}

// otlpExporter is the OTLP exporter c names. The explicit options take
// precedence over whatever OTEL_EXPORTER_OTLP_* the exporter would read on
// its own, so what cmd/ read is what is used.
func otlpExporter(ctx context.Context, c tracing.Config) (sdktrace.SpanExporter, error) {
	if c.Protocol == tracing.ProtocolGRPC {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithHeaders(c.Headers), otlptracegrpc.WithTimeout(10 * time.Second)}
		if ep := firstOf(c.TracesEndpoint, c.Endpoint); ep != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(ep))
		}
		exp, err := otlptracegrpc.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("otlp grpc exporter: %w", err)
		}
		return exp, nil
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithHeaders(c.Headers), otlptracehttp.WithTimeout(10 * time.Second)}
	switch {
	case c.TracesEndpoint != "":
		opts = append(opts, otlptracehttp.WithEndpointURL(c.TracesEndpoint))
	case c.Endpoint != "":
		// The base URL gets the signal's path, as the specification says.
		opts = append(opts, otlptracehttp.WithEndpointURL(strings.TrimSuffix(c.Endpoint, "/")+"/v1/traces"))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("otlp http exporter: %w", err)
	}
	return exp, nil
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// On reports whether the provider records spans.
func (p *Provider) On() bool { return p != nil && p.sdk != nil }

// Tracer returns the named tracer, or nil when tracing is off: a nil tracer
// tells a component to skip span work altogether (see Or for those that
// would rather not check).
func (p *Provider) Tracer(name string) trace.Tracer {
	if !p.On() {
		return nil
	}
	return p.sdk.Tracer(name)
}

// Shutdown exports the spans still buffered and stops the exporter.
func (p *Provider) Shutdown(ctx context.Context) error {
	if !p.On() {
		return nil
	}
	if err := p.sdk.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("tracing shutdown: %w", err)
	}
	return nil
}

// shutdownWait bounds the export of the last spans at a process's exit: a
// collector that is down must not hold a stopping process.
const shutdownWait = 5 * time.Second

// Close is Shutdown for a process's deferred clean-up: it runs even when
// ctx (the process's, cancelled by the stop signal) is done, waits at most
// shutdownWait, and logs a failure at warn instead of returning it.
func (p *Provider) Close(ctx context.Context, logger *slog.Logger) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownWait)
	defer cancel()
	if err := p.Shutdown(sctx); err != nil {
		logger.Warn("tracing shutdown", "err", err)
	}
}
