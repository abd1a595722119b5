package main

import (
	"reflect"
	"testing"

	"github.com/refundhub/refundhub/internal/tracing"
)

// TestLoadConfig: the documented defaults (tracing off), the environment
// over them, the operator's fallback from REFUNDCTL_OPERATOR to USER to
// "refundctl", and tracing turned on by OTEL_* as for the worker.
func TestLoadConfig(t *testing.T) {
	off := tracing.Config{Exporter: tracing.ExporterNone, Protocol: tracing.ProtocolHTTP}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want config
	}{
		{"defaults", nil, config{NATSURL: "nats://127.0.0.1:4222", DBPath: "data/refunds.db", ReceiverURL: "http://127.0.0.1:8080",
			Stream: "CALLBACKS", Operator: "refundctl", Timeout: defaultTimeout, Tracing: off}},
		{"environment", map[string]string{"NATS_URL": " nats://10.0.0.1:4222 ", "DB_PATH": "/var/lib/refunds.db", "RECEIVER_URL": "http://r:8080",
			"CALLBACK_TOKEN": " tok ", "CALLBACK_SIGNING_SECRETS": "whsec_a  whsec_b", "CALLBACK_STREAM": "CB", "USER": "tester",
			"UPSTREAM_PROFILE": "p.toml"},
			config{NATSURL: "nats://10.0.0.1:4222", DBPath: "/var/lib/refunds.db", ReceiverURL: "http://r:8080", Token: "tok",
				SigningSecrets: []string{"whsec_a", "whsec_b"}, Stream: "CB", Operator: "tester", ProfilePath: "p.toml", Timeout: defaultTimeout, Tracing: off}},
		{"operator over USER", map[string]string{"REFUNDCTL_OPERATOR": "alice", "USER": "tester"},
			config{NATSURL: "nats://127.0.0.1:4222", DBPath: "data/refunds.db", ReceiverURL: "http://127.0.0.1:8080",
				Stream: "CALLBACKS", Operator: "alice", Timeout: defaultTimeout, Tracing: off}},
		{"blank operator", map[string]string{"REFUNDCTL_OPERATOR": "  ", "USER": "tester"},
			config{NATSURL: "nats://127.0.0.1:4222", DBPath: "data/refunds.db", ReceiverURL: "http://127.0.0.1:8080",
				Stream: "CALLBACKS", Operator: "tester", Timeout: defaultTimeout, Tracing: off}},
		{"tracing", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
			"OTEL_SERVICE_NAME": "refundctl-ops", "OTEL_EXPORTER_OTLP_HEADERS": "api-key=k%3D1"},
			config{NATSURL: "nats://127.0.0.1:4222", DBPath: "data/refunds.db", ReceiverURL: "http://127.0.0.1:8080",
				Stream: "CALLBACKS", Operator: "refundctl", Timeout: defaultTimeout,
				Tracing: tracing.Config{Exporter: tracing.ExporterOTLP, Endpoint: "http://collector:4318", Protocol: tracing.ProtocolHTTP,
					ServiceName: "refundctl-ops", Headers: map[string]string{"api-key": "k=1"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := loadConfig(func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatalf("loadConfig(%v): %v", tc.env, err)
			}
			if tc.want.SigningSecrets == nil {
				tc.want.SigningSecrets = []string{} // strings.Fields of nothing
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("loadConfig(%v) = %+v; want %+v", tc.env, got, tc.want)
			}
		})
	}
}
