// Where a batch files its rows: the case store and NATS on the host, or
// the console's API (REFUNDHUB_URL), so that an operator's laptop files a
// spreadsheet as the host would.

package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/opcommands"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// batchSender is where a batch reads what an earlier run filed, files its
// rows and reads their verdicts. The batch is written once against it
// (batch_send.go) and prints the same either way.
type batchSender interface {
	// filed is the worker's verdict on command id as far as it is known
	// (opcommands.Lookup: the case a request opened outlives its
	// verdict); pending when it has none.
	filed(ctx context.Context, id string) (opcommands.Verdict, error)
	// openedCase is the case command id opened, with the request it was
	// opened with; casestore.ErrNotFound when there is none.
	openedCase(ctx context.Context, id string) (casestore.Case, error)
	// ready is called once before the first row is filed: the host
	// connects to NATS (a batch whose rows were all filed before needs
	// none).
	ready() error
	// file publishes c; duplicate when it was stored before under its id
	// (an earlier run's, its verdict not in yet).
	file(ctx context.Context, c refundflow.Command) (duplicate bool, err error)
	// verdict reads the verdict of a row just filed; decided is false
	// while there is none. An *unreadError is a verdict that cannot be
	// read for now: the row is sent and stays pending, never read as a
	// row to send again.
	verdict(ctx context.Context, id string) (v opcommands.Verdict, decided bool, err error)
	// whereabouts is where command c, filed by this run, is for a row
	// still pending when the wait ends: kept by the worker for its case,
	// or with no case yet (opcommands.PendingFor), else where JetStream
	// has it (opcommands.Whereabouts); code and reason "" when it cannot
	// say (the console's way: it filed the row).
	whereabouts(ctx context.Context, c refundflow.Command) (code, reason string)
	// pollEvery is how often the pending verdicts are read: each read is
	// one query (the host) or one request (the console) per pending row.
	pollEvery() time.Duration
	// close lets go of the store, NATS or the console's connections.
	close()
}

// unreadError is a verdict that could not be read (the case database or
// the console does not answer): reason says so on the pending row.
type unreadError struct {
	reason string
	err    error
}

func (e *unreadError) Error() string { return e.err.Error() }
func (e *unreadError) Unwrap() error { return e.err }

// batchSender opens the sender the configuration names: the console's API
// when REFUNDHUB_URL is set, else the case store (NATS on first use).
func (a *app) batchSender(ctx context.Context) (batchSender, error) {
	if a.cfg.ConsoleURL != "" {
		return a.newRemote()
	}
	st, err := a.openStore(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w (a batch reads it to skip rows already filed, and for the verdicts)", err)
	}
	return &directBatch{a: a, st: st}, nil
}

// directBatch files a batch on the host: the case store and NATS.
type directBatch struct {
	a  *app
	st *casestore.Store
	nc *nats.Conn
	js jetstream.JetStream
	// acks are where this run's rows were stored, by command id.
	acks map[string]opcommands.Ack
	// unsaid: a look at JetStream failed; the rows after it are not
	// looked at (each would wait for --timeout).
	unsaid bool
}

func (d *directBatch) filed(ctx context.Context, id string) (opcommands.Verdict, error) {
	return opcommands.Lookup(ctx, d.st, id)
}

func (d *directBatch) openedCase(ctx context.Context, id string) (casestore.Case, error) {
	return d.st.CaseOpenedBy(ctx, id)
}

func (d *directBatch) ready() error {
	var err error
	d.nc, d.js, err = d.a.connect()
	return err
}

func (d *directBatch) file(ctx context.Context, c refundflow.Command) (bool, error) {
	res, err := d.a.publishOn(ctx, d.js, c)
	if err == nil {
		if d.acks == nil {
			d.acks = map[string]opcommands.Ack{}
		}
		d.acks[c.ID] = opcommands.Ack{Subject: res.Subject, Stream: res.Stream, Sequence: res.Sequence}
	}
	return res.Duplicate, err
}

func (d *directBatch) whereabouts(ctx context.Context, c refundflow.Command) (code, reason string) {
	// Kept by the worker (behind an earlier input of its case, say), the
	// command's message is acknowledged: JetStream would call it handled.
	if v, err := opcommands.PendingFor(ctx, d.st, c); err == nil && v.Reason != "" {
		return v.Code, v.Reason
	}
	ack, ok := d.acks[c.ID]
	if !ok || d.js == nil || d.unsaid {
		return "", ""
	}
	ctx, cancel := context.WithTimeout(ctx, d.a.cfg.Timeout)
	defer cancel()
	where, err := opcommands.Whereabouts(ctx, d.js, ack)
	if err != nil {
		d.unsaid = true
		return "", ""
	}
	return opcommands.CodeUndecided, where
}

