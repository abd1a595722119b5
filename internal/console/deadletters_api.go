package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/deadletters"
	"github.com/refundhub/refundhub/internal/events"
)

// The dead-letter API: the grouped view, one letter, and the same retry,
// discard and bulk actions as the pages, for programs (bearer tokens, no
// CSRF: a browser never sends a bearer token on its own).

// deadLettersJSON is GET /api/v1/dead-letters.
type deadLettersJSON struct {
	DeadLetters []deadLetterItem `json:"deadLetters"`
	NextCursor  string           `json:"nextCursor,omitempty"`
}

// deadLetterItem is a letter in the list: its headers too (small, and
// what refundctl dead-letters list --json prints), not its payload.
type deadLetterItem struct {
	deadLetterJSON
	Headers map[string][]string `json:"headers,omitempty"`
}

// handleAPIDeadLetters lists dead letters in id order; pending=true keeps
// those neither retried nor discarded, discarded=true only the discarded
// ones and discarded=false the others, reason=R those with reason R (or
// an older worker's spelling of it): the filters of refundctl
// dead-letters list, which reads this when REFUNDHUB_URL is set. Payloads
// are left out of the list.
func (s *Server) handleAPIDeadLetters(c echo.Context) error {
	f := casestore.DeadLetterFilter{Limit: defaultLimit}
	switch c.QueryParam("pending") {
	case "", "false":
	case "true":
		f.PendingOnly = true
	default:
		return invalidArg("pending: true or false")
	}
	switch c.QueryParam("discarded") {
	case "":
	case "true":
		f.Discarded = casestore.DiscardedOnly
	case "false":
		f.Discarded = casestore.DiscardedNot
	default:
		return invalidParam("discarded", "true or false (leave it out for both)")
	}
	if v := c.QueryParam("reason"); v != "" {
		r := events.DeadReason(v)
		if !r.Valid() {
			return invalidParam("reason", "one of "+events.DeadReasonList())
		}
		f.Reasons = r.StoredValues()
	}
	if v := c.QueryParam("cursor"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return invalidArg("cursor: use the nextCursor of the previous page")
		}
		f.AfterID = n
	}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return invalidArg("limit: 1 to " + strconv.Itoa(maxLimit))
		}
		f.Limit = n
	}
	// One row beyond the page says whether there is a next one.
	want := f.Limit
	f.Limit++
	dls, err := s.store.DeadLetters(c.Request().Context(), f)
	if err != nil {
		return err
	}
	out := deadLettersJSON{DeadLetters: []deadLetterItem{}}
	// (The store returns at most maxLimit: a full page of that size may
	// have a next one, and says so.)
	if len(dls) > want || len(dls) == maxLimit {
		dls = dls[:min(want, len(dls))]
		out.NextCursor = strconv.FormatInt(dls[len(dls)-1].ID, 10)
	}
	for _, d := range dls {
		out.DeadLetters = append(out.DeadLetters, deadLetterItem{deadLetterJSON: toDeadLetterJSON(d), Headers: d.Headers})
	}
	return c.JSON(http.StatusOK, out)
}

// groupsJSON is GET /api/v1/dead-letters/groups.
type groupsJSON struct {
	Groups []groupView `json:"groups"`
	Total  int         `json:"total"`
	// Truncated: more letters than deadletters.MaxScan were read; narrow
	// the filter.
	Truncated bool `json:"truncated,omitempty"`
}

func (s *Server) handleAPIDeadLetterGroups(c echo.Context) error {
	f, err := deadLetterFilter(c.QueryParam)
	if err != nil {
		return err
	}
	gs, truncated, err := s.deadLetterGroups(c, f)
	if err != nil {
		return err
	}
	out := groupsJSON{Groups: gs, Truncated: truncated}
	if out.Groups == nil {
		out.Groups = []groupView{}
	}
	for _, g := range gs {
		out.Total += g.Count
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) handleAPIDeadLetter(c echo.Context) error {
	d, err := s.loadDeadLetter(c)
	if err != nil {
		return err
	}
	det, err := s.deadLetterDetail(c, d)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, det)
}

// maxActionBody bounds an action's JSON body: a note and a filter.
const maxActionBody = 16 << 10

// decodeBody reads an action's JSON body into v; an empty body leaves v
// as it is.
func decodeBody(c echo.Context, v any) error {
	b, err := io.ReadAll(io.LimitReader(c.Request().Body, maxActionBody+1))
	if err != nil {
		return invalidArg("body: " + err.Error())
	}
	if len(b) > maxActionBody {
		return invalidArg(fmt.Sprintf("body: at most %d bytes", maxActionBody))
	}
	if len(b) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalidArg("body: a JSON object with the documented fields: " + err.Error())
	}
	return nil
}

// actionRequest is the body of POST /api/v1/dead-letters/{id}/retry and
// .../discard.
type actionRequest struct {
	Force bool   `json:"force"`
	Note  string `json:"note"`
	// DryRun (retry only) checks the retry and builds its message, and
	// publishes and marks nothing: refundctl dead-letters retry --dry-run.
	DryRun bool `json:"dryRun"`
}

// retryAnswer is the answer to a retry: the letter as it is afterwards,
// and what was published (or, in a dry run, would be), which refundctl
// prints as it does on the host.
type retryAnswer struct {
	deadLetterDetail
	Retry retryJSON `json:"retry"`
}

