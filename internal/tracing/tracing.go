// Package tracing builds the OpenTelemetry tracer provider the receiver and
// the worker share, from a plain Config that cmd/ fills from the standard
// OTEL_* variables (see docs/tracing.md). It is off unless an exporter is
// named: then there is no provider at all, Tracer returns nil and the hot
// paths (the receiver's handler) skip every span, so tracing costs nothing
// when it is not wanted.
//
// Which headers carry a trace between processes is package events' business
// (events.InjectTrace, events.ExtractTrace); this package only says where the
// spans go and correlates log lines with them (LogHandler).
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Exporters (OTEL_TRACES_EXPORTER values).
const (
	ExporterNone = "none" // the default: no provider, no spans
	ExporterOTLP = "otlp"
)

// Protocols (OTEL_EXPORTER_OTLP_PROTOCOL values).
const (
	ProtocolHTTP = "http/protobuf" // the OTLP default
	ProtocolGRPC = "grpc"
)

// Config says whether and where spans are exported. The zero value is off.
type Config struct {
	// Disabled turns tracing off whatever else is set (OTEL_SDK_DISABLED).
	Disabled bool
	// Exporter is ExporterNone ("" means the same) or ExporterOTLP.
	Exporter string
	// Endpoint is the OTLP base URL (http://host:4318 for http/protobuf,
	// http://host:4317 for grpc); /v1/traces is appended for http. Empty:
	// the exporter's default (localhost).
	Endpoint string
	// TracesEndpoint, when set, is the full traces URL, used as it is
	// (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).
	TracesEndpoint string
	// Protocol is ProtocolHTTP ("" means the same) or ProtocolGRPC.
	Protocol string
	// Headers are sent with every export (an collector's API key, say);
	// never logged.
	Headers map[string]string
	// ServiceName names the process in every span's resource; the binary's
	// name when empty.
	ServiceName string
	// SpanExporter, when set, receives the spans synchronously instead of an
	// OTLP exporter (tests: sdk/trace/tracetest.InMemoryExporter). It turns
	// tracing on.
	SpanExporter sdktrace.SpanExporter
}

// On reports whether c asks for spans.
func (c Config) On() bool {
	return !c.Disabled && (c.SpanExporter != nil || c.Exporter == ExporterOTLP)
}

// Validate checks the exporter and protocol names and the endpoints.
func (c Config) Validate() error {
	switch c.Exporter {
	case "", ExporterNone, ExporterOTLP:
	default:
		return fmt.Errorf("OTEL_TRACES_EXPORTER=%q: want %q or %q", c.Exporter, ExporterOTLP, ExporterNone)
	}
	switch c.Protocol {
	case "", ProtocolHTTP, ProtocolGRPC:
	default:
		return fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: want %q or %q", c.Protocol, ProtocolHTTP, ProtocolGRPC)
	}
	for name, v := range map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": c.Endpoint, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": c.TracesEndpoint} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return fmt.Errorf("%s: want an http:// or https:// URL with a host", name)
		}
	}
	return nil
}

// Provider owns the tracer provider of one process, when tracing is on.
type Provider struct {
	sdk *sdktrace.TracerProvider // nil when off
}

// New builds the provider c asks for: none when c is off. service is the
// default service name (the binary's). The OTLP exporter connects lazily, so
// a collector that is down costs dropped spans, never a failed start.
func New(ctx context.Context, c Config, service string) (*Provider, error) {
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
func otlpExporter(ctx context.Context, c Config) (sdktrace.SpanExporter, error) {
	if c.Protocol == ProtocolGRPC {
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
