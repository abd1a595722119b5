package casestore

import (
	"context"
	"fmt"
	"time"
)

// Verdicts of a command (command_outcomes.verdict).
const (
	// VerdictApplied: the worker applied the command to its case.
	VerdictApplied = "applied"
	// VerdictRejected: the worker refused the command (its decision, or a
	// dead letter); nothing changed, except after worker_failed (the worker
	// failed on it, a bug), whose verdict names the case it may have
	// changed.
	VerdictRejected = "rejected"
)

// CommandOutcome is the worker's record of what it made of an operator
// command: the verdict refundctl reports after publishing it.
type CommandOutcome struct {
	CommandID string
	Verdict   string // VerdictApplied or VerdictRejected
	CaseID    int64  // the case it was applied to or refused on; 0 for none
	Code      string // the decision's code, or the dead-letter reason
	Reason    string // the decision's reason, or the dead letter's error
	// DeadLetterID is the dead letter the command became, 0 when a decision
	// gave the verdict.
	DeadLetterID int64
	RecordedAt   time.Time // zero: the transaction's time
}

type outcomeRow struct {
	CommandID    string `db:"command_id"`
	Verdict      string `db:"verdict"`
	CaseID       int64  `db:"case_id"`
	Code         string `db:"code"`
	Reason       string `db:"reason"`
	DeadLetterID int64  `db:"dead_letter_id"`
	RecordedAt   int64  `db:"recorded_at"`
}

// RecordCommandOutcome records a command's verdict in the transaction of the
// decision or dead letter that gives it. A verdict a decision gave is
// final: a redelivery decided again later (after a crash before the inbox
// row) does not replace it. A dead letter's verdict gives way to the next
// one, since a retried dead letter is decided (or dies) again. On
// PostgreSQL the statement is queued (pipeline.go).
func (tx *Tx) RecordCommandOutcome(ctx context.Context, o CommandOutcome) error {
	if o.CommandID == "" {
		return fmt.Errorf("command outcome: empty command id")
	}
	if o.Verdict != VerdictApplied && o.Verdict != VerdictRejected {
		return fmt.Errorf("command outcome %q: verdict %q", o.CommandID, o.Verdict)
	}
	at := o.RecordedAt
	if at.IsZero() {
		at = tx.now
	}
	return tx.later(ctx, fmt.Sprintf("command outcome %q", o.CommandID), `INSERT INTO command_outcomes
		(command_id, verdict, case_id, code, reason, dead_letter_id, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (command_id) DO UPDATE SET verdict = excluded.verdict, case_id = excluded.case_id,
			code = excluded.code, reason = excluded.reason, dead_letter_id = excluded.dead_letter_id,
			recorded_at = excluded.recorded_at
		WHERE command_outcomes.dead_letter_id <> 0`,
		o.CommandID, o.Verdict, o.CaseID, o.Code, o.Reason, o.DeadLetterID, ms64(at))
}

// CommandOutcome returns the verdict recorded for a command, or ErrNotFound
// while the worker has not given one (the command is pending).
func (s *Store) CommandOutcome(ctx context.Context, commandID string) (CommandOutcome, error) {
	var r outcomeRow
	err := s.r.GetContext(ctx, &r, `SELECT command_id, verdict, case_id, code, reason, dead_letter_id, recorded_at
		FROM command_outcomes WHERE command_id = ?`, commandID)
	if err != nil {
		return CommandOutcome{}, fmt.Errorf("command outcome %q: %w", commandID, notFound(err))
	}
	return CommandOutcome{CommandID: r.CommandID, Verdict: r.Verdict, CaseID: r.CaseID, Code: r.Code, Reason: r.Reason,
		DeadLetterID: r.DeadLetterID, RecordedAt: time.UnixMilli(r.RecordedAt).UTC()}, nil
}
