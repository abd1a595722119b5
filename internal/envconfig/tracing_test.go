package envconfig

import (
	"strings"
	"testing"
)

// TestTracing: the OTEL_* variables read into the tracing config; the
// headers' values are URL-decoded, and an error names a bad pair by its
// position and key, never its value (usually a secret).
func TestTracing(t *testing.T) {
	env := map[string]string{"OTEL_TRACES_EXPORTER": "OTLP", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_SERVICE_NAME": "w1",
		"OTEL_EXPORTER_OTLP_HEADERS": "api-key=s%3Dcret, x-team = refunds"}
	r := NewReader(TracingVars(), func(k string) string { return env[k] })
	c := r.Tracing()
	if err := r.Err(); err != nil {
		t.Fatalf("Err = %v; want nil", err)
	}
	if !c.On() || c.Protocol != "grpc" || c.Endpoint != "http://collector:4317" || c.ServiceName != "w1" ||
		c.Headers["api-key"] != "s=cret" || c.Headers["x-team"] != "refunds" {
		t.Errorf("Tracing() = %+v; want otlp over grpc to collector:4317 as w1 with two headers", c)
	}

	r = NewReader(TracingVars(), func(string) string { return "" })
	if c := r.Tracing(); c.On() || r.Err() != nil {
		t.Errorf("defaults: on=%v err=%v; want off, no error", c.On(), r.Err())
	}

	env = map[string]string{"OTEL_TRACES_EXPORTER": "zipkin", "OTEL_SDK_DISABLED": "maybe",
		"OTEL_EXPORTER_OTLP_HEADERS": "ok=1,api-key=%zz-topsecret"}
	r = NewReader(TracingVars(), func(k string) string { return env[k] })
	r.Tracing()
	err := r.Err()
	for _, want := range []string{"OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED", "pair #2 (api-key)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Err = %v; want it to mention %s", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "topsecret") {
		t.Errorf("Err = %v quotes a header value", err)
	}
}
