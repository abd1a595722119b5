// The path every call takes: the rate limiter's wait, retries with backoff
// (safe calls only), one signed attempt, and the decoding of the envelope and
// its data.

package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
)

// envelopeWire decodes the envelope tolerating drift in every scalar.
type envelopeWire struct {
	RequestID FlexString      `json:"requestId"`
	Code      FlexInt         `json:"code"`
	DevelopID FlexString      `json:"developId"`
	Msg       FlexString      `json:"msg"`
	Data      json.RawMessage `json:"data"`
}

// attemptOutcome is what one attempt learnt; env is set once the envelope decoded.
type attemptOutcome struct {
	env        envelopeWire
	haveEnv    bool
	httpStatus int
}

// code is the attempt's code for metrics and logs: the platform's code once
// the envelope decoded, else the HTTP status, else 0 (no response).
func (o *attemptOutcome) code() int {
	switch {
	case o.haveEnv:
		return int(o.env.Code)
	case o.httpStatus != 0:
		return o.httpStatus
	}
	return 0
}

// do runs req with rate limiting, signing, retries (only when req.safe), and
// envelope decoding, and returns the successful envelope.
func (c *Client) do(ctx context.Context, req request) (env envelopeWire, attempts int, err error) {
	ctx, span := c.tracer.Start(ctx, req.endpoint, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("platform.endpoint", req.endpoint), attribute.Bool("platform.safe", req.safe)))
	defer func() { endSpan(span, attempts, env, err) }()
	maxTries := uint(1)
	if req.safe {
		maxTries = uint(c.retry.MaxAttempts)
	}
	var lastErr error
	eb := &hintedBackOff{max: c.retry.MaxInterval, exp: &backoff.ExponentialBackOff{
		InitialInterval:     c.retry.InitialInterval,
		RandomizationFactor: c.retry.RandomizationFactor,
		Multiplier:          c.retry.Multiplier,
		MaxInterval:         c.retry.MaxInterval,
	}}
	op := func() (envelopeWire, error) {
		sent, err := c.wait(ctx, req.endpoint)
		if err != nil {
			return envelopeWire{}, backoff.Permanent(err)
		}
		attempts++
		env, err := c.attempt(ctx, req, attempts)
		if err == nil {
			c.pace.answered()
		}
		if err != nil {
			lastErr = err
			if RateLimited(err) {
				c.pace.throttled(sent, retryAfter(err))
			} else if answered(err) {
				c.pace.answered()
			}
			if !errors.Is(err, ErrRetryable) {
				return env, backoff.Permanent(err)
			}
			eb.hint = retryAfter(err)
		}
		return env, err
	}
	env, err = backoff.Retry(ctx, op,
		backoff.WithBackOff(eb),
		backoff.WithMaxTries(maxTries),
		backoff.WithMaxElapsedTime(c.retry.MaxElapsedTime),
		backoff.WithNotify(func(err error, wait time.Duration) {
			c.log.LogAttrs(ctx, slog.LevelInfo, "apiclient: retrying",
				slog.String("endpoint", req.endpoint), slog.Int("attempt", attempts),
				slog.Duration("wait", wait), slog.String("error", err.Error()))
		}))
	if err == nil {
		return env, attempts, nil
	}
	// backoff.Retry returns the bare context error when ctx ends during a
	// wait; keep the last attempt's error too so callers can classify it.
	if lastErr != nil && !errors.Is(err, lastErr) {
		err = fmt.Errorf("%s: gave up after %d attempt(s): %w (last attempt: %w)", req.endpoint, attempts, err, lastErr)
	}
	switch {
	case attempts > 1:
		c.log.LogAttrs(ctx, slog.LevelWarn, "apiclient: call failed after retries",
			slog.String("endpoint", req.endpoint), slog.Int("attempts", attempts), slog.String("error", err.Error()))
	case !req.safe && OutcomeUnknown(err):
		c.log.LogAttrs(ctx, slog.LevelWarn, "apiclient: mutating call failed with unknown outcome; reconcile before repeating",
			slog.String("endpoint", req.endpoint), slog.String("error", err.Error()))
	}
	return env, attempts, err
}

// hintedBackOff is an exponential backoff with jitter that waits at least
// as long as the server's Retry-After hint of the last failure (capped at max).
type hintedBackOff struct {
	exp  *backoff.ExponentialBackOff
	hint time.Duration
	max  time.Duration
}

// NextBackOff implements backoff.BackOff.
func (b *hintedBackOff) NextBackOff() time.Duration {
	d := b.exp.NextBackOff()
	if h := min(b.hint, b.max); h > d {
		d = h
	}
	b.hint = 0
	return d
}

