package console

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// caseQuery is a case list's filters and page, as the API and the cases
// page take them from the URL.
type caseQuery struct {
	Platform  string
	State     string
	Attention string // a code, or "any"
	Q         string // an order, sub-order, refund or command id
	After     int64  // the cursor: ids after this one
	Limit     int
}

// Page sizes of a case list.
const (
	defaultLimit = 50
	maxLimit     = casestore.MaxListLimit
)

// textScanLimit bounds how many cases one page of a free-text search reads
// (the store has no text index yet): a page may hold fewer matches than
// its limit and still have a next cursor.
const textScanLimit = 20 * casestore.MaxListLimit

// parseCaseQuery reads and checks the filters of a case list.
func parseCaseQuery(v url.Values) (caseQuery, error) {
	q := caseQuery{Platform: v.Get("platform"), State: v.Get("state"), Attention: v.Get("attention"),
		Q: strings.TrimSpace(v.Get("q")), Limit: defaultLimit}
	if q.Platform != "" && !refundflow.Platform(q.Platform).Valid() {
		return q, invalidArg("platform: want taobao or 1688")
	}
	if q.State != "" && !refundflow.State(q.State).Valid() {
		return q, invalidArg("state " + strconv.Quote(excerpt.Of(q.State, 40)) + ": not a case state (docs/runbook.md lists them)")
	}
	if q.Attention != "" && q.Attention != "any" && !slices.Contains(refundflow.AttentionCodes(), q.Attention) {
		return q, invalidArg("attention " + strconv.Quote(excerpt.Of(q.Attention, 40)) + ": not an attention code (or any)")
	}
	if len(q.Q) > 64 {
		return q, invalidArg("q: at most 64 characters (an order, sub-order, refund or command id)")
	}
	if c := v.Get("cursor"); c != "" {
		n, err := strconv.ParseInt(c, 10, 64)
		if err != nil || n < 0 {
			return q, invalidArg("cursor: use the next_cursor of the previous page")
		}
		q.After = n
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxLimit {
			return q, invalidArg("limit: 1 to " + strconv.Itoa(maxLimit))
		}
		q.Limit = n
	}
	return q, nil
}

// values is q as URL parameters, with the cursor after.
func (q caseQuery) values(after int64) url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"platform": q.Platform, "state": q.State, "attention": q.Attention, "q": q.Q} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit != defaultLimit {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if after > 0 {
		v.Set("cursor", strconv.FormatInt(after, 10))
	}
	return v
}

func (q caseQuery) filter() casestore.CaseFilter {
	f := casestore.CaseFilter{Platform: q.Platform, AfterID: q.After, Limit: q.Limit}
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
// next page (0: none).
func (s *Server) listCases(ctx context.Context, q caseQuery) ([]casestore.Case, int64, error) {
	f := q.filter()
	if q.Q == "" {
		cases, more, err := s.store.ListCasesPage(ctx, f)
		if err != nil || !more || len(cases) == 0 {
			return cases, 0, err
		}
		return cases, cases[len(cases)-1].ID, nil
	}
	// Free text: a command id names its case through the store's verdicts
	// (or the case it opened); the other ids are matched on the rows read.
	byCommand := s.caseOfCommand(ctx, q.Q)
	var out []casestore.Case
	f.Limit = maxLimit
	for scanned := 0; scanned < textScanLimit; {
		cases, more, err := s.store.ListCasesPage(ctx, f)
		if err != nil {
			return nil, 0, err
		}
		for _, c := range cases {
			if c.ID == byCommand || c.OrderID == q.Q || c.SubOrderID == q.Q || c.RefundID == q.Q || c.OpenedBy == q.Q {
				out = append(out, c)
				if len(out) == q.Limit {
					return out, c.ID, nil // (an empty next page is possible)
				}
			}
		}
		if !more {
			return out, 0, nil
		}
		scanned += len(cases)
		f.AfterID = cases[len(cases)-1].ID
	}
	return out, f.AfterID, nil
}

// caseOfCommand returns the case a command id was applied to or refused
// on, or opened; 0 for none.
func (s *Server) caseOfCommand(ctx context.Context, id string) int64 {
	if o, err := s.store.CommandOutcome(ctx, id); err == nil && o.CaseID > 0 {
		return o.CaseID
	}
	if c, err := s.store.CaseOpenedBy(ctx, id); err == nil {
		return c.ID
	}
	return 0
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

// overview is what the overview page counts.
type overview struct {
	// Open counts open cases by platform, then by state.
	Open      map[platform.ID]map[string]int
	OpenTotal int
	States    []string // the open states with cases, in rank order
	Attention map[string]int
	// DeadLetters counts dead letters neither retried nor discarded, up to
	// casestore.MaxListLimit (DeadLettersMore: at least that many).
	DeadLetters     int
	DeadLettersMore bool
	At              time.Time
}

// overviewCounts reads the overview's counts. Open cases by platform are
// counted over the open cases' rows, a page at a time (the store counts by
// state only).
func (s *Server) overviewCounts(ctx context.Context) (overview, error) {
	ov := overview{Open: map[platform.ID]map[string]int{}, At: s.now()}
	f := casestore.CaseFilter{OpenOnly: true, Limit: maxLimit}
	seen := map[string]bool{}
	for {
		cases, more, err := s.store.ListCasesPage(ctx, f)
		if err != nil {
			return ov, err
		}
		for _, c := range cases {
			if ov.Open[c.Platform] == nil {
				ov.Open[c.Platform] = map[string]int{}
			}
			ov.Open[c.Platform][c.State]++
			ov.OpenTotal++
			seen[c.State] = true
		}
		if !more {
			break
		}
		f.AfterID = cases[len(cases)-1].ID
	}
	for _, st := range refundflow.States() {
		if seen[string(st)] {
			ov.States = append(ov.States, string(st))
		}
	}
	var err error
	if ov.Attention, err = s.store.CountOpenByAttention(ctx); err != nil {
		return ov, err
	}
	dls, err := s.store.DeadLetters(ctx, casestore.DeadLetterFilter{PendingOnly: true, Limit: maxLimit})
	if err != nil {
		return ov, err
	}
	ov.DeadLetters, ov.DeadLettersMore = len(dls), len(dls) == maxLimit
	return ov, nil
}
