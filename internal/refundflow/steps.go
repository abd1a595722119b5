package refundflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
)

// stepRecord is what is recorded about a step that ran.
type stepRecord struct {
	step      StepName
	key       string
	resume    bool   // sent again under an intent whose earlier attempt's outcome is unknown
	request   string // summary (JSON)
	outcome   string // summary (JSON)
	requestID string
	err       *StepError
	dur       time.Duration
}

// stepSummary is the request summary stored with a step (no secrets: only
// what the case itself holds).
func stepSummary(c casestore.Case, st *Step) string {
	m := map[string]any{"step": st.Name, "orderId": c.OrderID}
	if c.SubOrderID != "" {
		m["subOrderId"] = c.SubOrderID
	}
	add := func(k string, v any, ok bool) {
		if ok {
			m[k] = v
		}
	}
	add("refundId", st.RefundID, st.RefundID != "")
	add("reasonId", st.ReasonID, st.ReasonID != 0)
	add("fee", st.Fee, st.Fee != 0)
	add("carriage", st.Carriage, st.Carriage != 0)
	add("returnGoods", true, st.ReturnGoods)
	add("goodsStatus", st.GoodsStatus, st.GoodsStatus != "")
	add("company", st.Company, st.Company != "")
	add("waybill", st.Waybill, st.Waybill != "")
	add("vouchers", len(st.Vouchers), len(st.Vouchers) > 0)
	add("resume", true, st.Resume)
	b, _ := json.Marshal(m)
	return string(b)
}

// runStep calls the platform for one step; it never returns an error, only a
// StepResult with Err set.
func (e *Engine) runStep(ctx context.Context, c casestore.Case, st *Step) (StepResult, stepRecord) {
	ctx, span := e.startSpan(ctx, "step "+string(st.Name), c.ID, attribute.String("step", string(st.Name)))
	p := Platform(c.Platform)
	res := StepResult{Step: st.Name, Key: st.Key}
	rec := stepRecord{step: st.Name, key: st.Key, resume: st.Resume, request: stepSummary(c, st)}
	start := time.Now()
	out, requestID, err := e.call(ctx, c, p, st, &res)
	rec.dur = time.Since(start)
	rec.requestID = requestID
	outcome := "ok"
	if err != nil {
		res.Err = stepError(err, st.Name.SideEffect(), st.Resume)
		rec.err = res.Err
		outcome = "failed"
		if res.Err.Transient {
			outcome = "transient"
		}
		if requestID == "" {
			var ae *apiclient.APIError
			var he *apiclient.HTTPError
			switch {
			case errors.As(err, &ae):
				rec.requestID = ae.RequestID
			case errors.As(err, &he):
				rec.requestID = he.RequestID
			}
		}
	} else {
		b, _ := json.Marshal(out)
		rec.outcome = string(b)
	}
	if e.onStep != nil {
		e.onStep(p, st.Name, outcome, rec.dur)
	}
	span.SetAttributes(attribute.String("outcome", outcome))
	endSpan(span, err)
	e.logger(ctx).DebugContext(ctx, "step", "step", st.Name, "outcome", outcome, "platform_request_id", rec.requestID, "took", rec.dur)
	return res, rec
}

