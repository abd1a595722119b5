package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/opcommands"
	"github.com/refundhub/refundhub/internal/platform"
	"github.com/refundhub/refundhub/internal/reasons"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// remote is the backend through the console's JSON API (/api/v1), with
// an API token. The token goes in the Authorization header only: never
// in a URL, a message or an error.
type remote struct {
	a      *app
	client *http.Client
	base   string // scheme://host[:port][/prefix], without user info
	token  string
	// acks are where the console stored the commands a batch filed
	// (its answers' stream and sequence), for its pending rows'
	// whereabouts; unsaid is set once the console could not say one.
	acks   map[string]opcommands.Ack
	unsaid bool
}

// newRemote checks REFUNDHUB_URL and REFUNDHUB_TOKEN.
func (a *app) newRemote() (*remote, error) {
	u, err := url.Parse(a.cfg.ConsoleURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || atOutsideUserInfo(u) {
		return nil, usagef("REFUNDHUB_URL %q: want http(s)://host[:port]%s", cell(redactURL(a.cfg.ConsoleURL), 80), encodeHint(a.cfg.ConsoleURL))
	}
	if a.cfg.ConsoleToken == "" {
		return nil, usagef("REFUNDHUB_TOKEN is not set: the console's API needs a token (REFUNDHUB_URL is set)")
	}
	if a.cfg.Timeout <= 0 {
		return nil, usagef("--timeout %s: must be positive", a.cfg.Timeout)
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return &remote{a: a, client: &http.Client{}, base: strings.TrimSuffix(u.String(), "/"), token: a.cfg.ConsoleToken}, nil
}

func (r *remote) close() { r.client.CloseIdleConnections() }

// apiError is an error answer of the console: its machine code, its
// message and the HTTP status.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("console: %s (%d): %s", e.Code, e.Status, e.Message)
}

// classify gives an API error refundctl's exit status: bad input is a
// usage error (2); a refused command (409) is refused (4), nothing was
// changed; the rest are runtime errors (1).
func classify(e *apiError) error {
	switch {
	case e.Status == http.StatusBadRequest:
		return usageErr(e)
	case e.Status == http.StatusConflict:
		return &refusedError{err: e}
	}
	return e
}

// do sends one request (body as JSON when not nil) within --timeout and
// decodes a 2xx answer into out; it returns the status.
func (r *remote) do(ctx context.Context, method, path string, body, out any) (int, error) {
	return r.doWithin(ctx, r.a.cfg.Timeout, method, path, body, out)
}

// doWithin is do within timeout instead of --timeout.
func (r *remote) doWithin(ctx context.Context, timeout time.Duration, method, path string, body, out any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, &notSentError{fmt.Errorf("encode request: %w", err)}
		}
		rd = bytes.NewReader(b)
	}
	// Whether the request was written decides what a failure means for a
	// command: not written (no connection, a TLS handshake that failed),
	// the console did nothing with it; written, it may have.
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) {
		if i.Err == nil {
			wrote.Store(true)
		}
	}})
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, rd)
	if err != nil {
		return 0, &notSentError{fmt.Errorf("console request %s: %w", path, err)}
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	req.Header.Set("Accept", "application/json")
	// The run's span (tracing on) goes with the request: the console's
	// span for a command continues it.
	events.InjectTraceHTTP(ctx, req.Header)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is named below, without user info
		}
		err = fmt.Errorf("console at %s: %w", r.base, err)
		if !wrote.Load() {
			return 0, &notSentError{err}
		}
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("console at %s: read the answer to %s %s: %w", r.base, method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var eb struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(b, &eb) != nil || eb.Error.Code == "" {
			return resp.StatusCode, fmt.Errorf("console at %s: %s %s answered %d %s, not the API's JSON (is REFUNDHUB_URL the console?)",
				r.base, method, path, resp.StatusCode, http.StatusText(resp.StatusCode))
		}
		return resp.StatusCode, classify(&apiError{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message})
	}
	if err := json.Unmarshal(b, out); err != nil {
		return resp.StatusCode, fmt.Errorf("console at %s: %s %s: an answer that is not the API's JSON: %w", r.base, method, path, err)
	}
	return resp.StatusCode, nil
}

// reasonsWait is how long a reasons look-up may take at the console, on
// top of --timeout: the console bounds its own at 15 s (Taobao asks up to
// five forms).
const reasonsWait = 20 * time.Second

