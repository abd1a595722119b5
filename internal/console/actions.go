package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/nats-io/nats.go/jetstream"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/opcommands"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// verdictPoll is how often an action reads the store for its verdict.
const verdictPoll = 100 * time.Millisecond

// action is one of the case page's forms: the refundflow command it sends,
// and how the form's fields fill it in. Every action goes through
// handleAction, so a form is checked, published and followed to its
// verdict the same way whichever command it sends.
type action struct {
	// name is the form's route (/cases/{id}/{name}) and its id on the page.
	name string
	kind refundflow.InputKind
	// fill sets the command's fields for this kind from the form. An error
	// is a value the form cannot even express (an amount that is not a
	// number): it is shown like a validation error.
	fill func(c echo.Context, cmd *refundflow.Command) error
}

// actions are the case page's forms, by name.
var actions = map[string]action{
	"resolve": {name: "resolve", kind: refundflow.InputResolve, fill: func(c echo.Context, cmd *refundflow.Command) error {
		r := &refundflow.Resolve{Action: refundflow.ResolveAction(c.FormValue("action")), Note: c.FormValue("note")}
		if r.Action == refundflow.ResolveAdopt { // the refund field stays on the page whichever way is chosen
			r.Refund = strings.TrimSpace(c.FormValue("refund"))
		}
		cmd.Resolve = r
		return nil
	}},
	"ship": {name: "ship", kind: refundflow.InputReportShipment, fill: func(c echo.Context, cmd *refundflow.Command) error {
		cmd.Shipment = &refundflow.Shipment{Company: c.FormValue("company"), Waybill: c.FormValue("waybill"),
			Phone: c.FormValue("phone"), Description: c.FormValue("description")}
		return nil
	}},
	"cancel": {name: "cancel", kind: refundflow.InputCancel, fill: func(echo.Context, *refundflow.Command) error { return nil }},
	"message": {name: "message", kind: refundflow.InputSendMessage, fill: func(c echo.Context, cmd *refundflow.Command) error {
		cmd.Message = c.FormValue("text")
		return nil
	}},
	"modify": {name: "modify", kind: refundflow.InputModify, fill: fillModify},
}

