package envconfig

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/refundhub/refundhub/internal/tracing"
)

// TracingVars are the standard OpenTelemetry variables the receiver, the
// worker, the console and refundctl read for their traces (docs/tracing.md), with the same meaning as
// in every OpenTelemetry SDK. Tracing is off unless OTEL_TRACES_EXPORTER is
// otlp. It returns a new slice each time, for the caller to append to.
func TracingVars() []Var {
	return []Var{
		V("OTEL_TRACES_EXPORTER", tracing.ExporterNone, "none (no tracing, the default) or otlp: send traces to an OpenTelemetry collector (docs/tracing.md)"),
		V("OTEL_SDK_DISABLED", "false", "true turns tracing off whatever OTEL_TRACES_EXPORTER says"),
		V("OTEL_SERVICE_NAME", "", "service name on every span; empty: the binary's name (refundhub-receiver, refundhub-worker, refundhub-console, refundctl)"),
		V("OTEL_EXPORTER_OTLP_ENDPOINT", "", "collector base URL; empty: http://localhost:4318 (http/protobuf, /v1/traces appended) or http://localhost:4317 (grpc)"),
		V("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "", "full traces URL, used as it is; wins over OTEL_EXPORTER_OTLP_ENDPOINT"),
		V("OTEL_EXPORTER_OTLP_PROTOCOL", tracing.ProtocolHTTP, "http/protobuf or grpc"),
		V("OTEL_EXPORTER_OTLP_HEADERS", "", "headers sent with every export, key=value pairs separated by commas, values URL-encoded (a collector's API key); never logged"),
	}
}

// Tracing reads TracingVars into the tracing configuration.
func (r *Reader) Tracing() tracing.Config {
	c := tracing.Config{
		Exporter:       strings.ToLower(strings.TrimSpace(r.String("OTEL_TRACES_EXPORTER"))),
		ServiceName:    strings.TrimSpace(r.String("OTEL_SERVICE_NAME")),
		Endpoint:       strings.TrimSpace(r.String("OTEL_EXPORTER_OTLP_ENDPOINT")),
		TracesEndpoint: strings.TrimSpace(r.String("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")),
		Protocol:       strings.ToLower(strings.TrimSpace(r.String("OTEL_EXPORTER_OTLP_PROTOCOL"))),
	}
	disabled, err := strconv.ParseBool(strings.TrimSpace(r.String("OTEL_SDK_DISABLED")))
	if err != nil {
		r.Fail(fmt.Errorf("OTEL_SDK_DISABLED=%q: want true or false", r.String("OTEL_SDK_DISABLED")))
	}
	c.Disabled = disabled
	if h := r.getenv("OTEL_EXPORTER_OTLP_HEADERS"); strings.TrimSpace(h) != "" {
		if c.Headers, err = otlpHeaders(h); err != nil {
			r.Fail(err)
		}
	}
	r.Fail(c.Validate())
	return c
}

// otlpHeaders parses OTEL_EXPORTER_OTLP_HEADERS ("k1=v1,k2=v2", values
// URL-encoded). Errors name the pair's position, never its value (it is
// usually a secret).
func otlpHeaders(s string) (map[string]string, error) {
	out := map[string]string{}
	for i, pair := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_HEADERS: pair #%d is not key=value", i+1)
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_HEADERS: pair #%d (%s): value is not URL-encoded", i+1, k)
		}
		out[k] = dv
	}
	return out, nil
}
