package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/opcommands"
	"github.com/refundhub/refundhub/internal/reasons"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// requestPage is the request form's template name.
const requestPage = "request.html"

// requestRoutes adds the request form: its template, parsed with the
// layout as parsePages parses the others, and its two routes. It runs in
// New, before any request is served. A template that does not parse (a
// bug of the build) leaves the page answering an internal error, logged.
func (s *Server) requestRoutes(e *echo.Echo) {
	t, err := template.New(requestPage).Funcs(pageFuncs).ParseFS(templateFS, "templates/layout.html", "templates/"+requestPage)
	if err != nil {
		s.logger.Error("console templates: the request page does not parse", "err", err)
	} else {
		s.pages[requestPage] = t
	}
	e.GET("/requests/new", s.handleRequestPage)
	e.POST("/requests", s.handleRequest)
	e.POST("/requests/reasons", s.handleRequestReasons)
}

// requestForm is the request form's values, kept when it is shown again
// with an error.
type requestForm struct {
	Platform, OrderID, SubOrderID, Type, GoodsStatus string
	ReasonID, Reason, Amount, Carriage, Description  string
	Vouchers, OrderEntries                           string
}

// requestView is the request page.
type requestView struct {
	page
	Form  requestForm
	Error string
	// Verdict is the verdict of the command named by ?command=, when the
	// request opened no case to show it on.
	Verdict *verdictView
	// Rules are what the form's values must be, as refundflow checks them.
	Rules requestRules
	// Again is the case named by ?case=, whose request the form holds to
	// be corrected and filed again (the case page's "Request again").
	Again *againView
	// Lookup: the console can ask the platform for its reasons
	// (Deps.Reasons), and the form offers it.
	Lookup bool
	// Reasons is the look-up's answer, shown under the form.
	Reasons *reasonsView
}

// reasonsView is what the platform offered for the form's order, type and
// goods status, each reason with a link that fills the form in with it.
type reasonsView struct {
	Error string // why nothing was asked, or nothing answered
	Rows  []reasonRow
	Notes []string // per call: a refusal, or the most a Taobao form allows
}

// reasonRow is one reason offered.
type reasonRow struct {
	Type, GoodsStatus, Voucher, Text string
	ID                               int64
	Pick                             string // its "Use" button's value (pickValue)
}

// againView is the case a request is filed again for.
type againView struct {
	CaseID                                  int64
	State, Parked, Attention, AttentionText string
	// Replaces: a request for its order replaces the one it stopped with
	// (canRequestAgain). Ended: the case is over, and a request for its
	// order opens a new case, which follows it. Otherwise the worker
	// refuses a request while the case is open.
	Replaces, Ended bool
}

// againOf is the page's note on k, the case a request is filed again for.
func againOf(k casestore.Case) *againView {
	return &againView{CaseID: k.ID, State: k.State, Parked: k.ParkedState, Attention: k.AttentionCode, AttentionText: k.AttentionMessage,
		Replaces: canRequestAgain(k), Ended: refundflow.State(k.State).Terminal()}
}

// againPosted is the note on the case a posted form is filed again for
// (its hidden case field), nil when there is none or the form no longer
// names that case's order: the note would then speak of another case.
func (s *Server) againPosted(c echo.Context, f requestForm) *againView {
	raw := c.FormValue("case")
	if raw == "" {
		return nil
	}
	k, err := s.getCase(c.Request().Context(), raw)
	if err != nil || string(k.Platform) != f.Platform || k.OrderID != f.OrderID || k.SubOrderID != f.SubOrderID {
		return nil
	}
	return againOf(k)
}

// formOf is the request form holding k's request as filed: what the
// operator corrects to file it again. A Taobao amount of 0 is the form's
// most (max), as it was asked for.
func formOf(k casestore.Case) requestForm {
	f := requestForm{Platform: string(k.Platform), OrderID: k.OrderID, SubOrderID: k.SubOrderID, Type: "refund"}
	var r refundflow.Request
	if err := json.Unmarshal(k.Request, &r); err != nil {
		return f // the ids at least; the worker wrote it, so this is not expected
	}
	if r.ReturnGoods {
		f.Type = "return"
	}
	f.GoodsStatus, f.Reason, f.Description = r.GoodsStatus, r.Reason, r.Description
	if r.ReasonID > 0 {
		f.ReasonID = strconv.FormatInt(r.ReasonID, 10)
	}
	switch {
	case r.Amount > 0:
		f.Amount = strconv.FormatInt(r.Amount, 10)
	case k.Platform == casestore.PlatformTaobao:
		f.Amount = refundflow.AmountMax
	}
	if r.Carriage > 0 {
		f.Carriage = strconv.FormatInt(r.Carriage, 10)
	}
	f.Vouchers = strings.Join(r.Vouchers, "\n")
	entries := make([]string, len(r.OrderEntryIDs))
	for i, e := range r.OrderEntryIDs {
		entries[i] = strconv.FormatInt(e, 10)
	}
	f.OrderEntries = strings.Join(entries, ", ")
	return f
}

