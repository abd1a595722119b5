package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/opcommands"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// backend is where the case and command verbs (list, show, wait, request,
// ship, cancel, message, modify, resolve) read cases and send commands:
// the case store and NATS on the host (direct), or the console's API
// (remote, REFUNDHUB_URL), so that an operator's laptop needs no database
// file. Each verb is written once against it, and prints the same either
// way.
type backend interface {
	// listCases reads up to limit cases matching f, in id order, and
	// whether more match after them.
	listCases(ctx context.Context, f casestore.CaseFilter, limit int) ([]casestore.Case, bool, error)
	// lookupCase is the case id names or, when id is 0, the selector's;
	// a *notFoundError when there is none.
	lookupCase(ctx context.Context, sel caseSelector, id int64) (casestore.Case, error)
	// history is a case's step attempts and timeline.
	history(ctx context.Context, id int64) ([]casestore.StepAttempt, []casestore.TimelineEntry, error)
	// send publishes c, complete and checked (publishCommand), and waits
	// up to wait for the worker's verdict (not at all when 0: the verdict
	// is then nil). The console checks c again before publishing it.
	send(ctx context.Context, c refundflow.Command, wait time.Duration) (commandResult, *opcommands.Verdict, error)
	// commandWhere is where JetStream has command id, published earlier
	// and without a verdict (opcommands.Locate, then Whereabouts): "" when
	// it cannot be said.
	commandWhere(ctx context.Context, id string) string
	close()
}

// backend opens the backend the configuration names: the console's API
// when REFUNDHUB_URL is set, else the store (opened on first use) and NATS.
func (a *app) backend() (backend, error) {
	if a.cfg.ConsoleURL != "" {
		return a.newRemote()
	}
	return &direct{a: a}, nil
}

// deadLetterBackend is where dead-letters list, show, retry and discard
// read and settle dead letters: the store, NATS and package deadletters
// on the host (direct), or the console's dead-letter API (remote,
// REFUNDHUB_URL), whose answers come from the same package. Each
// subcommand is written once against it and prints the same either way;
// refusals are package deadletters' words either way (exit 4).
type deadLetterBackend interface {
	// deadLetters lists the dead letters f selects, in id order.
	deadLetters(ctx context.Context, f deadLetterFilter) ([]casestore.DeadLetter, error)
	// deadLetter is dead letter id, headers and payload included; an
	// error saying "dead letter ID not found" when there is none.
	deadLetter(ctx context.Context, id int64) (casestore.DeadLetter, error)
	// retryDeadLetter retries dead letter id (with o.dryRun, checks and
	// builds the message only) under the operator's name (remote: the
	// token's account), and returns the letter and what was published.
	retryDeadLetter(ctx context.Context, id int64, o retryOptions) (casestore.DeadLetter, retried, error)
	// discardDeadLetter marks dead letter id discarded with note under the
	// operator's name (remote: the token's account), and returns it as it
	// is now.
	discardDeadLetter(ctx context.Context, id int64, note string) (casestore.DeadLetter, error)
	close()
}

// deadLetterFilter is what dead-letters list selects.
type deadLetterFilter struct {
	pendingOnly bool                    // neither retried nor discarded
	discarded   casestore.DiscardFilter // discarded or not
	reason      events.DeadReason       // "" for any
	afterID     int64                   // paging: ids greater than this
	limit       int                     // 1 to casestore.MaxListLimit
}

// deadLetterBackend opens the dead-letter backend the configuration names,
// as backend does for cases.
func (a *app) deadLetterBackend() (deadLetterBackend, error) {
	if a.cfg.ConsoleURL != "" {
		return a.newRemote()
	}
	return &direct{a: a}, nil
}

// remoteVerbs are the commands that work through the console's API.
// help and completion touch nothing.
var remoteVerbs = map[string]bool{"list": true, "show": true, "wait": true, "request": true, "ship": true,
	"cancel": true, "message": true, "modify": true, "resolve": true, "dead-letters": true, "reasons": true,
	"help": true, "completion": true}

