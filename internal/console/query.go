package console

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// caseQuery is a case list's filters, order and page, as the API, the
// cases page and the export take them from the URL (docs/console.md).
type caseQuery struct {
	Platform  string
	State     string
	Open      bool   // unfinished cases only
	Attention string // a code, or "any"
	// Q is an order, sub-order, refund or command id, or the start of one.
	Q string
	// OlderThan keeps cases that have not moved for this long (as refundctl list
	// --older-than); the raw text is kept for the form and links.
	OlderThan    time.Duration
	OlderThanRaw string
	// OpenedFrom and OpenedTo keep cases opened from the start of one day
	// (or instant) to the end of another; the raw text as for OlderThan.
	OpenedFrom, OpenedTo       time.Time
	OpenedFromRaw, OpenedToRaw string
	Sort                       casestore.CaseSort
	Desc                       bool
	Cursor                     *casestore.CaseCursor
	Limit                      int
}

// Page sizes of a case list.
const (
	defaultLimit = 50
	maxLimit     = casestore.MaxListLimit
)

// The default order of a case list: the latest news first.
const (
	defaultSort = casestore.SortUpdated
	defaultDesc = true
)

// maxQ bounds the free-text filter: the longest id it matches (a command
// id) is 64 characters.
const maxQ = 64

// dateLayout is a day in opened_from and opened_to (UTC).
const dateLayout = "2006-01-02"

// parseCaseQuery reads and checks the parameters of a case list; an error
// is an *Error naming the parameter.
func parseCaseQuery(v url.Values) (caseQuery, error) {
	q := caseQuery{Platform: v.Get("platform"), State: v.Get("state"), Attention: v.Get("attention"),
		Q: strings.TrimSpace(v.Get("q")), OlderThanRaw: strings.TrimSpace(v.Get("older_than")),
		OpenedFromRaw: strings.TrimSpace(v.Get("opened_from")), OpenedToRaw: strings.TrimSpace(v.Get("opened_to")),
		Sort: defaultSort, Desc: defaultDesc, Limit: defaultLimit}
	if q.Platform != "" && !refundflow.Platform(q.Platform).Valid() {
		return q, invalidParam("platform", "want taobao or 1688")
	}
	if q.State != "" && !refundflow.State(q.State).Valid() {
		return q, invalidParam("state", strconv.Quote(excerpt.Of(q.State, 40))+" is not a case state (docs/runbook.md lists them)")
	}
	switch o := v.Get("open"); o {
	case "", "false":
	case "true":
		q.Open = true
	default:
		return q, invalidParam("open", strconv.Quote(excerpt.Of(o, 40))+": want true or false")
	}
	if q.Attention != "" && q.Attention != "any" && !slices.Contains(refundflow.AttentionCodes(), q.Attention) {
		return q, invalidParam("attention", strconv.Quote(excerpt.Of(q.Attention, 40))+" is not an attention code (or any)")
	}
	if len(q.Q) > maxQ || strings.ContainsFunc(q.Q, unicode.IsControl) || !utf8.ValidString(q.Q) {
		return q, invalidParam("q", "at most 64 printable characters: an order, sub-order, refund or command id, or its start")
	}
	if q.OlderThanRaw != "" {
		d, err := parseAge(q.OlderThanRaw)
		if err != nil {
			return q, invalidParam("older_than", strconv.Quote(excerpt.Of(q.OlderThanRaw, 40))+": "+err.Error())
		}
		q.OlderThan = d
	}
	var err error
	if q.OpenedFrom, err = parseDay(q.OpenedFromRaw, false); err != nil {
		return q, invalidParam("opened_from", strconv.Quote(excerpt.Of(q.OpenedFromRaw, 40))+": "+err.Error())
	}
	if q.OpenedTo, err = parseDay(q.OpenedToRaw, true); err != nil {
		return q, invalidParam("opened_to", strconv.Quote(excerpt.Of(q.OpenedToRaw, 40))+": "+err.Error())
	}
	if !q.OpenedFrom.IsZero() && !q.OpenedTo.IsZero() && !q.OpenedFrom.Before(q.OpenedTo) {
		return q, invalidParam("opened_to", "must be after opened_from")
	}
	if sv := v.Get("sort"); sv != "" {
		if q.Sort = casestore.CaseSort(sv); !q.Sort.Valid() {
			return q, invalidParam("sort", strconv.Quote(excerpt.Of(sv, 40))+": want "+sortNames())
		}
	}
	switch o := v.Get("order"); o {
	case "":
	case "asc", "desc":
		q.Desc = o == "desc"
	default:
		return q, invalidParam("order", strconv.Quote(excerpt.Of(o, 40))+": want asc or desc")
	}
	if c := v.Get("cursor"); c != "" {
		cur, err := casestore.ParseCaseCursor(c)
		if err != nil {
			return q, invalidParam("cursor", "use the nextCursor of the previous page")
		}
		if !cur.Matches(q.filter()) {
			return q, invalidParam("cursor", "it belongs to a list in another order: start again without it")
		}
		q.Cursor = &cur
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxLimit {
			return q, invalidParam("limit", "1 to "+strconv.Itoa(maxLimit))
		}
		q.Limit = n
	}
	return q, nil
}