// Reset implements backoff.BackOff.
func (b *hintedBackOff) Reset() {
	b.exp.Reset()
	b.hint = 0
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour)
	}
	return 0
}

// wait takes a token from the shared pace before an attempt, and returns
// when the attempt asked for it (pace.wait).
func (c *Client) wait(ctx context.Context, endpoint string) (time.Time, error) {
	sent, err := c.pace.wait(ctx)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return sent, fmt.Errorf("%s: wait for rate limiter: %w", endpoint, cerr)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return sent, fmt.Errorf("%s: wait for rate limiter: %w", endpoint, err)
		}
		// The limiter refuses at once a wait that would outlast ctx's deadline.
		return sent, fmt.Errorf("%s: wait for rate limiter: %w (%v)", endpoint, context.DeadlineExceeded, err)
	}
	return sent, nil
}

// retryAfter is err's Retry-After hint, 0 without one.
func retryAfter(err error) time.Duration {
	var he *HTTPError
	var ae *APIError
	switch {
	case errors.As(err, &he):
		return he.RetryAfter
	case errors.As(err, &ae):
		return ae.RetryAfter
	}
	return 0
}

// attempt makes one signed HTTP exchange and reports it: every attempt,
// failed or not, reaches the Observe hook and the debug log exactly once.
func (c *Client) attempt(ctx context.Context, req request, n int) (envelopeWire, error) {
	ctx, span := c.tracer.Start(ctx, "HTTP "+req.method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("http.request.method", req.method), attribute.String("url.path", req.path),
			attribute.Int("attempt", n)))
	start := time.Now()
	var out attemptOutcome
	err := c.roundTrip(ctx, req, &out)
	c.report(ctx, req.endpoint, n, &out, time.Since(start), err)
	if out.httpStatus != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", out.httpStatus))
	}
	if err != nil {
		span.SetStatus(codes.Error, errorKind(err))
	}
	span.End()
	return out.env, err
}

// endSpan ends a call's span with what the call learnt: attempts, the
// platform's code and requestId, and a short error kind on failure (never
// the error text, which may quote a response body).
func endSpan(span trace.Span, attempts int, env envelopeWire, err error) {
	span.SetAttributes(attribute.Int("platform.attempts", attempts))
	if env.RequestID != "" {
		span.SetAttributes(attribute.String("platform.request_id", string(env.RequestID)))
	}
	var ae *APIError
	if errors.As(err, &ae) {
		span.SetAttributes(attribute.Int("platform.code", ae.Code))
	}
	if err != nil {
		span.SetStatus(codes.Error, errorKind(err))
	}
	span.End()
}

// errorKind names err's class for a span status.
func errorKind(err error) string {
	var (
		ae *APIError
		he *HTTPError
		te *TransportError
		de *DecodeError
	)
	switch {
	case errors.As(err, &ae):
		return "api error " + strconv.Itoa(ae.Code)
	case errors.As(err, &he):
		return "http status " + strconv.Itoa(he.StatusCode)
	case errors.As(err, &te):
		return "transport error"
	case errors.As(err, &de):
		return "undecodable answer"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "cancelled or timed out"
	}
	return "error"
}

// roundTrip signs req, sends it once and reads the answer, recording in out
// what it learnt: the HTTP status as soon as there is one, the envelope once
// it decoded.
func (c *Client) roundTrip(ctx context.Context, req request, out *attemptOutcome) error {
	auth, err := c.sign()
	if err != nil {
		return fmt.Errorf("%s: %w", req.endpoint, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var sent atomic.Bool
	hreq, err := c.newRequest(traceSent(ctx, &sent), req, auth)
	if err != nil {
		return fmt.Errorf("%s: build request: %w", req.endpoint, err)
	}
	resp, err := c.hc.Do(hreq)
	if err != nil {
		return &TransportError{Endpoint: req.endpoint, Sent: sent.Load(), Err: scrubErr(err, auth.scrub)}
	}
	defer resp.Body.Close()
	out.httpStatus = resp.StatusCode
	raw, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return &TransportError{Endpoint: req.endpoint, Sent: true, Err: scrubErr(err, auth.scrub)}
	}
	// A server (or proxy) echoing our headers must not smuggle credentials
	// into errors and logs: remove them from the body before anything reads it.
	raw = []byte(auth.scrub(string(raw)))
	return c.readAnswer(req.endpoint, resp, raw, out)
}

// attemptAuth is one attempt's signing material. Every attempt signs anew
// (fresh nonce and timestamp), and scrub removes this attempt's secrets
// from whatever the server sends back.
type attemptAuth struct {
	ts, nonce, signature string
	scrub                func(string) string
}

// sign draws a nonce and a timestamp and signs them.
func (c *Client) sign() (attemptAuth, error) {
	nonce, err := NewNonce()
	if err != nil {
		return attemptAuth{}, err
	}
	ts := c.timestamp()
	signature := Sign(c.profile.Signature, c.accessKey, ts, nonce, c.secret)
	return attemptAuth{ts: ts, nonce: nonce, signature: signature, scrub: c.scrubber(signature, nonce)}, nil
}

// traceSent returns ctx with a trace that sets sent once the request was
// written without error: a TransportError says whether the platform may
// have seen the request, which decides whether a mutating call's outcome is
// unknown.
func traceSent(ctx context.Context, sent *atomic.Bool) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				sent.Store(true)
			}
		},
	})
}

