package doctor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
)

// Made-up refund ids: asking for one shows the platform's "not found" code
// and, since the lookup comes after the signature check, that the signature
// is accepted. They have the platform's id format and cannot be real.
const (
	madeUpTaobaoRefund  = "0"
	madeUpAlibabaRefund = "TQ0"
)

// maxListedQueries bounds the refunds of the list that doctor also queries
// one by one (the list names a status, the v2 query may number it: both for
// the same refund tie a name to its code).
const maxListedQueries = 10

// outcome is how doctor understands one answer.
type outcome string

const (
	outSuccess      outcome = "success"              // the success code, data the client's type holds
	outUndecodable  outcome = "undecodable"          // the success code, data the client's type cannot hold
	outLooksSuccess outcome = "looks_like_success"   // a code no class lists, with data: perhaps the success code is another
	outFailed       outcome = "failed"               // a failure code of a class other than auth and not_found
	outUnknownCode  outcome = "unknown_code"         // a failure code no class lists
	outIDNotFound   outcome = "id_not_found"         // not_found, unlike an unknown path: the path is right, the id unknown
	outPathNotFound outcome = "path_not_found"       // HTTP 404, or answered exactly as the unknown path is
	outAmbiguous    outcome = "path_or_id_not_found" // not_found, as the unknown path is too: either could be wrong
	outMethod       outcome = "method_not_allowed"   // HTTP 405
	outAuth         outcome = "auth_rejected"        // an auth class code
	outNotEnvelope  outcome = "not_an_envelope"      // 2xx, but not the documented envelope
	outHTTPError    outcome = "http_error"           // another HTTP status
	outNetwork      outcome = "network"              // no response
	outRefused      outcome = "refused"              // not sent (a side effect, or an argument refused)
	outCalibration  outcome = "unknown_path"         // the answer to UnknownPath itself
)

// reachedAuth reports whether an answer came from behind the platform's
// signature check.
func (o outcome) reachedAuth() bool {
	switch o {
	case outSuccess, outUndecodable, outLooksSuccess, outFailed, outIDNotFound:
		return true
	}
	return false
}

// probe makes every call the options allow, in order.
func (r *run) probe(ctx context.Context) {
	r.expectCommon()
	if r.opts.Platform == Taobao {
		r.expectTaobao()
	} else {
		r.expectAlibaba()
	}
	calib := r.client.ProbeUnknownPath(ctx)
	r.calib = &calib
	r.record("", "how the platform answers a path it does not serve", calib, outCalibration)
	if calib.HTTPStatus == 0 {
		r.unobservable("signature", "network: "+errText(calib.Err))
		return // nothing answers: every other call would fail the same way
	}
	if r.opts.Platform == Taobao {
		r.probeTaobao(ctx)
	} else {
		r.probeAlibaba(ctx)
	}
	if !r.sigDecided {
		r.unobservable("signature", r.sigWhy)
	}
}

func (r *run) expectCommon() {
	p := r.prof
	s := p.Signature
	r.expect("signature", fmt.Sprintf("MD5(%s), %s-case hex, timestamp in %s", strings.Join(s.Parts, " + "), s.LetterCase, s.TimestampUnit),
		"no call reached the platform's signature check")
	r.expect("envelope.success_code", strconv.Itoa(p.Envelope.SuccessCode), "no call succeeded: give ids that exist")
	r.expect("envelope.success_msg", strconv.Quote(p.Envelope.SuccessMsg), "no call succeeded: give ids that exist")
	r.expect("wire.code", "a JSON number (a numeric string is read too)", "no envelope seen")
	r.expect("wire.developId", "a JSON string or number (the documentation shows both; the client reads either)", "no envelope seen")
	r.expect("error_codes.not_found", fmt.Sprint(p.ErrorCodes.NotFound), "the made-up refund id got no answer")
	r.expect("envelope.error_http_status", strconv.Itoa(p.Envelope.ErrorHTTPStatus), "no failure answer seen")
}

func (r *run) expectEndpoint(e platform.Endpoint, why string) {
	f := r.prof.Endpoint(e)
	r.expect(endpointKey(e), f.Method+" "+f.Path, why)
	r.expect(decodeKey(e), fmt.Sprintf("the client's %s holds the answer", apiclient.ResponseType(e)), why)
}

func endpointKey(e platform.Endpoint) string { return "endpoints." + string(e) }
func decodeKey(e platform.Endpoint) string   { return "decode." + string(e) }