// call makes the platform call of a step and fills res; it returns a summary
// of the answer and the platform's requestId.
//
// It is long on purpose: one short case per step and platform, each mapping
// a Step onto one apiclient call. Read together they are the whole list of
// calls the worker makes, which is what a reviewer of the platform contract
// needs in one place.
func (e *Engine) call(ctx context.Context, c casestore.Case, p Platform, st *Step, res *StepResult) (any, string, error) {
	cl, prof := e.client, e.client.Profile()
	switch st.Name {
	case StepRender:
		// What the sub-order already has, before anything of ours: only a
		// refund not listed here can later be taken as this case's. Listed
		// beside the render (both are reads), so the step takes one round
		// trip, not two.
		type listed struct {
			ids, open []string
			err       error
			panic     any // the list's panic, raised again on the step's goroutine
		}
		existing := make(chan listed, 1)
		go func() {
			var l listed
			defer func() {
				// The worker's guard catches a panic on the input's
				// goroutine (the input fails alone); on this one it
				// would end the process.
				l.panic = relay(recover())
				existing <- l
			}()
			l.ids, l.open, l.err = e.existingRefunds(ctx, c.OrderID, c.SubOrderID)
		}()
		r, err := cl.TaobaoRender(ctx, apiclient.RenderRequest{SubOrderID: c.SubOrderID,
			RefundType: taobaoRefundType(prof, st.ReturnGoods), GoodsStatus: taobaoGoodsWire(prof, st.GoodsStatus)})
		prior := <-existing
		if prior.panic != nil {
			panic(prior.panic)
		}
		if err != nil {
			return nil, r.RequestID, err
		}
		t := r.Data.RefundOrderTemplate
		f := &Form{MinFee: int64(t.MaxRefundFee.MinRefundFee), MaxFee: int64(t.MaxRefundFee.MaxRefundFee),
			DefaultFee: int64(t.MaxRefundFee.RefundFee), CanEditFee: t.MaxRefundFee.CanEditRefundFee,
			SaleDisabled: r.Data.SaleFlag != nil && !*r.Data.SaleFlag}
		for _, rr := range t.RefundReasons {
			f.Reasons = append(f.Reasons, Reason{ID: int64(rr.ReasonID), Desc: rr.ReasonDesc})
		}
		if prior.err != nil {
			return nil, r.RequestID, prior.err
		}
		f.Existing, f.ExistingOpen = prior.ids, prior.open
		res.Form = f
		return map[string]any{"reasons": len(f.Reasons), "minFee": f.MinFee, "maxFee": f.MaxFee, "canEditFee": f.CanEditFee,
			"existingRefunds": f.Existing, "existingOpen": f.ExistingOpen}, r.RequestID, nil
	case StepReasons:
		orderID, err := strconv.ParseInt(c.OrderID, 10, 64)
		if err != nil {
			return nil, "", fmt.Errorf("1688 order id %q: %w", c.OrderID, apiclient.ErrInvalidArgument)
		}
		r, err := cl.AlibabaRefundReasons(ctx, apiclient.RefundReasonsRequest{OrderID: orderID, OrderEntryIDs: st.OrderEntryIDs,
			GoodsStatus: alibabaGoodsWire(prof, st.GoodsStatus)})
		if err != nil {
			return nil, r.RequestID, err
		}
		for _, rr := range r.Data.Reasons {
			res.Reasons = append(res.Reasons, Reason{ID: int64(rr.ID), Desc: rr.Name, NeedVoucher: rr.NeedVoucher, NoCarriage: rr.NoRefundCarriage})
		}
		return map[string]any{"reasons": len(res.Reasons)}, r.RequestID, nil
	case StepUploadVouchers:
		if e.vouchers == nil {
			var ref string
			if len(st.Vouchers) > 0 {
				ref = st.Vouchers[0]
			}
			return nil, "", &voucherError{ref: ref, err: errors.New("the worker has no voucher directory: WORKER_VOUCHER_DIR is empty; set it and restart the worker")}
		}
		var rid string
		for _, ref := range st.Vouchers {
			name, data, err := e.vouchers(ctx, ref)
			if err != nil {
				return nil, rid, &voucherError{ref: ref, err: err}
			}
			r, err := cl.AlibabaUploadVoucher(ctx, name, bytes.NewReader(data))
			if errors.Is(err, apiclient.ErrInvalidArgument) {
				// Refused by the client before anything was sent: the
				// file (empty, too large, its name).
				return nil, rid, &voucherError{ref: ref, err: err}
			}
			if err != nil {
				return nil, r.RequestID, err
			}
			rid = r.RequestID
			res.Vouchers = append(res.Vouchers, r.Data.URL())
		}
		return map[string]any{"vouchers": res.Vouchers}, rid, nil
	case StepSubmit:
		if p == Platform1688 {
			orderID, err := strconv.ParseInt(c.OrderID, 10, 64)
			if err != nil {
				return nil, "", fmt.Errorf("1688 order id %q: %w", c.OrderID, apiclient.ErrInvalidArgument)
			}
			r, err := cl.AlibabaCreateRefund(ctx, apiclient.CreateRefundRequest{OrderID: orderID, OrderEntryIDs: st.OrderEntryIDs,
				DisputeRequest: alibabaDispute(prof, st.ReturnGoods), ApplyPayment: apiclient.Amount(st.Fee), ApplyCarriage: apiclient.Amount(st.Carriage),
				ApplyReasonID: st.ReasonID, Description: st.Description, GoodsStatus: alibabaGoodsWire(prof, st.GoodsStatus), Vouchers: st.Vouchers})
			if err != nil {
				return nil, r.RequestID, err
			}
			res.RefundID = r.Data.RefundID
			return map[string]any{"refundId": res.RefundID}, r.RequestID, nil
		}
		r, err := cl.TaobaoSubmit(ctx, apiclient.SubmitRefundRequest{SubOrderID: c.SubOrderID, RefundType: taobaoRefundType(prof, st.ReturnGoods),
			GoodsStatus: taobaoGoodsWire(prof, st.GoodsStatus), ReasonID: int(st.ReasonID), RefundFee: apiclient.Amount(st.Fee),
			RefundDesc: st.Description, RefundImages: strings.Join(st.Vouchers, ",")})
		if err != nil {
			return nil, r.RequestID, err
		}
		res.RefundID = r.Data.RefundID.String()
		return map[string]any{"refundId": res.RefundID}, r.RequestID, nil
	case StepReturnRender:
		if p == Platform1688 {
			r, err := cl.AlibabaLogisticsCompanies(ctx)
			if err != nil {
				return nil, r.RequestID, err
			}
			for _, co := range r.Data {
				res.Companies = append(res.Companies, co.CompanyNo)
			}
			return map[string]any{"companies": len(res.Companies)}, r.RequestID, nil
		}
		r, err := cl.TaobaoReturnLogisticsRender(ctx, st.RefundID)
		if err != nil {
			return nil, r.RequestID, err
		}
		for _, co := range r.Data.LogisticsCompanies {
			res.Companies = append(res.Companies, co.LogisticsCompanyCode)
		}
		return map[string]any{"companies": len(res.Companies)}, r.RequestID, nil
	case StepReturnSubmit:
		if p == Platform1688 {
			r, err := cl.AlibabaGoodsReturn(ctx, apiclient.GoodsReturnRequest{RefundID: st.RefundID, LogisticsCompanyNo: st.Company,
				FreightBill: st.Waybill, Description: st.Description})
			if err != nil {
				return nil, r.RequestID, err
			}
			return map[string]any{"submitted": true}, r.RequestID, nil
		}
		r, err := cl.TaobaoReturnLogisticsSubmit(ctx, apiclient.ReturnLogisticsSubmitRequest{RefundID: st.RefundID,
			LogisticsCompanyCode: st.Company, LogisticsNo: st.Waybill, BuyerPhone: st.Phone, ReturnGoodsDesc: st.Description})
		if err != nil {
			return nil, r.RequestID, err
		}
		return map[string]any{"submitted": true}, r.RequestID, nil
	case StepCancel:
		r, err := cl.TaobaoCancel(ctx, st.RefundID)
		if err != nil {
			return nil, r.RequestID, err
		}
		if ro := r.Data.RefundOrderAggregate.RefundOrder; ro.RefundID.String() == st.RefundID {
			res.Status = e.taobaoView(r.Data.RefundOrderAggregate).StatusText
		}
		return map[string]any{"cancelled": true, "status": res.Status}, r.RequestID, nil
	case StepModify:
		r, err := cl.TaobaoModify(ctx, apiclient.ModifyRefundRequest{RefundID: st.RefundID, RefundType: taobaoRefundType(prof, st.ReturnGoods),
			GoodsStatus: taobaoGoodsWire(prof, st.GoodsStatus), ReasonID: int(st.ReasonID), RefundFee: apiclient.Amount(st.Fee),
			RefundDesc: st.Description, RefundImages: strings.Join(st.Vouchers, ",")})
		if err != nil {
			return nil, r.RequestID, err
		}
		return map[string]any{"modified": true}, r.RequestID, nil
	case StepMessage:
		r, err := cl.TaobaoSubmitMessage(ctx, apiclient.SubmitMessageRequest{RefundID: st.RefundID, RefundMessage: st.Message})
		if err != nil {
			return nil, r.RequestID, err
		}
		return map[string]any{"posted": true}, r.RequestID, nil
	}
	return nil, "", fmt.Errorf("unknown step %q: %w", excerpt.Of(string(st.Name), 40), apiclient.ErrInvalidArgument)
}

