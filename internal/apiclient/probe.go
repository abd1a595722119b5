package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"

	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
)

// Probes are for `refundctl doctor`, which checks the profile's guesses
// against a real account: one signed call, no retries, and everything the
// platform answered kept as it came (HTTP status, headers, raw body, the
// envelope, the data decoded by the client's own types), so the guesses can
// be compared with the wire rather than with what the client made of it.
//
// A probe never calls an endpoint that can change anything on the platform
// (platform.Endpoint.SideEffect): that rule is enforced here, in one place,
// whatever the caller asks for.

// ErrSideEffect is returned (wrapped) by Probe for an endpoint that can
// change anything on the platform. Nothing is sent.
var ErrSideEffect = errors.New("endpoint has a side effect: a probe only calls read-only endpoints")

// UnknownPath is the path ProbeUnknownPath asks for: no endpoint lives there,
// so the answer shows how the platform says "no such path".
const UnknownPath = "/refundhub-doctor/no-such-endpoint"

// ProbeRequest names one read-only call.
type ProbeRequest struct {
	// Endpoint is the profile's endpoint; one with a side effect is refused.
	Endpoint platform.Endpoint
	// RefundID is the argument of the endpoints that take only a refund id
	// (taobao_query, taobao_return_logistics_render, alibaba_refund_info);
	// alibaba_logistics_companies takes none.
	RefundID string
	// Body is the JSON body of the other endpoints, encoded as given (field
	// names included: the caller names the list's fields as the profile does).
	Body any
}

// ProbeResult is everything one probe saw. Err is nil only when the
// envelope's code is the profile's success code and the data decoded.
type ProbeResult struct {
	Endpoint platform.Endpoint
	Method   string
	Path     string // as sent, {refundId} filled, without the query
	// HTTPStatus is the response's status; 0 when there was no response.
	HTTPStatus int
	Header     http.Header
	// Body is the raw response body (at most Config.MaxResponseBytes) with
	// the secret, the signature and the nonce removed.
	Body []byte
	// Envelope is the decoded {requestId, code, developId, msg, data}; nil
	// when the body is not an envelope.
	Envelope *ProbeEnvelope
	// Class is the profile's class of a failing envelope code
	// (platform.ClassUnknown for a code it does not list, and on success).
	Class platform.ErrorClass
	// Data is the envelope's data decoded by the client's own type for the
	// endpoint (a pointer to ResponseType(Endpoint)), amounts converted from
	// the profile's unit; nil unless the call succeeded.
	Data any
	// Err is ErrSideEffect or ErrInvalidArgument (wrapped; nothing sent),
	// *TransportError, *HTTPError (non-2xx), *DecodeError (not an envelope,
	// or data the client's type cannot hold) or *APIError (a failing code).
	Err error
}

// ProbeEnvelope is a decoded response envelope.
type ProbeEnvelope struct {
	RequestID string
	Code      int
	DevelopID string
	Msg       string
	Data      json.RawMessage
}

// Probe makes one signed call of a read-only endpoint and reports what came
// back (see ProbeResult). It refuses an endpoint whose SideEffect is true,
// and one the profile does not know, before anything is sent. It takes a
// token from the client's rate limiter but never retries.
func (c *Client) Probe(ctx context.Context, req ProbeRequest) ProbeResult {
	res := ProbeResult{Endpoint: req.Endpoint}
	r, err := c.probeRequest(req)
	if err != nil {
		res.Err = err
		return res
	}
	res.Method, res.Path = r.method, r.path
	c.exchange(ctx, r, &res)
	if res.Err != nil || res.Envelope == nil {
		return res
	}
	data, err := c.decodeProbeData(req.Endpoint, res.Envelope.Data)
	if err != nil {
		res.Err = &DecodeError{Endpoint: r.endpoint, HTTPStatus: res.HTTPStatus, RequestID: res.Envelope.RequestID,
			Body: excerpt.Bytes(res.Envelope.Data, maxErrorBodyBytes), Err: fmt.Errorf("data: %w", err)}
		return res
	}
	res.Data = data
	return res
}