func (r *run) expectTaobao() {
	p := r.prof
	needRefund, needOrder, needSub := "needs --refund", "needs --order", "needs --sub-order"
	r.expectEndpoint(platform.TaobaoQuery, needRefund)
	r.unobservable(endpointKey(platform.TaobaoQuery), "the made-up refund id got no answer")
	r.expectEndpoint(platform.TaobaoReturnLogisticsRender, needRefund)
	r.expectEndpoint(platform.TaobaoListMessages, needRefund)
	r.expectEndpoint(platform.TaobaoList, needOrder)
	r.expectEndpoint(platform.TaobaoRender, needSub)
	statusWhy := "needs --refund or --order"
	if len(r.opts.RefundIDs) > 0 || r.opts.OrderID != "" {
		statusWhy = "no refund in this phase among the given ids"
	}
	r.expect("taobao.refund_status", "every refundStatus the platform sends is a name or code of the map", "needs --refund or --order")
	for _, ph := range platform.Phases() {
		f := p.Taobao.RefundStatus[ph]
		r.expect(statusKey(true, ph), fmt.Sprintf("%s, code %d", quoteAll(f.Names), *f.Code), statusWhy)
	}
	l := p.Taobao.List
	r.expect("taobao.list.items_field", strconv.Quote(l.ItemsField), needOrder)
	r.expect("taobao.list.total_field", strconv.Quote(l.TotalField), needOrder)
	r.expect("taobao.list.page_no_field", strconv.Quote(l.PageNoField)+" (as sent, DOC; echoed in the answer)", needOrder)
	r.expect("taobao.list.page_size_field", strconv.Quote(l.PageSizeField)+" (as sent, DOC; echoed in the answer)", needOrder)
	r.expect("taobao.list.max_page_size", fmt.Sprintf("the list accepts %s %d", l.PageSizeField, l.MaxPageSize), needOrder)
	r.expect("taobao.refund_type", fmt.Sprintf("refund_only %d, return_and_refund %d", p.Taobao.RefundType.RefundOnly, p.Taobao.RefundType.ReturnAndRefund), needSub)
	g := p.Taobao.GoodsStatus
	r.expect("taobao.goods_status", fmt.Sprintf("not_shipped %d, not_received %d, received %d", g.NotShipped, g.NotReceived, g.Received), needSub)
	r.expect("times.layouts", quoteAll(p.Times.Layouts), "no time seen: give --refund or --order of an open refund (timeoutDate)")
	r.expect("amounts.taobao", p.Amounts.Taobao, "no amount seen: give --refund, --order or --sub-order")
}

func (r *run) expectAlibaba() {
	p := r.prof
	r.expectEndpoint(platform.AlibabaRefundInfo, "needs --refund")
	r.unobservable(endpointKey(platform.AlibabaRefundInfo), "the made-up refund id got no answer")
	r.expectEndpoint(platform.AlibabaLogisticsCompanies, "the call got no answer")
	r.expectEndpoint(platform.AlibabaRefundReasons, "needs --order")
	statusWhy := "needs --refund"
	if len(r.opts.RefundIDs) > 0 {
		statusWhy = "no refund given is in this phase"
	}
	r.expect("alibaba.refund_status", "every status the platform sends is a name of the map", "needs --refund")
	for _, ph := range platform.Phases() {
		r.expect(statusKey(false, ph), quoteAll(p.Alibaba.RefundStatus[ph].Names), statusWhy)
	}
	for _, g := range alibabaGoodsStatuses(p) {
		r.expect("alibaba.goods_status."+g.key, strconv.Quote(g.value)+" is accepted by the reasons lookup", "needs --order")
	}
	r.expect("times.layouts", quoteAll(p.Times.Layouts), "no time seen: give --refund")
	r.expect("amounts.alibaba", p.Amounts.Alibaba, "no amount seen: give --refund")
}

type goodsStatus struct{ key, value string }

// alibabaGoodsStatuses names the profile's 1688 goods statuses by key.
func alibabaGoodsStatuses(p *platform.Profile) []goodsStatus {
	g := p.Alibaba.GoodsStatus
	return []goodsStatus{{"in_sale_wait_seller_send", g.InSaleWaitSellerSend}, {"in_sale_wait_buyer_receive", g.InSaleWaitBuyerReceive},
		{"in_sale_buyer_received", g.InSaleBuyerReceived}, {"after_sale_not_received", g.AfterSaleNotReceived},
		{"after_sale_received", g.AfterSaleReceived}}
}