// stepError classifies a failed step. Transient: retryable (5xx, 429,
// transport, retryable codes), an unreadable answer, or our own shutdown;
// the rest (business codes, invalid arguments) need an operator.
// NotApplied: apiclient.NotApplied. A side effect whose outcome is unknown
// (not NotApplied) is transient whatever the code: its intent stays open and
// the next attempt asks the platform before anything else. So is one sent
// again under an intent whose earlier attempt's outcome is unknown (resume),
// even when this attempt was refused: the refusal says nothing about the
// earlier one (a duplicate refusal is what an earlier attempt that landed
// late would cause).
//
// A voucher the worker could not read has its own code
// (StepCodeVoucherUnreadable): the cause is on the worker's host.
func stepError(err error, sideEffect, resume bool) *StepError {
	se := &StepError{Message: excerpt.Of(err.Error(), MaxAttentionText)}
	var ae *apiclient.APIError
	var he *apiclient.HTTPError
	var te *apiclient.TransportError
	var de *apiclient.DecodeError
	switch {
	case errors.As(err, &ae):
		se.Code = strconv.Itoa(ae.Code)
		if ae.NestedCode != "" {
			se.Code = ae.NestedCode
		}
	case errors.As(err, &he):
		se.Code = "http_" + strconv.Itoa(he.StatusCode)
	case errors.As(err, &te):
		se.Code = "transport"
	case errors.As(err, &de):
		se.Code = "decode"
	case errors.Is(err, errListIncomplete):
		se.Code = "list_incomplete"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		se.Code = "cancelled"
	case errors.As(err, new(*voucherError)):
		se.Code = StepCodeVoucherUnreadable
	case errors.Is(err, apiclient.ErrInvalidArgument):
		se.Code = "invalid_argument"
	default:
		se.Code = "error"
	}
	se.NotApplied = apiclient.NotApplied(err)
	se.Refused = refusedByPlatform(err)
	se.OpenRefundExists = apiclient.ErrorClass(err) == platform.ClassDuplicateRefund
	se.Transient = errors.Is(err, apiclient.ErrRetryable) || errors.As(err, &de) || errors.Is(err, errListIncomplete) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || (sideEffect && (!se.NotApplied || resume))
	return se
}