// checkRemote refuses, with REFUNDHUB_URL set, the commands that need the
// host itself (the store file, NATS, the receiver or the platform's
// credentials): a usage error (exit 2) saying so.
func (a *app) checkRemote(cmd *cobra.Command) error {
	if a.cfg.ConsoleURL == "" {
		return nil
	}
	top := cmd
	for top.HasParent() && top.Parent().HasParent() {
		top = top.Parent()
	}
	if !top.HasParent() || remoteVerbs[top.Name()] {
		return nil
	}
	return usagef("%s is not available through the console (REFUNDHUB_URL is set): run it on the host, with REFUNDHUB_URL unset", top.Name())
}

// source names where cases are read, for messages.
func (a *app) source() string {
	if a.cfg.ConsoleURL != "" {
		return "the console at " + redactURL(a.cfg.ConsoleURL)
	}
	return casestore.Redact(a.cfg.DBPath) // DB_URL may hold a password
}

// direct is the backend on the host: the case store, read-only, opened
// on first use, and NATS for commands.
type direct struct {
	a  *app
	st *casestore.Store
}

func (d *direct) store(ctx context.Context) (*casestore.Store, error) {
	if d.st == nil {
		st, err := d.a.openStore(ctx)
		if err != nil {
			return nil, err
		}
		d.st = st
	}
	return d.st, nil
}

func (d *direct) close() {
	if d.st != nil {
		_ = d.st.Close()
	}
}

func (d *direct) listCases(ctx context.Context, f casestore.CaseFilter, limit int) ([]casestore.Case, bool, error) {
	st, err := d.store(ctx)
	if err != nil {
		return nil, false, err
	}
	return listCases(ctx, st, f, limit)
}

func (d *direct) lookupCase(ctx context.Context, sel caseSelector, id int64) (casestore.Case, error) {
	st, err := d.store(ctx)
	if err != nil {
		return casestore.Case{}, err
	}
	return sel.lookup(ctx, st, id)
}

