package casestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// StepStatus is the state of a step attempt.
type StepStatus string

// Step statuses. An intent row without a result means a previous attempt may
// have reached the platform: ask the platform before calling again.
const (
	StepIntent StepStatus = "intent"
	StepDone   StepStatus = "done"
	StepFailed StepStatus = "failed"
)

// StepAttempt is one recorded step of a case: a platform call (or the intent
// to make one), with what was sent and what came back.
type StepAttempt struct {
	ID             int64
	CaseID         int64
	Step           string
	IdempotencyKey string // "" for reads
	Status         StepStatus
	Request        string // request summary (JSON), never secrets
	Outcome        string // response summary (JSON)
	RequestID      string // the platform's requestId
	ErrorCode      string
	ErrorMessage   string
	Begins         int // how many times BeginStep saw this key
	// Refusals is how many attempts in a row under this key the platform
	// refused while it was an intent (MarkAttempt with refused; one that
	// ended otherwise starts the count again): resends, since a refused
	// first attempt closes its intent.
	Refusals  int
	StartedAt time.Time
	// LastAttemptAt is when an attempt under this key last began (BeginStep)
	// or last ended without a result (MarkAttempt): the newest moment a call
	// of it was on its way (StartedAt is when the first began).
	LastAttemptAt time.Time
	FinishedAt    time.Time // zero while an intent
}

type stepRow struct {
	ID             int64          `db:"id"`
	CaseID         int64          `db:"case_id"`
	Step           string         `db:"step"`
	IdempotencyKey sql.NullString `db:"idempotency_key"`
	Status         string         `db:"status"`
	Request        string         `db:"request"`
	Outcome        string         `db:"outcome"`
	RequestID      string         `db:"request_id"`
	ErrorCode      string         `db:"error_code"`
	ErrorMessage   string         `db:"error_message"`
	Begins         int            `db:"begins"`
	Refusals       int            `db:"refusals"`
	StartedAt      int64          `db:"started_at"`
	LastAttemptAt  sql.NullInt64  `db:"last_attempt_at"`
	FinishedAt     sql.NullInt64  `db:"finished_at"`
}

const stepColumns = `id, case_id, step, idempotency_key, status, request, outcome, request_id,
	error_code, error_message, begins, refusals, started_at, last_attempt_at, finished_at`

func (r stepRow) toStep() StepAttempt {
	last := r.LastAttemptAt
	if !last.Valid { // a row from before migration 5
		last = sql.NullInt64{Int64: r.StartedAt, Valid: true}
	}
	return StepAttempt{
		ID: r.ID, CaseID: r.CaseID, Step: r.Step, IdempotencyKey: r.IdempotencyKey.String,
		Status: StepStatus(r.Status), Request: r.Request, Outcome: r.Outcome, RequestID: r.RequestID,
		ErrorCode: r.ErrorCode, ErrorMessage: r.ErrorMessage, Begins: r.Begins, Refusals: r.Refusals,
		StartedAt: time.UnixMilli(r.StartedAt).UTC(), LastAttemptAt: fromMS(last), FinishedAt: fromMS(r.FinishedAt),
	}
}

// ErrorAt is when the attempt's recorded error happened: when the step
// finished, else (an open intent) when its newest attempt ended or began,
// else when it began. RecentStepErrors orders by it.
func (a StepAttempt) ErrorAt() time.Time {
	switch {
	case !a.FinishedAt.IsZero():
		return a.FinishedAt
	case !a.LastAttemptAt.IsZero():
		return a.LastAttemptAt
	}
	return a.StartedAt
}

