package events

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream defaults (see the package doc for the reasons).
const (
	DefaultStreamName = "CALLBACKS"
	DefaultMaxAge     = 7 * 24 * time.Hour
	DefaultDuplicates = 2 * time.Minute
	DefaultMaxBytes   = 1 << 30
	DefaultMaxMsgSize = 1 << 20
	DefaultReplicas   = 1
)

// StreamConfig is the part of the callback stream's configuration that
// deployments choose.
type StreamConfig struct {
	Name       string
	MaxAge     time.Duration
	Duplicates time.Duration
	MaxBytes   int64
	MaxMsgSize int32
	Replicas   int
}

// DefaultStreamConfig returns the documented defaults.
func DefaultStreamConfig() StreamConfig {
	return StreamConfig{
		Name:       DefaultStreamName,
		MaxAge:     DefaultMaxAge,
		Duplicates: DefaultDuplicates,
		MaxBytes:   DefaultMaxBytes,
		MaxMsgSize: DefaultMaxMsgSize,
		Replicas:   DefaultReplicas,
	}
}

// Validate checks the limits JetStream would reject, with clearer messages.
func (c StreamConfig) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("stream name is empty")
	case c.MaxAge <= 0:
		return fmt.Errorf("stream max age %s: must be positive", c.MaxAge)
	case c.Duplicates < 100*time.Millisecond || c.Duplicates > c.MaxAge:
		return fmt.Errorf("stream duplicate window %s: must be between 100ms and the max age %s", c.Duplicates, c.MaxAge)
	case c.MaxBytes <= 0:
		return fmt.Errorf("stream max bytes %d: must be positive", c.MaxBytes)
	case c.MaxMsgSize <= 0:
		return fmt.Errorf("stream max message size %d: must be positive", c.MaxMsgSize)
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("stream replicas %d: must be 1 to 5", c.Replicas)
	}
	for _, r := range c.Name {
		if r <= ' ' || r == '.' || r == '*' || r == '>' || r == '/' || r == '\\' {
			return fmt.Errorf("stream name %q: no spaces, '.', '*', '>' or slashes", c.Name)
		}
	}
	return nil
}

// JetStream returns the full stream configuration.
func (c StreamConfig) JetStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        c.Name,
		Description: "platform callbacks received by refundhub (accepted and parked)",
		Subjects:    []string{SubjectAccepted + ".>", SubjectParked + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardNew, // never drop an acknowledged callback to make room
		MaxAge:      c.MaxAge,
		MaxBytes:    c.MaxBytes,
		MaxMsgSize:  c.MaxMsgSize,
		MaxMsgs:     -1,
		Duplicates:  c.Duplicates,
		Replicas:    c.Replicas,
	}
}

// EnsureStream creates the stream or updates it to cfg; running it again
// with the same cfg changes nothing.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ensure stream: %w", err)
	}
	s, err := js.CreateOrUpdateStream(ctx, cfg.JetStream())
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
	}
	return s, nil
}

// CreateStreamIfMissing creates the stream from cfg if it does not exist and
// otherwise leaves it exactly as it is; created says which. It is for a
// process that needs the stream but does not own its settings (the worker:
// the receiver owns them and applies them with EnsureStream). Compare the
// settings of a stream it did not create with cfg.Differences.
func CreateStreamIfMissing(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (s jetstream.Stream, created bool, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, false, fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	s, err = js.Stream(ctx, cfg.Name)
	if err == nil {
		return s, false, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, false, fmt.Errorf("look up stream %s: %w", cfg.Name, err)
	}
	s, err = js.CreateStream(ctx, cfg.JetStream())
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		// Created by someone else (a receiver starting at the same moment)
		// since we looked: theirs stands.
		s, err = js.Stream(ctx, cfg.Name)
		if err != nil {
			return nil, false, fmt.Errorf("look up stream %s: %w", cfg.Name, err)
		}
		return s, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("create stream %s: %w", cfg.Name, err)
	}
	return s, true, nil
}

// Differences names each setting of an existing stream (have) that differs
// from what c would configure, as "field <have> vs <c's>" with the field in
// NATS's own spelling (max_msg_size, …), so that a process that leaves the
// stream alone can say what it would have chosen differently. It is empty
// when they agree.
func (c StreamConfig) Differences(have jetstream.StreamConfig) []string {
	want := c.JetStream()
	var out []string
	diff := func(field string, h, w any) {
		if h != w {
			out = append(out, fmt.Sprintf("%s %v vs %v", field, h, w))
		}
	}
	diff("subjects", strings.Join(have.Subjects, ","), strings.Join(want.Subjects, ","))
	diff("retention", have.Retention, want.Retention)
	diff("storage", have.Storage, want.Storage)
	diff("discard", have.Discard, want.Discard)
	diff("max_age", have.MaxAge, want.MaxAge)
	diff("max_bytes", have.MaxBytes, want.MaxBytes)
	diff("max_msg_size", have.MaxMsgSize, want.MaxMsgSize)
	diff("max_msgs", have.MaxMsgs, want.MaxMsgs)
	diff("duplicate_window", have.Duplicates, want.Duplicates)
	diff("num_replicas", have.Replicas, want.Replicas)
	return out
}