// newRequest builds req's HTTP request, signed with auth.
func (c *Client) newRequest(ctx context.Context, req request, auth attemptAuth) (*http.Request, error) {
	u := c.base + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	hreq, err := http.NewRequestWithContext(ctx, req.method, u, requestBody(req))
	if err != nil {
		return nil, err
	}
	c.setHeaders(hreq.Header, req.contentType, auth.ts, auth.nonce, auth.signature)
	return hreq, nil
}

// requestBody is req's body for net/http: nil for a safe call without one.
func requestBody(req request) io.Reader {
	switch {
	case req.body != nil:
		return bytes.NewReader(req.body)
	case !req.safe:
		// net/http's Transport silently resends a GET that failed on a reused
		// connection, which would cancel a refund twice. It documents that it
		// never resends a request that has a body but no GetBody: give the
		// mutating GET an empty body of that kind (nothing extra goes on the
		// wire; the transport probes it and finds it empty).
		return emptyBody{}
	}
	return nil
}

// readAnswer classifies a response whose (scrubbed) body is raw: an HTTP
// error, a body too large or not an envelope, an envelope with a failure
// code, or success. The envelope goes into out as soon as it decoded, so
// that a failure code is reported with its request id.
func (c *Client) readAnswer(endpoint string, resp *http.Response, raw []byte, out *attemptOutcome) error {
	if (resp.StatusCode < 200 || resp.StatusCode > 299) && !c.platformFailure(resp.StatusCode, raw) {
		return c.httpError(endpoint, resp, raw)
	}
	if int64(len(raw)) > c.maxBody {
		return &DecodeError{Endpoint: endpoint, HTTPStatus: resp.StatusCode,
			Err: fmt.Errorf("response body exceeds %d bytes", c.maxBody)}
	}
	env, err := decodeEnvelope(raw)
	if err != nil {
		return &DecodeError{Endpoint: endpoint, HTTPStatus: resp.StatusCode, Body: excerpt.Bytes(raw, maxErrorBodyBytes), Err: err}
	}
	out.env, out.haveEnv = env, true
	if code := int(env.Code); code != c.profile.Envelope.SuccessCode {
		return &APIError{Endpoint: endpoint, HTTPStatus: resp.StatusCode, Code: code,
			Msg: string(env.Msg), RequestID: string(env.RequestID), Class: c.profile.Class(code),
			Retryable: c.profile.Retryable(code), NotApplied: c.profile.NotApplied(code),
			RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	}
	return nil
}

// platformFailure reports whether a non-2xx answer is to be read as the
// platform's own failure envelope: at the status the profile says its
// failures come with (envelope.error_http_status, UNKNOWN: 200 by default),
// a JSON object that is not a success envelope. It is then read as at 200:
// by its code, which, not the status, says whether the call may be retried
// and whether it proves nothing was done (a 400 carrying an internal error
// must not read as a refusal); one that does not decode, or is too large,
// is a DecodeError (outcome unknown). Any other status, or a body that is
// not JSON, is a gateway's or the server's (a wrong path's 404, a proxy's
// 502 or 429), read by its status.
func (c *Client) platformFailure(status int, raw []byte) bool {
	if status != c.profile.Envelope.ErrorHTTPStatus {
		return false
	}
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return false
	}
	env, err := decodeEnvelope(raw)
	return err != nil || int(env.Code) != c.profile.Envelope.SuccessCode
}