// requestRules are the limits the page states, each read from the
// validation that enforces it (as refundctl's --help reads them).
type requestRules struct {
	AlibabaGoods, Description string
}

func readRequestRules() requestRules {
	rule := func(err error, field string) string {
		for line := range strings.SplitSeq(fmt.Sprint(err), "\n") {
			line = strings.TrimSpace(line)
			if rest, ok := strings.CutPrefix(line, field+": "); ok {
				return strings.TrimPrefix(rest, "want ")
			}
			if rest, ok := strings.CutPrefix(line, field+` "`); ok { // field "value": rule
				if _, after, ok := strings.Cut(rest, `": `); ok {
					return strings.TrimPrefix(after, "want ")
				}
			}
		}
		return ""
	}
	return requestRules{
		AlibabaGoods: rule(refundflow.Request{}.Validate(refundflow.Platform1688), "goodsStatus"),
		Description:  rule(refundflow.Request{Description: strings.Repeat("x", 10000)}.Validate(refundflow.PlatformTaobao), "description"),
	}
}

// handleRequestPage is GET /requests/new: the form, and the verdict of
// ?command= when a request was just filed and opened no case.
func (s *Server) handleRequestPage(c echo.Context) error {
	v := s.requestView(c, requestForm{Type: "refund"})
	if raw := c.QueryParam("case"); raw != "" {
		k, err := s.getCase(c.Request().Context(), raw)
		if err != nil {
			return err
		}
		v.Form, v.Again = formOf(k), againOf(k)
	}
	if id := c.QueryParam("command"); id != "" && commandIDSyntax.MatchString(id) {
		vv := &verdictView{CommandID: id, Verdict: opcommands.VerdictPending}
		o, err := s.store.CommandOutcome(c.Request().Context(), id)
		switch {
		case err == nil:
			vv.Verdict, vv.Code, vv.Reason = o.Verdict, o.Code, o.Reason
		case !errors.Is(err, casestore.ErrNotFound):
			return err
		case c.QueryParam("unconfirmed") == "1":
			vv.Reason = unconfirmedReason
		default:
			// Kept by the worker (its message acknowledged, which
			// JetStream would call handled), it says so first.
			if kept, kerr := opcommands.Pending(c.Request().Context(), s.store, id); kerr == nil && kept.Reason != "" {
				vv.Reason = kept.Reason
			} else {
				vv.Reason = s.storedWhere(c.Request().Context(), id, c.QueryParam("stream"), c.QueryParam("seq"))
			}
		}
		v.Verdict = vv
	}
	return s.renderRequest(c, http.StatusOK, v)
}

func (s *Server) renderRequest(c echo.Context, status int, v requestView) error {
	if s.pages[requestPage] == nil {
		return &Error{Code: CodeInternal, Message: "the request page is missing from this build"}
	}
	return s.render(c, status, requestPage, v)
}

// handleRequest is POST /requests: a request_refund command from the
// form, checked as refundctl request checks its flags (the type, the
// amount in fen or max, then opcommands.Check), issued through the path
// every form and the API use (issue) under the operator's name. A refused
// form is shown again with its values and the reasons, naming the form's
// fields; nothing is published. Otherwise the browser goes to the case
// the verdict names (which shows the verdict), or back here with it.
func (s *Server) handleRequest(c echo.Context) error {
	if !who(c).CanAct() {
		return errNotOperator
	}
	if err := s.checkCSRF(c); err != nil {
		return err
	}
	f := readRequestForm(c.FormValue)
	id, err := opcommands.NewID()
	if err != nil {
		return err
	}
	cmd := refundflow.Command{ID: id, Kind: refundflow.InputRequestRefund, Platform: refundflow.Platform(f.Platform),
		OrderID: f.OrderID, SubOrderID: f.SubOrderID, Operator: who(c).Name, IssuedAt: s.now().UTC().Truncate(time.Millisecond)}
	ferr := fillRequest(f, &cmd)
	if err := errors.Join(ferr, opcommands.Check(cmd)); err != nil {
		v := s.requestView(c, f)
		v.Error = formMessage(err)
		v.Again = s.againPosted(c, f) // filing again for a case: its note stays
		return s.renderRequest(c, http.StatusBadRequest, v)
	}
	res, err := s.issue(c.Request().Context(), who(c), cmd, s.cfg.VerdictWait, false)
	qv := url.Values{"command": {id}}
	switch {
	case unconfirmed(err):
		qv.Set("unconfirmed", "1") // followed by its id: see handleAction
	case err != nil:
		return err
	default:
		addStored(qv, res.Ack)
	}
	q := qv.Encode()
	if res.Verdict.CaseID > 0 {
		return c.Redirect(http.StatusSeeOther, "/cases/"+strconv.FormatInt(res.Verdict.CaseID, 10)+"?"+q)
	}
	return c.Redirect(http.StatusSeeOther, "/requests/new?"+q)
}

