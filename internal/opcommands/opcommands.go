// Package opcommands publishes operator commands (refundflow.Command) to
// the COMMANDS stream and reads their verdicts: the one code path that
// refundctl and the console share, so a command issued from either reaches
// the worker in the same form, on the same subject, with the same headers.
package opcommands

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// NewID returns a random command id: "cmd-" and 24 hex digits, within the
// command id rule of refundflow.Command.Validate.
func NewID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("command id: %w", err)
	}
	return "cmd-" + hex.EncodeToString(b[:]), nil
}

// Ack is what JetStream said about a published command.
type Ack struct {
	Subject  string
	Stream   string
	Sequence uint64
	// Duplicate: a command with this id was already stored (within the
	// stream's duplicate window); nothing new was stored.
	Duplicate bool
}

// PublishError is a failed publish, naming the subject; it wraps the
// client's error. Callers explain it in their own terms (refundctl's exit
// codes, the console's error page).
type PublishError struct {
	Subject string
	Err     error
}

// Error implements error.
func (e *PublishError) Error() string { return fmt.Sprintf("publish to %s: %v", e.Subject, e.Err) }

// Unwrap returns the client's error.
func (e *PublishError) Unwrap() error { return e.Err }

// Publish publishes c on js under events.CommandSubject with Nats-Msg-Id =
// c.ID (so a retried publish is stored once) and waits for the PubAck,
// within ctx. It does not validate c: callers validate first, to say what
// is wrong in their own terms.
func Publish(ctx context.Context, js jetstream.JetStream, c refundflow.Command) (Ack, error) {
	data, err := encodeCommand(c)
	if err != nil {
		return Ack{}, fmt.Errorf("%w: %w", ErrNotEncoded, err)
	}
	subject := events.CommandSubject(string(c.Platform), string(c.Kind), refundflow.OrderKey(data))
	m := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	m.Header.Set(events.HeaderCommandKind, string(c.Kind))
	if c.Operator != "" {
		m.Header.Set(events.HeaderCommandIssuer, c.Operator)
	}
	// The caller's span, if ctx has one, goes with the command: the
	// worker's spans for it continue that trace (docs/tracing.md).
	events.InjectTrace(ctx, m.Header)
	ack, err := js.PublishMsg(ctx, m, jetstream.WithMsgID(c.ID))
	if err != nil {
		return Ack{}, &PublishError{Subject: subject, Err: err}
	}
	return Ack{Subject: subject, Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// errDuplicateInProcess is JetStream's code (clustered streams) for a
// publish whose Nats-Msg-Id is being stored by an earlier publish: a
// refusal that does not mean "not stored" (nats-server's
// JSStreamDuplicateMessageConflict).
const errDuplicateInProcess jetstream.ErrorCode = 10158

// ErrNotEncoded is Publish's error for a command that would not encode:
// nothing was sent.
var ErrNotEncoded = errors.New("encode command")

// NotStored reports whether Publish's error proves the command was not
// stored: it would not encode (ErrNotEncoded), nothing takes its subject,
// the server refused it (a
// JetStream API error: a full stream, a size limit), or the client would
// not send it (too large, a bad subject, a connection draining, a
// reconnect buffer full). Any other failure (no acknowledgement in time,
// a connection closed while waiting), or an error Publish did not return,
// leaves it open: the command may be stored, and sent again it must keep
// its id.
func NotStored(err error) bool {
	if errors.Is(err, ErrNotEncoded) {
		return true
	}
	var pe *PublishError
	if !errors.As(err, &pe) {
		return false
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == errDuplicateInProcess {
		return false // the first publish of the id is being stored
	}
	return NoStream(err) || errors.As(err, &apiErr) || errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadSubject) ||
		errors.Is(err, nats.ErrConnectionDraining) || errors.Is(err, nats.ErrReconnectBufExceeded)
}

// NotStoredWhy says, in an operator's terms, why a command NotStored
// reports as not stored was not.
func NotStoredWhy(err error) string {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, ErrNotEncoded):
		return "the command could not be encoded"
	case NoStream(err):
		return "no JetStream stream takes commands (is the command stream there?)"
	case errors.As(err, &apiErr):
		return "JetStream refused it: " + excerpt.Of(apiErr.Description, 200)
	case errors.Is(err, nats.ErrMaxPayload):
		return "it is larger than NATS takes"
	case errors.Is(err, nats.ErrBadSubject):
		return "its subject is not valid"
	case errors.Is(err, nats.ErrConnectionDraining):
		return "the connection to NATS is closing"
	default:
		return "NATS is unreachable"
	}
}

// NoStream reports whether Publish failed because nothing takes the
// command's subject (no stream: is the stack running?).
func NoStream(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders)
}

// ErrPending is AwaitOutcome's answer when the worker gave no verdict
// within the wait: the command is stored and will be decided later.
var ErrPending = errors.New("no verdict yet")

// AwaitOutcome polls st for the verdict of command id every interval until
// there is one or wait has passed (ErrPending). Other errors of the store,
// and ctx's, are returned as they come.
func AwaitOutcome(ctx context.Context, st *casestore.Store, id string, wait, interval time.Duration) (casestore.CommandOutcome, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		o, err := st.CommandOutcome(ctx, id)
		switch {
		case err == nil:
			return o, nil
		case ctx.Err() != nil:
		case !errors.Is(err, casestore.ErrNotFound):
			return casestore.CommandOutcome{}, err
		}
		select {
		case <-ctx.Done():
			if err := context.Cause(ctx); !errors.Is(err, context.DeadlineExceeded) {
				return casestore.CommandOutcome{}, err
			}
			return casestore.CommandOutcome{}, ErrPending
		case <-tick.C:
		}
	}
}

// encodeCommand is a command as it is published.
func encodeCommand(c refundflow.Command) ([]byte, error) { return json.Marshal(c) }

// decodeCommand reads a published command.
func decodeCommand(data []byte, c *refundflow.Command) error { return json.Unmarshal(data, c) }