// httpError describes a non-2xx response, with the platform's code and
// message when the body is an envelope anyway, and the server's Retry-After.
func (c *Client) httpError(endpoint string, resp *http.Response, raw []byte) *HTTPError {
	he := &HTTPError{Endpoint: endpoint, StatusCode: resp.StatusCode, Body: excerpt.Bytes(raw, maxErrorBodyBytes),
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	var e envelopeWire
	if json.Unmarshal(raw, &e) == nil {
		he.Code, he.Msg, he.RequestID = int(e.Code), string(e.Msg), string(e.RequestID)
		he.Class = c.profile.Class(he.Code)
	}
	return he
}

// report hands a finished attempt to the Observe hook and the debug log.
func (c *Client) report(ctx context.Context, endpoint string, n int, out *attemptOutcome, d time.Duration, err error) {
	code := out.code()
	if c.observe != nil {
		c.observe(endpoint, code, d, err)
	}
	attrs := []slog.Attr{
		slog.String("endpoint", endpoint), slog.Int("attempt", n),
		slog.Int("http_status", out.httpStatus), slog.Int("code", code),
		slog.String("request_id", string(out.env.RequestID)), slog.Duration("duration", d),
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "apiclient: attempt", attrs...)
}

// emptyBody is an empty request body http.NewRequest cannot rewind, which
// makes the request non-replayable for the Transport.
type emptyBody struct{}

// Read reports the end of the (empty) body.
func (emptyBody) Read([]byte) (int, error) { return 0, io.EOF }

// decodeEnvelope parses a response body into the envelope.
func decodeEnvelope(raw []byte) (envelopeWire, error) {
	var env envelopeWire
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 {
		return env, errors.New("empty body")
	}
	if trimmed[0] != '{' {
		return env, errors.New("body is not a JSON object")
	}
	if err := json.Unmarshal(trimmed, &env); err != nil {
		return envelopeWire{}, err
	}
	return env, nil
}

// decodeData parses the envelope's data into T; null or absent data leaves T zero.
func decodeData[T any](data json.RawMessage, v *T) error {
	d := bytes.TrimSpace(data)
	if len(d) == 0 || bytes.Equal(d, []byte("null")) {
		return nil
	}
	return json.Unmarshal(d, v)
}

// call runs req and decodes the data into T; check, when set, validates or
// normalises the data (nested failures, status normalisation).
func call[T any](ctx context.Context, c *Client, req request, check func(*T, json.RawMessage) *APIError) (Result[T], error) {
	var res Result[T]
	env, attempts, err := c.do(ctx, req)
	res.Attempts = attempts
	res.RequestID, res.DevelopID = string(env.RequestID), string(env.DevelopID)
	if err != nil {
		return res, err
	}
	data := env.Data
	if c.profile.AmountUnit(req.taobao) == platform.UnitYuan {
		if data, err = convertAmounts(data, amountFieldNames(reflect.TypeFor[T]()), yuanToFenNumber); err != nil {
			return res, &DecodeError{Endpoint: req.endpoint, HTTPStatus: http.StatusOK, RequestID: res.RequestID,
				Body: excerpt.Bytes(env.Data, maxErrorBodyBytes), Err: fmt.Errorf("data: %w", err)}
		}
	}
	if err := decodeData(data, &res.Data); err != nil {
		var zero T
		res.Data = zero
		return res, &DecodeError{Endpoint: req.endpoint, HTTPStatus: http.StatusOK, RequestID: res.RequestID,
			Body: excerpt.Bytes(env.Data, maxErrorBodyBytes), Err: fmt.Errorf("data: %w", err)}
	}
	if check != nil {
		if ae := check(&res.Data, data); ae != nil {
			ae.Endpoint, ae.HTTPStatus, ae.Code = req.endpoint, http.StatusOK, int(env.Code)
			ae.Msg, ae.RequestID = string(env.Msg), res.RequestID
			ae.NotApplied = true // processed, and reported not done
			return res, ae
		}
	}
	return res, nil
}

// timestamp is the signing timestamp in the profile's unit.
func (c *Client) timestamp() string {
	if c.profile.Signature.TimestampUnit == "s" {
		return strconv.FormatInt(c.now().Unix(), 10)
	}
	return strconv.FormatInt(c.now().UnixMilli(), 10)
}

// setHeaders sets a request's content type and the platform's system
// parameters: the credentials and this attempt's timestamp, nonce and
// signature (reference §2.1).
func (c *Client) setHeaders(h http.Header, contentType, ts, nonce, signature string) {
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	h.Set("Accept", "application/json")
	h.Set(HeaderAccessKey, c.accessKey)
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderNonce, nonce)
	h.Set(HeaderUserID, c.userID)
	h.Set(HeaderSignature, signature)
}
