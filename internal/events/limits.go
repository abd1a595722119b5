package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"
)

// A consumer's MaxDeliver ends a message's deliveries without a trace the
// worker can see: the server stops delivering it and publishes an advisory
// on core NATS, to whoever listens at that moment. The worker that handled
// the message may be the reason (it ended while handling it each time), so
// nobody may be listening. The limit stream (WorkStreamsConfig.LimitStream)
// listens for it: it keeps each advisory of the worker's consumers until a
// worker is up to turn it into a dead letter (internal/casework).

// maxDeliveriesPrefix is where the server publishes a consumer's delivery
// limit advisories: <prefix>.<stream>.<consumer>.
const maxDeliveriesPrefix = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"

// maxDeliveriesType is the advisory's schema type, the one the server
// writes in its "type" field.
const maxDeliveriesType = "io.nats.jetstream.advisory.v1.max_deliver"

// DefaultLimitStreamName is the stream the delivery limit advisories are
// kept in.
const DefaultLimitStreamName = "DELIVERY_LIMITS"

// MaxDeliveriesSubject is the subject of the server's advisory that
// consumer on stream stopped delivering a message.
func MaxDeliveriesSubject(stream, consumer string) string {
	return maxDeliveriesPrefix + "." + stream + "." + consumer
}

// DeliveryLimit is the server's advisory that a consumer stopped
// delivering a message: the stream copy (Stream, StreamSeq) and how often
// it was delivered.
type DeliveryLimit struct {
	Type       string `json:"type"`
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// ParseDeliveryLimit reads a delivery limit advisory as the server writes
// it. Anything else (another advisory type, no stream or sequence) is an
// error naming what is missing.
func ParseDeliveryLimit(b []byte) (DeliveryLimit, error) {
	var a DeliveryLimit
	if err := json.Unmarshal(b, &a); err != nil {
		return DeliveryLimit{}, fmt.Errorf("delivery limit advisory: %w", err)
	}
	switch {
	case a.Type != maxDeliveriesType:
		return DeliveryLimit{}, fmt.Errorf("delivery limit advisory: type %q, want %q", a.Type, maxDeliveriesType)
	case a.Stream == "" || a.Consumer == "":
		return DeliveryLimit{}, errors.New("delivery limit advisory: no stream or consumer")
	case a.StreamSeq == 0:
		return DeliveryLimit{}, errors.New("delivery limit advisory: no stream sequence")
	}
	return a, nil
}

// EnsureLimitStream creates or updates the limit stream, listening for the
// delivery limit advisories of every consumer on each of streams, beside
// the subjects it has already: workers under different consumer or stream
// names (two fleets, a rename) share it without rewriting each other's
// subjects, each reading its own (a consumer filtered on
// MaxDeliveriesSubject). Limits retention for as long as dead
// letters are kept: a worker down for days still finds them. Running it
// again changes nothing.
func EnsureLimitStream(ctx context.Context, js jetstream.JetStream, c WorkStreamsConfig, streams ...string) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("ensure limit stream: %w", err)
	}
	var subjects []string
	// Kept: a fleet with other stream names shares it too.
	if s, err := js.Stream(ctx, c.LimitStream); err == nil {
		subjects = slices.Clone(s.CachedInfo().Config.Subjects)
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("ensure stream %s: %w", c.LimitStream, err)
	}
	for _, s := range streams {
		if sub := MaxDeliveriesSubject(s, "*"); !slices.Contains(subjects, sub) {
			subjects = append(subjects, sub)
		}
	}
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        c.LimitStream,
		Description: "the server's advisories that a refundhub worker consumer stopped delivering a message",
		Subjects:    subjects,
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.DeadLetterMaxAge,
		MaxBytes:    64 << 20,
		MaxMsgSize:  16 << 10,
		MaxMsgs:     -1,
		Duplicates:  DefaultDuplicates,
		Replicas:    c.Replicas,
	})
	if err != nil {
		return fmt.Errorf("ensure stream %s: %w", c.LimitStream, err)
	}
	return nil
}