// BeginStep records the intent to run a side-effecting step before the
// platform is called, and must be committed before the call. If the key is
// new it inserts an intent row and returns it with prior == false. If the key
// exists it returns the existing row unchanged (except its Begins count,
// and while it is an intent its LastAttemptAt, now, and the error of the
// attempt before, cleared) with
// prior == true: when that row is still an intent, an earlier attempt may have
// reached the platform, so the caller must reconcile (query the platform)
// before calling again; when it is done, the step already took effect.
// A key that belongs to another case or step is ErrKeyConflict.
func (tx *Tx) BeginStep(ctx context.Context, caseID int64, step, idempotencyKey, request string) (attempt StepAttempt, prior bool, err error) {
	if idempotencyKey == "" {
		return StepAttempt{}, false, errors.New("begin step: empty idempotency key")
	}
	// A new key is the usual case: one INSERT, and the row is known without
	// reading it back. Only a key already present is read and counted.
	now := ms64(tx.now)
	id, inserted, err := tx.insert(ctx, `INSERT INTO step_attempts (case_id, step, idempotency_key, status, request, started_at, last_attempt_at)
		VALUES (?, ?, ?, 'intent', ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING`,
		caseID, step, idempotencyKey, request, now, now)
	if err != nil {
		return StepAttempt{}, false, fmt.Errorf("begin step %s for case %d: %w", step, caseID, err)
	}
	if inserted {
		return stepRow{ID: id, CaseID: caseID, Step: step, IdempotencyKey: sql.NullString{String: idempotencyKey, Valid: true},
			Status: string(StepIntent), Request: request, Begins: 1, StartedAt: now,
			LastAttemptAt: sql.NullInt64{Int64: now, Valid: true}}.toStep(), false, nil
	}
	r, err := tx.lockStep(ctx, idempotencyKey)
	if err != nil {
		return StepAttempt{}, false, fmt.Errorf("begin step %s: %w", step, err)
	}
	if r.CaseID != caseID || r.Step != step {
		return StepAttempt{}, false, fmt.Errorf("begin step %s key %q: used by case %d step %s: %w",
			step, idempotencyKey, r.CaseID, r.Step, ErrKeyConflict)
	}
	// An intent begun again starts a new attempt: the error an earlier one
	// got (MarkAttempt) is no longer the newest answer.
	if _, err := tx.tx.ExecContext(ctx, `UPDATE step_attempts SET begins = begins + 1,
		last_attempt_at = CASE status WHEN 'intent' THEN ? ELSE last_attempt_at END,
		error_code = CASE status WHEN 'intent' THEN '' ELSE error_code END,
		error_message = CASE status WHEN 'intent' THEN '' ELSE error_message END WHERE id = ?`, now, r.ID); err != nil {
		return StepAttempt{}, false, fmt.Errorf("begin step %s: %w", step, err)
	}
	r.Begins++
	if StepStatus(r.Status) == StepIntent {
		r.LastAttemptAt = sql.NullInt64{Int64: now, Valid: true}
		r.ErrorCode, r.ErrorMessage = "", ""
	}
	return r.toStep(), true, nil
}

