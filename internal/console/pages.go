package console

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/refundhub/refundhub/internal/casecsv"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/opcommands"
	"github.com/refundhub/refundhub/internal/platform"
	"github.com/refundhub/refundhub/internal/refundflow"
)

//go:embed templates/*.html
var templateFS embed.FS

// staticFS holds what pages load besides themselves (the pages' live
// scripts): served from the binary, under the CSP's 'self'.
//
//go:embed static
var staticFS embed.FS

// pages are the parsed page templates, each with the layout.
type pages map[string]*template.Template

var pageFuncs = template.FuncMap{
	"time": fmtTime,
	// ms is a time as Unix milliseconds: the event stream's cursor.
	"ms": func(t time.Time) int64 { return t.UnixMilli() },
	// query builds a query string from key, value pairs (empty values
	// left out); url.Values.Encode escapes it, so it is safe in an href.
	"query": func(kv ...string) template.URL {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] != "" {
				v.Set(kv[i], kv[i+1])
			}
		}
		return template.URL(v.Encode())
	},
	// request is a case's request as filed, in the operator's words.
	"request": func(p string, d json.RawMessage) []refundflow.Field {
		return refundflow.DescribeRequest(refundflow.Platform(p), d)
	},
	// plan is what the worker sent for the request; shipment, the case's
	// return shipment: each in the operator's words.
	"plan":     refundflow.DescribePlan,
	"shipment": refundflow.DescribeShipment,
	"pretty": func(d json.RawMessage) string {
		var b bytes.Buffer
		if len(d) == 0 || json.Indent(&b, d, "", "  ") != nil {
			return string(d)
		}
		return b.String()
	},
}

func parsePages() (pages, error) {
	out := pages{}
	for _, name := range []string{"login.html", "overview.html", "cases.html", "case.html", "error.html"} {
		t, err := template.New(name).Funcs(pageFuncs).ParseFS(templateFS, "templates/layout.html", "templates/"+name)
		if err != nil {
			return nil, fmt.Errorf("console templates: %w", err)
		}
		out[name] = t
	}
	return out, nil
}

// page is what every page shows: who is logged in, and the CSRF token
// its forms carry.
type page struct {
	Title    string
	Who      Account
	LoggedIn bool
	CSRF     string
}

func (s *Server) pageBase(c echo.Context, title string) page {
	p := page{Title: title, Who: who(c)}
	if v, ok := c.Get(cookieKey).(string); ok {
		p.LoggedIn, p.CSRF = true, s.sessions.csrf(v)
	}
	return p
}

// render writes page name with data, whole or not at all.
func (s *Server) render(c echo.Context, status int, name string, data any) error {
	var b bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&b, "layout", data); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	return c.HTMLBlob(status, b.Bytes())
}

type errorPage struct {
	page
	Status  int
	Code    string
	Message string
}

type loginPage struct {
	page
	Name   string // the name typed, kept in the form after a failure
	Failed string
}

func (s *Server) handleLoginPage(c echo.Context) error {
	return s.render(c, http.StatusOK, "login.html", loginPage{page: page{Title: "Log in"}})
}

// handleLogin is POST /login: an account's name and password open a
// session. Failed attempts are counted per remote address and per account
// name and slowed (loginLimiter); a login is refused while either is used
// up, before the password is checked. Failure lines in the log name the
// address, never the name typed (it may be a password typed in the wrong
// field).
func (s *Server) handleLogin(c echo.Context) error {
	addr := c.RealIP()
	name, password := strings.TrimSpace(c.FormValue("name")), c.FormValue("password")
	// Only names an account could have are keyed, so the map holds no
	// arbitrary input; any other name fails below.
	account := ""
	if casestore.CheckAccountName(name) == nil {
		account = name
	}
	switch {
	case s.logins.blocked(addr):
		s.metrics.logins.WithLabelValues("rate_limited").Inc()
		s.logger.Warn("login refused: too many failures from this address", "remote", addr)
		return errRateLimited
	case account != "" && s.accountLogins.blocked(account):
		s.metrics.logins.WithLabelValues("rate_limited").Inc()
		s.logger.Warn("login refused: too many failures for the account named", "remote", addr)
		return errAccountRateLimited
	}
	a, err := s.passwords.Login(c.Request().Context(), s.store, account, password)
	switch {
	case errors.Is(err, casestore.ErrWrongPassword):
		s.logins.failed(addr)
		if account != "" {
			s.accountLogins.failed(account)
		}
		s.metrics.logins.WithLabelValues("wrong_password").Inc()
		s.logger.Info("login failed", "remote", addr)
		return s.render(c, http.StatusUnauthorized, "login.html", loginPage{page: page{Title: "Log in"}, Name: name,
			Failed: "Wrong name or password."})
	case err != nil:
		return err
	}
	s.metrics.logins.WithLabelValues("ok").Inc()
	s.logger.Info("login", "account", a.Name, "role", a.Role, "remote", addr)
	c.SetCookie(s.sessions.issue(Account{Name: a.Name, Role: a.Role}, s.now()))
	return c.Redirect(http.StatusSeeOther, "/")
}

