package console

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/deadletters"
	"github.com/refundhub/refundhub/internal/events"
)

// The dead-letter pages: grouped like incidents (reason and the platform's
// error code), one letter with its payload and history, and the retry and
// discard forms, one by one or in bulk. Every write goes through package
// deadletters, refundctl's code path, on the console's write handle
// (Deps.DeadLetters).

// deadLetterPages are the dead-letter templates, parsed with the layout
// beside the other pages.
var deadLetterPages = []string{"deadletters.html", "deadletter.html", "deadletters_bulk.html"}

// parseDeadLetterPages adds the dead-letter templates to pg, each with the
// layout and the page functions, as parsePages parses the others.
func parseDeadLetterPages(pg pages) error {
	for _, name := range deadLetterPages {
		t, err := template.New(name).Funcs(pageFuncs).ParseFS(templateFS, "templates/layout.html", "templates/"+name)
		if err != nil {
			return fmt.Errorf("console templates: %w", err)
		}
		pg[name] = t
	}
	return nil
}

var (
	errNoDeadLetterWrites = &Error{Code: CodeUnavailable,
		Message: "this console has no write handle on the case store; dead letters can be read, not retried or discarded"}
	errDeadLetterRole = &Error{Code: CodeForbidden, Message: "retrying or discarding dead letters needs the operator role"}
)

// deadLetterFilter reads a grouped view's or a bulk action's filter from
// query or form values.
func deadLetterFilter(get func(string) string) (deadletters.Filter, error) {
	f := deadletters.Filter{State: deadletters.State(get("state")), Reason: events.DeadReason(strings.TrimSpace(get("reason"))),
		Code: strings.TrimSpace(get("code")), Subject: strings.TrimSpace(get("subject"))}
	f, err := f.Check()
	if err != nil {
		return f, invalidArg(err.Error())
	}
	return f, nil
}

// filterQuery is a filter as a query string, for links that keep it.
func filterQuery(f deadletters.Filter) template.URL {
	v := url.Values{}
	for k, s := range map[string]string{"state": string(f.State), "reason": string(f.Reason), "code": f.Code, "subject": f.Subject} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return template.URL(v.Encode())
}

// parseDeadLetterID reads a dead letter id from the path: positive, else
// not found, as a case id is.
func parseDeadLetterID(raw string) (int64, error) {
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return 0, &Error{Code: CodeNotFound, Message: "no such dead letter: dead letter ids are positive integers"}
	}
	return id, nil
}

// settleError is a Settler's error as the console answers it: not found,
// a refusal under its own code (409), a bad note, or NATS unreachable.
func settleError(err error) error {
	var refused *deadletters.RefusedError
	var pe *deadletters.PublishError
	var nm *deadletters.NotMarkedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &nm):
		return &Error{Code: CodeInternal, Message: nm.Error()} // the message went out: say so
	case errors.Is(err, deadletters.ErrNotFound):
		return &Error{Code: CodeNotFound, Message: err.Error()}
	case errors.As(err, &refused):
		return &Error{Code: string(refused.Reason), Message: err.Error()}
	case errors.Is(err, deadletters.ErrNoteRequired), errors.Is(err, deadletters.ErrNoteTooLong):
		return invalidArg("note: " + err.Error())
	case errors.As(err, &pe):
		return &Error{Code: CodeUnavailable, Message: "the message could not be republished (NATS unreachable?); nothing was marked, try again"}
	}
	return err
}

// groupView is a group as the page and the API show it.
type groupView struct {
	Reason    string    `json:"reason"`
	Code      string    `json:"code,omitempty"`
	Count     int       `json:"count"`
	FirstSeen time.Time `json:"firstSeen"`
	LastSeen  time.Time `json:"lastSeen"`
	Permanent bool      `json:"permanent"`
	IDs       []int64   `json:"ids"`
	Cases     []int64   `json:"cases"`
	Subjects  []string  `json:"subjects"`
	Error     string    `json:"error,omitempty"`
	// Query selects the group's letters (with the page's state and subject).
	Query template.URL `json:"-"`
}