// refusedByPlatform reports whether err is the platform's verdict refusing
// the call whole: an answer (an envelope code or nested failure it marks
// not applied, or an HTTP 4xx), and not one that passes with time (a rate
// limit, a retryable code). A failure on our side before anything was sent
// (a cancelled context at shutdown, a rate-limiter wait cut short, a bad
// argument) is not applied either, but it says nothing about what the
// platform would do: it never counts towards Policy.ResendLimit.
func refusedByPlatform(err error) bool {
	if errors.Is(err, apiclient.ErrRetryable) {
		return false
	}
	var ae *apiclient.APIError
	if errors.As(err, &ae) {
		return ae.NotApplied
	}
	var he *apiclient.HTTPError
	return errors.As(err, &he) && he.StatusCode >= 400 && he.StatusCode < 500
}

// StepCodeVoucherUnreadable is the step error code of an upload_vouchers
// step that could not read a voucher on the worker's host (VoucherSource):
// nothing of it was sent.
const StepCodeVoucherUnreadable = "voucher_unreadable"

// voucherError is a voucher the worker could not read, before anything
// of it was sent (so apiclient.NotApplied holds: no response type in its
// chain): ref is the request's reference, "" when no source is set.
type voucherError struct {
	ref string
	err error
}

func (e *voucherError) Error() string {
	if e.ref == "" {
		return e.err.Error()
	}
	return fmt.Sprintf("voucher %q: %v", excerpt.Of(e.ref, 60), e.err)
}

func (e *voucherError) Unwrap() error { return e.err }
