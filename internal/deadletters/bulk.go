package deadletters

import (
	"context"
	"errors"
	"fmt"
)

// Outcome is what a bulk action did to one dead letter.
type Outcome string

// The outcomes of one letter of a bulk action.
const (
	OutcomeRetried   Outcome = "retried"
	OutcomeDiscarded Outcome = "discarded"
	OutcomeRefused   Outcome = "refused"   // settled in between, or permanent without force: unchanged
	OutcomeFailed    Outcome = "failed"    // an error: see Message
	OutcomeNotTried  Outcome = "not_tried" // after a failed publish, the rest is left for another go
)

// Verdict is one dead letter's outcome in a bulk action, with a line for
// the operator.
type Verdict struct {
	ID      int64
	Outcome Outcome
	Message string
}

// RetryEach retries exactly the dead letters ids, each as Retry does (a
// letter settled since the operator confirmed is refused, not retried
// twice). A failed publish (NATS unreachable) leaves the rest not tried.
func (s *Settler) RetryEach(ctx context.Context, ids []int64, o RetryOptions) []Verdict {
	out := make([]Verdict, 0, len(ids))
	for i, id := range ids {
		r, err := s.Retry(ctx, id, o)
		v := verdictOf(id, err)
		if err == nil {
			v.Outcome = OutcomeRetried
			v.Message = fmt.Sprintf("republished dead letter %d to %s", id, r.DeadLetter.Subject)
			if r.Ack != nil {
				v.Message += fmt.Sprintf(" (stream %s seq %d)", r.Ack.Stream, r.Ack.Sequence)
			}
		}
		out = append(out, v)
		var pe *PublishError
		if errors.As(err, &pe) {
			for _, rest := range ids[i+1:] {
				out = append(out, Verdict{ID: rest, Outcome: OutcomeNotTried,
					Message: fmt.Sprintf("dead letter %d not tried: a publish before it failed; nothing changed", rest)})
			}
			break
		}
	}
	return out
}

// DiscardEach discards exactly the dead letters ids with one note, each as
// Discard does.
func (s *Settler) DiscardEach(ctx context.Context, ids []int64, by, note string) []Verdict {
	out := make([]Verdict, 0, len(ids))
	for _, id := range ids {
		_, err := s.Discard(ctx, id, by, note)
		v := verdictOf(id, err)
		if err == nil {
			v.Outcome, v.Message = OutcomeDiscarded, fmt.Sprintf("discarded dead letter %d", id)
		}
		out = append(out, v)
	}
	return out
}

func verdictOf(id int64, err error) Verdict {
	var refused *RefusedError
	switch {
	case err == nil:
		return Verdict{ID: id}
	case errors.As(err, &refused), errors.Is(err, ErrNotFound):
		return Verdict{ID: id, Outcome: OutcomeRefused, Message: err.Error()}
	}
	return Verdict{ID: id, Outcome: OutcomeFailed, Message: err.Error()}
}