func sortNames() string {
	var names []string
	for _, s := range casestore.CaseSorts() {
		names = append(names, string(s))
	}
	return strings.Join(names, ", ")
}

// parseAge reads a duration: Go's (90m, 2h30m) or whole days (3d).
func parseAge(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 1 || days > 3650 {
			return 0, errors.New("want a duration such as 90m, 12h or 3d")
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, errors.New("want a duration such as 90m, 12h or 3d")
	}
	return d, nil
}

// parseDay reads a day (YYYY-MM-DD, UTC) or an RFC 3339 instant; a day
// that ends a range (end) is read as the start of the next one, so that
// the range includes it.
func parseDay(s string, end bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(dateLayout, s); err == nil {
		if end {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, errors.New("want a day (2026-12-01) or an RFC 3339 time")
	}
	return t, nil
}

// values is q as URL parameters (defaults left out), with a cursor.
func (q caseQuery) values(cursor string) url.Values {
	v := q.filterValues()
	if q.Limit != defaultLimit {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if cursor != "" {
		v.Set("cursor", cursor)
	}
	return v
}

// filterValues is q's filters and order as URL parameters, without the
// page: what an export of the list takes.
func (q caseQuery) filterValues() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"platform": q.Platform, "state": q.State, "attention": q.Attention, "q": q.Q,
		"older_than": q.OlderThanRaw, "opened_from": q.OpenedFromRaw, "opened_to": q.OpenedToRaw} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Open {
		v.Set("open", "true")
	}
	if q.Sort != defaultSort {
		v.Set("sort", string(q.Sort))
	}
	if q.Desc != defaultDesc {
		v.Set("order", map[bool]string{true: "desc", false: "asc"}[q.Desc])
	}
	return v
}

// sortLink is the query string of q sorted by sort: the other direction
// when q is already sorted so, else that sort's natural first direction
// (newest or highest first, but states A to Z).
func (q caseQuery) sortLink(sort string) string {
	r := q
	r.Sort = casestore.CaseSort(sort)
	switch {
	case q.Sort == r.Sort:
		r.Desc = !q.Desc
	default:
		r.Desc = r.Sort != casestore.SortState
	}
	return r.filterValues().Encode()
}

// storeFilter is the store's filter for q, older_than counted back from now.
func (q caseQuery) storeFilter(now time.Time) casestore.CaseFilter {
	f := q.filter()
	f.After, f.Limit = q.Cursor, q.Limit
	if q.OlderThan > 0 {
		f.MovedBefore = now.Add(-q.OlderThan)
	}
	if !q.OpenedFrom.IsZero() {
		f.CreatedAfter = q.OpenedFrom.Add(-time.Millisecond) // created_at > from-1ms: from on
	}
	f.CreatedBefore = q.OpenedTo
	f.Text = q.Q
	return f
}

// filter is q's order and the filters that need no clock.
func (q caseQuery) filter() casestore.CaseFilter {
	f := casestore.CaseFilter{Platform: q.Platform, OpenOnly: q.Open, Sort: q.Sort, Desc: q.Desc}
	if q.State != "" {
		f.States = []string{q.State}
	}
	switch q.Attention {
	case "":
	case "any":
		f.AnyAttention = true
	default:
		f.Attention = []string{q.Attention}
	}
	return f
}