func (s *Server) deadLetterGroups(c echo.Context, f deadletters.Filter) ([]groupView, bool, error) {
	gs, truncated, err := deadletters.Groups(c.Request().Context(), s.store, f)
	if err != nil {
		return nil, false, err
	}
	out := make([]groupView, len(gs))
	for i, g := range gs {
		code := g.Code
		if code == "" {
			code = deadletters.NoCode
		}
		gf := f
		gf.Reason, gf.Code = g.Reason, code
		out[i] = groupView{Reason: string(g.Reason), Code: g.Code, Count: g.Count, FirstSeen: g.FirstSeen, LastSeen: g.LastSeen,
			Permanent: g.Permanent, IDs: g.IDs, Cases: nonNil(g.Cases), Subjects: g.Subjects, Error: g.Error, Query: filterQuery(gf)}
	}
	return out, truncated, nil
}

func nonNil(ids []int64) []int64 {
	if ids == nil {
		return []int64{}
	}
	return ids
}

type deadLettersPage struct {
	page
	Filter    deadletters.Filter
	Groups    []groupView
	Total     int
	Truncated bool
	Reasons   []events.DeadReason
	States    []deadletters.State
	CanAct    bool
	MaxScan   int
}

// handleDeadLettersPage is GET /dead-letters: the letters the filter
// selects, grouped by reason and platform error code.
func (s *Server) handleDeadLettersPage(c echo.Context) error {
	f, err := deadLetterFilter(c.QueryParam)
	if err != nil {
		return err
	}
	gs, truncated, err := s.deadLetterGroups(c, f)
	if err != nil {
		return err
	}
	p := deadLettersPage{page: s.pageBase(c, "Dead letters"), Filter: f, Groups: gs, Truncated: truncated,
		Reasons: events.DeadReasons(), States: []deadletters.State{deadletters.StatePending, deadletters.StateDiscarded, deadletters.StateAll},
		CanAct: who(c).CanAct() && s.settler != nil, MaxScan: deadletters.MaxScan}
	for _, g := range gs {
		p.Total += g.Count
	}
	return s.render(c, http.StatusOK, "deadletters.html", p)
}

// historyEntry is one thing that happened to a dead letter.
type historyEntry struct {
	At   time.Time `json:"at"`
	What string    `json:"what"`
}

// deadLetterDetail is GET /api/v1/dead-letters/{id}, and what its page shows.
type deadLetterDetail struct {
	deadLetterJSON
	Code      string              `json:"code,omitempty"`
	Permanent bool                `json:"permanent"`
	State     string              `json:"state"`
	Case      int64               `json:"case,omitempty"`
	Headers   map[string][]string `json:"headers"`
	// Payload is the stored bytes as text when they are UTF-8, else
	// PayloadBase64 holds them; PayloadJSON says the text is JSON.
	Payload       *string        `json:"payload,omitempty"`
	PayloadBase64 string         `json:"payloadBase64,omitempty"`
	PayloadJSON   bool           `json:"payloadJson"`
	History       []historyEntry `json:"history"`
	// Pretty is the payload indented when it is JSON (pages only).
	Pretty string `json:"-"`
}

// stateOf is a letter's state word.
func stateOf(d casestore.DeadLetter) string {
	switch {
	case !d.DiscardedAt.IsZero():
		return "discarded"
	case !d.RetriedAt.IsZero():
		return "retried"
	}
	return "pending"
}