func (s *Server) handleLogout(c echo.Context) error {
	if err := s.checkCSRF(c); err != nil {
		return err
	}
	c.SetCookie(s.sessions.expired())
	return c.Redirect(http.StatusSeeOther, "/login")
}

// checkCSRF refuses a form whose CSRF token is not its session's. A
// request authenticated by a bearer token has no session and no cookie a
// browser would send on its own, so forms need a session.
func (s *Server) checkCSRF(c echo.Context) error {
	v, ok := c.Get(cookieKey).(string)
	if !ok || !s.sessions.csrfOK(v, c.FormValue("csrf")) {
		return errCSRF
	}
	return nil
}

type overviewPage struct {
	page
	overview
	Platforms []platform.ID
	// LiveCursor is where the page's event stream starts (Unix ms).
	LiveCursor int64
}

func (s *Server) handleOverview(c echo.Context) error {
	ov, err := s.overviewCounts(c.Request().Context())
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "overview.html", overviewPage{page: s.pageBase(c, "Overview"), overview: ov,
		Platforms: []platform.ID{casestore.PlatformTaobao, casestore.Platform1688}, LiveCursor: ov.At.UnixMilli()})
}

type casesPage struct {
	page
	Query caseQuery
	Cases []caseJSON
	// Next is the next page's query string (url.Values.Encode; "" for
	// none), First the first page's when this is a later one.
	Next, First template.URL
	// Export is the query string of this list's CSV export (every page).
	Export template.URL
	// Sorts are the sortable columns' links, by sort name.
	Sorts      map[string]sortLink
	States     []refundflow.State
	Attentions []string
	// FilterError is why the filters were refused, shown beside the form
	// (nil: none); no cases are listed then.
	FilterError *Error
	// LiveCursor is where the page's event stream starts (Unix ms).
	LiveCursor int64
}

// sortLink is a column header's link: the list sorted by it, and a mark
// when it is the current order.
type sortLink struct {
	Query template.URL
	Mark  string // "▲" ascending, "▼" descending, "" not this column
	Aria  string // aria-sort: ascending, descending or none
}

func (s *Server) handleCasesPage(c echo.Context) error {
	p := casesPage{page: s.pageBase(c, "Cases"), States: refundflow.States(), Attentions: refundflow.AttentionCodes(),
		LiveCursor: s.now().UnixMilli()}
	q, err := parseCaseQuery(c.QueryParams())
	p.Query = q
	var bad *Error
	if errors.As(err, &bad) {
		p.FilterError = bad
		return s.render(c, http.StatusBadRequest, "cases.html", p)
	}
	if err != nil {
		return err
	}
	cases, next, err := s.listCases(c.Request().Context(), q)
	if err != nil {
		return err
	}
	for _, k := range cases {
		p.Cases = append(p.Cases, s.caseJSON(k))
	}
	if next != "" {
		p.Next = template.URL(q.values(next).Encode())
	}
	if q.Cursor != nil {
		p.First = template.URL(q.values("").Encode())
	}
	p.Export = template.URL(q.filterValues().Encode())
	p.Sorts = map[string]sortLink{}
	for _, so := range casestore.CaseSorts() {
		l := sortLink{Query: template.URL(q.sortLink(string(so))), Aria: "none"}
		if so == q.Sort {
			l.Mark, l.Aria = "▲", "ascending"
			if q.Desc {
				l.Mark, l.Aria = "▼", "descending"
			}
		}
		p.Sorts[string(so)] = l
	}
	return s.render(c, http.StatusOK, "cases.html", p)
}