// verdict reads the outcome alone, the worker's decision: a just-filed
// request's case exists before it is decided (Lookup's fallback is for
// verdicts pruned long after), and it is polled for every pending row.
func (d *directBatch) verdict(ctx context.Context, id string) (opcommands.Verdict, bool, error) {
	o, err := d.st.CommandOutcome(ctx, id)
	if errors.Is(err, casestore.ErrNotFound) {
		return opcommands.Verdict{Verdict: opcommands.VerdictPending}, false, nil
	}
	var v opcommands.Verdict
	if err == nil {
		v, err = opcommands.Describe(ctx, d.st, o)
	}
	if casestore.Unavailable(err) {
		return opcommands.Verdict{}, false, &unreadError{reason: opcommands.ReasonUnread, err: err}
	}
	return v, err == nil, err
}

func (d *directBatch) pollEvery() time.Duration { return verdictPoll }

func (d *directBatch) close() {
	if d.nc != nil {
		d.nc.Close()
	}
	_ = d.st.Close()
}

// The console's side of a batch: the same answers through /api/v1.

func (r *remote) filed(ctx context.Context, id string) (opcommands.Verdict, error) {
	var ans commandAnswer
	_, err := r.do(ctx, http.MethodGet, "/api/v1/commands/"+url.PathEscape(id), nil, &ans)
	return ans.Verdict, err
}

// whereabouts asks the console where a row it filed is: kept by the
// worker (its verdict's reason), else where JetStream has it at the
// stream and sequence the console stored it at (?where=1&stream=&seq=:
// one message read, no search). Once the console could not say, the
// rest are not asked.
func (r *remote) whereabouts(ctx context.Context, c refundflow.Command) (string, string) {
	ack, ok := r.acks[c.ID]
	if !ok || r.unsaid {
		return "", ""
	}
	ctx, cancel := context.WithTimeout(ctx, r.a.cfg.Timeout)
	defer cancel()
	v, err := r.askWhere(ctx, c.ID, url.Values{"where": {"1"}, "stream": {ack.Stream}, "seq": {strconv.FormatUint(ack.Sequence, 10)}})
	switch {
	case err != nil:
		r.unsaid = true
		return "", ""
	case v.Verdict != opcommands.VerdictPending:
		return opcommands.CodeUndecided, opcommands.ReasonHandledSince // decided since the last poll
	}
	return v.Code, v.Reason
}

// openedCase finds the case id opened through the console's search, which
// matches a case's opening command id.
func (r *remote) openedCase(ctx context.Context, id string) (casestore.Case, error) {
	c, err := r.newest(ctx, url.Values{"q": {id}}, func(c casestore.Case) bool { return c.OpenedBy == id })
	if err == nil && c.ID == 0 {
		return c, casestore.ErrNotFound
	}
	return c, err
}

func (r *remote) ready() error { return nil }

// pollEvery: the console serves the operators' pages and API too.
func (r *remote) pollEvery() time.Duration { return time.Second }

// file POSTs c under its id without waiting for the verdict: the batch
// awaits them all together. A POST whose answer was lost may have been
// published (the row's error says so; the file run again sends it under
// the same id, stored once).
func (r *remote) file(ctx context.Context, c refundflow.Command) (bool, error) {
	body, err := commandBody(c)
	if err != nil {
		return false, err
	}
	var ans commandAnswer
	if _, err := r.do(ctx, http.MethodPost, "/api/v1/commands?wait=0", body, &ans); err != nil {
		var ae *apiError
		var ns *notSentError
		if errors.As(err, &ae) && ae.Code != "unconfirmed" || errors.As(err, &ns) {
			return false, err
		}
		return false, &unconfirmedError{id: c.ID, err: err}
	}
	if ans.Stream != "" && ans.Sequence > 0 {
		if r.acks == nil {
			r.acks = map[string]opcommands.Ack{}
		}
		r.acks[c.ID] = opcommands.Ack{Subject: ans.Subject, Stream: ans.Stream, Sequence: ans.Sequence}
	}
	return ans.Duplicate, nil
}

// verdict asks the console (opcommands.Lookup there). Any failure to
// read it leaves the row pending: it was sent, and the console's own
// error (its database away, a token revoked meanwhile, the console
// down) is said on the row rather than read as a batch that failed.
func (r *remote) verdict(ctx context.Context, id string) (opcommands.Verdict, bool, error) {
	v, err := r.filed(ctx, id)
	var ae *apiError
	switch {
	case err == nil && v.Verdict == opcommands.VerdictPending:
		return v, false, nil
	case err == nil && (v.Verdict == casestore.VerdictApplied || v.Verdict == casestore.VerdictRejected):
		return v, true, nil
	case err == nil:
		err = fmt.Errorf("console at %s: an answer without a verdict for command %s", r.base, id)
	case errors.As(err, &ae) && ae.Code == "store_unavailable":
		return v, false, &unreadError{reason: opcommands.ReasonUnread, err: err}
	}
	return v, false, &unreadError{reason: "sent; its verdict could not be read (" + errorLine(err) + "): do not send it again, look for it in a moment", err: err}
}