func (r *run) probeTaobao(ctx context.Context) {
	p := r.prof
	res, out := r.call(ctx, "a made-up refund id: signature and the not-found code",
		apiclient.ProbeRequest{Endpoint: platform.TaobaoQuery, RefundID: madeUpTaobaoRefund}, true)
	r.pathVerdict(platform.TaobaoQuery, res, out)
	r.notFoundVerdict(res, out)

	for _, id := range r.opts.RefundIDs {
		res, out = r.call(ctx, "refund "+id+" (--refund)", apiclient.ProbeRequest{Endpoint: platform.TaobaoQuery, RefundID: id}, true)
		r.pathVerdict(platform.TaobaoQuery, res, out)
		r.refundFound(platform.TaobaoQuery, id, out)
		r.inspect(platform.TaobaoQuery, res, out)
		res, out = r.call(ctx, "refund "+id+"'s return form (--refund)",
			apiclient.ProbeRequest{Endpoint: platform.TaobaoReturnLogisticsRender, RefundID: id}, true)
		r.pathVerdict(platform.TaobaoReturnLogisticsRender, res, out)
		r.inspect(platform.TaobaoReturnLogisticsRender, res, out)
		res, out = r.call(ctx, "refund "+id+"'s messages (--refund)", apiclient.ProbeRequest{Endpoint: platform.TaobaoListMessages,
			Body: apiclient.ListMessagesRequest{RefundID: id, PageSize: 20}}, true)
		r.pathVerdict(platform.TaobaoListMessages, res, out)
		r.inspect(platform.TaobaoListMessages, res, out)
	}
	if order := r.opts.OrderID; order != "" {
		l := p.Taobao.List
		size := l.MaxPageSize
		res, out = r.call(ctx, "the order's refunds, first page (--order)", apiclient.ProbeRequest{Endpoint: platform.TaobaoList,
			Body: map[string]any{l.OrderFilterField: order, l.PageNoField: l.FirstPage, l.PageSizeField: size}}, true)
		r.pathVerdict(platform.TaobaoList, res, out)
		switch out {
		case outSuccess, outUndecodable, outLooksSuccess:
			r.confirm("taobao.list.max_page_size", fmt.Sprintf("%s %d accepted", l.PageSizeField, size))
		case outFailed:
			if res.Class == platform.ClassInvalidField || res.Class == platform.ClassMissingField || res.Class == platform.ClassMalformedRequest {
				r.contradict("taobao.list.max_page_size", fmt.Sprintf("the list request was refused: %s", codeMsg(res)))
				r.decide("taobao.list", fmt.Sprintf("the list refused {%q: %q, %q: %d, %q: %d} with %s: check max_page_size and the request field names (order_filter_field, page_no_field, page_size_field)",
					l.OrderFilterField, order, l.PageNoField, l.FirstPage, l.PageSizeField, size, codeMsg(res)), "")
			}
		}
		r.inspect(platform.TaobaoList, res, out)
		r.queryListed(ctx)
	}
	if sub := r.opts.SubOrderID; sub != "" {
		res, out = r.call(ctx, "the sub-order's refund form (--sub-order)", apiclient.ProbeRequest{Endpoint: platform.TaobaoRender,
			Body: apiclient.RenderRequest{SubOrderID: sub, RefundType: p.Taobao.RefundType.RefundOnly, GoodsStatus: p.Taobao.GoodsStatus.NotShipped}}, false)
		r.pathVerdict(platform.TaobaoRender, res, out)
		r.inspect(platform.TaobaoRender, res, out)
	}
}

// queryListed queries the refunds the list showed that no call has queried
// yet, at most maxListedQueries.
func (r *run) queryListed(ctx context.Context) {
	queried := map[string]bool{}
	for _, id := range r.opts.RefundIDs {
		queried[id] = true
	}
	var ids []string
	for _, s := range r.statuses {
		if s.endpoint == platform.TaobaoList && s.refundID != "" && !queried[s.refundID] && len(ids) < maxListedQueries {
			queried[s.refundID] = true
			ids = append(ids, s.refundID)
		}
	}
	for _, id := range ids {
		res, out := r.call(ctx, "refund "+id+", which the list showed (--order)",
			apiclient.ProbeRequest{Endpoint: platform.TaobaoQuery, RefundID: id}, true)
		r.pathVerdict(platform.TaobaoQuery, res, out)
		r.inspect(platform.TaobaoQuery, res, out)
	}
}

