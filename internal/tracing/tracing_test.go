package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/refundhub/refundhub/internal/tracing"
)

func TestValidate(t *testing.T) {
	bad := []tracing.Config{{Exporter: "jaeger"}, {Protocol: "http/json"}, {Endpoint: "localhost:4318"},
		{TracesEndpoint: "ftp://x/v1/traces"}}
	for _, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil; want an error", c)
		}
	}
	good := tracing.Config{Exporter: "otlp", Protocol: "grpc", Endpoint: "http://collector:4317"}
	if err := good.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v; want nil", good, err)
	}
}

// TestLogHandler: a line logged with a span's context carries its
// trace_id and span_id, and WithLogAttrs' attributes unless the line or its
// logger has the key already; a line without a span is left alone.
func TestLogHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(tracing.LogHandler(slog.NewJSONHandler(&buf, nil)))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
	ctx, span := tp.Tracer("t").Start(context.Background(), "s")
	ctx = tracing.WithLogAttrs(ctx, slog.Int64("case", 6), slog.String("command", "c1"))
	ctx = tracing.WithLogAttrs(ctx, slog.Int64("case", 7)) // an inner input: its case wins
	log.InfoContext(ctx, "traced")
	log.With("case", 7).InfoContext(ctx, "logger has case")
	log.InfoContext(ctx, "line has command", "command", "c1")
	log.Info("untraced")
	span.End()

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines; want 4:\n%s", len(lines), buf.String())
	}
	sc := span.SpanContext()
	for i, raw := range lines[:3] {
		if strings.Count(raw, `"case"`) > 1 || strings.Count(raw, `"command"`) > 1 {
			t.Errorf("line %d repeats a key: %s", i, raw)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			t.Fatal(err)
		}
		if m["trace_id"] != sc.TraceID().String() || m["span_id"] != sc.SpanID().String() || m["case"] != float64(7) || m["command"] != "c1" {
			t.Errorf("line %d = %s; want trace_id %s, span_id %s, case 7, command c1", i, raw, sc.TraceID(), sc.SpanID())
		}
	}
	if strings.Contains(lines[3], "trace_id") || strings.Contains(lines[3], "case") {
		t.Errorf("untraced line = %s; want no trace_id and no case", lines[3])
	}
}
