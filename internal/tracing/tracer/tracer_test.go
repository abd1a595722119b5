package tracer_test

import (
	"context"
	"testing"

	"github.com/refundhub/refundhub/internal/tracing"
	"github.com/refundhub/refundhub/internal/tracing/tracer"
)

// TestOffByDefault: the zero config and an explicit none or a disabled
// SDK build no provider; the tracer is nil, which the receiver takes as
// "no span work at all".
func TestOffByDefault(t *testing.T) {
	for _, c := range []tracing.Config{{}, {Exporter: tracing.ExporterNone},
		{Exporter: tracing.ExporterOTLP, Disabled: true}} {
		p, err := tracer.NewProvider(context.Background(), c, "test")
		if err != nil {
			t.Fatalf("New(%+v): %v", c, err)
		}
		if p.On() || p.Tracer("x") != nil {
			t.Errorf("New(%+v): on=%v tracer=%v; want off and a nil tracer", c, p.On(), p.Tracer("x"))
		}
		if err := p.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown of an off provider: %v", err)
		}
	}
}

// TestOTLPStartsWithoutACollector: the OTLP exporter connects lazily, so a
// process starts while its collector is down.
func TestOTLPStartsWithoutACollector(t *testing.T) {
	for _, proto := range []string{tracing.ProtocolHTTP, tracing.ProtocolGRPC} {
		p, err := tracer.NewProvider(context.Background(), tracing.Config{Exporter: tracing.ExporterOTLP, Protocol: proto,
			Endpoint: "http://127.0.0.1:1"}, "test")
		if err != nil {
			t.Fatalf("New(otlp %s): %v", proto, err)
		}
		if p.Tracer("x") == nil {
			t.Errorf("otlp %s: nil tracer; want one", proto)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // nothing to wait for: the collector is not there
		_ = p.Shutdown(ctx)
	}
}