// handleCasesCSV is GET /cases.csv and /api/v1/cases.csv: every case the
// list's filters select, in its order (cursor and limit are ignored),
// streamed a store page at a time in casecsv's columns. A store failure
// after the first row cannot change the status: the trailer
// X-Export-Status says "complete" or "failed", and the log says why.
func (s *Server) handleCasesCSV(c echo.Context) error {
	q, err := parseCaseQuery(c.QueryParams())
	if err != nil {
		return err
	}
	q.Cursor = nil
	ctx := c.Request().Context()
	f, err := s.caseFilter(ctx, q)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	h.Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="cases-%s.csv"`, s.now().UTC().Format("20060102-150405")))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Trailer", exportStatusTrailer)
	c.Response().WriteHeader(http.StatusOK)
	n, err := writeExport(c.Response(), func(fn func(casestore.Case) error) error { return s.store.EachCase(ctx, f, fn) })
	if err != nil {
		s.logger.Error("case export failed", "rows", n, "err", err)
		h.Set(exportStatusTrailer, "failed after "+strconv.Itoa(n)+" rows")
		return nil // the status is sent; the trailer tells
	}
	h.Set(exportStatusTrailer, "complete "+strconv.Itoa(n)+" rows")
	return nil
}

// writeExport writes the cases each yields to w as CSV (casecsv) and
// returns how many rows were written. The rows before a failure are
// flushed all the same, so that the count the trailer reports is what the
// client got, not what was left in the writer's buffer.
func writeExport(w io.Writer, each func(func(casestore.Case) error) error) (n int, err error) {
	cw := casecsv.NewWriter(w)
	err = each(func(k casestore.Case) error {
		if err := cw.Write(k); err != nil {
			return err
		}
		n++
		return nil
	})
	if ferr := cw.Flush(); err == nil {
		err = ferr
	}
	return n, err
}

// exportStatusTrailer is the trailer an export ends with: "complete N
// rows", or "failed after N rows" when the store failed midway.
const exportStatusTrailer = "X-Export-Status"

type casePage struct {
	page
	caseDetailJSON
	// Offers are the action forms shown (offers), by name.
	Offers map[string]bool
	// AdoptRefunds are, for a case that may adopt a refund (Offers.adopt),
	// the refunds its plan knows of and what named them
	// (refundflow.Plan.AdoptCandidates; none on 1688): the resolve form
	// offers the first, and lists them all.
	AdoptRefunds []string
	AdoptNamedBy string
	// Verdict is the verdict of the command named by ?command=, after an
	// action (nil: none asked for).
	Verdict *verdictView
	// FormError is why a form was refused, shown beside it (nil: none).
	FormError *formError
	// Replayed is the verdict of a replay, after its redirect (nil: none).
	Replayed *replayedView
	// TimelineTotal counts the case's timeline entries; Timeline holds one
	// page of them (timelinePage, the newest unless timeline_before
	// names an entry), and TimelineOlder and TimelineNewer are the links
	// to the pages around it ("": none).
	TimelineTotal                int
	TimelineOlder, TimelineNewer template.URL
}

// timelinePage is how many timeline entries the case page shows at once:
// rendering a thousand rows is most of a long case's page time
// (BenchmarkCaseList); the API answers the whole timeline.
const timelinePage = 200

// pageTimeline keeps the page of the timeline the case page shows: the
// timelinePage entries before the entry id before ("": the newest), in
// time order, with links (to path) to the older and newer pages.
func (p *casePage) pageTimeline(path, before string) error {
	all := p.Timeline
	p.TimelineTotal = len(all)
	end := len(all)
	if before != "" {
		id, err := strconv.ParseInt(before, 10, 64)
		if err != nil || id <= 0 {
			return invalidParam("timeline_before", "the id of a timeline entry (use the page's Older link)")
		}
		end = sort.Search(len(all), func(i int) bool { return all[i].ID >= id })
	}
	start := max(0, end-timelinePage)
	p.Timeline = all[start:end]
	link := func(i int) template.URL {
		if i >= len(all) {
			return template.URL(path) // the newest page
		}
		return template.URL(path + "?" + url.Values{"timeline_before": {strconv.FormatInt(all[i].ID, 10)}}.Encode())
	}
	if start > 0 {
		p.TimelineOlder = link(start)
	}
	if end < len(all) {
		p.TimelineNewer = link(end + timelinePage)
	}
	return nil
}

// unfollowed is refunds without those another case follows: the worker
// refuses to adopt a refund another case follows, or followed to its end
// (one closed locally left its refund to go on: that may be taken).
func (s *Server) unfollowed(ctx context.Context, k casestore.Case, refunds []string) ([]string, error) {
	if len(refunds) == 0 {
		return nil, nil
	}
	owners, err := s.store.RefundOwners(ctx, platform.ID(k.Platform), refunds)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(refunds))
	for _, id := range refunds {
		owner, ok := owners[id]
		if ok && owner != k.ID {
			o, err := s.store.GetCase(ctx, owner)
			if err != nil && !errors.Is(err, casestore.ErrNotFound) {
				return nil, err
			}
			if err == nil && o.State != string(refundflow.StateClosedLocally) {
				continue
			}
		}
		out = append(out, id)
	}
	return out, nil
}

// verdictView is a command's verdict as the case page shows it.
type verdictView struct {
	CommandID string
	Verdict   string // applied, rejected or pending
	Code      string
	Reason    string
}

func (s *Server) handleCasePage(c echo.Context) error {
	ctx := c.Request().Context()
	k, err := s.getCase(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	return s.renderCase(c, http.StatusOK, k, c.QueryParam("command"), nil)
}

func (s *Server) renderCase(c echo.Context, status int, k casestore.Case, commandID string, formErr *formError) error {
	ctx := c.Request().Context()
	d, err := s.caseDetail(ctx, k)
	if err != nil {
		return err
	}
	p := casePage{page: s.pageBase(c, fmt.Sprintf("Case %d", k.ID)), caseDetailJSON: d, FormError: formErr,
		Offers: offers(who(c), k), Replayed: replayedOf(c)}
	if p.Offers["adopt"] {
		p.AdoptRefunds, p.AdoptNamedBy = planOf(k).AdoptCandidates(k.AttentionCode)
		// Only a suggestion (the worker checks the owner again): a
		// store that does not answer leaves it unfiltered rather than
		// failing the page, and with it a form's error shown on it.
		if kept, err := s.unfollowed(ctx, k, p.AdoptRefunds); err == nil {
			p.AdoptRefunds = kept
		} else {
			s.logger.WarnContext(ctx, "read which case follows the refunds to adopt", "case", k.ID, "err", err)
		}
	}
	if err := p.pageTimeline(fmt.Sprintf("/cases/%d", k.ID), c.QueryParam("timeline_before")); err != nil {
		return err
	}
	if commandID != "" && len(commandID) <= 64 {
		v := &verdictView{CommandID: commandID, Verdict: "pending"}
		o, err := s.store.CommandOutcome(ctx, commandID)
		switch {
		case err == nil && o.CaseID > 0 && o.CaseID != k.ID:
			// Another case's command (a link edited by hand): its verdict
			// is not this case's.
			v.Verdict, v.Reason = "", fmt.Sprintf("is for case %d, not this one", o.CaseID)
		case err == nil:
			v.Verdict, v.Code, v.Reason = o.Verdict, o.Code, o.Reason
		case errors.Is(err, casestore.ErrNotFound):
			// Kept by the worker for its case, it says where and why;
			// sent by a form and not confirmed, it says that.
			if kept, kerr := opcommands.Pending(ctx, s.store, commandID); kerr == nil && kept.CaseID == k.ID {
				v.Reason = kept.Reason
			} else if c.QueryParam("unconfirmed") == "1" {
				v.Reason = unconfirmedReason
			} else {
				v.Reason = s.storedWhere(ctx, commandID, c.QueryParam("stream"), c.QueryParam("seq"))
			}
		default:
			return err
		}
		p.Verdict = v
	}
	return s.render(c, status, "case.html", p)
}
