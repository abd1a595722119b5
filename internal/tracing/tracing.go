// Package tracing says whether and where the receiver, the worker, the
// console and refundctl send OpenTelemetry traces (Config, filled by cmd/ from the standard OTEL_*
// variables through envconfig; see docs/tracing.md) and correlates log
// lines with traces (LogHandler, WithLogAttrs). Tracing is off unless an
// exporter is named.
//
// The pipeline that exports spans is package tracing/tracer, kept apart so
// that a package that only reads the configuration does not link the OTLP
// exporters. Which headers carry a trace between
// processes is package events' business (events.InjectTrace,
// events.ExtractTrace).
package tracing

import (
	"fmt"
	"net/url"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
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