// fillModify reads the modify form as refundctl modify reads its flags: an
// empty field changes nothing, a reason is an id or a text (not both), an
// amount is fen or max, vouchers one per line.
func fillModify(c echo.Context, cmd *refundflow.Command) error {
	m := &refundflow.Modification{Reason: strings.TrimSpace(c.FormValue("reason"))}
	cmd.Modify = m
	var errs []error
	if v := strings.TrimSpace(c.FormValue("reason_id")); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			errs = append(errs, errors.New("reasonId: a positive integer (the platform's reason id)"))
		}
		m.ReasonID = n
	}
	if v := strings.TrimSpace(c.FormValue("amount")); v != "" {
		n, err := refundflow.ParseAmount(cmd.Platform, v)
		switch {
		case err != nil && v == refundflow.AmountMax:
			errs = append(errs, fmt.Errorf("amount: %w", err)) // max on 1688
		case err != nil:
			errs = append(errs, errors.New("amount: fen (a whole number), or max"))
		}
		m.Amount = &n
	}
	// Vouchers replace the request's evidence images, as refundctl modify
	// --voucher does; none leaves them as filed. opcommands.Check checks
	// them (refundflow.Modification.CheckFor) with the rest.
	m.Vouchers = formLines(c.FormValue("vouchers"))
	if v := c.FormValue("description"); v != "" {
		m.Description = &v
		// Checked as refundctl modify checks it (refundflow's rules); the
		// worker validates the whole modified request again.
		if err := (refundflow.Modification{Description: &v}).CheckFor(cmd.Platform); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// formLines reads a form's list field, one value per line (a voucher
// reference each, as the request and modify forms take them): each line
// trimmed, empty lines left out; nil when there is none.
func formLines(v string) []string {
	var out []string
	for line := range strings.SplitSeq(v, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// handleAction is POST /cases/{id}/{action}: the command refundctl
// publishes for the same verb, built from the form and issued under the
// operator's name (so the timeline records who). A form refundflow's
// validation refuses is shown again with the reasons, and nothing is
// published. Otherwise it waits up to VerdictWait for the worker's verdict
// and then shows the case with it (a redirect, so a reload does not send
// the form again). Which forms the page offers is a hint: the worker
// decides whether the command applies, and its verdict says.
func (s *Server) handleAction(a action) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !who(c).CanAct() {
			return errNotOperator
		}
		if err := s.checkCSRF(c); err != nil {
			return err
		}
		ctx := c.Request().Context()
		k, err := s.getCase(ctx, c.Param("id"))
		if err != nil {
			return err
		}
		id, err := opcommands.NewID()
		if err != nil {
			return err
		}
		cmd := refundflow.Command{ID: id, Kind: a.kind, Platform: refundflow.Platform(k.Platform),
			CaseID: k.ID, Operator: who(c).Name, IssuedAt: s.now().UTC().Truncate(time.Millisecond)}
		if k.Platform == casestore.PlatformTaobao {
			cmd.OrderID, cmd.SubOrderID = k.OrderID, k.SubOrderID
		} else {
			cmd.OrderID = k.OrderID
		}
		ferr := a.fill(c, &cmd)
		if err := errors.Join(ferr, opcommands.Check(cmd)); err != nil {
			return s.renderCase(c, http.StatusBadRequest, k, "", &formError{Form: a.name, Message: formMessage(err)})
		}
		q := url.Values{"command": {id}}
		out, err := s.issue(ctx, who(c), cmd, s.cfg.VerdictWait, false)
		switch {
		case unconfirmed(err):
			// Sent and not confirmed: the case page follows it by its id
			// and says so; the form sent again would be a new command.
			q.Set("unconfirmed", "1")
		case err != nil:
			return err
		default:
			addStored(q, out.Ack)
		}
		return c.Redirect(http.StatusSeeOther, "/cases/"+strconv.FormatInt(k.ID, 10)+"?"+q.Encode())
	}
}

// addStored puts where a command was stored into a page's query (stream,
// seq), for the page to say where JetStream has it while it has no
// verdict (storedWhere).
func addStored(q url.Values, ack opcommands.Ack) {
	if ack.Stream != "" && ack.Sequence > 0 {
		q.Set("stream", ack.Stream)
		q.Set("seq", strconv.FormatUint(ack.Sequence, 10))
	}
}

// maxWhereLooks is how many pages may look at JetStream at once for a
// pending command (storedWhere): a reload loop, or many at once, costs
// JetStream no more than this many looks at a time.
const maxWhereLooks = 4

// storedWhere is where JetStream has command id, stored as stream and seq
// say (a page's query: addStored), for a page showing it pending: ""
// when they do not name that command's message (an operator's command:
// its subject a command's, its Nats-Msg-Id the id), when as many looks
// are under way already (maxWhereLooks), or when JetStream cannot say
// within whereaboutsWait. Read at every load, so a reload says where it
// is now.
func (s *Server) storedWhere(ctx context.Context, id, stream, seq string) string {
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil || n == 0 || stream == "" || len(stream) > 64 || !commandIDSyntax.MatchString(id) {
		return ""
	}
	return s.lookWhere(ctx, func(ctx context.Context) (opcommands.Ack, error) {
		st, err := s.js.Stream(ctx, stream)
		if err != nil {
			return opcommands.Ack{}, err
		}
		m, err := st.GetMsg(ctx, n)
		if err != nil {
			return opcommands.Ack{}, err
		}
		if m.Header.Get(jetstream.MsgIDHeader) != id || !strings.HasPrefix(m.Subject, events.SubjectCommands+".") {
			return opcommands.Ack{}, errNotTheCommand // a link edited by hand, or naming another stream's message
		}
		return opcommands.Ack{Subject: m.Subject, Stream: stream, Sequence: n}, nil
	})
}

// errNotTheCommand is storedWhere's look at a message that is not the
// command's.
var errNotTheCommand = errors.New("the message is not the command's")

// lookWhere is where JetStream has the command find finds (its subject,
// stream and sequence), said by opcommands.Whereabouts: "" when find
// fails, when as many looks are under way already (maxWhereLooks), or
// when JetStream cannot say within whereaboutsWait.
func (s *Server) lookWhere(ctx context.Context, find func(context.Context) (opcommands.Ack, error)) string {
	if s.js == nil {
		return ""
	}
	select {
	case s.whereLooks <- struct{}{}:
		defer func() { <-s.whereLooks }()
	default:
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, whereaboutsWait)
	defer cancel()
	ack, err := find(ctx)
	if err != nil {
		return ""
	}
	where, err := opcommands.Whereabouts(ctx, s.js, ack)
	if err != nil {
		return ""
	}
	return where
}

// locatedWhere is where JetStream has command id, known by its id alone
// (opcommands.Locate reads the command stream for it): "" when it is not
// among the messages read, when as many looks are under way already
// (maxWhereLooks), or when JetStream cannot say within whereaboutsWait.
func (s *Server) locatedWhere(ctx context.Context, id string) string {
	return s.lookWhere(ctx, func(ctx context.Context) (opcommands.Ack, error) {
		return opcommands.Locate(ctx, s.js, id, opcommands.LocateLimit, whereaboutsWait)
	})
}

// unconfirmed reports whether err is issue's CodeUnconfirmed: the command
// was sent, and may be stored.
func unconfirmed(err error) bool {
	var ce *Error
	return errors.As(err, &ce) && ce.Code == CodeUnconfirmed
}

// unconfirmedReason is a pending verdict's reason on a page a form went to
// after its command was sent and not confirmed.
const unconfirmedReason = "sent, and NATS did not confirm storing it in time: it may be stored. Do not send the form again (that " +
	"would be a new command); reload: its verdict appears here if it was stored. If none has appeared a minute later while the " +
	"worker runs, it was not stored, and sending it again is safe"

// issued is a published command and what became of it.
type issued struct {
	Ack     opcommands.Ack
	Command refundflow.Command // as stored: for a duplicate, the first one published
	Verdict opcommands.Verdict // VerdictPending when the worker gave none within the wait
}

// errIDReused answers a command whose id an earlier, different command
// already has: nothing new is stored, and the caller must pick a new id.
var errIDReused = &Error{Code: CodeConflict, Message: "id: a different command was already published with this id; nothing was sent (use a new id)"}

// issue is the one way the console sends a command, whether a form, the
// request page or POST /api/v1/commands asked for it: cmd, already
// checked (opcommands.Check) and issued under the caller's name, is
// published through opcommands.Publish (so a retry with the same id is
// stored once), and followed up to wait for the worker's verdict. A
// duplicate publish whose stored command asks something else than cmd
// (opcommands.Same: when and by whom it was issued aside) is errIDReused. Every command issued is counted and
// logged with its account, never with its payload; with a tracer it has a
// span of its own (issueSpan), whose trace the worker continues.
func (s *Server) issue(ctx context.Context, by Account, cmd refundflow.Command, wait time.Duration, where bool) (out issued, err error) {
	ctx, span := s.issueSpan(ctx, cmd)
	defer func() { endIssueSpan(span, out, err) }()
	if s.js == nil {
		return issued{}, &Error{Code: CodeUnavailable, Message: "this console has no NATS connection; commands cannot be sent"}
	}
	pctx, cancel := context.WithTimeout(ctx, s.cfg.PublishWait)
	defer cancel()
	ack, err := opcommands.Publish(pctx, s.js, cmd)
	if err != nil {
		s.logger.WarnContext(ctx, "publish command failed", "command", cmd.ID, "kind", cmd.Kind, "case", cmd.CaseID, "err", err)
		if opcommands.NotStored(err) {
			return issued{}, &Error{Code: CodeUnavailable, Message: "the command was not stored: " + opcommands.NotStoredWhy(err)}
		}
		// Sent, not confirmed: sent again under a new id it could be
		// applied twice.
		return issued{}, &Error{Code: CodeUnconfirmed, Message: fmt.Sprintf("command %s was sent and its storing was not confirmed "+
			"in time: it may have been stored. Send it again with the same id (%s; an id is stored once), or look for its verdict "+
			"in a moment", cmd.ID, cmd.ID)}
	}
	if ack.Duplicate {
		first, err := opcommands.Stored(pctx, s.js, ack)
		if err != nil {
			s.logger.WarnContext(ctx, "read the stored command of a duplicate", "command", cmd.ID, "err", err)
			return issued{}, &Error{Code: CodeUnavailable, Message: "a command with this id is already stored, and it could not be read to compare; nothing new was sent, try again"}
		}
		if !opcommands.Same(first, cmd) {
			s.logger.WarnContext(ctx, "command id reused for a different command", "command", cmd.ID, "account", by.Name)
			return issued{}, errIDReused
		}
		cmd = first
	}
	out = issued{Ack: ack, Command: cmd, Verdict: opcommands.Verdict{Verdict: opcommands.VerdictPending}}
	if wait > 0 {
		// Published, the command is stored and will be applied: a verdict
		// that cannot be read now (the database went away during the wait)
		// leaves it pending, never an error, which would tell the operator
		// that nothing was sent and have them send it again.
		v, err := s.awaitVerdict(ctx, cmd.ID, wait)
		switch {
		case err == nil:
			out.Verdict = v
		case errors.Is(err, opcommands.ErrPending):
			// Kept by the worker for its case, it says where; no case
			// for it yet, it says that.
			if kept, kerr := opcommands.PendingFor(ctx, s.store, cmd); kerr == nil {
				out.Verdict = kept
			}
			if out.Verdict.Reason == "" && where {
				// Not kept: where JetStream has it (taken by a worker, or
				// waiting for one), rather than a bare "not decided yet".
				// (A form's page reads it itself: storedWhere.)
				wctx, cancel := context.WithTimeout(ctx, whereaboutsWait)
				if where, werr := opcommands.Whereabouts(wctx, s.js, ack); werr == nil {
					out.Verdict.Code, out.Verdict.Reason = opcommands.CodeUndecided, where
				}
				cancel()
			}
		default:
			s.logger.WarnContext(ctx, "command published; its verdict could not be read", "command", cmd.ID, "err", err)
			out.Verdict.Reason = verdictUnreadOther
			if casestore.Unavailable(err) {
				out.Verdict.Reason = opcommands.ReasonUnread
			}
		}
	}
	s.metrics.commands.WithLabelValues(string(cmd.Kind), out.Verdict.Verdict).Inc()
	s.logger.InfoContext(ctx, "command issued", "command", cmd.ID, "kind", cmd.Kind, "case", cmd.CaseID,
		"account", by.Name, "verdict", out.Verdict.Verdict, "duplicate", ack.Duplicate)
	return out, nil
}

// whereaboutsWait bounds the look at JetStream's consumers for a command
// still pending after the wait: a NATS that does not answer (or an account
// not allowed to list consumers) costs the answer no more than this.
const whereaboutsWait = time.Second

// verdictUnreadOther is a pending verdict's reason when the console could
// not read it for another reason than the database (opcommands.ReasonUnread):
// the command was sent all the same.
const verdictUnreadOther = "sent; the console could not read the worker's verdict: do not send it again, look for it in a moment"

// awaitVerdict waits up to wait for the worker's verdict on command id
// and describes it (opcommands.ErrPending when it gave none).
func (s *Server) awaitVerdict(ctx context.Context, id string, wait time.Duration) (opcommands.Verdict, error) {
	o, err := opcommands.AwaitOutcome(ctx, s.store, id, wait, verdictPoll)
	if err != nil {
		return opcommands.Verdict{}, err
	}
	return opcommands.Describe(ctx, s.store, o)
}

// formError is why a form was refused: shown next to that form.
type formError struct {
	Form    string
	Message string
}

// fieldLabels are the case page's names for the fields refundflow's
// validation names as JSON does (for the worker's dead letters): the
// operator filled in a form, so the console names its fields, as
// refundctl names its flags.
var fieldLabels = map[string]string{
	"action":      "Action",
	"note":        "Note",
	"refund":      "Refund to adopt",
	"company":     "Carrier",
	"waybill":     "Waybill",
	"phone":       "Phone",
	"description": "Description",
	"message":     "Message",
	"reasonId":    "Reason id",
	"reason":      "Reason text",
	"amount":      "Amount",
	"vouchers":    "Vouchers",

	// The request form's.
	"platform":      "Platform",
	"orderId":       "Order id",
	"subOrderId":    "Sub-order id",
	"goodsStatus":   "Goods status",
	"carriage":      "Carriage",
	"orderEntryIds": "Order entries",
	"type":          "Type",
}

// proseFields are the JSON names translated inside a message as well as at
// its start: only the camelCase ones, which cannot be ordinary words.
var proseFields = regexp.MustCompile(`\b(?:request\.)?(reasonId|orderEntryIds|subOrderId|orderId|goodsStatus)\b`)

// formMessage is a validation error as one line for the form, each problem
// naming the form's field: "waybill: 1 to 64 printable characters" becomes
// "Waybill: 1 to 64 printable characters". The "shipment: " or "modify: "
// (or "request: ") before the first problem of a nested part is dropped.
func formMessage(err error) string {
	var out []string
	for line := range strings.SplitSeq(err.Error(), "\n") {
		line = strings.TrimSpace(line)
		for _, doc := range []string{"resolve: ", "shipment: ", "modify: ", "request: "} {
			line = strings.TrimPrefix(line, doc)
		}
		if line == "" {
			continue
		}
		field, rest := line, ""
		if j := strings.IndexAny(line, ": "); j >= 0 {
			field, rest = line[:j], line[j:]
		}
		if label, ok := fieldLabels[field]; ok {
			line = label + rest
		}
		line = proseFields.ReplaceAllStringFunc(line, func(m string) string { return fieldLabels[strings.TrimPrefix(m, "request.")] })
		out = append(out, line)
	}
	return strings.Join(out, "; ")
}

// canRequestAgain reports whether a corrected request replaces the one k
// stopped with (the case page's "Request again", the request page's note):
// it stopped before its refund reached the platform, and not on a
// submission that may be on the platform or that the platform kept
// refusing (refundflow.RequestReplaces): the worker refuses a request then.
func canRequestAgain(k casestore.Case) bool {
	state := refundflow.State(k.State)
	return state == refundflow.StateNeedsAttention &&
		refundflow.RequestReplaces(state, refundflow.State(k.ParkedState), k.RefundID, k.AttentionCode)
}

// planOf is k's plan (refundflow.Plan); the zero plan when it has none, or
// one this build cannot read.
func planOf(k casestore.Case) refundflow.Plan {
	var p refundflow.Plan
	if len(k.Plan) > 0 && json.Unmarshal(k.Plan, &p) != nil {
		return refundflow.Plan{}
	}
	return p
}

// orderElsewhere reports whether k's plan holds that the platform files
// its sub-order under another order (refundflow.Plan.OrderElsewhere).
func orderElsewhere(k casestore.Case) bool { return planOf(k).OrderElsewhere != nil }

// offers are the forms the case page shows k's reader: those whose command
// may apply to k in its state (the worker still decides), and only to an
// operator. A case held because worker processes ended on it takes resolve
// alone: the worker refuses every other command for it.
func offers(a Account, k casestore.Case) map[string]bool {
	if !a.CanAct() {
		return nil
	}
	state, parked := refundflow.State(k.State), refundflow.State(k.ParkedState)
	attention := state == refundflow.StateNeedsAttention
	if attention && k.AttentionCode == refundflow.CodeWorkerEnded {
		return map[string]bool{"resolve": true, "retry": true} // a retry takes the hold off
	}
	effective := state
	if attention {
		effective = parked
	}
	taobao := k.Platform == casestore.PlatformTaobao
	// Stopped on an open side effect the platform kept refusing: the
	// worker refuses other commands until it is settled, but for the
	// correction that replaces a refused return or modification (runbook:
	// intent_resends_failed). A case stopped intent_unverifiable may have
	// its intent settled already (unverified), and then takes a cancel or
	// a message: those stay offered; the worker decides.
	resendsFailed := attention && k.AttentionCode == refundflow.CodeResendsFailed
	unsettled := resendsFailed
	// A return submission that may have reached the platform takes no
	// other shipment, settled or not (a second return).
	unverifiedReturn := attention && parked == refundflow.StateReturnSubmitting && k.AttentionCode == refundflow.CodeUnverifiable
	// Submitted under another order than the one the platform files the
	// sub-order under: the platform can never tell whether it took
	// effect, and the worker refuses a retry and a cancel; closing is the
	// way out (the runbook's intent_unverifiable).
	elsewhere := attention && k.RefundID == "" && orderElsewhere(k) // (a refund adopted since is followed by its id)
	// Stopped for an open refund it did not file, or on a submission the
	// platform cannot confirm, before a refund of its own: the refund on
	// the platform may be adopted. An adopted one is not modified from
	// here (the worker refuses: what it asks for is the platform's).
	blocked := attention && refundflow.AdoptsHere(parked, k.RefundID, k.AttentionCode)
	adopted := planOf(k).Adopted != ""
	cancellable := !state.Terminal() && state != refundflow.StateCancelling && !unsettled && !elsewhere
	return map[string]bool{
		"resolve": attention,
		"retry":   attention && !elsewhere,
		"adopt":   blocked,
		// Stopped before its refund reached the platform: a corrected
		// request replaces the one it stopped with (the request form,
		// filled in from the case). Not while a submission may be on the
		// platform, unverified: the worker would wait for its evidence.
		// Not when the form allows no amount (nothing_refundable): no
		// correction can be filed (the runbook's advice is a cancel).
		"request": canRequestAgain(k) && k.AttentionCode != refundflow.AttnNothingRefundable,
		"ship": (effective == refundflow.StateWaitingReturnShipment && !unsettled) ||
			(attention && parked == refundflow.StateReturnRendering && !unsettled) ||
			(attention && parked == refundflow.StateReturnSubmitting && (!unsettled || resendsFailed) && !unverifiedReturn),
		// 1688's API has no cancel: a case with a refund there is
		// withdrawn on 1688 itself (cancel-elsewhere), which the case
		// follows to closed, and the worker refuses the command; before
		// the refund, a cancel ends the case. A refund gone from 1688
		// (refund_missing) has nothing to withdraw: resolve is the way.
		"cancel":           cancellable && (taobao || k.RefundID == ""),
		"cancel-elsewhere": !taobao && k.RefundID != "" && !state.Terminal() && k.AttentionCode != refundflow.AttnRefundMissing,
		"message":          taobao && k.RefundID != "" && !state.Terminal() && !unsettled,
		"modify": taobao && k.RefundID != "" && attention && !adopted &&
			((parked == refundflow.StateWaitingSeller && k.AttentionCode == refundflow.AttnSellerRefused) ||
				(parked == refundflow.StateModifyRendering && k.AttentionCode != refundflow.AttnNothingRefundable) ||
				(parked == refundflow.StateModifying && (k.AttentionCode == refundflow.AttnPlatformError || resendsFailed))),
	}
}