func (r *run) probeAlibaba(ctx context.Context) {
	res, out := r.call(ctx, "a made-up refund id: signature and the not-found code",
		apiclient.ProbeRequest{Endpoint: platform.AlibabaRefundInfo, RefundID: madeUpAlibabaRefund}, true)
	r.pathVerdict(platform.AlibabaRefundInfo, res, out)
	r.notFoundVerdict(res, out)

	res, out = r.call(ctx, "the carriers a return may use", apiclient.ProbeRequest{Endpoint: platform.AlibabaLogisticsCompanies}, false)
	r.pathVerdict(platform.AlibabaLogisticsCompanies, res, out)
	r.inspect(platform.AlibabaLogisticsCompanies, res, out)

	for _, id := range r.opts.RefundIDs {
		res, out = r.call(ctx, "refund "+id+" (--refund)", apiclient.ProbeRequest{Endpoint: platform.AlibabaRefundInfo, RefundID: id}, true)
		r.pathVerdict(platform.AlibabaRefundInfo, res, out)
		r.refundFound(platform.AlibabaRefundInfo, id, out)
		r.inspect(platform.AlibabaRefundInfo, res, out)
	}
	if r.opts.OrderID != "" {
		r.probeReasons(ctx)
	}
}

// probeReasons asks for the order's refund reasons once per goods status the
// profile names: a value the platform does not know is refused.
func (r *run) probeReasons(ctx context.Context) {
	orderID, err := strconv.ParseInt(r.opts.OrderID, 10, 64)
	if err != nil || orderID <= 0 {
		r.unobservable(endpointKey(platform.AlibabaRefundReasons), "--order is not a 1688 order id (digits)")
		return
	}
	for _, g := range alibabaGoodsStatuses(r.prof) {
		key := "alibaba.goods_status." + g.key
		res, out := r.call(ctx, "the order's refund reasons for goodsStatus "+g.value+" (--order)", apiclient.ProbeRequest{
			Endpoint: platform.AlibabaRefundReasons, Body: apiclient.RefundReasonsRequest{OrderID: orderID, GoodsStatus: g.value}}, true)
		r.pathVerdict(platform.AlibabaRefundReasons, res, out)
		switch {
		case out == outSuccess || out == outUndecodable:
			r.confirm(key, strconv.Quote(g.value)+" accepted")
			r.inspect(platform.AlibabaRefundReasons, res, out)
		case out == outFailed && (res.Class == platform.ClassInvalidField || res.Class == platform.ClassMalformedRequest):
			r.contradict(key, fmt.Sprintf("%q refused: %s", g.value, codeMsg(res)))
			r.decide(key, fmt.Sprintf("the reasons lookup refused goodsStatus %q (%s): find the platform's value for it", g.value, codeMsg(res)),
				fmt.Sprintf("alibaba.goods_status.%s = \"<the platform's value>\"", g.key))
		case out == outFailed || out == outIDNotFound:
			r.unobservable(key, fmt.Sprintf("the reasons lookup answered %s", codeMsg(res)))
			if out == outIDNotFound {
				r.note(endpointKey(platform.AlibabaRefundReasons), "order "+r.opts.OrderID+" not found")
				return // the other statuses would be refused the same way
			}
		default:
			r.unobservable(key, "the reasons lookup got no usable answer ("+string(out)+")")
			return
		}
	}
}

// call makes one probe, tries signature variants when the signature is
// rejected, and records the call.
func (r *run) call(ctx context.Context, purpose string, req apiclient.ProbeRequest, hasID bool) (apiclient.ProbeResult, outcome) {
	if r.stopped {
		return apiclient.ProbeResult{Endpoint: req.Endpoint, Err: errStopped}, outRefused
	}
	res := r.client.Probe(ctx, req)
	out := r.classify(res, hasID)
	r.record(req.Endpoint, purpose, res, out)
	if out == outAuth && !r.sigDecided {
		res, out = r.signatureRejected(ctx, purpose, req, res, hasID)
	}
	r.signatureFrom(req.Endpoint, res, out)
	return res, out
}

var errStopped = errors.New("not sent: the platform refused the credentials")

