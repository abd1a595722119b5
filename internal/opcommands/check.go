package opcommands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// Check is every check an operator command gets before it is published,
// whoever issues it (refundctl, the console's forms, its API): the
// worker's own validation (refundflow.Command.Validate) and, for a Taobao
// modification, what the new values can be checked for on their own
// (refundflow.Modification.CheckFor), so that a bad description is refused
// before sending rather than rejected by the worker. Errors name the
// command's JSON fields; callers translate them into their own terms
// (refundctl's flags, the console's form fields).
func Check(c refundflow.Command) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if c.Kind == refundflow.InputModify && c.Modify != nil && c.Platform == refundflow.PlatformTaobao {
		if err := c.Modify.CheckFor(c.Platform); err != nil {
			return fmt.Errorf("modify: %w", err)
		}
	}
	return nil
}

// ErrUnknownCase is CompleteTarget's answer when the command names its
// case by id alone and the store holds no such case.
var ErrUnknownCase = errors.New("no such case")

// TargetError is a command field that contradicts the case its caseId
// names. Field is the command's JSON name (platform, orderId, subOrderId).
type TargetError struct {
	Field  string
	Given  string
	CaseID int64
	What   string // platform, order or sub-order
	Is     string // the case's value ("none" when it has none)
}

// Error names the field first, as refundflow's validation does, so that
// callers translate it the same way.
func (e *TargetError) Error() string {
	return fmt.Sprintf("%s %s: case %d is for %s %s; leave %s out or fix caseId",
		e.Field, excerpt.Of(e.Given, 40), e.CaseID, e.What, e.Is, e.Field)
}

// CompleteTarget fills in c's platform, order and (Taobao) sub-order from
// the case its CaseID names, so that an operator may name a case by id
// alone. A given field that contradicts the case is a *TargetError. A case
// the store does not hold is ErrUnknownCase unless c names its platform:
// then the command goes to the worker, whose verdict says the case is
// unknown. Without a CaseID it does nothing.
func CompleteTarget(ctx context.Context, st *casestore.Store, c *refundflow.Command) error {
	if c.CaseID <= 0 {
		return nil
	}
	k, err := st.GetCase(ctx, c.CaseID)
	switch {
	case errors.Is(err, casestore.ErrNotFound) && c.Platform != "":
		return nil
	case errors.Is(err, casestore.ErrNotFound):
		return fmt.Errorf("case %d: %w", c.CaseID, ErrUnknownCase)
	case err != nil:
		return err
	}
	return ApplyTarget(k, c)
}

// ApplyTarget is CompleteTarget once the case k that c.CaseID names has
// been read (by whichever way the caller reads cases).
func ApplyTarget(k casestore.Case, c *refundflow.Command) error {
	sub := k.SubOrderID
	if k.Platform == casestore.Platform1688 {
		sub = "" // a case opened before one case per order may carry one: never sent
	}
	for _, f := range []struct{ field, given, is, what string }{
		{"platform", string(c.Platform), string(k.Platform), "platform"},
		{"orderId", c.OrderID, k.OrderID, "order"},
		{"subOrderId", c.SubOrderID, sub, "sub-order"},
	} {
		if f.given != "" && f.given != f.is {
			is := f.is
			if is == "" {
				is = "none"
			}
			return &TargetError{Field: f.field, Given: f.given, CaseID: k.ID, What: f.what, Is: is}
		}
	}
	c.Platform, c.OrderID, c.SubOrderID = refundflow.Platform(k.Platform), k.OrderID, sub
	return nil
}

// Verdict is the worker's verdict on a command as operators see it: the
// stored outcome, with the state its case was in when the verdict was
// read. refundctl prints it and the console's API answers it, so both say
// the same.
type Verdict struct {
	Verdict string `json:"verdict"` // applied, rejected or pending
	CaseID  int64  `json:"caseId,omitempty"`
	State   string `json:"state,omitempty"` // the case's state when the verdict was read
	// ParkedState is where the case stopped, when State is
	// needs_attention: what to do depends on it (runbook.Tailor).
	ParkedState  string `json:"parkedState,omitempty"`
	Code         string `json:"code,omitempty"` // the decision's code or the dead-letter reason
	Reason       string `json:"reason,omitempty"`
	DeadLetterID int64  `json:"deadLetterId,omitempty"`
	// Attention and AttentionMessage are the case's attention reason and
	// its text (whole: often the platform's own words) when the verdict
	// was read: a command applied to a case that then stopped says why.
	Attention        string `json:"attention,omitempty"`
	AttentionMessage string `json:"attentionMessage,omitempty"`
}

// VerdictPending is the verdict of a command the worker has not decided yet.
const VerdictPending = "pending"

// ReasonUnread is a pending verdict's reason when the case database stopped
// answering after the command was published: it was sent all the same,
// and sent again it would be a second command.
const ReasonUnread = "sent; the case database does not answer, so its verdict cannot be read: do not send it again, look for it in a moment"

// Pending is the verdict of command id while the worker has given none. A
// command the worker keeps in the store for its case (waiting for a side
// effect to be confirmed, behind an earlier command, for another process
// to let go of the case) is pending too, and says for which case, until
// when and why: an operator must not take the wait for a worker that is
// down, or send the command again.
func Pending(ctx context.Context, st *casestore.Store, id string) (Verdict, error) {
	v := Verdict{Verdict: VerdictPending}
	d, err := st.KeptInput(ctx, id)
	switch {
	case errors.Is(err, casestore.ErrNotFound):
		return v, nil
	case err != nil:
		return v, err
	}
	v.CaseID = d.CaseID
	at := d.NotBefore.UTC().Format("2006-01-02 15:04:05 UTC")
	v.Reason = fmt.Sprintf("kept by the worker for case %d until %s (%s); it is decided then", d.CaseID, at, excerpt.Of(d.Reason, 300))
	if time.Since(d.NotBefore) > overdue {
		// Its time has passed and no worker took it up: the wait no
		// longer explains the missing verdict.
		v.Reason = fmt.Sprintf("kept by the worker for case %d until %s (%s), and not taken up since: is the worker running?",
			d.CaseID, at, excerpt.Of(d.Reason, 300))
	}
	return v, nil
}

