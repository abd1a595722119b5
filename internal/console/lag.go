package console

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/events"
)

// consumerLag is one durable consumer's backlog, as the overview shows it.
type consumerLag struct {
	Stream, Consumer string
	// Pending are messages not yet delivered (the lag); AckPending those
	// delivered and not yet acknowledged.
	Pending    uint64
	AckPending int
}

// lagTimeout bounds how long the overview waits for NATS: a NATS that does
// not answer leaves the lag unknown, not the page unanswered.
const lagTimeout = time.Second

// consumerLags lists the backlog of every durable consumer of every
// stream, read from JetStream: the console need not be told the worker's
// consumer names, and a consumer added later shows up. Without NATS it
// returns an error saying so (the page shows it in place of the table).
func (s *Server) consumerLags(ctx context.Context) ([]consumerLag, error) {
	if s.js == nil {
		return nil, errors.New("the console runs without NATS")
	}
	if events.NotUp(s.js) {
		return nil, errors.New(events.NotUpMessage)
	}
	ctx, cancel := context.WithTimeout(ctx, lagTimeout)
	defer cancel()
	var out []consumerLag
	names := s.js.StreamNames(ctx)
	for name := range names.Name() {
		st, err := s.js.Stream(ctx, name)
		if err != nil {
			return out, fmt.Errorf("stream %s: %w", name, err)
		}
		cons := st.ListConsumers(ctx)
		for ci := range cons.Info() {
			if ci.Config.Durable == "" {
				continue // an ephemeral reader (a refundctl stream read), not a worker
			}
			out = append(out, consumerLag{Stream: name, Consumer: ci.Name, Pending: ci.NumPending, AckPending: ci.NumAckPending})
		}
		if err := cons.Err(); err != nil {
			return out, fmt.Errorf("consumers of %s: %w", name, err)
		}
	}
	if err := names.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return out, fmt.Errorf("streams: %w", err)
	}
	slices.SortFunc(out, func(a, b consumerLag) int {
		if c := strings.Compare(a.Stream, b.Stream); c != 0 {
			return c
		}
		return strings.Compare(a.Consumer, b.Consumer)
	})
	return out, nil
}
