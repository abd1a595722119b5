package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Retry classes. "Safe" methods only read, or render a form, so the client
// repeats them on retryable failures (transport errors, HTTP 5xx/429,
// Config.RetryableCodes) within Config.Retry. "Never retried" methods change
// platform state; the client makes exactly one attempt and the caller uses
// errors.Is(err, ErrRetryable) and OutcomeUnknown(err) to decide whether to
// reconcile and try again.

// TaobaoList lists reverse orders (T1 POST, Paths.TaobaoList).
// Retry class: safe, retried.
func (c *Client) TaobaoList(ctx context.Context, req ListRefundsRequest) (Result[ListRefundsResponse], error) {
	const ep = "TaobaoList"
	if req.PageSize <= 0 {
		return Result[ListRefundsResponse]{}, fmt.Errorf("%s: pageSize %d must be positive: %w", ep, req.PageSize, ErrInvalidArgument)
	}
	r, err := c.jsonRequest(ep, c.paths.TaobaoList, true, req)
	if err != nil {
		return Result[ListRefundsResponse]{}, err
	}
	return call(ctx, c, r, func(d *ListRefundsResponse, _ json.RawMessage) *APIError {
		for i := range d.List {
			c.normalize(&d.List[i].RefundOrder)
		}
		return nil
	})
}

// TaobaoRender renders the refund form of a sub-order (T2 POST,
// Paths.TaobaoRender): allowed fee range, reasons, refund types.
// Retry class: safe, retried.
func (c *Client) TaobaoRender(ctx context.Context, req RenderRequest) (Result[RenderResponse], error) {
	const ep = "TaobaoRender"
	if err := checkID(ep, "subOrderId", req.SubOrderID); err != nil {
		return Result[RenderResponse]{}, err
	}
	r, err := c.jsonRequest(ep, c.paths.TaobaoRender, true, req)
	if err != nil {
		return Result[RenderResponse]{}, err
	}
	return call(ctx, c, r, func(d *RenderResponse, _ json.RawMessage) *APIError {
		c.normalize(&d.RefundOrderTemplate.RefundOrder)
		return nil
	})
}

// TaobaoReturnLogisticsRender fetches the return-shipment form of a refund
// (T3 GET, Paths.TaobaoReturnLogisticsRender; refundId in the path template or
// the query). Retry class: safe, retried.
func (c *Client) TaobaoReturnLogisticsRender(ctx context.Context, refundID string) (Result[ReturnLogisticsRenderResponse], error) {
	r, err := c.idRequest("TaobaoReturnLogisticsRender", c.paths.TaobaoReturnLogisticsRender, refundID, true)
	if err != nil {
		return Result[ReturnLogisticsRenderResponse]{}, err
	}
	return call(ctx, c, r, func(d *ReturnLogisticsRenderResponse, _ json.RawMessage) *APIError {
		if d.RefundOrderAggregate != nil {
			c.normalize(&d.RefundOrderAggregate.RefundOrder)
		}
		return nil
	})
}

// TaobaoReturnLogisticsSubmit submits the return shipment (carrier and
// waybill) of a refund (T4 POST, Paths.TaobaoReturnLogisticsSubmit).
// submitSuccess == false is an *APIError. Retry class: mutating, never retried.
func (c *Client) TaobaoReturnLogisticsSubmit(ctx context.Context, req ReturnLogisticsSubmitRequest) (Result[ReturnLogisticsSubmitResponse], error) {
	const ep = "TaobaoReturnLogisticsSubmit"
	for _, f := range []struct{ name, v string }{{"refundId", req.RefundID}, {"logisticsCompanyCode", req.LogisticsCompanyCode}, {"logisticsNo", req.LogisticsNo}} {
		if err := checkID(ep, f.name, f.v); err != nil {
			return Result[ReturnLogisticsSubmitResponse]{}, err
		}
	}
	r, err := c.jsonRequest(ep, c.paths.TaobaoReturnLogisticsSubmit, false, req)
	if err != nil {
		return Result[ReturnLogisticsSubmitResponse]{}, err
	}
	return call(ctx, c, r, func(_ *ReturnLogisticsSubmitResponse, raw json.RawMessage) *APIError {
		return flagFailure(raw, "submitSuccess")
	})
}

