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
)

// The dead-letter API: the grouped view, one letter, and the same retry,
// discard and bulk actions as the pages, for programs (bearer tokens, no
// CSRF: a browser never sends a bearer token on its own).

// deadLettersJSON is GET /api/v1/dead-letters.
type deadLettersJSON struct {
	DeadLetters []deadLetterJSON `json:"deadLetters"`
	NextCursor  string           `json:"nextCursor,omitempty"`
}

// handleAPIDeadLetters lists dead letters in id order; pending=true keeps
// those neither retried nor discarded. Payloads are left out of the list.
func (s *Server) handleAPIDeadLetters(c echo.Context) error {
	f := casestore.DeadLetterFilter{Limit: defaultLimit}
	switch c.QueryParam("pending") {
	case "", "false":
	case "true":
		f.PendingOnly = true
	default:
		return invalidArg("pending: true or false")
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
	out := deadLettersJSON{DeadLetters: []deadLetterJSON{}}
	// (The store returns at most maxLimit: a full page of that size may
	// have a next one, and says so.)
	if len(dls) > want || len(dls) == maxLimit {
		dls = dls[:min(want, len(dls))]
		out.NextCursor = strconv.FormatInt(dls[len(dls)-1].ID, 10)
	}
	for _, d := range dls {
		out.DeadLetters = append(out.DeadLetters, deadLetterJSON{ID: d.ID, MsgID: d.MsgID, Subject: d.Subject, Reason: d.Reason,
			Error: d.Error, Deliveries: d.Deliveries, CreatedAt: d.CreatedAt, RetriedAt: optTime(d.RetriedAt),
			DiscardedAt: optTime(d.DiscardedAt), DiscardedBy: d.DiscardedBy, DiscardNote: d.DiscardNote})
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
}

// handleAPIDeadLetterAction is POST /api/v1/dead-letters/{id}/{retry,discard}:
// the letter as it is afterwards, or the refusal under its code (409).
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
		if err := s.settleOne(c, action, id, req.Force, req.Note); err != nil {
			return err
		}
		return s.handleAPIDeadLetter(c)
	}
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