// retryJSON is a retry's message and, unless a dry run, the stream's ack.
type retryJSON struct {
	MsgID     string              `json:"msgId"`
	Headers   map[string][]string `json:"headers"`
	DryRun    bool                `json:"dryRun"`
	Stream    string              `json:"stream,omitempty"`
	Sequence  uint64              `json:"seq,omitempty"`
	Duplicate bool                `json:"duplicate,omitempty"`
}

// handleAPIDeadLetterAction is POST /api/v1/dead-letters/{id}/{retry,discard}:
// the letter as it is afterwards (with, for a retry, what was published),
// or the refusal under its code (409).
func (s *Server) handleAPIDeadLetterAction(action string) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !who(c).CanAct() {
			return errDeadLetterRole
		}
		if s.settler == nil {
			return errNoDeadLetterWrites
		}
		id, err := parseDeadLetterID(c.Param("id"))
		if err != nil {
			return err
		}
		var req actionRequest
		if err := decodeBody(c, &req); err != nil {
			return err
		}
		if action == "retry" {
			return s.apiRetry(c, id, req)
		}
		if req.DryRun {
			return invalidParam("dryRun", "a dry run is for a retry; a discard publishes nothing")
		}
		if err := s.settleOne(c, action, id, req.Force, req.Note); err != nil {
			return err
		}
		return s.handleAPIDeadLetter(c)
	}
}

// apiRetry retries letter id as the caller (settleOne's retry, keeping
// what Retry returns, which settleOne drops) and answers the letter with
// the message. A dry run changes nothing and is not logged.
func (s *Server) apiRetry(c echo.Context, id int64, req actionRequest) error {
	r, err := s.retryOne(c.Request().Context(), id, deadletters.RetryOptions{Force: req.Force, DryRun: req.DryRun, Operator: who(c).Name})
	if !req.DryRun {
		s.logSettled(c, "retry", id, req.Force, err)
	}
	if err != nil {
		return settleError(err)
	}
	d, err := s.loadDeadLetter(c)
	if err != nil {
		return err
	}
	det, err := s.deadLetterDetail(c, d)
	if err != nil {
		return err
	}
	out := retryAnswer{deadLetterDetail: det, Retry: retryJSON{MsgID: r.Msg.Header.Get(events.HeaderMsgID), Headers: r.Msg.Header, DryRun: req.DryRun}}
	if r.Ack != nil {
		out.Retry.Stream, out.Retry.Sequence, out.Retry.Duplicate = r.Ack.Stream, r.Ack.Sequence, r.Ack.Duplicate
	}
	return c.JSON(http.StatusOK, out)
}

// bulkRequest is the body of POST /api/v1/dead-letters/bulk.
type bulkRequest struct {
	Action string `json:"action"`
	Filter struct {
		Reason  string `json:"reason"`
		Code    string `json:"code"`
		Subject string `json:"subject"`
	} `json:"filter"`
	// Expect is how many pending letters the caller saw the filter match:
	// required, so that a bulk action never acts on more than was looked at.
	Expect *int   `json:"expect"`
	Note   string `json:"note"`
	Force  bool   `json:"force"`
}

// bulkJSON is the answer of POST /api/v1/dead-letters/bulk.
type bulkJSON struct {
	Action   string        `json:"action"`
	Count    int           `json:"count"`
	Verdicts []verdictJSON `json:"verdicts"`
}

type verdictJSON struct {
	ID      int64  `json:"id"`
	Outcome string `json:"outcome"`
	Message string `json:"message"`
}

// handleAPIDeadLettersBulk acts on the pending letters the filter matches,
// if they are exactly as many as expect says (else 409 count_changed and
// nothing done), and answers each one's verdict.
func (s *Server) handleAPIDeadLettersBulk(c echo.Context) error {
	if !who(c).CanAct() {
		return errDeadLetterRole
	}
	if s.settler == nil {
		return errNoDeadLetterWrites
	}
	var req bulkRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	action := req.Action
	if err := checkBulkAction(action); err != nil {
		return err
	}
	note, err := bulkNote(action, req.Note)
	if err != nil {
		return err
	}
	if req.Expect == nil || *req.Expect < 1 {
		return invalidArg("expect: the number of pending dead letters the filter matches (see GET /api/v1/dead-letters/groups), at least 1")
	}
	fv := map[string]string{"reason": req.Filter.Reason, "code": req.Filter.Code, "subject": req.Filter.Subject}
	f, err := deadLetterFilter(func(k string) string { return fv[k] })
	if err != nil {
		return err
	}
	f.State = deadletters.StatePending
	dls, truncated, err := deadletters.Matching(c.Request().Context(), s.store, f)
	if err != nil {
		return err
	}
	if truncated {
		return invalidArg(fmt.Sprintf("filter: it matches more than the %d dead letters one bulk action reads; narrow it", deadletters.MaxScan))
	}
	if len(dls) != *req.Expect {
		return &Error{Code: CodeCountChanged, Message: fmt.Sprintf(
			"the filter matches %d pending dead letters now, not %d: look again before acting; nothing changed", len(dls), *req.Expect)}
	}
	ids := make([]int64, len(dls))
	for i, d := range dls {
		ids[i] = d.ID
	}
	out := bulkJSON{Action: action, Count: len(ids), Verdicts: []verdictJSON{}}
	for _, v := range s.settleEach(c, action, ids, req.Force, note) {
		out.Verdicts = append(out.Verdicts, verdictJSON{ID: v.ID, Outcome: string(v.Outcome), Message: v.Message})
	}
	return c.JSON(http.StatusOK, out)
}