// ProbeUnknownPath asks for UnknownPath (a GET without arguments), so the
// caller learns how the platform answers a path it does not serve: a probe
// of a real endpoint answered the same way means that endpoint's path is
// wrong. It refuses, sending nothing, if a profile path lies under it.
func (c *Client) ProbeUnknownPath(ctx context.Context) ProbeResult {
	res := ProbeResult{Method: http.MethodGet, Path: UnknownPath}
	prefix := UnknownPath[:strings.LastIndexByte(UnknownPath, '/')+1]
	for _, e := range platform.AllEndpoints() {
		if strings.HasPrefix(c.profile.Endpoint(e).Path, prefix) {
			res.Err = fmt.Errorf("probe %s: endpoints.%s.path lies under it: %w", UnknownPath, e, ErrInvalidArgument)
			return res
		}
	}
	c.exchange(ctx, request{endpoint: "unknown_path", method: http.MethodGet, path: UnknownPath, safe: true}, &res)
	return res
}

// probeRequest builds the request of a read-only endpoint, or refuses.
func (c *Client) probeRequest(req ProbeRequest) (request, error) {
	e := req.Endpoint
	if !slices.Contains(platform.AllEndpoints(), e) {
		return request{}, fmt.Errorf("probe %q: not an endpoint of the profile: %w", e, ErrInvalidArgument)
	}
	if e.SideEffect() {
		return request{}, fmt.Errorf("probe %s: %w", e, ErrSideEffect)
	}
	switch e {
	case platform.TaobaoQuery, platform.TaobaoReturnLogisticsRender, platform.AlibabaRefundInfo,
		platform.AlibabaLogisticsCompanies:
		r, err := c.idRequest(e, req.RefundID, true)
		if err == nil && e == platform.AlibabaRefundInfo && r.body != nil {
			r.query = url.Values{"refundId": {req.RefundID}} // as AlibabaRefundInfo sends it
		}
		return r, err
	}
	if req.Body == nil {
		return request{}, fmt.Errorf("probe %s: the endpoint takes a JSON body: %w", e, ErrInvalidArgument)
	}
	return c.jsonRequest(e, true, req.Body)
}

// exchange makes one signed attempt and fills res. It signs and builds the
// request as Client.attempt does (sign, newRequest), but keeps the raw
// answer; attempt cannot be reused because it returns only the decoded
// envelope.
func (c *Client) exchange(ctx context.Context, r request, res *ProbeResult) {
	if _, err := c.wait(ctx, r.endpoint); err != nil {
		res.Err = err
		return
	}
	auth, err := c.sign()
	if err != nil {
		res.Err = fmt.Errorf("%s: %w", r.endpoint, err)
		return
	}
	scrub := auth.scrub
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hreq, err := c.newRequest(actx, r, auth)
	if err != nil {
		res.Err = fmt.Errorf("%s: build request: %w", r.endpoint, err)
		return
	}
	resp, err := c.hc.Do(hreq)
	if err != nil {
		res.Err = &TransportError{Endpoint: r.endpoint, Sent: true, Err: scrubErr(err, scrub)}
		return
	}
	defer resp.Body.Close()
	res.HTTPStatus, res.Header = resp.StatusCode, resp.Header.Clone()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody))
	if err != nil {
		res.Err = &TransportError{Endpoint: r.endpoint, Sent: true, Err: scrubErr(err, scrub)}
		return
	}
	res.Body = []byte(scrub(string(raw)))
	env, envErr := decodeEnvelope(res.Body)
	if envErr == nil {
		res.Envelope = &ProbeEnvelope{RequestID: string(env.RequestID), Code: int(env.Code),
			DevelopID: string(env.DevelopID), Msg: string(env.Msg), Data: env.Data}
	}
	// As the client reads an answer (readAnswer): a failure envelope at the
	// profile's error status is read by its code.
	if (resp.StatusCode < 200 || resp.StatusCode > 299) && !c.platformFailure(resp.StatusCode, res.Body) {
		he := &HTTPError{Endpoint: r.endpoint, StatusCode: resp.StatusCode, Body: excerpt.Bytes(res.Body, maxErrorBodyBytes)}
		if res.Envelope != nil {
			he.Code, he.Msg, he.RequestID = res.Envelope.Code, res.Envelope.Msg, res.Envelope.RequestID
			he.Class = c.profile.Class(he.Code)
			res.Class = he.Class
		}
		res.Err = he
		return
	}
	if envErr != nil {
		res.Err = &DecodeError{Endpoint: r.endpoint, HTTPStatus: resp.StatusCode, Body: excerpt.Bytes(res.Body, maxErrorBodyBytes), Err: envErr}
		return
	}
	if code := res.Envelope.Code; code != c.profile.Envelope.SuccessCode {
		res.Class = c.profile.Class(code)
		res.Err = &APIError{Endpoint: r.endpoint, HTTPStatus: resp.StatusCode, Code: code, Msg: res.Envelope.Msg,
			RequestID: res.Envelope.RequestID, Class: res.Class, Retryable: c.profile.Retryable(code),
			NotApplied: c.profile.NotApplied(code)}
	}
}

