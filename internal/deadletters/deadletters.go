// Package deadletters is what an operator does with a dead letter, in one
// place for refundctl and the console: retry it (republish the original
// message, then mark the row retried), discard it (mark it discarded with
// who and why), and the refusals that keep either from happening twice or
// from retrying a permanent failure unforced. Both front ends call the
// same Settler, so a dead letter is refused for the same reasons, with the
// same words, whichever of them the operator used.
//
// The rules of the protocol itself (which reasons are permanent, how a
// retry's message is rebuilt) belong to package events; the rows to
// package casestore.
package deadletters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/excerpt"
)

// Publisher stores a message in JetStream and returns its ack: what a
// retry needs of a jetstream.JetStream.
type Publisher interface {
	PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// MaxNote bounds a discard note: a sentence or two for the record, not a
// document.
const MaxNote = 500

// ErrNotFound is wrapped by the error for a dead letter id with no row.
var ErrNotFound = errors.New("not found")

// ErrNoteRequired and ErrNoteTooLong are a discard's bad notes
// (CheckNote); each front end names its own field in the message.
var (
	ErrNoteRequired = errors.New("a note saying why is required")
	ErrNoteTooLong  = fmt.Errorf("a note is 1 to %d characters", MaxNote)
)

// Refusal says why a retry or discard was refused; a stable code that the
// console answers as its own error code.
type Refusal string

// The refusals. Each leaves the dead letter as it was.
const (
	RefusedRetried   Refusal = "dead_letter_retried"   // retried already
	RefusedDiscarded Refusal = "dead_letter_discarded" // discarded already
	RefusedPermanent Refusal = "permanent_failure"     // a permanent failure retried without force
)

// RefusedError is a valid request the dead letter's state forbids. Nothing
// was published or written.
type RefusedError struct {
	ID     int64
	Reason Refusal
	msg    string
}

// Error implements error: one line for the operator, ending in what
// (nothing) changed.
func (e *RefusedError) Error() string { return e.msg }

// PublishError is a retry whose republish failed: nothing was marked.
type PublishError struct {
	Subject string
	Err     error
}

// Error implements error.
func (e *PublishError) Error() string { return fmt.Sprintf("publish %s: %v", e.Subject, e.Err) }

// Unwrap returns the publisher's error.
func (e *PublishError) Unwrap() error { return e.Err }

// NotMarkedError is a retry that was republished but could not be marked
// retried (another process retried it at the same instant, or the store
// failed): the operator must know the message went out.
type NotMarkedError struct{ err error }

// Error implements error.
func (e *NotMarkedError) Error() string { return e.err.Error() }

// Unwrap returns the store's error.
func (e *NotMarkedError) Unwrap() error { return e.err }

// Settler retries and discards dead letters in one store. Its retries are
// serialised: two retries of one dead letter through the same Settler (two
// console operators clicking at once) publish once, the second refused. A
// retry through another process at the same instant may still publish
// twice; the worker's inbox drops the second copy.
type Settler struct {
	store *casestore.Store
	pub   Publisher
	cfg   Config
	mu    sync.Mutex
}

// Config is how a Settler speaks and waits.
type Config struct {
	// ForceName is how the front end names the force option in a refusal
	// ("--force" for refundctl, "the force box" for the console).
	ForceName string
	// PublishTimeout bounds a republish (default 5s).
	PublishTimeout time.Duration
}

// New returns a Settler over a store opened for writing. pub may be nil
// when only discards are wanted: a retry then fails.
func New(store *casestore.Store, pub Publisher, cfg Config) *Settler {
	if cfg.ForceName == "" {
		cfg.ForceName = "force"
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 5 * time.Second
	}
	return &Settler{store: store, pub: pub, cfg: cfg}
}

// Load returns dead letter id, or an error wrapping ErrNotFound.
func Load(ctx context.Context, st *casestore.Store, id int64) (casestore.DeadLetter, error) {
	d, err := st.DeadLetter(ctx, id)
	if errors.Is(err, casestore.ErrNotFound) {
		return casestore.DeadLetter{}, fmt.Errorf("dead letter %d %w", id, ErrNotFound)
	}
	return d, err
}

// Pending reports whether d is neither retried nor discarded.
func Pending(d casestore.DeadLetter) bool { return d.RetriedAt.IsZero() && d.DiscardedAt.IsZero() }

// RefuseRetry refuses to retry a dead letter that was retried or discarded
// already; nil when it is pending.
func RefuseRetry(d casestore.DeadLetter) error {
	switch {
	case !d.DiscardedAt.IsZero():
		return &RefusedError{ID: d.ID, Reason: RefusedDiscarded, msg: fmt.Sprintf(
			"dead letter %d was discarded at %s by %s (%s): a discard is final; nothing changed", d.ID,
			When(d.DiscardedAt), excerpt.Line(d.DiscardedBy, 64), excerpt.Line(d.DiscardNote, 120))}
	case !d.RetriedAt.IsZero():
		return &RefusedError{ID: d.ID, Reason: RefusedRetried, msg: fmt.Sprintf(
			"dead letter %d was already retried at %s; nothing changed", d.ID, When(d.RetriedAt))}
	}
	return nil
}

// RefuseDiscard refuses to discard a dead letter that was retried or
// discarded already; nil when it is pending.
func RefuseDiscard(d casestore.DeadLetter) error {
	switch {
	case !d.DiscardedAt.IsZero():
		return &RefusedError{ID: d.ID, Reason: RefusedDiscarded, msg: fmt.Sprintf(
			"dead letter %d was already discarded at %s by %s (%s); nothing changed", d.ID,
			When(d.DiscardedAt), excerpt.Line(d.DiscardedBy, 64), excerpt.Line(d.DiscardNote, 120))}
	case !d.RetriedAt.IsZero():
		return &RefusedError{ID: d.ID, Reason: RefusedRetried, msg: fmt.Sprintf(
			"dead letter %d was retried at %s: its message went out, there is nothing to discard; nothing changed",
			d.ID, When(d.RetriedAt))}
	}
	return nil
}

// RefusePermanent refuses to retry d unforced when it is a permanent
// failure (Permanent); nil when it is not. forceName is how the front end
// names force: refundctl, which reads a console's refusal through its API,
// words it with its own flag, as on the host.
func RefusePermanent(d casestore.DeadLetter, forceName string) error {
	if r := events.StoredDeadReason(d.Reason); r.Permanent() {
		return &RefusedError{ID: d.ID, Reason: RefusedPermanent, msg: fmt.Sprintf(
			"dead letter %d is a permanent failure (%s): retried unchanged it fails again; "+
				"retry with %s once the worker is fixed, or discard it", d.ID, r, forceName)}
	}
	return nil
}

// PermanentReasons names the reasons whose retry needs force, as "a, b".
func PermanentReasons() string {
	var names []string
	for _, r := range events.DeadReasons() {
		if r.Permanent() {
			names = append(names, string(r))
		}
	}
	return strings.Join(names, ", ")
}

// Permanent reports whether d's reason fails again when retried unchanged
// (events.DeadReason.Permanent, after older workers' spellings).
func Permanent(d casestore.DeadLetter) bool { return events.StoredDeadReason(d.Reason).Permanent() }

// RetryOptions are how a retry goes.
type RetryOptions struct {
	// Force retries a permanent failure too.
	Force bool
	// DryRun builds the message and publishes nothing.
	DryRun bool
	// Operator is who retries it: sent with the message
	// (events.HeaderRetryBy), so a dead letter it becomes names them.
	Operator string
}

// Retried is a retry's outcome.
type Retried struct {
	DeadLetter casestore.DeadLetter // as it was before the retry
	Msg        *nats.Msg            // what was (or, in a dry run, would be) published
	Ack        *jetstream.PubAck    // nil in a dry run
}

// Retry republishes dead letter id (events.RetryMsg) in ctx's trace and
// marks it retried, after checking that it is pending and, without
// o.Force, not a permanent failure. The store is read again under the
// Settler's lock, so a letter settled since the caller looked is refused,
// not retried twice.
func (s *Settler) Retry(ctx context.Context, id int64, o RetryOptions) (Retried, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := Load(ctx, s.store, id)
	if err != nil {
		return Retried{}, err
	}
	res := Retried{DeadLetter: d}
	if err := RefuseRetry(d); err != nil {
		return res, err
	}
	if !o.Force {
		if err := RefusePermanent(d, s.cfg.ForceName); err != nil {
			return res, err
		}
	}
	if d.Subject == "" {
		return res, fmt.Errorf("dead letter %d has no subject to republish to", d.ID)
	}
	m, err := events.RetryMsg(events.StoredDeadLetter{ID: d.ID, MsgID: d.MsgID, Subject: d.Subject, Header: d.Headers,
		Data: d.Payload, RetriedBy: o.Operator})
	if err != nil {
		return res, err
	}
	res.Msg = m
	if o.DryRun {
		return res, nil // a dry run publishes nothing, so it carries no trace
	}
	// The retry is the caller's command: the message joins its trace
	// (refundctl's run, the console's retry span, an API caller's),
	// keeping the first one for the worker to link to.
	events.InjectTrace(ctx, m.Header)
	if s.pub == nil {
		return res, &PublishError{Subject: d.Subject, Err: errors.New("no NATS connection")}
	}
	pctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
	defer cancel()
	ack, err := s.pub.PublishMsg(pctx, m)
	if err != nil {
		return res, &PublishError{Subject: d.Subject, Err: err}
	}
	res.Ack = ack
	caseID, err := CaseOf(ctx, s.store, d)
	if err != nil {
		caseID = 0 // the note on the case is a courtesy; the mark is what counts
	}
	err = s.store.Update(ctx, func(tx *casestore.Tx) error {
		if err := tx.MarkDeadLetterRetried(ctx, d.ID); err != nil {
			return err
		}
		return noteOnCase(ctx, tx, caseID, d, "retried", o.Operator, "")
	})
	if err != nil {
		return res, &NotMarkedError{err: fmt.Errorf("dead letter %d republished (%s seq %d) but not marked retried: %w", d.ID, ack.Stream, ack.Sequence, err)}
	}
	return res, nil
}

// noteOnCase records a retry or discard on the timeline of the case the
// dead letter concerns (CaseOf), in the transaction that marks it, with the
// operator's name: the case page shows who dealt with its dead command and
// how. A letter naming no case, or a case that does not exist, gets none.
func noteOnCase(ctx context.Context, tx *casestore.Tx, caseID int64, d casestore.DeadLetter, verb, by, note string) error {
	if caseID <= 0 {
		return nil
	}
	if _, err := tx.GetCase(ctx, caseID); errors.Is(err, casestore.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if by == "" {
		by = "an operator"
	}
	summary := fmt.Sprintf("dead letter %d (%s) %s by %s", d.ID, events.StoredDeadReason(d.Reason), verb, by)
	if note != "" {
		summary += ": " + note
	}
	detail, err := json.Marshal(map[string]any{"deadLetter": d.ID, "action": verb, "operator": by})
	if err != nil {
		return err
	}
	return tx.AppendTimeline(ctx, casestore.TimelineEntry{CaseID: caseID, Kind: casestore.KindNote, Summary: summary, Detail: detail})
}

// CheckNote returns a discard note trimmed, or ErrNoteRequired or
// ErrNoteTooLong.
func CheckNote(note string) (string, error) {
	note = strings.TrimSpace(note)
	switch {
	case note == "":
		return "", ErrNoteRequired
	case utf8.RuneCountInString(note) > MaxNote:
		return "", fmt.Errorf("%d characters: %w", utf8.RuneCountInString(note), ErrNoteTooLong)
	}
	return note, nil
}

// Discard marks dead letter id discarded by operator by, with note
// (CheckNote), and returns the row as it is now. The store re-checks the
// state in the write transaction, so a retry or discard that got there
// first is refused too.
func (s *Settler) Discard(ctx context.Context, id int64, by, note string) (casestore.DeadLetter, error) {
	note, err := CheckNote(note)
	if err != nil {
		return casestore.DeadLetter{}, err
	}
	d, err := Load(ctx, s.store, id)
	if err != nil {
		return casestore.DeadLetter{}, err
	}
	if err := RefuseDiscard(d); err != nil {
		return d, err
	}
	caseID, err := CaseOf(ctx, s.store, d)
	if err != nil {
		caseID = 0 // the note on the case is a courtesy; the discard is what counts
	}
	err = s.store.Update(ctx, func(tx *casestore.Tx) error {
		if err := tx.DiscardDeadLetter(ctx, id, by, note); err != nil {
			return err
		}
		return noteOnCase(ctx, tx, caseID, d, "discarded", by, note)
	})
	if errors.Is(err, casestore.ErrDeadLetterRetried) || errors.Is(err, casestore.ErrDeadLetterDiscarded) {
		if d, lerr := s.store.DeadLetter(ctx, id); lerr == nil {
			return d, RefuseDiscard(d)
		}
		return d, &RefusedError{ID: id, Reason: RefusedDiscarded, msg: fmt.Sprintf(
			"dead letter %d was retried or discarded meanwhile; not discarded", id)}
	}
	if err != nil {
		return d, err
	}
	return s.store.DeadLetter(ctx, id)
}

// When formats a time in a refusal or a table: UTC to the second, "-" for
// none.
func When(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.DateTime)
}