// reasons asks the console for the reasons the platform offers (GET
// /api/v1/reasons, operators only); the console asks with its own
// platform credentials.
func (r *remote) reasons(ctx context.Context, q reasons.Query) (reasons.Result, error) {
	v := url.Values{}
	for k, val := range map[string]string{"platform": q.Platform, "order": q.OrderID, "sub_order": q.SubOrderID,
		"goods_status": q.GoodsStatus, "type": q.Type} {
		if val != "" {
			v.Set(k, val)
		}
	}
	var out reasons.Result
	_, err := r.doWithin(ctx, r.a.cfg.Timeout+reasonsWait, http.MethodGet, "/api/v1/reasons?"+v.Encode(), nil, &out)
	return out, err
}

// notSentError is a request that never left this host: no connection to
// the console, a TLS handshake that failed, a body that would not encode.
// The console did nothing with it.
type notSentError struct{ err error }

func (e *notSentError) Error() string { return e.err.Error() }

func (e *notSentError) Unwrap() error { return e.err }

// apiCase is a case as GET /api/v1/cases and /cases/{id} answer it.
type apiCase struct {
	ID                   int64           `json:"id"`
	Platform             string          `json:"platform"`
	OrderID              string          `json:"orderId"`
	SubOrderID           string          `json:"subOrderId"`
	RefundID             string          `json:"refundId"`
	State                string          `json:"state"`
	Version              int64           `json:"version"`
	ParkedState          string          `json:"parkedState"`
	AttentionCode        string          `json:"attentionCode"`
	AttentionMessage     string          `json:"attentionMessage"`
	PlatformStatus       string          `json:"platformStatus"`
	LastPlatformCheckAt  time.Time       `json:"lastPlatformCheckAt"`
	NextWakeAt           time.Time       `json:"nextWakeAt"`
	OpenedBy             string          `json:"openedBy"`
	UnreadSellerMessages int             `json:"unreadSellerMessages"`
	CreatedAt            time.Time       `json:"createdAt"`
	UpdatedAt            time.Time       `json:"updatedAt"`
	MovedAt              time.Time       `json:"movedAt"`
	Request              json.RawMessage `json:"request"`
	Plan                 json.RawMessage `json:"plan"`
	Shipment             json.RawMessage `json:"shipment"`
}

func (c apiCase) toCase() casestore.Case {
	return casestore.Case{ID: c.ID, Platform: platform.ID(c.Platform), OrderID: c.OrderID, SubOrderID: c.SubOrderID,
		RefundID: c.RefundID, State: c.State, ParkedState: c.ParkedState, Version: c.Version, Request: c.Request,
		Plan: c.Plan, Shipment: c.Shipment, PlatformStatus: c.PlatformStatus, LastPlatformCheckAt: c.LastPlatformCheckAt,
		NextWakeAt: c.NextWakeAt, AttentionCode: c.AttentionCode, AttentionMessage: c.AttentionMessage,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, MovedAt: c.MovedAt, OpenedBy: c.OpenedBy, UnreadSellerMessages: c.UnreadSellerMessages}
}

// listCases reads the API's pages in id order and keeps the cases f
// selects: the API filters by platform, one state and one attention code,
// and refundctl the rest (several states or codes, --open, --older-than)
// on what it reads, so that the cursor stays the last id printed.
func (r *remote) listCases(ctx context.Context, f casestore.CaseFilter, limit int) ([]casestore.Case, bool, error) {
	q := url.Values{"limit": {strconv.Itoa(casestore.MaxListLimit)}}
	if f.Platform != "" {
		q.Set("platform", f.Platform)
	}
	if len(f.States) == 1 {
		q.Set("state", f.States[0])
	}
	switch {
	case f.AnyAttention:
		q.Set("attention", "any")
	case len(f.Attention) == 1:
		q.Set("attention", f.Attention[0])
	}
	// The API's default order is the last update, newest first; refundctl
	// lists and pages in id order, its cursor the last id printed.
	q.Set("sort", string(casestore.SortID))
	q.Set("order", "asc")
	after := f.AfterID
	var out []casestore.Case
	for {
		if after > 0 {
			q.Set("cursor", casestore.CaseFilter{Sort: casestore.SortID}.CursorAfter(casestore.Case{ID: after}).String())
		}
		var page struct {
			Cases      []apiCase `json:"cases"`
			NextCursor string    `json:"nextCursor"`
		}
		if _, err := r.do(ctx, http.MethodGet, "/api/v1/cases?"+q.Encode(), nil, &page); err != nil {
			return nil, false, err
		}
		last := after
		for _, ac := range page.Cases {
			c := ac.toCase()
			last = c.ID
			if !selects(f, c) {
				continue
			}
			if len(out) == limit {
				return out, true, nil
			}
			out = append(out, c)
		}
		if page.NextCursor == "" {
			return out, false, nil
		}
		if last <= after {
			return nil, false, fmt.Errorf("console at %s: a page that does not move on (cursor %q)", r.base, cell(page.NextCursor, 40))
		}
		after = last
	}
}

