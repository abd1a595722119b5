// Sending a batch: what was filed before, publishing, awaiting the
// verdicts together, and reporting them row by row.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/opcommands"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// skipFiled marks the rows whose command the worker has a record of: a
// verdict, or the case it opened (the verdict may have been pruned with
// the inbox). JetStream's duplicate window covers only a re-run within
// minutes; this covers the rest.
func (b *batch) skipFiled(ctx context.Context) error {
	for i := range b.out.Rows {
		r := &b.out.Rows[i]
		if r.Status != rowValid {
			continue
		}
		if r.ownID {
			if err := b.checkOwnID(ctx, r); err != nil {
				return err
			}
			if r.Status == rowInvalid {
				continue
			}
		}
		v, err := b.send.filed(ctx, r.ID)
		if err != nil {
			return err
		}
		if v.Verdict != opcommands.VerdictPending {
			vj := toVerdictJSON(r.command, v)
			r.Status, r.Verdict = rowAlreadyFiled, &vj
		}
	}
	return nil
}

// checkOwnID makes a row invalid whose own id opened a case with another
// request: an exported row edited without clearing its id would otherwise
// be "already filed" and the edit silently dropped. A derived id cannot
// disagree: it is the content.
func (b *batch) checkOwnID(ctx context.Context, r *batchRowJSON) error {
	c, err := b.send.openedCase(ctx, r.ID)
	if errors.Is(err, casestore.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var req refundflow.Request
	if err := json.Unmarshal(c.Request, &req); err != nil {
		return nil // nothing to compare: the verdict decides
	}
	was := refundflow.Command{Kind: r.command.Kind, Platform: c.Platform, OrderID: c.OrderID, SubOrderID: c.SubOrderID, Request: &req}
	if c.Platform == casestore.Platform1688 {
		was.SubOrderID = ""
	}
	if batchCommandID(was) != batchCommandID(r.command) {
		r.Status = rowInvalid
		r.Error = fmt.Sprintf("id %s opened case %d with another request (as list --export shows it): clear the id to file this row as a new request", r.ID, c.ID)
	}
	return nil
}

// publish sends the rows still to file on one connection, in file order.
// A failed publish stops the batch: the rows after it are not sent (NATS
// down fails them all alike).
func (b *batch) publish(ctx context.Context) error {
	var todo []*batchRowJSON
	for i := range b.out.Rows {
		if b.out.Rows[i].Status == rowValid {
			todo = append(todo, &b.out.Rows[i])
		}
	}
	if len(todo) == 0 {
		return nil
	}
	if err := b.send.ready(); err != nil {
		return fmt.Errorf("%w; nothing sent", err)
	}
	b.startBar(len(todo), "filing")
	var failed error
	for _, r := range todo {
		if failed != nil {
			r.Status = rowNotSent
			continue
		}
		if failed = b.publishRow(ctx, r); failed != nil {
			r.Status, r.Error = rowFailed, rowPublishError(failed, r.ownID)
		}
		b.step()
	}
	b.endBar()
	return nil
}

// rowPublishError is what a row whose publish failed says, in a batch's
// terms: a single command's advice (send it again with --id, use a new id)
// would contradict "run the file again", which sends each row under its
// id again.
func rowPublishError(err error, ownID bool) string {
	var ue *unconfirmedError
	var ae *apiError
	switch {
	case errors.As(err, &ue):
		return errorLine(ue.err) + "; it may have been stored: the file run again sends it under the same id, stored once"
	case errors.As(err, &ae) && ae.Status == http.StatusConflict && ownID:
		return errorLine(err) + ": the row's id was used for another command; clear its id column (or give a new one) to file it"
	}
	return errorLine(err)
}

func (b *batch) publishRow(ctx context.Context, r *batchRowJSON) error {
	dup, err := b.send.file(ctx, r.command)
	if err != nil {
		return err
	}
	r.Status, r.Duplicate = rowFiled, dup
	if dup {
		r.Status = rowAlreadyFiled // published by an earlier run, its verdict not in yet
	}
	return nil
}

// awaitVerdicts polls the worker's verdicts on every row just published,
// together, until each has one or --wait (counted from the last publish)
// runs out: the rows without one are pending.
func (b *batch) awaitVerdicts(ctx context.Context) error {
	var pending []*batchRowJSON
	for i := range b.out.Rows {
		if r := &b.out.Rows[i]; r.Verdict == nil && (r.Status == rowFiled || r.Status == rowAlreadyFiled) {
			pending = append(pending, r)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	outer := ctx
	ctx, cancel := context.WithTimeout(ctx, b.wait)
	defer cancel()
	tick := time.NewTicker(b.send.pollEvery())
	defer tick.Stop()
	b.startBar(len(pending), "verdicts")
	defer b.endBar()
	unread := "" // why the last poll could not read the verdicts
	for {
		var err error
		pending, err = b.pollVerdicts(ctx, pending)
		// The rows are published: the database (or the console) going
		// away leaves their verdicts pending, never an error that reads
		// as a batch to send again (pollVerdicts keeps every row not
		// read).
		var ue *unreadError
		switch {
		case errors.As(err, &ue):
			unread = ue.reason
		case err != nil:
			return err
		case ctx.Err() == nil:
			unread = "" // read: a poll the wait's end cut short keeps what the last one said
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if err := context.Cause(ctx); !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			for _, r := range pending {
				r.Verdict = &verdictJSON{Verdict: verdictPending,
					Next: "the worker has not decided it yet (is it running?); follow it with: refundctl wait --command " + r.ID}
				switch {
				case unread != "":
					r.Verdict.Reason, r.Verdict.Next = unread, "follow it with: refundctl wait --command "+r.ID
				default:
					// Kept by the worker, or where JetStream has it, as
					// for a single command.
					if code, reason := b.send.whereabouts(outer, r.command); reason != "" {
						r.Verdict.Code, r.Verdict.Reason = code, reason
						r.Verdict.Next = "follow it with: refundctl wait --command " + r.ID
					}
				}
			}
			return nil
		case <-tick.C:
		}
	}
}

// pollVerdicts reads the verdict of each pending row once and returns the
// rows still without one.
func (b *batch) pollVerdicts(ctx context.Context, pending []*batchRowJSON) ([]*batchRowJSON, error) {
	var still []*batchRowJSON
	for i, r := range pending {
		v, decided, err := b.send.verdict(ctx, r.ID)
		switch {
		case ctx.Err() != nil:
			// The wait is over (or the run stopped): this row and the
			// rest are pending, whatever the read in flight said.
			return append(still, pending[i:]...), nil
		case errors.As(err, new(*unreadError)):
			// This row and the rest stay pending; the next poll asks again.
			return append(still, pending[i:]...), err
		case err != nil:
			return nil, err
		case !decided:
			still = append(still, r)
			continue
		}
		vj := toVerdictJSON(r.command, v)
		if vj.Verdict == casestore.VerdictRejected && vj.Code == refundflow.CodeDuplicate {
			r.Status = rowAlreadyFiled // the same request is on its case already
		}
		r.Verdict = &vj
		b.step()
	}
	return still, nil
}

// count fills the summary from the rows.
func (b *batch) count() {
	s := batchSummary{Rows: len(b.out.Rows)}
	for _, r := range b.out.Rows {
		switch r.Status {
		case rowInvalid:
			s.Invalid++
		case rowFiled:
			s.Filed++
		case rowAlreadyFiled:
			s.AlreadyFiled++
		case rowFailed:
			s.Failed++
		case rowNotSent:
			s.NotSent++
		}
		if r.Verdict == nil {
			continue
		}
		switch {
		case r.Verdict.Verdict == casestore.VerdictApplied:
			s.Applied++
		case r.Verdict.Verdict == verdictPending:
			s.Pending++
		case r.Verdict.Code != refundflow.CodeDuplicate:
			s.Rejected++
		}
	}
	b.out.Summary = s
}

// exitErr is the batch's summary exit status, the worst row deciding: a
// failed publish (1), invalid rows left out (6), a rejection (4), a
// pending verdict (5).
func (b *batch) exitErr() error {
	s := b.out.Summary
	switch {
	case s.Failed > 0:
		return fmt.Errorf("publishing failed at line %d (%s); %d rows after it not sent: run the file again once it works (filed rows are not sent twice)",
			b.firstLine(rowFailed), b.firstError(rowFailed), s.NotSent)
	case s.Invalid > 0:
		return &invalidRowsError{err: fmt.Errorf("%d of %d rows invalid, not sent (the first on line %d): fix them and run the file again; the rows filed are not sent twice", s.Invalid, s.Rows, b.firstLine(rowInvalid))}
	case s.Rejected > 0:
		return refusedf("%d of %d rows rejected by the worker: see their lines", s.Rejected, s.Rows)
	case s.Pending > 0:
		return &pendingError{err: fmt.Errorf("%d of %d rows without a verdict within %s: run the file again to see them (nothing is sent twice)", s.Pending, s.Rows, b.wait)}
	}
	return nil
}

// firstError is the error of the first row with status.
func (b *batch) firstError(status string) string {
	for _, r := range b.out.Rows {
		if r.Status == status {
			return r.Error
		}
	}
	return ""
}

func (b *batch) firstLine(status string) int {
	for _, r := range b.out.Rows {
		if r.Status == status {
			return r.Line
		}
	}
	return 0
}

// finish prints the rows and the summary and returns err, the exit status.
func (b *batch) finish(err error) error {
	w := b.a.stdout
	if b.a.cfg.JSON {
		if werr := writeJSON(w, b.out); werr != nil {
			return werr
		}
		return err
	}
	for _, r := range b.out.Rows {
		if _, werr := fmt.Fprintln(w, b.rowLine(r)); werr != nil {
			return werr
		}
	}
	if _, werr := fmt.Fprintln(w, summaryLine(b.out.Summary, b.out.DryRun)); werr != nil {
		return werr
	}
	return err
}

// rowLine is one row's result line: its line number, its command id, and
// its verdict or why it was not filed.
func (b *batch) rowLine(r batchRowJSON) string {
	head := fmt.Sprintf("line %d: ", r.Line)
	if r.ID != "" {
		head += r.ID + ": "
	}
	var what string
	switch r.Status {
	case rowInvalid:
		return head + "invalid: " + r.Error
	case rowValid:
		return head + "valid"
	case rowFailed:
		return head + "failed: " + r.Error
	case rowNotSent:
		return head + "not sent: an earlier row's publish failed"
	case rowAlreadyFiled:
		what = "already filed"
	default:
		what = "filed"
	}
	if r.Verdict == nil {
		return head + what
	}
	v := *r.Verdict
	if v.Verdict == casestore.VerdictApplied {
		v.Next = "" // `refundctl wait --command ID` is the way, for any row
	}
	return head + what + ": " + verdictLine(v, b.wait)
}

func summaryLine(s batchSummary, dryRun bool) string {
	if dryRun {
		return fmt.Sprintf("%d rows: %d valid, %d invalid; nothing sent (--dry-run)", s.Rows, s.Rows-s.Invalid, s.Invalid)
	}
	line := fmt.Sprintf("%d rows: %d filed, %d already filed, %d invalid", s.Rows, s.Filed, s.AlreadyFiled, s.Invalid)
	if s.Failed+s.NotSent > 0 {
		line += fmt.Sprintf(", %d failed, %d not sent", s.Failed, s.NotSent)
	}
	return line + fmt.Sprintf("; verdicts: %d applied, %d rejected, %d pending", s.Applied, s.Rejected, s.Pending)
}

// startBar shows a progress bar on stderr while stdout is a terminal (a
// person is watching) and the output is not --json.
func (b *batch) startBar(total int, desc string) {
	b.bar = nil
	f, ok := b.a.stdout.(*os.File)
	if b.a.cfg.JSON || !ok || !term.IsTerminal(int(f.Fd())) {
		return
	}
	b.bar = progressbar.NewOptions(total,
		progressbar.OptionSetWriter(b.a.stderr),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

func (b *batch) step() {
	if b.bar != nil {
		_ = b.bar.Add(1)
	}
}

func (b *batch) endBar() {
	if b.bar != nil {
		_ = b.bar.Finish()
		b.bar = nil
	}
}