func (s *Server) deadLetterDetail(c echo.Context, d casestore.DeadLetter) (deadLetterDetail, error) {
	out := deadLetterDetail{deadLetterJSON: toDeadLetterJSON(d), Code: deadletters.CodeOf(d), Permanent: deadletters.Permanent(d),
		State: stateOf(d), Headers: d.Headers}
	if out.Headers == nil {
		out.Headers = map[string][]string{}
	}
	k, err := deadletters.CaseOf(c.Request().Context(), s.store, d)
	if err != nil {
		return out, err
	}
	out.Case = k
	switch {
	case utf8.Valid(d.Payload):
		text := string(d.Payload)
		out.Payload, out.Pretty = &text, text
		var b bytes.Buffer
		if json.Valid(d.Payload) && json.Indent(&b, d.Payload, "", "  ") == nil {
			out.PayloadJSON, out.Pretty = true, b.String()
		}
	default:
		out.PayloadBase64 = base64.StdEncoding.EncodeToString(d.Payload)
	}
	h := []historyEntry{{At: d.CreatedAt, What: fmt.Sprintf("dead after %d deliveries: %s", d.Deliveries, d.Reason)}}
	hd := http.Header(d.Headers)
	if of := hd.Get(events.HeaderRetryOf); of != "" {
		what := "a retry of dead letter " + of
		if by := hd.Get(events.HeaderRetryBy); by != "" {
			what += ", retried by " + by
		}
		h[0].What += " (" + what + ")"
	}
	if !d.RetriedAt.IsZero() {
		h = append(h, historyEntry{At: d.RetriedAt, What: "retried: republished to " + d.Subject})
	}
	if !d.DiscardedAt.IsZero() {
		h = append(h, historyEntry{At: d.DiscardedAt, What: "discarded by " + d.DiscardedBy + ": " + d.DiscardNote})
	}
	sort.SliceStable(h, func(i, j int) bool { return h[i].At.Before(h[j].At) })
	out.History = h
	return out, nil
}

// toDeadLetterJSON is a dead letter's list form (no payload).
func toDeadLetterJSON(d casestore.DeadLetter) deadLetterJSON {
	return deadLetterJSON{ID: d.ID, MsgID: d.MsgID, Subject: d.Subject, Reason: d.Reason, Error: d.Error, Deliveries: d.Deliveries,
		CreatedAt: d.CreatedAt, RetriedAt: optTime(d.RetriedAt), DiscardedAt: optTime(d.DiscardedAt), DiscardedBy: d.DiscardedBy,
		DiscardNote: d.DiscardNote}
}

func (s *Server) loadDeadLetter(c echo.Context) (casestore.DeadLetter, error) {
	id, err := parseDeadLetterID(c.Param("id"))
	if err != nil {
		return casestore.DeadLetter{}, err
	}
	d, err := deadletters.Load(c.Request().Context(), s.store, id)
	return d, settleError(err)
}

type deadLetterPage struct {
	page
	deadLetterDetail
	HeaderNames []string
	CanAct      bool
	// Callback: the letter is a callback, whose retry replays it from the
	// store (its stored bytes, to its original subject).
	Callback bool
	// Done is what the last form did (after its redirect).
	Done string
	// FormError is why a form was refused, beside it.
	FormError *formError
}

// handleDeadLetterPage is GET /dead-letters/{id}.
func (s *Server) handleDeadLetterPage(c echo.Context) error {
	d, err := s.loadDeadLetter(c)
	if err != nil {
		return err
	}
	done := ""
	switch c.QueryParam("done") {
	case "retried":
		done = "Retried: the message was republished to its subject."
	case "discarded":
		done = "Discarded."
	}
	return s.renderDeadLetter(c, http.StatusOK, d, done, nil)
}

func (s *Server) renderDeadLetter(c echo.Context, status int, d casestore.DeadLetter, done string, fe *formError) error {
	det, err := s.deadLetterDetail(c, d)
	if err != nil {
		return err
	}
	p := deadLetterPage{page: s.pageBase(c, fmt.Sprintf("Dead letter %d", d.ID)), deadLetterDetail: det, Done: done, FormError: fe,
		CanAct:   who(c).CanAct() && s.settler != nil && deadletters.Pending(d),
		Callback: events.SubjectMatches(events.SubjectAccepted+".>", d.Subject)}
	for k := range d.Headers {
		p.HeaderNames = append(p.HeaderNames, k)
	}
	sort.Strings(p.HeaderNames)
	return s.render(c, status, "deadletter.html", p)
}

// checkDeadLetterForm is what every dead-letter form passes first: the
// operator role, the session's CSRF token, a write handle.
func (s *Server) checkDeadLetterForm(c echo.Context) error {
	if !who(c).CanAct() {
		return errDeadLetterRole
	}
	if err := s.checkCSRF(c); err != nil {
		return err
	}
	if s.settler == nil {
		return errNoDeadLetterWrites
	}
	return nil
}