// decodeProbeData decodes a successful envelope's data exactly as the
// endpoint's method does, so that a probe that decodes means the method
// would: the list under the profile's field names, the carriers in either
// documented shape, amounts from the profile's unit for the fields of the
// type the method hands to call.
func (c *Client) decodeProbeData(e platform.Endpoint, data json.RawMessage) (any, error) {
	t := ResponseType(e)
	if t == nil { // not reached: Probe refuses every endpoint without a response type
		return nil, fmt.Errorf("%s: no response type", e)
	}
	if c.yuan(e) {
		var err error
		if data, err = convertAmounts(data, amountFieldNames(t), yuanToFenNumber); err != nil {
			return nil, err
		}
	}
	switch e {
	case platform.TaobaoList:
		d := bytes.TrimSpace(data)
		if len(d) == 0 || bytes.Equal(d, []byte("null")) {
			return &ListRefundsResponse{}, nil
		}
		page, err := decodeListPage(d, c.profile.Taobao.List)
		return &page, err
	case platform.AlibabaLogisticsCompanies:
		var l companyList
		if err := decodeData(data, &l); err != nil {
			return nil, err
		}
		out := []AlibabaLogisticsCompany(l)
		return &out, nil
	}
	v := reflect.New(t).Interface()
	d := bytes.TrimSpace(data)
	if len(d) == 0 || bytes.Equal(d, []byte("null")) {
		return v, nil
	}
	if err := json.Unmarshal(d, v); err != nil {
		return nil, err
	}
	return v, nil
}

// ResponseType is the Go type the client decodes a read-only endpoint's data
// into (nil for an endpoint with a side effect). `refundctl doctor` compares
// the keys the platform sends with its JSON tags.
func ResponseType(e platform.Endpoint) reflect.Type {
	switch e {
	case platform.TaobaoList:
		return reflect.TypeFor[ListRefundsResponse]()
	case platform.TaobaoRender:
		return reflect.TypeFor[RenderResponse]()
	case platform.TaobaoReturnLogisticsRender:
		return reflect.TypeFor[ReturnLogisticsRenderResponse]()
	case platform.TaobaoListMessages:
		return reflect.TypeFor[ListMessagesResponse]()
	case platform.TaobaoQuery:
		return reflect.TypeFor[QueryRefundResponse]()
	case platform.AlibabaRefundInfo:
		return reflect.TypeFor[RefundInfo]()
	case platform.AlibabaRefundReasons:
		return reflect.TypeFor[RefundReasonsResponse]()
	case platform.AlibabaLogisticsCompanies:
		return reflect.TypeFor[[]AlibabaLogisticsCompany]()
	}
	return nil
}