// selects reports whether f, as casestore.CaseFilter means it, keeps c.
func selects(f casestore.CaseFilter, c casestore.Case) bool {
	switch {
	case len(f.States) > 0 && !slices.Contains(f.States, c.State):
		return false
	case len(f.Attention) > 0 && !slices.Contains(f.Attention, c.AttentionCode):
		return false
	case f.AnyAttention && c.AttentionCode == "":
		return false
	case f.OpenOnly && refundflow.State(c.State).Terminal():
		return false
	case !f.UpdatedBefore.IsZero() && !c.UpdatedAt.Before(f.UpdatedBefore):
		return false
	case !f.MovedBefore.IsZero() && !c.IdleSince().Before(f.MovedBefore):
		return false
	}
	return true
}

// apiCaseDetail is GET /api/v1/cases/{id}.
type apiCaseDetail struct {
	Case  apiCase `json:"case"`
	Steps []struct {
		ID             int64     `json:"id"`
		Step           string    `json:"step"`
		Status         string    `json:"status"`
		IdempotencyKey string    `json:"idempotencyKey"`
		RequestID      string    `json:"requestId"`
		ErrorCode      string    `json:"errorCode"`
		ErrorMessage   string    `json:"errorMessage"`
		Request        string    `json:"request"`
		Outcome        string    `json:"outcome"`
		Begins         int       `json:"begins"`
		Refusals       int       `json:"refusals"`
		StartedAt      time.Time `json:"startedAt"`
		FinishedAt     time.Time `json:"finishedAt"`
	} `json:"steps"`
	Timeline []struct {
		ID      int64           `json:"id"`
		At      time.Time       `json:"at"`
		Kind    string          `json:"kind"`
		Summary string          `json:"summary"`
		Detail  json.RawMessage `json:"detail"`
	} `json:"timeline"`
}

func (r *remote) caseDetail(ctx context.Context, id int64) (apiCaseDetail, error) {
	var d apiCaseDetail
	_, err := r.do(ctx, http.MethodGet, "/api/v1/cases/"+strconv.FormatInt(id, 10), nil, &d)
	var ae *apiError
	if errors.As(err, &ae) && ae.Code == "not_found" {
		return d, &notFoundError{msg: fmt.Sprintf("case %d not found", id)}
	}
	return d, err
}