// handleDeadLetterForm is POST /dead-letters/{id}/retry and .../discard:
// the action through package deadletters under the operator's name, then
// the letter's page (a redirect). A refusal or a bad note is shown beside
// the form, with its status, and changes nothing.
func (s *Server) handleDeadLetterForm(action string) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := s.checkDeadLetterForm(c); err != nil {
			return err
		}
		id, err := parseDeadLetterID(c.Param("id"))
		if err != nil {
			return err
		}
		err = s.settleOne(c, action, id, c.FormValue("force") == "on", c.FormValue("note"))
		var ce *Error
		if errors.As(err, &ce) && ce.Code != CodeNotFound && ce.Code != CodeUnavailable {
			d, lerr := deadletters.Load(c.Request().Context(), s.store, id)
			if lerr != nil {
				// The action's own error says what happened (a retry
				// republished and not marked says so): the reload's
				// would read as nothing done.
				return ce
			}
			return s.renderDeadLetter(c, statusOf[ce.Code], d, "", &formError{Form: action, Message: ce.Message})
		}
		if err != nil {
			return err
		}
		done := "retried"
		if action == "discard" {
			done = "discarded"
		}
		return c.Redirect(http.StatusSeeOther, fmt.Sprintf("/dead-letters/%d?done=%s", id, done))
	}
}

// settleOne retries or discards one letter as the caller, and logs it.
func (s *Server) settleOne(c echo.Context, action string, id int64, force bool, note string) error {
	ctx := c.Request().Context()
	var err error
	if action == "retry" {
		_, err = s.retryOne(ctx, id, deadletters.RetryOptions{Force: force, Operator: who(c).Name})
	} else {
		_, err = s.settler.Discard(ctx, id, who(c).Name, note)
	}
	s.logSettled(c, action, id, force, err)
	return settleError(err)
}

// retryOne is the Settler's Retry in a span of its own (retrySpan); a dry
// run publishes nothing and gets none.
func (s *Server) retryOne(ctx context.Context, id int64, o deadletters.RetryOptions) (deadletters.Retried, error) {
	if o.DryRun {
		return s.settler.Retry(ctx, id, o)
	}
	ctx, span := s.retrySpan(ctx, []int64{id})
	r, err := s.settler.Retry(ctx, id, o)
	retried := 0
	if err == nil {
		retried = 1
	}
	endRetrySpan(span, retried, 1-retried)
	return r, err
}

// retryEach is the Settler's RetryEach in one span (retrySpan).
func (s *Server) retryEach(ctx context.Context, ids []int64, o deadletters.RetryOptions) []deadletters.Verdict {
	ctx, span := s.retrySpan(ctx, ids)
	vs := s.settler.RetryEach(ctx, ids, o)
	retried := 0
	for _, v := range vs {
		if v.Outcome == deadletters.OutcomeRetried {
			retried++
		}
	}
	endRetrySpan(span, retried, len(ids)-retried)
	return vs
}

// logSettled logs an operator's retry or discard of a dead letter with its
// verdict (retried or discarded, refused, failed): the one log line every
// form and API path writes for it.
func (s *Server) logSettled(c echo.Context, action string, id int64, force bool, err error) {
	verdict := map[string]string{"retry": "retried", "discard": "discarded"}[action]
	if err != nil {
		verdict = "refused"
		var refused *deadletters.RefusedError
		if !errors.As(err, &refused) {
			verdict = "failed"
		}
	}
	s.logger.Info("dead letter "+action, "dead_letter", id, "account", who(c).Name, "force", force, "verdict", verdict, "err", err)
}

// bulkPage is the confirmation of a bulk action, or its verdicts.
type bulkPage struct {
	page
	Action    string
	Filter    deadletters.Filter
	FilterQ   template.URL
	IDs       []int64
	IDList    string
	Note      string
	Force     bool
	Permanent int // how many of IDs are permanent failures
	Verdicts  []deadletters.Verdict
	Truncated bool
}

