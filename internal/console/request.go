package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/opcommands"
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
}

// againView is the case a request is filed again for.
type againView struct {
	CaseID                                  int64
	State, Parked, Attention, AttentionText string
	// Replaces: a request for its order replaces the one it stopped with
	// (refundflow.RequestReplaces); otherwise the worker would refuse it
	// as case_open.
	Replaces bool
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
	v := requestView{page: s.pageBase(c, "File a refund or return request"), Form: requestForm{Type: "refund"}, Rules: readRequestRules()}
	if raw := c.QueryParam("case"); raw != "" {
		k, err := s.getCase(c.Request().Context(), raw)
		if err != nil {
			return err
		}
		v.Form = formOf(k)
		v.Again = &againView{CaseID: k.ID, State: k.State, Parked: k.ParkedState, Attention: k.AttentionCode,
			AttentionText: k.AttentionMessage,
			Replaces:      refundflow.RequestReplaces(refundflow.State(k.State), refundflow.State(k.ParkedState), k.RefundID)}
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
	f := requestForm{}
	for dst, name := range map[*string]string{&f.Platform: "platform", &f.OrderID: "order", &f.SubOrderID: "sub_order",
		&f.Type: "type", &f.GoodsStatus: "goods_status", &f.ReasonID: "reason_id", &f.Reason: "reason", &f.Amount: "amount",
		&f.Carriage: "carriage", &f.Vouchers: "vouchers", &f.OrderEntries: "order_entries"} {
		*dst = strings.TrimSpace(c.FormValue(name))
	}
	f.Description = c.FormValue("description")
	id, err := opcommands.NewID()
	if err != nil {
		return err
	}
	cmd := refundflow.Command{ID: id, Kind: refundflow.InputRequestRefund, Platform: refundflow.Platform(f.Platform),
		OrderID: f.OrderID, SubOrderID: f.SubOrderID, Operator: who(c).Name, IssuedAt: s.now().UTC().Truncate(time.Millisecond)}
	ferr := fillRequest(f, &cmd)
	if err := errors.Join(ferr, opcommands.Check(cmd)); err != nil {
		return s.renderRequest(c, http.StatusBadRequest, requestView{page: s.pageBase(c, "File a refund or return request"),
			Form: f, Error: formMessage(err), Rules: readRequestRules()})
	}
	res, err := s.issue(c.Request().Context(), who(c), cmd, s.cfg.VerdictWait)
	extra := ""
	switch {
	case unconfirmed(err):
		extra = "&unconfirmed=1" // followed by its id: see handleAction
	case err != nil:
		return err
	}
	q := url.Values{"command": {id}}.Encode() + extra
	if res.Verdict.CaseID > 0 {
		return c.Redirect(http.StatusSeeOther, "/cases/"+strconv.FormatInt(res.Verdict.CaseID, 10)+"?"+q)
	}
	return c.Redirect(http.StatusSeeOther, "/requests/new?"+q)
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
