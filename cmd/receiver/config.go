package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/envconfig"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/platform"
	"github.com/refundhub/refundhub/internal/tracing"
)

// config is everything the receiver reads from the environment.
type config struct {
	Addr            string
	NATSURL         string
	NATSConns       int
	Token           string
	SigningSecrets  []string
	MaxBytes        int64
	PublishTimeout  time.Duration
	ShutdownTimeout time.Duration
	Stream          events.StreamConfig
	TypeNames       callback.TypeNames
	Profile         *platform.Profile
	Log             envconfig.LogConfig
	Tracing         tracing.Config
}

// envVars documents every setting; the table drives both -h and loading.
// The callback stream's settings come from envconfig.CallbackStreamVars, the
// one table the worker lists too.
var envVars = slices.Concat([]envconfig.Var{
	envconfig.V("RECEIVER_ADDR", "127.0.0.1:8080", "listen address (host:port; port 0 picks a free port)"),
	envconfig.V("NATS_URL", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated"),
	envconfig.V("RECEIVER_NATS_CONNS", strconv.Itoa(events.DefaultPublishConns), "NATS connections to publish on, in turn (1 to 16); each has its own client and server I/O goroutines, and 2 measured best on 2 cores"),
	envconfig.V("CALLBACK_TOKEN", "", "REQUIRED secret URL token: the platform posts to /callbacks/<token> (16+ chars of A-Z a-z 0-9 . _ ~ -)"),
	envconfig.V("CALLBACK_SIGNING_SECRETS", "", "space-separated whsec_<base64> secrets; when set, Standard Webhooks signatures are required (any secret may match: rotation)"),
	envconfig.V("RECEIVER_PUBLISH_TIMEOUT", events.DefaultPublishWait.String(), "max wait for the JetStream ack before answering 503 (at most 900ms: the platform gives a push 1000ms)"),
	envconfig.V("RECEIVER_SHUTDOWN_TIMEOUT", "10s", "on SIGTERM/SIGINT: time allowed for in-flight requests and the NATS drain"),
}, envconfig.CallbackStreamVars(), []envconfig.Var{
	envconfig.V("UPSTREAM_PROFILE", "", "TOML file overriding the built-in platform profile; the receiver reads its callback types ([callbacks.taobao] and [callbacks.alibaba]: a type not listed is parked). Give the receiver and the worker the same file"),
}, envconfig.LogVars(), envconfig.TracingVars())

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: receiver [-h]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Takes platform callbacks on POST /callbacks/<token> and publishes them to NATS JetStream;")
	fmt.Fprintln(w, "answers 200 only after the JetStream ack. Also serves /healthz, /readyz and /metrics.")
	fmt.Fprintln(w)
	envconfig.Usage(w, envVars)
}

// loadConfig reads the environment through getenv; unset or empty variables
// take the documented default. Errors never quote secret values.
func loadConfig(getenv func(string) string) (config, error) {
	env := envconfig.NewReader(envVars, getenv)
	cfg := config{
		Addr:    env.String("RECEIVER_ADDR"),
		NATSURL: env.String("NATS_URL"),
		Token:   getenv("CALLBACK_TOKEN"), // a secret: read directly, never quoted in errors
	}
	env.Fail(checkToken(cfg.Token))
	cfg.NATSConns = env.Int("RECEIVER_NATS_CONNS", 1, 16)
	cfg.SigningSecrets = strings.Fields(getenv("CALLBACK_SIGNING_SECRETS"))
	// The platform gives a push 1000 ms: waiting longer for the ack would turn
	// a stored callback into one the platform counts as failed.
	cfg.PublishTimeout = env.Duration("RECEIVER_PUBLISH_TIMEOUT", time.Millisecond, 900*time.Millisecond)
	cfg.ShutdownTimeout = env.Duration("RECEIVER_SHUTDOWN_TIMEOUT", time.Second, 10*time.Minute)
	cfg.Stream, cfg.MaxBytes = env.CallbackStream()
	profile, err := platform.Load(getenv("UPSTREAM_PROFILE"))
	if err != nil {
		env.Fail(fmt.Errorf("UPSTREAM_PROFILE: %w", err))
	} else {
		cfg.TypeNames, cfg.Profile = callback.TypeNamesFromProfile(profile), profile
	}
	cfg.Log = env.Log()
	cfg.Tracing = env.Tracing()
	return cfg, env.Err()
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