// CodeNoCaseYet is a pending verdict's code for a command naming an order
// or sub-order that has no case (PendingFor).
const CodeNoCaseYet = "no_case_yet"

// PendingFor is Pending for command c, which the caller holds: a command
// that names its order or sub-order (not a case id) where the store has
// no case is not waiting for a worker that is down. The worker tries it
// again for a while in case the request that opens the case is on its
// way, then rejects it as unknown_case; the verdict says so, so that the
// operator checks the ids rather than the worker.
func PendingFor(ctx context.Context, st *casestore.Store, c refundflow.Command) (Verdict, error) {
	v, err := Pending(ctx, st, c.ID)
	if err != nil || v.Reason != "" || c.CaseID > 0 || c.Kind == refundflow.InputRequestRefund {
		return v, err
	}
	order, sub := c.CaseKeys() // as the worker looks for it
	_, err = st.LatestCase(ctx, c.Platform, order, sub)
	switch {
	case errors.Is(err, casestore.ErrNotFound):
		v.Code, v.Reason = CodeNoCaseYet, "no case for "+c.CaseName()+" yet: the worker tries the command again for a while (WORKER_UNKNOWN_CASE_WAIT) "+
			"in case the request that opens the case is on its way, then rejects it ("+string(events.DeadUnknownCase)+"); if none is, check the ids"
	case err != nil:
		return v, err
	}
	return v, nil
}

// overdue is how long past its time a kept command may wait for the
// worker's timer (a tick a second, a take-up's own platform read) before
// its wait is no longer the reason it has no verdict.
const overdue = time.Minute

// Describe is the verdict o with its case's current state. A dead command
// may name a case that does not exist: its CaseID is then 0.
func Describe(ctx context.Context, st *casestore.Store, o casestore.CommandOutcome) (Verdict, error) {
	v := Verdict{Verdict: o.Verdict, CaseID: o.CaseID, Code: o.Code, Reason: o.Reason, DeadLetterID: o.DeadLetterID}
	if o.CaseID > 0 {
		k, err := st.GetCase(ctx, o.CaseID)
		switch {
		case err == nil:
			v.State, v.ParkedState, v.Attention, v.AttentionMessage = k.State, k.ParkedState, k.AttentionCode, k.AttentionMessage
		case errors.Is(err, casestore.ErrNotFound):
			v.CaseID = 0
		default:
			return Verdict{}, err
		}
	}
	return v, nil
}

// Lookup is the worker's verdict on command id as the store knows it: the
// outcome it recorded (Describe); once that is pruned with the inbox
// (WORKER_INBOX_RETENTION), applied on the case the command opened, which
// keeps its id for good; else pending (Pending). Whoever asks after a
// command by id (the console's API, a batch run again) asks here, so that
// a request filed months ago is not taken for one still undecided.
//
// A case still in its first state (requested) is not evidence: the worker
// creates it before it decides the request, whose outcome (applied, or a
// dead letter) is recorded with the decision that moves the case on.
func Lookup(ctx context.Context, st *casestore.Store, id string) (Verdict, error) {
	o, err := st.CommandOutcome(ctx, id)
	if err == nil {
		return Describe(ctx, st, o)
	}
	if !errors.Is(err, casestore.ErrNotFound) {
		return Verdict{}, err
	}
	k, err := st.CaseOpenedBy(ctx, id)
	switch {
	case err == nil && k.State != string(refundflow.StateRequested):
		return Verdict{Verdict: casestore.VerdictApplied, CaseID: k.ID, State: k.State, ParkedState: k.ParkedState,
			Attention: k.AttentionCode, AttentionMessage: k.AttentionMessage}, nil
	case err != nil && !errors.Is(err, casestore.ErrNotFound):
		return Verdict{}, err
	}
	return Pending(ctx, st, id)
}

// Stored returns the command JetStream holds under ack: for a duplicate
// ack, the one first published with that id, so a caller can tell a
// retry of the same command from a different command reusing its id.
func Stored(ctx context.Context, js jetstream.JetStream, ack Ack) (refundflow.Command, error) {
	s, err := js.Stream(ctx, ack.Stream)
	if err != nil {
		return refundflow.Command{}, fmt.Errorf("stream %s: %w", ack.Stream, err)
	}
	m, err := s.GetMsg(ctx, ack.Sequence)
	if err != nil {
		return refundflow.Command{}, fmt.Errorf("stored command %s #%d: %w", ack.Stream, ack.Sequence, err)
	}
	var c refundflow.Command
	if err := decodeCommand(m.Data, &c); err != nil {
		return refundflow.Command{}, fmt.Errorf("stored command %s #%d: %w", ack.Stream, ack.Sequence, err)
	}
	return c, nil
}

// Same reports whether a and b ask the same, whenever and by whomever
// they were issued: a retried request carries the time of its retry, and
// a batch run again by another operator (or through the console, which
// names the token's account) carries the same ids, derived from its rows.
// The first one stored keeps its operator.
func Same(a, b refundflow.Command) bool {
	a.IssuedAt, a.Operator = b.IssuedAt, b.Operator
	ja, err1 := encodeCommand(a)
	jb, err2 := encodeCommand(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
