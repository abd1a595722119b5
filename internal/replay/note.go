package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/refundhub/refundhub/internal/casestore"
)

// WhatItDoes says what a replay can achieve, for the operator who asks
// for one: the worker's inbox drops a callback it already applied.
const WhatItDoes = "The worker's inbox drops a callback it has already applied, so a replay re-applies only " +
	"what was never applied (for example after a stream consumer was reset past it)."

// Verdict says in a few words what the stream did with a replay: stored
// it again as a new message, or kept the copy it had (inside its duplicate
// window a message with the same Nats-Msg-Id is not stored twice).
func (s Stored) Verdict() string {
	if s.Duplicate {
		return fmt.Sprintf("already stored (duplicate window): the stream kept seq %d and stored nothing new", s.Seq)
	}
	return fmt.Sprintf("stored again as seq %d", s.Seq)
}

// Noted is a replay into the stream as a case's timeline records it.
type Noted struct {
	CaseID   int64
	Item     Item
	Stored   Stored
	Operator string
}

// Note records a replay on the timeline of the case whose callback was
// replayed, with the operator's name, so the case page shows who sent
// which message again and what the stream did with it. The worker records
// what it then did (nothing, when its inbox had the callback already). A
// case that does not exist gets no note.
func Note(ctx context.Context, st *casestore.Store, n Noted) error {
	by := n.Operator
	if by == "" {
		by = "an operator"
	}
	summary := fmt.Sprintf("callback seq %d (%s) replayed into %s by %s: %s", n.Item.Seq, n.Item.Subject, n.Stored.Stream, by,
		n.Stored.Verdict())
	detail, err := json.Marshal(map[string]any{"action": "replayed", "operator": by, "stream": n.Stored.Stream, "seq": n.Item.Seq,
		"msgId": n.Item.MsgID, "storedSeq": n.Stored.Seq, "duplicate": n.Stored.Duplicate})
	if err != nil {
		return err
	}
	err = st.Update(ctx, func(tx *casestore.Tx) error {
		if _, err := tx.GetCase(ctx, n.CaseID); errors.Is(err, casestore.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		return tx.AppendTimeline(ctx, casestore.TimelineEntry{CaseID: n.CaseID, Kind: casestore.KindNote, Summary: summary, Detail: detail})
	})
	if err != nil {
		return fmt.Errorf("note the replay of seq %d on case %d: %w", n.Item.Seq, n.CaseID, err)
	}
	return nil
}
