package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/callback/receiver"
	"github.com/refundhub/refundhub/internal/events"
)

// config is everything the receiver reads from the environment.
type config struct {
	Addr            string
	NATSURL         string
	Token           string
	SigningSecrets  []string
	MaxBytes        int64
	PublishTimeout  time.Duration
	ShutdownTimeout time.Duration
	Stream          events.StreamConfig
	TypeNames       callback.TypeNames
	LogLevel        slog.Level
}

// envVar documents one setting; the table drives both -h and loading.
type envVar struct {
	name, def, help string
}

var defaultTypes = callback.FormatTypeNames(callback.DefaultTypeNames()[callback.Platform1688])

var envVars = []envVar{
	{"RECEIVER_ADDR", "127.0.0.1:8080", "listen address (host:port; port 0 picks a free port)"},
	{"NATS_URL", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated"},
	{"CALLBACK_TOKEN", "", "REQUIRED secret URL token: the platform posts to /callbacks/<token> (16+ chars of A-Z a-z 0-9 . _ ~ -)"},
	{"CALLBACK_SIGNING_SECRETS", "", "space-separated whsec_<base64> secrets; when set, Standard Webhooks signatures are required (any secret may match: rotation)"},
	{"CALLBACK_MAX_BYTES", strconv.Itoa(receiver.DefaultMaxBytes), "request body limit in bytes (413 above it)"},
	{"RECEIVER_PUBLISH_TIMEOUT", events.DefaultPublishWait.String(), "max wait for the JetStream ack before answering 503 (at most 900ms: the platform gives a push 1000ms)"},
	{"RECEIVER_SHUTDOWN_TIMEOUT", "10s", "on SIGTERM/SIGINT: time allowed for in-flight requests and the NATS drain"},
	{"CALLBACK_STREAM", events.DefaultStreamName, "JetStream stream name (subjects callbacks.> and parked.callbacks.>)"},
	{"CALLBACK_STREAM_MAX_AGE", events.DefaultMaxAge.String(), "stream max age"},
	{"CALLBACK_STREAM_REPLICAS", strconv.Itoa(events.DefaultReplicas), "stream replicas (1 single server, 3 in a cluster)"},
	{"CALLBACK_STREAM_MAX_BYTES", strconv.Itoa(events.DefaultMaxBytes), "stream size cap in bytes (oldest discarded first)"},
	{"CALLBACK_STREAM_DUPLICATES", events.DefaultDuplicates.String(), "Nats-Msg-Id duplicate window"},
	{"CALLBACK_TYPES_TAOBAO", defaultTypes, "known Taobao (messagePlatform 0) types as NAME=kind,… (kinds: order_status, price_modify, refund); GUESS: same names as 1688"},
	{"CALLBACK_TYPES_1688", defaultTypes, "known 1688 (messagePlatform 1) types as NAME=kind,…"},
	{"LOG_LEVEL", "info", "debug, info, warn or error (successful callbacks log at debug)"},
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: receiver [-h]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Takes platform callbacks on POST /callbacks/<token> and publishes them to NATS JetStream;")
	fmt.Fprintln(w, "answers 200 only after the JetStream ack. Also serves /healthz, /readyz and /metrics.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Environment:")
	for _, v := range envVars {
		def := v.def
		if def == "" {
			def = "none"
		}
		fmt.Fprintf(w, "  %s (default: %s)\n        %s\n", v.name, def, v.help)
	}
}

// loadConfig reads the environment through getenv; unset or empty variables
// take the documented default. Errors never quote secret values.
func loadConfig(getenv func(string) string) (config, error) {
	get := func(name string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		for _, v := range envVars {
			if v.name == name {
				return v.def
			}
		}
		return ""
	}
	var errs []error
	cfg := config{
		Addr:    get("RECEIVER_ADDR"),
		NATSURL: get("NATS_URL"),
		Token:   getenv("CALLBACK_TOKEN"),
		Stream:  events.DefaultStreamConfig(),
	}
	if err := checkToken(cfg.Token); err != nil {
		errs = append(errs, err)
	}
	cfg.SigningSecrets = strings.Fields(getenv("CALLBACK_SIGNING_SECRETS"))

	var err error
	if cfg.MaxBytes, err = strconv.ParseInt(get("CALLBACK_MAX_BYTES"), 10, 64); err != nil || cfg.MaxBytes < 1 || cfg.MaxBytes > 16<<20 {
		errs = append(errs, fmt.Errorf("CALLBACK_MAX_BYTES=%q: want an integer from 1 to %d", get("CALLBACK_MAX_BYTES"), 16<<20))
	}
	duration := func(name string, min, max time.Duration) time.Duration {
		d, err := time.ParseDuration(get(name))
		if err != nil || d < min || d > max {
			errs = append(errs, fmt.Errorf("%s=%q: want a duration from %s to %s (e.g. 500ms)", name, get(name), min, max))
		}
		return d
	}
	// The platform gives a push 1000 ms: waiting longer for the ack would turn
	// a stored callback into one the platform counts as failed.
	cfg.PublishTimeout = duration("RECEIVER_PUBLISH_TIMEOUT", time.Millisecond, 900*time.Millisecond)
	cfg.ShutdownTimeout = duration("RECEIVER_SHUTDOWN_TIMEOUT", time.Second, 10*time.Minute)
	cfg.Stream.Name = get("CALLBACK_STREAM")
	cfg.Stream.MaxAge = duration("CALLBACK_STREAM_MAX_AGE", time.Minute, 10*365*24*time.Hour)
	cfg.Stream.Duplicates = duration("CALLBACK_STREAM_DUPLICATES", 100*time.Millisecond, 7*24*time.Hour)
	if cfg.Stream.Replicas, err = strconv.Atoi(get("CALLBACK_STREAM_REPLICAS")); err != nil {
		errs = append(errs, fmt.Errorf("CALLBACK_STREAM_REPLICAS=%q: want 1 to 5", get("CALLBACK_STREAM_REPLICAS")))
	}
	if cfg.Stream.MaxBytes, err = strconv.ParseInt(get("CALLBACK_STREAM_MAX_BYTES"), 10, 64); err != nil {
		errs = append(errs, fmt.Errorf("CALLBACK_STREAM_MAX_BYTES=%q: want an integer", get("CALLBACK_STREAM_MAX_BYTES")))
	}
	if int64(cfg.Stream.MaxMsgSize) < cfg.MaxBytes {
		cfg.Stream.MaxMsgSize = int32(min(cfg.MaxBytes+4096, 1<<30))
	}
	if err := cfg.Stream.Validate(); err != nil {
		errs = append(errs, err)
	}

	cfg.TypeNames = callback.TypeNames{}
	for _, p := range []struct {
		env string
		p   callback.Platform
	}{{"CALLBACK_TYPES_TAOBAO", callback.PlatformTaobao}, {"CALLBACK_TYPES_1688", callback.Platform1688}} {
		m, err := callback.ParseTypeNames(get(p.env))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.env, err))
			continue
		}
		cfg.TypeNames[p.p] = m
	}

	switch strings.ToLower(get("LOG_LEVEL")) {
	case "debug":
		cfg.LogLevel = slog.LevelDebug
	case "info":
		cfg.LogLevel = slog.LevelInfo
	case "warn":
		cfg.LogLevel = slog.LevelWarn
	case "error":
		cfg.LogLevel = slog.LevelError
	default:
		errs = append(errs, fmt.Errorf("LOG_LEVEL=%q: want debug, info, warn or error", get("LOG_LEVEL")))
	}
	return cfg, errors.Join(errs...)
}

// checkToken refuses to start without a usable token, and says how to set one.
func checkToken(tok string) error {
	const how = "set CALLBACK_TOKEN to a long random secret, e.g. CALLBACK_TOKEN=$(openssl rand -hex 32), " +
		"and register https://<host>/callbacks/<that token> as the platform's callback address"
	if tok == "" {
		return errors.New("CALLBACK_TOKEN is not set: " + how)
	}
	if len(tok) < 16 || len(tok) > 256 {
		return errors.New("CALLBACK_TOKEN must be 16 to 256 characters: " + how)
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~') {
			return errors.New("CALLBACK_TOKEN may only contain A-Z a-z 0-9 . _ ~ - (it is a URL path segment): " + how)
		}
	}
	return nil
}