// classify says what an answer means; see outcome.
func (r *run) classify(res apiclient.ProbeResult, hasID bool) outcome {
	var te *apiclient.TransportError
	switch {
	case errors.Is(res.Err, apiclient.ErrSideEffect), errors.Is(res.Err, apiclient.ErrInvalidArgument):
		return outRefused
	case errors.As(res.Err, &te) || res.HTTPStatus == 0:
		return outNetwork
	case res.HTTPStatus == http.StatusMethodNotAllowed:
		return outMethod
	case res.HTTPStatus == http.StatusNotFound:
		if res.Envelope != nil && res.Class == platform.ClassNotFound && !r.sameAsUnknownPath(res) {
			return outIDNotFound // a REST-style "no such refund"
		}
		return outPathNotFound
	case res.Envelope == nil:
		if r.sameAsUnknownPath(res) {
			return outPathNotFound
		}
		if res.HTTPStatus >= 200 && res.HTTPStatus <= 299 {
			return outNotEnvelope
		}
		return outHTTPError
	}
	env := res.Envelope
	switch {
	case env.Code == r.prof.Envelope.SuccessCode && res.Err == nil:
		return outSuccess
	case env.Code == r.prof.Envelope.SuccessCode:
		return outUndecodable
	case res.Class.Auth():
		return outAuth
	case res.Class == platform.ClassNotFound:
		if r.sameAsUnknownPath(res) {
			if hasID {
				return outAmbiguous
			}
			return outPathNotFound
		}
		return outIDNotFound
	case (res.HTTPStatus < 200 || res.HTTPStatus > 299) && res.HTTPStatus != r.prof.Envelope.ErrorHTTPStatus:
		// At the profile's error status a failure envelope is read by
		// its code, as the client reads it (apiclient readAnswer).
		if r.sameAsUnknownPath(res) {
			return outPathNotFound
		}
		return outHTTPError
	case res.Class == platform.ClassUnknown:
		if r.sameAsUnknownPath(res) {
			return outPathNotFound
		}
		if looksLikeData(env.Data) {
			return outLooksSuccess
		}
		return outUnknownCode
	}
	return outFailed
}

// sameAsUnknownPath reports whether an answer has the shape of the answer
// to UnknownPath (same HTTP status, same envelope code or none).
func (r *run) sameAsUnknownPath(res apiclient.ProbeResult) bool {
	c := r.calib
	if c == nil || c.HTTPStatus == 0 || c.Err == nil || res.HTTPStatus != c.HTTPStatus {
		return false
	}
	if (res.Envelope == nil) != (c.Envelope == nil) {
		return false
	}
	return res.Envelope == nil || res.Envelope.Code == c.Envelope.Code
}

// looksLikeData reports whether data is a non-empty object or list.
func looksLikeData(data []byte) bool {
	d := bytes.TrimSpace(data)
	return len(d) > 2 && (d[0] == '{' || d[0] == '[')
}

// record adds a call to the report.
func (r *run) record(e platform.Endpoint, purpose string, res apiclient.ProbeResult, out outcome) {
	c := Call{Endpoint: string(e), Method: res.Method, Path: res.Path, HTTPStatus: res.HTTPStatus,
		Outcome: string(out), Purpose: purpose}
	if e == "" {
		c.Endpoint = "unknown_path"
	}
	if res.Envelope != nil {
		code := res.Envelope.Code
		c.Code, c.Msg, c.RequestID = &code, excerpt.Of(res.Envelope.Msg, 120), res.Envelope.RequestID
	}
	if out == outNetwork || out == outRefused {
		c.Msg = excerpt.Of(errText(res.Err), 200)
	}
	if res.HTTPStatus != 0 {
		r.answered = true
	}
	if res.Envelope != nil {
		r.wireTypes(res.Body)
	}
	r.rep.Calls = append(r.rep.Calls, c)
}

func codeMsg(res apiclient.ProbeResult) string {
	if res.Envelope == nil {
		return fmt.Sprintf("HTTP %d", res.HTTPStatus)
	}
	if res.Envelope.Msg == "" {
		return fmt.Sprintf("code %d", res.Envelope.Code)
	}
	return fmt.Sprintf("code %d %q", res.Envelope.Code, excerpt.Of(res.Envelope.Msg, 80))
}

func envCode(res apiclient.ProbeResult) string {
	if res.Envelope == nil {
		return ""
	}
	return fmt.Sprintf(", code %d", res.Envelope.Code)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

func tomlInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return "[" + strings.Join(s, ", ") + "]"
}
