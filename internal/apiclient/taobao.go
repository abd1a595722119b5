package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
)

// Retry classes. "Safe" methods only read, or render a form, so the client
// repeats them on retryable failures (transport errors, HTTP 5xx/429,
// Config.RetryableCodes) within Config.Retry. "Never retried" methods change
// platform state; the client makes exactly one attempt and the caller uses
// errors.Is(err, ErrRetryable) and OutcomeUnknown(err) to decide whether to
// reconcile and try again.

// TaobaoList lists reverse orders (T1 POST, profile endpoint taobao_list).
// Retry class: safe, retried.
func (c *Client) TaobaoList(ctx context.Context, req ListRefundsRequest) (Result[ListRefundsResponse], error) {
	const ep = platform.TaobaoList
	if req.PageSize <= 0 {
		return Result[ListRefundsResponse]{}, fmt.Errorf("%s: pageSize %d must be positive: %w", ep, req.PageSize, ErrInvalidArgument)
	}
	lf := c.profile.Taobao.List
	r, err := c.jsonRequest(ep, true, req)
	if err != nil {
		return Result[ListRefundsResponse]{}, err
	}
	// The profile names the paging and filter fields; the page number is the
	// caller's (from 1) shifted to the platform's first page, and written
	// even when it is 0.
	rename := map[string]string{"purchaseOrderId": lf.OrderFilterField, "pageNo": lf.PageNoField, "pageSize": lf.PageSizeField}
	var page *int
	if req.PageNo > 0 {
		p := req.PageNo + lf.FirstPage - 1
		page = &p
	}
	if r.body, err = renameFields(r.body, rename, lf.PageNoField, page); err != nil {
		return Result[ListRefundsResponse]{}, fmt.Errorf("%s: encode request: %w", ep, err)
	}
	raw, err := call[json.RawMessage](ctx, c, r, nil)
	res := Result[ListRefundsResponse]{RequestID: raw.RequestID, DevelopID: raw.DevelopID, Attempts: raw.Attempts}
	if err != nil || len(raw.Data) == 0 {
		return res, err
	}
	data := raw.Data
	if c.yuan(ep) {
		if data, err = convertAmounts(data, amountFieldNames(reflect.TypeFor[ListRefundsResponse]()), yuanToFenNumber); err != nil {
			return Result[ListRefundsResponse]{RequestID: res.RequestID, DevelopID: res.DevelopID, Attempts: res.Attempts},
				&DecodeError{Endpoint: string(ep), HTTPStatus: http.StatusOK, RequestID: res.RequestID,
					Body: excerpt.Bytes(raw.Data, maxErrorBodyBytes), Err: fmt.Errorf("data: %w", err)}
		}
	}
	if res.Data, err = decodeListPage(data, lf); err != nil {
		return Result[ListRefundsResponse]{RequestID: res.RequestID, DevelopID: res.DevelopID, Attempts: res.Attempts},
			&DecodeError{Endpoint: string(ep), HTTPStatus: http.StatusOK, RequestID: res.RequestID,
				Body: excerpt.Bytes(raw.Data, maxErrorBodyBytes), Err: fmt.Errorf("data: %w", err)}
	}
	for i := range res.Data.List {
		c.normalize(&res.Data.List[i].RefundOrder)
	}
	return res, nil
}

// renameFields renames the top-level keys of a JSON object (the list
// request's documented names to the profile's) and sets key to *v when v is
// not nil.
func renameFields(body []byte, names map[string]string, key string, v *int) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	out := make(map[string]json.RawMessage, len(m))
	for k, val := range m {
		if to, ok := names[k]; ok {
			k = to
		}
		out[k] = val
	}
	if v != nil {
		out[key] = json.RawMessage(strconv.Itoa(*v))
	}
	return json.Marshal(out)
}