// checkBulkAction checks a bulk action's name: retry or discard.
func checkBulkAction(action string) error {
	if action != "retry" && action != "discard" {
		return invalidArg("action: retry or discard")
	}
	return nil
}

// bulkNote is the note of a bulk action as it acts: a discard needs one
// (deadletters.CheckNote), a retry takes none.
func bulkNote(action, note string) (string, error) {
	if action != "discard" {
		return "", nil
	}
	n, err := deadletters.CheckNote(note)
	if err != nil {
		return "", invalidArg("note: " + err.Error())
	}
	return n, nil
}

// parseIDList reads the confirmed ids of a bulk form: "1,2,3", each a
// positive integer, at most deadletters.MaxScan.
func parseIDList(s string) ([]int64, error) {
	var out []int64
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		id, err := strconv.ParseInt(f, 10, 64)
		if err != nil || id <= 0 {
			return nil, invalidArg("ids: dead letter ids (positive integers) separated by commas")
		}
		out = append(out, id)
	}
	if len(out) == 0 || len(out) > deadletters.MaxScan {
		return nil, invalidArg(fmt.Sprintf("ids: 1 to %d dead letter ids", deadletters.MaxScan))
	}
	return out, nil
}

func joinIDs(ids []int64) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(parts, ",")
}

// handleDeadLettersBulk is POST /dead-letters/bulk. Without confirm it
// selects the pending letters the filter matches now and shows how many and
// which, with a form that confirms exactly those ids; with confirm it acts
// on exactly the ids confirmed (a letter settled in between is refused by
// package deadletters, not acted on twice) and shows each one's verdict.
func (s *Server) handleDeadLettersBulk(c echo.Context) error {
	if err := s.checkDeadLetterForm(c); err != nil {
		return err
	}
	action := c.FormValue("action")
	if err := checkBulkAction(action); err != nil {
		return err
	}
	f, err := deadLetterFilter(c.FormValue)
	if err != nil {
		return err
	}
	f.State = deadletters.StatePending // only pending letters can be retried or discarded
	p := bulkPage{page: s.pageBase(c, "Dead letters: "+action+" in bulk"), Action: action, Filter: f, FilterQ: filterQuery(f),
		Note: c.FormValue("note"), Force: c.FormValue("force") == "on"}
	ctx := c.Request().Context()
	if c.FormValue("confirm") == "" {
		dls, truncated, err := deadletters.Matching(ctx, s.store, f)
		if err != nil {
			return err
		}
		for _, d := range dls {
			p.IDs = append(p.IDs, d.ID)
			if deadletters.Permanent(d) {
				p.Permanent++
			}
		}
		p.IDList, p.Truncated = joinIDs(p.IDs), truncated
		return s.render(c, http.StatusOK, "deadletters_bulk.html", p)
	}
	ids, err := parseIDList(c.FormValue("ids"))
	if err != nil {
		return err
	}
	note, err := bulkNote(action, c.FormValue("note"))
	if err != nil {
		return err
	}
	p.IDs, p.Verdicts = ids, s.settleEach(c, action, ids, p.Force, note)
	return s.render(c, http.StatusOK, "deadletters_bulk.html", p)
}

// settleEach acts on exactly ids as the caller, and logs the tally.
func (s *Server) settleEach(c echo.Context, action string, ids []int64, force bool, note string) []deadletters.Verdict {
	ctx := c.Request().Context()
	var vs []deadletters.Verdict
	if action == "retry" {
		vs = s.retryEach(ctx, ids, deadletters.RetryOptions{Force: force, Operator: who(c).Name})
	} else {
		vs = s.settler.DiscardEach(ctx, ids, who(c).Name, note)
	}
	tally := map[deadletters.Outcome]int{}
	for _, v := range vs {
		tally[v.Outcome]++
	}
	s.logger.Info("dead letters "+action+" in bulk", "account", who(c).Name, "count", len(ids), "force", force,
		"done", tally[deadletters.OutcomeRetried]+tally[deadletters.OutcomeDiscarded], "refused", tally[deadletters.OutcomeRefused],
		"failed", tally[deadletters.OutcomeFailed]+tally[deadletters.OutcomeNotTried])
	return vs
}