// TaobaoCancel cancels a refund (T5 GET, Paths.TaobaoCancel, {refundId} in the
// path). cancelSuccess == false is an *APIError. Although it is a GET it
// changes state. Retry class: mutating, never retried.
func (c *Client) TaobaoCancel(ctx context.Context, refundID string) (Result[CancelResponse], error) {
	r, err := c.idRequest("TaobaoCancel", c.paths.TaobaoCancel, refundID, false)
	if err != nil {
		return Result[CancelResponse]{}, err
	}
	return call(ctx, c, r, func(d *CancelResponse, raw json.RawMessage) *APIError {
		c.normalize(&d.RefundOrderAggregate.RefundOrder)
		return flagFailure(raw, "cancelSuccess")
	})
}

// TaobaoSubmitMessage adds a buyer message to a refund (T6 POST,
// Paths.TaobaoSubmitMessage). messageSubmitSuccess == false is an *APIError.
// Retry class: mutating, never retried (a repeat would post the message twice).
func (c *Client) TaobaoSubmitMessage(ctx context.Context, req SubmitMessageRequest) (Result[SubmitMessageResponse], error) {
	const ep = "TaobaoSubmitMessage"
	if err := checkID(ep, "refundId", req.RefundID); err != nil {
		return Result[SubmitMessageResponse]{}, err
	}
	if strings.TrimSpace(req.RefundMessage) == "" {
		return Result[SubmitMessageResponse]{}, fmt.Errorf("%s: refundMessage is empty: %w", ep, ErrInvalidArgument)
	}
	r, err := c.jsonRequest(ep, c.paths.TaobaoSubmitMessage, false, req)
	if err != nil {
		return Result[SubmitMessageResponse]{}, err
	}
	return call(ctx, c, r, func(_ *SubmitMessageResponse, raw json.RawMessage) *APIError {
		return flagFailure(raw, "messageSubmitSuccess")
	})
}

// TaobaoSubmit opens a refund on a sub-order (T7 POST, Paths.TaobaoSubmit).
// submitSuccess == false is an *APIError. Retry class: mutating, never retried
// (at most once: after OutcomeUnknown, reconcile with TaobaoList/TaobaoQuery).
func (c *Client) TaobaoSubmit(ctx context.Context, req SubmitRefundRequest) (Result[SubmitRefundResponse], error) {
	const ep = "TaobaoSubmit"
	if err := checkID(ep, "subOrderId", req.SubOrderID); err != nil {
		return Result[SubmitRefundResponse]{}, err
	}
	if req.RefundFee < 0 {
		return Result[SubmitRefundResponse]{}, fmt.Errorf("%s: refundFee %d is negative: %w", ep, req.RefundFee, ErrInvalidArgument)
	}
	r, err := c.jsonRequest(ep, c.paths.TaobaoSubmit, false, req)
	if err != nil {
		return Result[SubmitRefundResponse]{}, err
	}
	return call(ctx, c, r, func(_ *SubmitRefundResponse, raw json.RawMessage) *APIError {
		return flagFailure(raw, "submitSuccess")
	})
}

// TaobaoListMessages lists the messages of a refund (T8 POST,
// Paths.TaobaoListMessages). Retry class: safe, retried.
func (c *Client) TaobaoListMessages(ctx context.Context, req ListMessagesRequest) (Result[ListMessagesResponse], error) {
	const ep = "TaobaoListMessages"
	if err := checkID(ep, "refundId", req.RefundID); err != nil {
		return Result[ListMessagesResponse]{}, err
	}
	if req.PageSize <= 0 {
		return Result[ListMessagesResponse]{}, fmt.Errorf("%s: pageSize %d must be positive: %w", ep, req.PageSize, ErrInvalidArgument)
	}
	r, err := c.jsonRequest(ep, c.paths.TaobaoListMessages, true, req)
	if err != nil {
		return Result[ListMessagesResponse]{}, err
	}
	return call[ListMessagesResponse](ctx, c, r, nil)
}