// requestView is the request page holding f.
func (s *Server) requestView(c echo.Context, f requestForm) requestView {
	return requestView{page: s.pageBase(c, "File a refund or return request"), Form: f, Rules: readRequestRules(),
		Lookup: s.reasons != nil && who(c).CanAct()}
}

// requestFields are the request form's field names, by the value each
// fills.
func requestFields(f *requestForm) map[*string]string {
	return map[*string]string{&f.Platform: "platform", &f.OrderID: "order", &f.SubOrderID: "sub_order",
		&f.Type: "type", &f.GoodsStatus: "goods_status", &f.ReasonID: "reason_id", &f.Reason: "reason", &f.Amount: "amount",
		&f.Carriage: "carriage", &f.Vouchers: "vouchers", &f.OrderEntries: "order_entries", &f.Description: "description"}
}

// readRequestForm reads the posted request form's fields through get:
// every one trimmed but the description, the seller's text as typed. A
// browser posts a textarea's line breaks as CRLF; they are read as the
// LF refundctl files (a description filed again unchanged is the same
// request, and on 1688 a CR would count against its length).
func readRequestForm(get func(string) string) requestForm {
	var f requestForm
	for dst, name := range requestFields(&f) {
		*dst = strings.TrimSpace(get(name))
	}
	f.Description = get("description")
	f.Description, f.Vouchers = strings.ReplaceAll(f.Description, "\r\n", "\n"), strings.ReplaceAll(f.Vouchers, "\r\n", "\n")
	return f
}

// lookupTimeout bounds a reasons look-up (Taobao asks up to five forms,
// each with the platform client's own timeout and retries), well inside
// the console's write timeout (its verdict wait plus 20 s): a slow
// platform gets a page saying so, not a cut connection.
const lookupTimeout = 15 * time.Second

// handleRequestReasons is POST /requests/reasons, the request form's "Look
// up the reasons" and its "Use reason" buttons: the page again, with the
// form as posted (what the operator typed meanwhile included). A look-up
// lists, under the reason's fields, the reasons the platform offers for
// the form's order, type and goods status (package reasons, as refundctl
// reasons asks); a pick (pick=ID|type|goods status) puts that reason, and
// its type and goods status, in the form, without asking the platform
// again. A post, not a link: the form carries its CSRF token and the
// seller's text, neither of which belongs in a URL. Nothing is published.
func (s *Server) handleRequestReasons(c echo.Context) error {
	if !who(c).CanAct() {
		return errNotOperator
	}
	if err := s.checkCSRF(c); err != nil {
		return err
	}
	f := readRequestForm(c.FormValue)
	if pick := c.FormValue("pick"); pick != "" {
		f = picked(f, pick)
	}
	v := s.requestView(c, f)
	v.Again = s.againPosted(c, f) // filing again for a case: its note stays
	if c.FormValue("pick") == "" {
		v.Reasons = s.lookupReasons(c.Request().Context(), who(c).Name, f)
	}
	return s.renderRequest(c, http.StatusOK, v)
}

// pickValue is a reason's "Use" button value: what picked puts in the form.
func pickValue(r reasons.Reason) string {
	return fmt.Sprintf("%d|%s|%s", r.ID, r.Type, r.GoodsStatus)
}