// TaobaoRender renders the refund form of a sub-order (T2 POST,
// profile endpoint taobao_render): allowed fee range, reasons, refund types.
// Retry class: safe, retried.
func (c *Client) TaobaoRender(ctx context.Context, req RenderRequest) (Result[RenderResponse], error) {
	const ep = platform.TaobaoRender
	if err := checkID(string(ep), "subOrderId", req.SubOrderID); err != nil {
		return Result[RenderResponse]{}, err
	}
	r, err := c.jsonRequest(ep, true, req)
	if err != nil {
		return Result[RenderResponse]{}, err
	}
	return call(ctx, c, r, func(d *RenderResponse, _ json.RawMessage) *APIError {
		c.normalize(&d.RefundOrderTemplate.RefundOrder)
		return nil
	})
}

// TaobaoReturnLogisticsRender fetches the return-shipment form of a refund
// (T3 GET, profile endpoint taobao_return_logistics_render; refundId in the path template or
// the query). Retry class: safe, retried.
func (c *Client) TaobaoReturnLogisticsRender(ctx context.Context, refundID string) (Result[ReturnLogisticsRenderResponse], error) {
	r, err := c.idRequest(platform.TaobaoReturnLogisticsRender, refundID, true)
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
// waybill) of a refund (T4 POST, profile endpoint taobao_return_logistics_submit).
// submitSuccess == false is an *APIError. Retry class: mutating, never retried.
func (c *Client) TaobaoReturnLogisticsSubmit(ctx context.Context, req ReturnLogisticsSubmitRequest) (Result[ReturnLogisticsSubmitResponse], error) {
	const ep = platform.TaobaoReturnLogisticsSubmit
	for _, f := range []struct{ name, v string }{{"refundId", req.RefundID}, {"logisticsCompanyCode", req.LogisticsCompanyCode}, {"logisticsNo", req.LogisticsNo}} {
		if err := checkID(string(ep), f.name, f.v); err != nil {
			return Result[ReturnLogisticsSubmitResponse]{}, err
		}
	}
	r, err := c.jsonRequest(ep, false, req)
	if err != nil {
		return Result[ReturnLogisticsSubmitResponse]{}, err
	}
	return call(ctx, c, r, func(_ *ReturnLogisticsSubmitResponse, raw json.RawMessage) *APIError {
		return flagFailure(raw, "submitSuccess")
	})
}

// TaobaoCancel cancels a refund (T5 GET, profile endpoint taobao_cancel, {refundId} in the
// path). cancelSuccess == false is an *APIError. Although it is a GET it
// changes state. Retry class: mutating, never retried.
func (c *Client) TaobaoCancel(ctx context.Context, refundID string) (Result[CancelResponse], error) {
	r, err := c.idRequest(platform.TaobaoCancel, refundID, false)
	if err != nil {
		return Result[CancelResponse]{}, err
	}
	return call(ctx, c, r, func(d *CancelResponse, raw json.RawMessage) *APIError {
		c.normalize(&d.RefundOrderAggregate.RefundOrder)
		return flagFailure(raw, "cancelSuccess")
	})
}

// TaobaoSubmitMessage adds a buyer message to a refund (T6 POST,
// profile endpoint taobao_submit_message). messageSubmitSuccess == false is an *APIError.
// Retry class: mutating, never retried (a repeat would post the message twice).
func (c *Client) TaobaoSubmitMessage(ctx context.Context, req SubmitMessageRequest) (Result[SubmitMessageResponse], error) {
	const ep = platform.TaobaoSubmitMessage
	if err := checkID(string(ep), "refundId", req.RefundID); err != nil {
		return Result[SubmitMessageResponse]{}, err
	}
	if strings.TrimSpace(req.RefundMessage) == "" {
		return Result[SubmitMessageResponse]{}, fmt.Errorf("%s: refundMessage is empty: %w", ep, ErrInvalidArgument)
	}
	r, err := c.jsonRequest(ep, false, req)
	if err != nil {
		return Result[SubmitMessageResponse]{}, err
	}
	return call(ctx, c, r, func(_ *SubmitMessageResponse, raw json.RawMessage) *APIError {
		return flagFailure(raw, "messageSubmitSuccess")
	})
}

// TaobaoSubmit opens a refund on a sub-order (T7 POST, profile endpoint taobao_submit).
// submitSuccess == false is an *APIError. Retry class: mutating, never retried
// (at most once: after OutcomeUnknown, reconcile with TaobaoList/TaobaoQuery).
func (c *Client) TaobaoSubmit(ctx context.Context, req SubmitRefundRequest) (Result[SubmitRefundResponse], error) {
	const ep = platform.TaobaoSubmit
	if err := checkID(string(ep), "subOrderId", req.SubOrderID); err != nil {
		return Result[SubmitRefundResponse]{}, err
	}
	if req.RefundFee < 0 {
		return Result[SubmitRefundResponse]{}, fmt.Errorf("%s: refundFee %d is negative: %w", ep, req.RefundFee, ErrInvalidArgument)
	}
	r, err := c.jsonRequest(ep, false, req)
	if err != nil {
		return Result[SubmitRefundResponse]{}, err
	}
	return call(ctx, c, r, func(_ *SubmitRefundResponse, raw json.RawMessage) *APIError {
		return flagFailure(raw, "submitSuccess")
	})
}

// TaobaoListMessages lists the messages of a refund (T8 POST,
// profile endpoint taobao_list_messages). Retry class: safe, retried.
func (c *Client) TaobaoListMessages(ctx context.Context, req ListMessagesRequest) (Result[ListMessagesResponse], error) {
	const ep = platform.TaobaoListMessages
	if err := checkID(string(ep), "refundId", req.RefundID); err != nil {
		return Result[ListMessagesResponse]{}, err
	}
	if req.PageSize <= 0 {
		return Result[ListMessagesResponse]{}, fmt.Errorf("%s: pageSize %d must be positive: %w", ep, req.PageSize, ErrInvalidArgument)
	}
	r, err := c.jsonRequest(ep, true, req)
	if err != nil {
		return Result[ListMessagesResponse]{}, err
	}
	return call[ListMessagesResponse](ctx, c, r, nil)
}

// TaobaoModify changes an open refund (T9 POST, profile endpoint taobao_modify).
// modifySuccess == false is an *APIError. Retry class: mutating, never retried.
func (c *Client) TaobaoModify(ctx context.Context, req ModifyRefundRequest) (Result[ModifyRefundResponse], error) {
	const ep = platform.TaobaoModify
	if err := checkID(string(ep), "refundId", req.RefundID); err != nil {
		return Result[ModifyRefundResponse]{}, err
	}
	if req.RefundFee < 0 {
		return Result[ModifyRefundResponse]{}, fmt.Errorf("%s: refundFee %d is negative: %w", ep, req.RefundFee, ErrInvalidArgument)
	}
	r, err := c.jsonRequest(ep, false, req)
	if err != nil {
		return Result[ModifyRefundResponse]{}, err
	}
	return call(ctx, c, r, func(_ *ModifyRefundResponse, raw json.RawMessage) *APIError {
		return flagFailure(raw, "modifySuccess")
	})
}

// TaobaoQuery fetches one refund (T10 GET, profile endpoint taobao_query, ?refundId=).
// RefundOrder.Status is normalised from the string or numeric refundStatus.
// Retry class: safe, retried.
func (c *Client) TaobaoQuery(ctx context.Context, refundID string) (Result[QueryRefundResponse], error) {
	r, err := c.idRequest(platform.TaobaoQuery, refundID, true)
	if err != nil {
		return Result[QueryRefundResponse]{}, err
	}
	return call(ctx, c, r, func(d *QueryRefundResponse, _ json.RawMessage) *APIError {
		c.normalize(&d.RefundOrderAggregate.RefundOrder)
		return nil
	})
}

// normalize sets the refund's Phase from its raw status through the profile.
func (c *Client) normalize(o *RefundOrder) {
	o.Phase, _ = c.profile.TaobaoPhase(string(o.RefundStatus))
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