func (d *direct) history(ctx context.Context, id int64) ([]casestore.StepAttempt, []casestore.TimelineEntry, error) {
	st, err := d.store(ctx)
	if err != nil {
		return nil, nil, err
	}
	steps, err := st.Steps(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	timeline, err := st.Timeline(ctx, id)
	return steps, timeline, err
}

// send reads the store to read the verdict, before publishing: a command
// whose verdict cannot be read is better not sent than sent blind.
func (d *direct) send(ctx context.Context, c refundflow.Command, wait time.Duration) (commandResult, *opcommands.Verdict, error) {
	var st *casestore.Store
	if wait > 0 {
		var err error
		if st, err = d.store(ctx); err != nil {
			return commandResult{}, nil, fmt.Errorf("%w (the verdict is read there; --no-wait publishes without it)", err)
		}
	}
	res, err := d.a.publish(ctx, c)
	if err != nil || wait == 0 {
		return res, nil, err
	}
	v, err := awaitVerdict(ctx, st, c, wait)
	if err != nil {
		return res, nil, fmt.Errorf("command %s published; reading its verdict: %w", c.ID, err)
	}
	if v.Verdict == opcommands.VerdictPending && v.Reason == "" {
		if where := d.a.whereabouts(ctx, res); where != "" {
			v.Code, v.Reason = opcommands.CodeUndecided, where
		}
	}
	return res, &v, nil
}

// whereabouts is where command res is for want of a verdict, as
// JetStream's consumers see it (opcommands.Whereabouts): taken by a
// worker, or waiting for one. "" when NATS cannot say: the verdict then
// stays plain pending.
func (a *app) whereabouts(ctx context.Context, res commandResult) string {
	nc, js, err := a.connect()
	if err != nil {
		return ""
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	where, err := opcommands.Whereabouts(ctx, js, opcommands.Ack{Subject: res.Subject, Stream: res.Stream, Sequence: res.Sequence})
	if err != nil {
		return ""
	}
	return where
}

// commandWhere finds command id's message on the command stream by its
// id and says where it is (opcommands.Locate, Whereabouts); "" when NATS
// cannot be reached or the message is not among those read.
func (d *direct) commandWhere(ctx context.Context, id string) string {
	nc, js, err := d.a.connect()
	if err != nil {
		return ""
	}
	defer nc.Close()
	ack, err := opcommands.Locate(ctx, js, id, opcommands.LocateLimit, d.a.cfg.Timeout)
	if err != nil {
		return "" // (a command decided and acknowledged since is below the floor: the next look finds its case)
	}
	where, err := opcommands.Whereabouts(ctx, js, ack)
	if err != nil {
		return ""
	}
	return where
}

// awaitVerdict waits up to wait for the worker's verdict on command id,
// published: pending when it gives none. The database going away meanwhile
// is waited out too, and if it is still away at the end the verdict is
// pending, saying why: the command is sent all the same, and an error
// would read as something to send again.
func awaitVerdict(ctx context.Context, st *casestore.Store, c refundflow.Command, wait time.Duration) (opcommands.Verdict, error) {
	id := c.ID
	pending := opcommands.Verdict{Verdict: opcommands.VerdictPending}
	deadline := time.Now().Add(wait)
	for {
		o, err := opcommands.AwaitOutcome(ctx, st, id, time.Until(deadline), verdictPoll)
		if err == nil {
			var v opcommands.Verdict
			if v, err = opcommands.Describe(ctx, st, o); err == nil {
				return describeSettled(ctx, st, c.Kind, o, v, deadline), nil
			}
		}
		switch {
		case errors.Is(err, opcommands.ErrPending):
			// Kept by the worker for its case, it says where; a read
			// that fails leaves it plain pending.
			if kept, kerr := opcommands.PendingFor(ctx, st, c); kerr == nil {
				return kept, nil
			}
			return pending, nil
		case !casestore.Unavailable(err):
			return opcommands.Verdict{}, err
		}
		pending.Reason = opcommands.ReasonUnread
		if !time.Now().Add(verdictPoll).Before(deadline) {
			return pending, nil
		}
		select {
		case <-ctx.Done():
			return pending, nil
		case <-time.After(verdictPoll):
		}
	}
}

// settled reports whether v, the verdict of a command of kind, is the one
// to report: not an applied command whose case is still in the steps the
// command started (a form read, a submission: a platform round trip or
// two), whose end is what the operator wants to know (waiting for the
// seller, or stopped and why). A case that rests (refundflow.State.Resting)
// is settled, and so is one with a flag: it waits for evidence or after
// failures, minutes or hours, and the verdict names the flag. A message
// starts no state of its own: its case's state says nothing about it.
func settled(kind refundflow.InputKind, v opcommands.Verdict) bool {
	return v.Verdict != casestore.VerdictApplied || v.CaseID == 0 || kind == refundflow.InputSendMessage ||
		refundflow.State(v.State).Resting() || v.Attention != ""
}

// settleBackoff is how often a verdict's case is read again while it
// settles: soon at first, then once a second.
func settleBackoff(interval time.Duration) time.Duration { return min(2*interval, time.Second) }

// describeSettled is v, an applied command's verdict, once it is settled
// (settled), read again within the deadline. At the deadline, or if the
// case cannot be read meanwhile, it is v as last read: the command was
// applied all the same.
func describeSettled(ctx context.Context, st *casestore.Store, kind refundflow.InputKind, o casestore.CommandOutcome,
	v opcommands.Verdict, deadline time.Time) opcommands.Verdict {
	for interval := verdictPoll; !settled(kind, v) && time.Now().Add(verdictPoll).Before(deadline); interval = settleBackoff(interval) {
		select {
		case <-ctx.Done():
			return v
		case <-time.After(min(interval, time.Until(deadline)-verdictPoll)):
		}
		next, err := opcommands.Describe(ctx, st, o)
		if err != nil {
			return v
		}
		v = next
	}
	return v
}

// verdictPoll is how often a verdict is asked for.
const verdictPoll = 100 * time.Millisecond

// caseByID reads case id for a verb that names its case by id only
// (resolve, modify): a missing case is an error saying so.
func (a *app) caseByID(ctx context.Context, id int64) (casestore.Case, error) {
	b, err := a.backend()
	if err != nil {
		return casestore.Case{}, err
	}
	defer b.close()
	c, err := b.lookupCase(ctx, caseSelector{}, id)
	var nf *notFoundError
	if errors.As(err, &nf) {
		return casestore.Case{}, fmt.Errorf("case %d: no such case (refundctl list shows the cases)", id)
	}
	return c, err
}