// picked is f with the reason of a "Use" button (pickValue): its id in
// place of any reason, and its type (Taobao; 1688's reasons are for any)
// and goods status. A value that is not one leaves f as it was.
func picked(f requestForm, pick string) requestForm {
	parts := strings.Split(pick, "|")
	if len(parts) != 3 {
		return f
	}
	if _, err := strconv.ParseInt(parts[0], 10, 64); err != nil {
		return f
	}
	f.ReasonID, f.Reason, f.GoodsStatus = parts[0], "", parts[2]
	if parts[1] == "refund" || parts[1] == "return" {
		f.Type = parts[1]
	}
	return f
}

// lookupReasons asks the platform for the reasons it offers for f, for
// account (paced as the API's look-ups are).
func (s *Server) lookupReasons(ctx context.Context, account string, f requestForm) *reasonsView {
	if s.reasons == nil {
		return &reasonsView{Error: "This console has no platform credentials (UPSTREAM_* in its environment): refundctl reasons lists the reasons."}
	}
	q := reasons.Query{Platform: f.Platform, OrderID: f.OrderID, SubOrderID: f.SubOrderID, GoodsStatus: f.GoodsStatus}
	if f.Platform == string(refundflow.PlatformTaobao) {
		q.Type = f.Type // the form's type is the one to be filed; 1688 offers the same reasons for both
	}
	if err := q.Check(); err != nil {
		return &reasonsView{Error: "Not asked: " + formMessage(err)}
	}
	if ok, wait := s.lookups.allow(account); !ok {
		return &reasonsView{Error: fmt.Sprintf("Not asked: too many look-ups from your account; look up again in %ds (each asks the platform, against the account's quota the worker shares).",
			int(math.Ceil(wait.Seconds())))}
	}
	s.logger.Info("reasons look-up", "account", account, "platform", q.Platform, "order", q.OrderID, "sub_order", q.SubOrderID)
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	res := s.reasons(ctx, q)
	out := &reasonsView{}
	if err := res.Err(); err != nil {
		out.Error = err.Error()
	}
	for _, r := range res.Reasons {
		out.Rows = append(out.Rows, reasonRow{Type: r.Type, GoodsStatus: r.GoodsStatus, Voucher: r.VoucherNeed("not said"), Text: r.WithTip(),
			ID: r.ID, Pick: pickValue(r)})
	}
	for _, fm := range res.Forms {
		switch {
		case fm.Error != "":
			out.Notes = append(out.Notes, fmt.Sprintf("%s, goods status %s: %s", fm.Type, fm.GoodsStatus, fm.Error))
		case fm.MaxFee != nil:
			out.Notes = append(out.Notes, fmt.Sprintf("%s, goods status %s: the form allows up to %d fen (Amount: max asks for that)",
				fm.Type, fm.GoodsStatus, *fm.MaxFee))
		}
	}
	return out
}

// fillRequest reads the form's values into cmd.Request as refundctl
// request reads its flags: the type refund or return, the amount in fen
// or max (refundflow.ParseAmount), whole numbers for the reason id and the
// carriage, one voucher per line, order entries separated by commas or
// spaces. Errors name the form's fields.
func fillRequest(f requestForm, cmd *refundflow.Command) error {
	r := &refundflow.Request{GoodsStatus: f.GoodsStatus, Reason: f.Reason, Description: f.Description}
	cmd.Request = r
	var errs []error
	switch f.Type {
	case "refund", "":
	case "return":
		r.ReturnGoods = true
	default:
		errs = append(errs, errors.New("Type: refund or return"))
	}
	whole := func(label, v string, dst *int64) {
		if v == "" {
			return
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("%s: a whole number", label))
		}
		*dst = n
	}
	whole("Reason id", f.ReasonID, &r.ReasonID)
	whole("Carriage", f.Carriage, &r.Carriage)
	if f.Amount != "" && cmd.Platform.Valid() {
		n, err := refundflow.ParseAmount(cmd.Platform, f.Amount)
		switch {
		case err != nil && f.Amount == refundflow.AmountMax:
			errs = append(errs, fmt.Errorf("amount: %w", err)) // max on 1688
		case err != nil:
			errs = append(errs, errors.New("amount: fen (a whole number), or max"))
		}
		r.Amount = n
	}
	r.Vouchers = formLines(f.Vouchers)
	for _, e := range strings.FieldsFunc(f.OrderEntries, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
		n, err := strconv.ParseInt(e, 10, 64)
		if err != nil || n <= 0 {
			errs = append(errs, errors.New("Order entries: 1688 sub-order ids, whole numbers"))
			break
		}
		r.OrderEntryIDs = append(r.OrderEntryIDs, n)
	}
	return errors.Join(errs...)
}