func (r *remote) history(ctx context.Context, id int64) ([]casestore.StepAttempt, []casestore.TimelineEntry, error) {
	d, err := r.caseDetail(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	steps := make([]casestore.StepAttempt, 0, len(d.Steps))
	for _, s := range d.Steps {
		steps = append(steps, casestore.StepAttempt{ID: s.ID, CaseID: id, Step: s.Step, Status: casestore.StepStatus(s.Status),
			IdempotencyKey: s.IdempotencyKey, RequestID: s.RequestID, ErrorCode: s.ErrorCode, ErrorMessage: s.ErrorMessage,
			Request: s.Request, Outcome: s.Outcome, Begins: s.Begins, Refusals: s.Refusals, StartedAt: s.StartedAt, FinishedAt: s.FinishedAt})
	}
	timeline := make([]casestore.TimelineEntry, 0, len(d.Timeline))
	for _, e := range d.Timeline {
		timeline = append(timeline, casestore.TimelineEntry{ID: e.ID, CaseID: id, At: e.At, Kind: casestore.TimelineKind(e.Kind),
			Summary: e.Summary, Detail: e.Detail})
	}
	return steps, timeline, nil
}

// lookupCase finds the case as the direct way does: by id; by command
// (the console's search resolves a command id to its case); or the newest
// case of an order or sub-order.
func (r *remote) lookupCase(ctx context.Context, sel caseSelector, id int64) (casestore.Case, error) {
	if id > 0 {
		d, err := r.caseDetail(ctx, id)
		return d.Case.toCase(), err
	}
	q := url.Values{}
	if sel.platform != "" {
		q.Set("platform", sel.platform)
	}
	want := func(c casestore.Case) bool {
		return (sel.order == "" || c.OrderID == sel.order) && (sel.subOrder == "" || c.SubOrderID == sel.subOrder)
	}
	switch {
	case sel.command != "":
		return r.commandCase(ctx, sel.command)
	case sel.subOrder != "":
		q.Set("q", sel.subOrder)
	default:
		q.Set("q", sel.order)
	}
	best, err := r.newest(ctx, q, want)
	if err != nil {
		return casestore.Case{}, err
	}
	if best.ID == 0 {
		return casestore.Case{}, &notFoundError{msg: "no case for " + sel.String()}
	}
	return best, nil
}

// commandCase is the case of command id as commandCase finds it on the
// host: the one it opened (the console's search matches a case's opening
// command id) or the one its verdict leads to (verdictCase); a rejection
// is a refusal.
func (r *remote) commandCase(ctx context.Context, id string) (casestore.Case, error) {
	opened, err := r.openedCase(ctx, id)
	if !errors.Is(err, casestore.ErrNotFound) {
		return opened, err
	}
	var ans commandAnswer
	if _, err := r.do(ctx, http.MethodGet, "/api/v1/commands/"+url.PathEscape(id), nil, &ans); err != nil {
		return casestore.Case{}, err
	}
	v := ans.Verdict
	caseID, err := verdictCase(id, v.Verdict, v.CaseID, v.Code, v.Reason)
	if err != nil {
		return casestore.Case{}, err
	}
	d, err := r.caseDetail(ctx, caseID)
	return d.Case.toCase(), err
}

// commandWhere asks the console where JetStream has command id
// (GET /api/v1/commands/{id}?where=1): its pending verdict's reason when
// the console could say, else "".
func (r *remote) commandWhere(ctx context.Context, id string) string {
	v, err := r.askWhere(ctx, id, url.Values{"where": {"1"}})
	switch {
	case err != nil:
		return ""
	case v.Verdict != opcommands.VerdictPending:
		return opcommands.ReasonHandledSince // decided since the last look
	}
	return v.Reason // where JetStream has it, or where the worker keeps it
}

// askWhere is the console's verdict on command id, asked with q to say
// where a pending one is (where=1; with stream and seq, where the console
// stored it: one message read instead of a search).
func (r *remote) askWhere(ctx context.Context, id string, q url.Values) (opcommands.Verdict, error) {
	var ans commandAnswer
	_, err := r.do(ctx, http.MethodGet, "/api/v1/commands/"+url.PathEscape(id)+"?"+q.Encode(), nil, &ans)
	return ans.Verdict, err
}

// newest is the newest case of the console's list for q that want keeps
// (none: a zero case). The list is read newest id first, so the first
// case kept is the one, and no case updated while the pages are read
// slips behind the cursor (the default order is the last update).
func (r *remote) newest(ctx context.Context, q url.Values, want func(casestore.Case) bool) (casestore.Case, error) {
	q.Set("limit", strconv.Itoa(casestore.MaxListLimit))
	q.Set("sort", string(casestore.SortID))
	q.Set("order", "desc")
	for {
		var page struct {
			Cases      []apiCase `json:"cases"`
			NextCursor string    `json:"nextCursor"`
		}
		if _, err := r.do(ctx, http.MethodGet, "/api/v1/cases?"+q.Encode(), nil, &page); err != nil {
			return casestore.Case{}, err
		}
		for _, ac := range page.Cases {
			if c := ac.toCase(); want(c) {
				return c, nil
			}
		}
		if page.NextCursor == "" || page.NextCursor == q.Get("cursor") {
			return casestore.Case{}, nil
		}
		q.Set("cursor", page.NextCursor)
	}
}

// commandAnswer is the console's answer to a command.
type commandAnswer struct {
	ID        string              `json:"id"`
	Subject   string              `json:"subject"`
	Stream    string              `json:"stream"`
	Sequence  uint64              `json:"seq"`
	Duplicate bool                `json:"duplicate"`
	Command   *refundflow.Command `json:"command"`
	Verdict   opcommands.Verdict  `json:"verdict"`
}

// send POSTs c (its id always given, so that a retried POST is stored
// once) without the operator and the time, which the console sets: the
// operator recorded is the token's account. It waits up to wait, asking
// the console again while the verdict is pending.
func (r *remote) send(ctx context.Context, c refundflow.Command, wait time.Duration) (commandResult, *opcommands.Verdict, error) {
	body, err := commandBody(c)
	if err != nil {
		return commandResult{}, nil, err
	}
	deadline := time.Now().Add(wait)
	var ans commandAnswer
	path := "/api/v1/commands?" + url.Values{"wait": {wait.String()}}.Encode()
	// The console answers once it has the verdict or its own wait is over:
	// --timeout is for the exchange on top of the wait.
	if _, err := r.doWithin(ctx, r.a.cfg.Timeout+wait, http.MethodPost, path, body, &ans); err != nil {
		var ae *apiError
		var ns *notSentError
		switch {
		case errors.As(err, &ae) && ae.Code == "not_found" && c.CaseID > 0:
			return commandResult{}, nil, fmt.Errorf("%s %d: no such case in %s", r.a.caseName(), c.CaseID, r.a.source())
		case errors.As(err, &ae) && ae.Code == "unconfirmed":
			// The console sent it and JetStream did not confirm it.
			return commandResult{}, nil, &unconfirmedError{id: c.ID, err: err}
		case errors.As(err, &ae), errors.As(err, &ns):
			// The console's own answer, or a request that never left:
			// the command was not stored by this request.
			return commandResult{}, nil, err
		}
		// The request went out and its answer did not come back: the
		// console may have published it.
		return commandResult{}, nil, &unconfirmedError{id: c.ID, err: err}
	}
	if ans.Command == nil {
		return commandResult{}, nil, fmt.Errorf("console at %s: the answer to command %s has no command", r.base, c.ID)
	}
	res := commandResult{ID: ans.ID, Subject: ans.Subject, Stream: ans.Stream, Sequence: ans.Sequence,
		Duplicate: ans.Duplicate, Command: *ans.Command}
	if wait == 0 {
		return res, nil, nil
	}
	v := ans.Verdict
	tick := time.NewTicker(verdictPoll * 2)
	defer tick.Stop()
	for v.Verdict == opcommands.VerdictPending && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return res, nil, fmt.Errorf("command %s published; reading its verdict: %w", res.ID, ctx.Err())
		case <-tick.C:
		}
		var poll commandAnswer
		if _, err := r.do(ctx, http.MethodGet, "/api/v1/commands/"+url.PathEscape(res.ID), nil, &poll); err != nil {
			// The console's database away: the command is sent all the
			// same; it stays pending, saying so, rather than read as
			// failed and be sent again under a new id.
			var ae *apiError
			if errors.As(err, &ae) && ae.Code == "store_unavailable" {
				v.Code, v.Reason = "", opcommands.ReasonUnread
				continue
			}
			return res, nil, fmt.Errorf("command %s published; reading its verdict: %w", res.ID, err)
		}
		v = keepReason(ans.Verdict, poll.Verdict)
	}
	// Applied to a case still in the steps the command started: asked
	// again until it is settled (describeSettled), within the deadline. A
	// read that fails, or a stop, leaves the verdict as last read: the
	// command was applied all the same, and an error would read as one to
	// send again.
	for interval := verdictPoll * 2; !settled(c.Kind, v) && time.Now().Add(verdictPoll).Before(deadline); interval = settleBackoff(interval) {
		select {
		case <-ctx.Done():
			return res, &v, nil
		case <-time.After(min(interval, time.Until(deadline)-verdictPoll)):
		}
		var poll commandAnswer
		if _, err := r.doWithin(ctx, min(r.a.cfg.Timeout, max(time.Until(deadline), verdictPoll)), http.MethodGet,
			"/api/v1/commands/"+url.PathEscape(res.ID), nil, &poll); err != nil || poll.Verdict.Verdict != casestore.VerdictApplied {
			return res, &v, nil
		}
		v = poll.Verdict
	}
	return res, &v, nil
}

// keepReason is next, a verdict polled by id, with what the console said
// when it answered the POST (said: no case for the command yet, or where
// JetStream had it) while next is plainly pending: the console knew the
// command then, the poll, by id alone, does not.
func keepReason(said, next opcommands.Verdict) opcommands.Verdict {
	if next.Verdict == opcommands.VerdictPending && next.Reason == "" &&
		(said.Code == opcommands.CodeNoCaseYet || said.Code == opcommands.CodeUndecided) {
		next.Code, next.Reason = said.Code, said.Reason
		if said.Code == opcommands.CodeUndecided {
			next.Reason += " (as the console saw it when it answered)" // JetStream may have moved it on since
		}
	}
	return next
}

// commandBody is c as the console takes it: every field but operator and
// issuedAt.
func commandBody(c refundflow.Command) (map[string]json.RawMessage, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	delete(m, "operator")
	delete(m, "issuedAt")
	return m, nil
}