// TaobaoModify changes an open refund (T9 POST, Paths.TaobaoModify).
// modifySuccess == false is an *APIError. Retry class: mutating, never retried.
func (c *Client) TaobaoModify(ctx context.Context, req ModifyRefundRequest) (Result[ModifyRefundResponse], error) {
	const ep = "TaobaoModify"
	if err := checkID(ep, "refundId", req.RefundID); err != nil {
		return Result[ModifyRefundResponse]{}, err
	}
	if req.RefundFee < 0 {
		return Result[ModifyRefundResponse]{}, fmt.Errorf("%s: refundFee %d is negative: %w", ep, req.RefundFee, ErrInvalidArgument)
	}
	r, err := c.jsonRequest(ep, c.paths.TaobaoModify, false, req)
	if err != nil {
		return Result[ModifyRefundResponse]{}, err
	}
	return call(ctx, c, r, func(_ *ModifyRefundResponse, raw json.RawMessage) *APIError {
		return flagFailure(raw, "modifySuccess")
	})
}

// TaobaoQuery fetches one refund (T10 GET, Paths.TaobaoQuery, ?refundId=).
// RefundOrder.Status is normalised from the string or numeric refundStatus.
// Retry class: safe, retried.
func (c *Client) TaobaoQuery(ctx context.Context, refundID string) (Result[QueryRefundResponse], error) {
	r, err := c.idRequest("TaobaoQuery", c.paths.TaobaoQuery, refundID, true)
	if err != nil {
		return Result[QueryRefundResponse]{}, err
	}
	return call(ctx, c, r, func(d *QueryRefundResponse, _ json.RawMessage) *APIError {
		c.normalize(&d.RefundOrderAggregate.RefundOrder)
		return nil
	})
}

// Known reports whether s is one of the TaobaoRefundStatus constants.
func (s TaobaoRefundStatus) Known() bool {
	switch s {
	case TaobaoWaitSellerAgree, TaobaoWaitBuyerReturnGoods, TaobaoWaitSellerConfirmGoods,
		TaobaoSellerRefuseBuyer, TaobaoRefundClosed, TaobaoRefundSuccess:
		return true
	}
	return false
}

// NormalizeTaobaoStatus turns a raw refundStatus into a TaobaoRefundStatus: a
// known name in any case becomes the canonical upper-case name, an integer is
// looked up in codes, and anything else (an unknown name or number) is kept
// as the raw text so it is never silently lost. Empty stays empty.
func NormalizeTaobaoStatus(raw string, codes map[int]TaobaoRefundStatus) TaobaoRefundStatus {
	s := strings.TrimSpace(raw)
	if s == "" {
		return ""
	}
	if n, err := strconv.Atoi(s); err == nil {
		if st, ok := codes[n]; ok {
			return st
		}
		return TaobaoRefundStatus(s)
	}
	if up := TaobaoRefundStatus(strings.ToUpper(s)); up.Known() {
		return up
	}
	return TaobaoRefundStatus(s)
}

func (c *Client) normalize(o *RefundOrder) {
	o.Status = NormalizeTaobaoStatus(string(o.RefundStatus), c.statusCodes)
}

// flagFailure reports an *APIError when the data explicitly sets key to false.
// An absent or null flag is not a failure: the envelope code already said
// success. (A flag that does not decode as a bool fails earlier as a
// *DecodeError, which OutcomeUnknown treats as unknown.)
func flagFailure(raw json.RawMessage, key string) *APIError {
	if !explicitFalse(raw, key) {
		return nil
	}
	return &APIError{NestedCode: key + "=false", NestedMsg: "platform reported " + key + " false"}
}

func explicitFalse(raw json.RawMessage, key string) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	v, ok := m[key]
	if !ok {
		return false
	}
	var f FlexString
	if json.Unmarshal(v, &f) != nil {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(string(f))) {
	case "false", "0":
		return true
	}
	return false
}