// listCases returns one page of the cases q selects and the cursor of the
// next page ("": none).
func (s *Server) listCases(ctx context.Context, q caseQuery) ([]casestore.Case, string, error) {
	f, err := s.caseFilter(ctx, q)
	if err != nil {
		return nil, "", err
	}
	cases, more, err := s.store.ListCasesPage(ctx, f)
	if err != nil || !more || len(cases) == 0 {
		return cases, "", err
	}
	return cases, f.CursorAfter(cases[len(cases)-1]).String(), nil
}

// caseFilter is the store's filter for q. Free text matches the ids'
// starts in the store; a command id also names the case it was applied
// to or refused on (its verdict), which may not be the case it opened.
func (s *Server) caseFilter(ctx context.Context, q caseQuery) (casestore.CaseFilter, error) {
	f := q.storeFilter(s.now())
	if q.Q != "" {
		o, err := s.store.CommandOutcome(ctx, q.Q)
		switch {
		case err == nil:
			f.TextCaseID = o.CaseID
		case !errors.Is(err, casestore.ErrNotFound):
			return f, err
		}
	}
	return f, nil
}

// getCase returns case id, or not_found.
func (s *Server) getCase(ctx context.Context, raw string) (casestore.Case, error) {
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return casestore.Case{}, &Error{Code: CodeNotFound, Message: "no such case: case ids are positive integers"}
	}
	c, err := s.store.GetCase(ctx, id)
	if errors.Is(err, casestore.ErrNotFound) {
		return c, &Error{Code: CodeNotFound, Message: "no case " + raw}
	}
	return c, err
}

// overview is what the overview page shows.
type overview struct {
	// Open counts open cases by platform, then by state.
	Open      map[platform.ID]map[string]int
	OpenTotal int
	States    []string // the open states with cases, in rank order
	// Attention counts open cases by attention code; AttentionCases are
	// the longest waiting of them, with their reason.
	Attention      map[string]int
	AttentionCases []casestore.Case
	// Oldest are the open cases that have not moved for the longest.
	Oldest []casestore.Case
	// DeadLetters counts dead letters neither retried nor discarded, up to
	// casestore.MaxListLimit (DeadLettersMore: at least that many).
	DeadLetters     int
	DeadLettersMore bool
	// StepErrors are the last step attempts the platform answered with an
	// error.
	StepErrors []casestore.StepAttempt
	// Lags are the durable consumers' backlogs; LagError why they are
	// unknown (NATS down or not configured), shown in their place.
	Lags     []consumerLag
	LagError string
	At       time.Time
}

// overviewRows is how many cases and errors each overview list shows.
const overviewRows = 10

// overviewCounts reads the overview: counts from the store's GROUP BYs,
// and short lists read from indexes (migration 16), each a few pages at
// most whatever the number of cases.
func (s *Server) overviewCounts(ctx context.Context) (overview, error) {
	ov := overview{At: s.now()}
	var err error
	if ov.Open, err = s.store.CountOpenByPlatformState(ctx); err != nil {
		return ov, err
	}
	seen := map[string]bool{}
	for _, byState := range ov.Open {
		for st, n := range byState {
			ov.OpenTotal += n
			seen[st] = true
		}
	}
	for _, st := range refundflow.States() {
		if seen[string(st)] {
			ov.States = append(ov.States, string(st))
		}
	}
	if ov.Attention, err = s.store.CountOpenByAttention(ctx); err != nil {
		return ov, err
	}
	// Waiting longest: since the case last moved, not its last write
	// (the worker's checks that find nothing new write it every
	// WORKER_RECONCILE_AGE).
	if ov.AttentionCases, err = s.store.IdlestOpenCases(ctx, true, overviewRows); err != nil {
		return ov, err
	}
	if ov.Oldest, err = s.store.IdlestOpenCases(ctx, false, overviewRows); err != nil {
		return ov, err
	}
	dls, err := s.store.DeadLetters(ctx, casestore.DeadLetterFilter{PendingOnly: true, Limit: maxLimit})
	if err != nil {
		return ov, err
	}
	ov.DeadLetters, ov.DeadLettersMore = len(dls), len(dls) == maxLimit
	if ov.StepErrors, err = s.store.RecentStepErrors(ctx, overviewRows); err != nil {
		return ov, err
	}
	if ov.Lags, err = s.consumerLags(ctx); err != nil {
		ov.LagError = err.Error()
		s.logger.Debug("consumer lag unknown", "err", err)
	}
	return ov, nil
}