// MarkAttempt records that an attempt under the intent with this key ended
// now without a result (a timeout, a lost answer, a call abandoned at
// shutdown, a resend the platform refused): the request may still be on
// its way to the platform, so the in-flight window counts from now
// (StepAttempt.LastAttemptAt). errorCode and errorMessage are what the
// attempt got, kept on the intent (until the next attempt or its result):
// the engine names the platform's last answer when it stops sending the
// step again, and the console shows why the intent is open. refused: the
// platform refused this attempt (it certainly did not apply it), counted
// in StepAttempt.Refusals, which an attempt that ended otherwise (no
// answer, a 5xx) sets back to 0: the count is of refusals in a row. A
// finished step is left as it is; an unknown key is ErrNotFound.
func (tx *Tx) MarkAttempt(ctx context.Context, idempotencyKey, errorCode, errorMessage string, refused bool) error {
	n := 0
	if refused {
		n = 1
	}
	res, err := tx.tx.ExecContext(ctx, `UPDATE step_attempts SET last_attempt_at = ?, error_code = ?, error_message = ?,
		refusals = CASE WHEN ? = 1 THEN refusals + 1 ELSE 0 END WHERE idempotency_key = ? AND status = 'intent'`,
		ms64(tx.now), errorCode, errorMessage, n, idempotencyKey)
	if err != nil {
		return fmt.Errorf("mark attempt %q: %w", idempotencyKey, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		if _, err := tx.stepByKey(ctx, idempotencyKey); err != nil {
			return fmt.Errorf("mark attempt %q: %w", idempotencyKey, err)
		}
	}
	return nil
}

// StepResult is the outcome FinishStep records.
type StepResult struct {
	Status       StepStatus // StepDone or StepFailed
	Outcome      string     // response summary (JSON)
	RequestID    string     // the platform's requestId
	ErrorCode    string
	ErrorMessage string
}

// FinishStep records the result of the step with the given key. Finishing a
// step that is already finished with the same status is a no-op (a redelivered
// result); changing a finished step's status is refused. On PostgreSQL the
// statement is queued (pipeline.go).
func (tx *Tx) FinishStep(ctx context.Context, idempotencyKey string, res StepResult) error {
	if res.Status != StepDone && res.Status != StepFailed {
		return fmt.Errorf("finish step %q: status %q: want done or failed", idempotencyKey, res.Status)
	}
	// Only an intent is finished: the condition is in the UPDATE (which,
	// on PostgreSQL, checks it again on the row as it is once any other
	// writer of it is done), and the row is read only when it does not
	// hold.
	return tx.laterChecked(ctx, `UPDATE step_attempts SET status = ?, outcome = ?, request_id = ?,
		error_code = ?, error_message = ?, finished_at = ? WHERE idempotency_key = ? AND status = 'intent'`,
		[]any{string(res.Status), res.Outcome, res.RequestID, res.ErrorCode, res.ErrorMessage, ms64(tx.now), idempotencyKey},
		func(n int64, err error) error {
			switch {
			case err != nil:
				return fmt.Errorf("finish step %q: %w", idempotencyKey, err)
			case n == 0:
				return errRecheck
			}
			return nil
		},
		func(ctx context.Context, q sqlx.QueryerContext) error {
			var r stepRow
			if err := sqlx.GetContext(ctx, q, &r, `SELECT `+stepColumns+` FROM step_attempts WHERE idempotency_key = ?`,
				idempotencyKey); err != nil {
				return fmt.Errorf("finish step %q: %w", idempotencyKey, notFound(err))
			}
			if StepStatus(r.Status) == res.Status {
				return nil
			}
			return fmt.Errorf("finish step %q: already %s", idempotencyKey, r.Status)
		})
}

// RecordStep records a finished read-only step (render, query, list): no
// idempotency key, started and finished now. On PostgreSQL the statement
// is queued (pipeline.go).
func (tx *Tx) RecordStep(ctx context.Context, caseID int64, step, request string, res StepResult) error {
	if res.Status != StepDone && res.Status != StepFailed {
		return fmt.Errorf("record step %s: status %q: want done or failed", step, res.Status)
	}
	return tx.later(ctx, fmt.Sprintf("record step %s for case %d", step, caseID),
		`INSERT INTO step_attempts (case_id, step, status, request, outcome,
		request_id, error_code, error_message, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		caseID, step, string(res.Status), request, res.Outcome, res.RequestID, res.ErrorCode, res.ErrorMessage,
		ms64(tx.now), ms64(tx.now))
}

// StepByKey returns the attempt with the given idempotency key, or ErrNotFound.
func (tx *Tx) StepByKey(ctx context.Context, idempotencyKey string) (StepAttempt, error) {
	r, err := tx.stepByKey(ctx, idempotencyKey)
	if err != nil {
		return StepAttempt{}, fmt.Errorf("step %q: %w", idempotencyKey, err)
	}
	return r.toStep(), nil
}

func (tx *Tx) stepByKey(ctx context.Context, key string) (stepRow, error) {
	r, err := getOne[stepRow](ctx, tx, `SELECT `+stepColumns+` FROM step_attempts WHERE idempotency_key = ?`, key)
	return r, notFound(err)
}

// lockStep is stepByKey for a read that decides a write of the row: the
// row stays locked until the transaction ends (Tx.forUpdate).
func (tx *Tx) lockStep(ctx context.Context, key string) (stepRow, error) {
	r, err := getOne[stepRow](ctx, tx, `SELECT `+stepColumns+` FROM step_attempts WHERE idempotency_key = ?`+tx.forUpdate(), key)
	return r, notFound(err)
}

// OpenIntent returns the case's newest step that is still an intent (a call
// that may or may not have reached the platform), or ErrNotFound.
func (tx *Tx) OpenIntent(ctx context.Context, caseID int64) (StepAttempt, error) {
	return openIntent(ctx, tx.tx, caseID)
}

// OpenIntent returns the case's newest step that is still an intent, or ErrNotFound.
func (s *Store) OpenIntent(ctx context.Context, caseID int64) (StepAttempt, error) {
	return openIntent(ctx, s.r, caseID)
}

func openIntent(ctx context.Context, q sqlx.QueryerContext, caseID int64) (StepAttempt, error) {
	var r stepRow
	err := sqlx.GetContext(ctx, q, &r, `SELECT `+stepColumns+` FROM step_attempts
		WHERE case_id = ? AND status = 'intent' ORDER BY id DESC LIMIT 1`, caseID)
	if err != nil {
		return StepAttempt{}, fmt.Errorf("open intent of case %d: %w", caseID, notFound(err))
	}
	return r.toStep(), nil
}

// CaseToDecide returns, in one read, what the engine decides on: the
// case, its open intent (nil when it has none) and the events of its order
// it has not seen (OrderEventsAfter its OrderEventsSeen, when its
// OrderEventsLatest says there are any; none otherwise). On PostgreSQL
// each read is a round trip, and this one is made at every turn of every
// input; the order's events, read apart, were one more at the turn after
// an order event, which most refunds get (docs/benchmarks.md).
func (s *Store) CaseToDecide(ctx context.Context, id int64) (Case, *StepAttempt, []OrderEvent, error) {
	var rows []struct {
		caseRow
		Intent stepRow       `db:"i"`
		Event  orderEventRow `db:"e"`
	}
	if err := sqlx.SelectContext(ctx, s.r, &rows, caseToDecide, id); err != nil {
		return Case{}, nil, nil, fmt.Errorf("get case %d: %w", id, err)
	}
	if len(rows) == 0 {
		return Case{}, nil, nil, fmt.Errorf("get case %d: %w", id, ErrNotFound)
	}
	// One row per open intent and unseen event; the newest intent's rows
	// come first, one per event in order.
	first := rows[0]
	var evs []OrderEvent
	for _, r := range rows {
		if r.Intent.ID != first.Intent.ID {
			break
		}
		if r.Event.ID != 0 {
			evs = append(evs, r.Event.event())
		}
	}
	if first.Intent.ID == 0 {
		return first.toCase(), nil, evs, nil
	}
	it := first.Intent.toStep()
	return first.toCase(), &it, evs, nil
}

// caseToDecide joins the case to its open intents (on step_attempts_intent,
// the partial index of open intents: a MAX(id) subquery in the ON clause
// made PostgreSQL scan the table, 0.85 ms a read instead of 0.02) and to
// its order's unseen events (on order_events_order). The joined columns are
// named "i.<column>" and "e.<column>" for the nested structs, and
// coalesced where the struct's field cannot hold a NULL: id 0 is none.
var caseToDecide = `SELECT ` + qualified("c.", caseColumns) + `,
	COALESCE(i.id, 0) AS "i.id", COALESCE(i.case_id, 0) AS "i.case_id", COALESCE(i.step, '') AS "i.step",
	i.idempotency_key AS "i.idempotency_key", COALESCE(i.status, '') AS "i.status",
	COALESCE(i.request, '') AS "i.request", COALESCE(i.outcome, '') AS "i.outcome",
	COALESCE(i.request_id, '') AS "i.request_id", COALESCE(i.error_code, '') AS "i.error_code",
	COALESCE(i.error_message, '') AS "i.error_message", COALESCE(i.begins, 0) AS "i.begins",
	COALESCE(i.refusals, 0) AS "i.refusals",
	COALESCE(i.started_at, 0) AS "i.started_at", i.last_attempt_at AS "i.last_attempt_at",
	i.finished_at AS "i.finished_at",
	COALESCE(e.id, 0) AS "e.id", COALESCE(e.platform, '') AS "e.platform", COALESCE(e.order_id, '') AS "e.order_id",
	COALESCE(e.msg_id, '') AS "e.msg_id", COALESCE(e.message_type, '') AS "e.message_type", COALESCE(e.kind, '') AS "e.kind",
	COALESCE(e.order_status, '') AS "e.order_status", COALESCE(e.ended, 0) AS "e.ended",
	COALESCE(e.close_reason, '') AS "e.close_reason", COALESCE(e.total_amount, 0) AS "e.total_amount",
	COALESCE(e.product_amount, 0) AS "e.product_amount", COALESCE(e.shipping_fee, 0) AS "e.shipping_fee",
	COALESCE(e.body, '') AS "e.body", COALESCE(e.received_at, 0) AS "e.received_at"
	FROM cases c LEFT JOIN step_attempts i ON i.case_id = c.id AND i.status = 'intent'
	LEFT JOIN order_events e ON c.order_events_latest > c.order_events_seen
		AND e.platform = c.platform AND e.order_id = c.order_id AND e.id > c.order_events_seen
	WHERE c.id = ? ORDER BY i.id DESC, e.id`

// qualified prefixes each column of a comma-separated list, naming the
// result for the column (SQLite leaves an unaliased result's name
// unspecified).
func qualified(prefix, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		c = strings.TrimSpace(c)
		cols[i] = prefix + c + " AS " + c
	}
	return strings.Join(cols, ", ")
}

// Steps returns every step attempt of a case, oldest first.
func (s *Store) Steps(ctx context.Context, caseID int64) ([]StepAttempt, error) {
	var rows []stepRow
	if err := sqlx.SelectContext(ctx, s.r, &rows, `SELECT `+stepColumns+` FROM step_attempts
		WHERE case_id = ? ORDER BY id`, caseID); err != nil {
		return nil, fmt.Errorf("steps of case %d: %w", caseID, err)
	}
	out := make([]StepAttempt, len(rows))
	for i, r := range rows {
		out[i] = r.toStep()
	}
	return out, nil
}
