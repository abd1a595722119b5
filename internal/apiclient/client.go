// Package apiclient is the signed HTTP client of the Xportcn/PandaPon OpenAPI
// after-sales endpoints (Taobao and 1688), with the wire types, the signature
// (reference §2.2), the endpoint paths and the envelope codes.
//
// One Client serves both platforms. Every call is rate limited, signed afresh
// on every attempt, bounded in time, and decoded from the {requestId, code,
// developId, msg, data} envelope with tolerance for the documented type drift.
// Calls that are safe to repeat (reads, renders, the voucher upload) are
// retried on transient failures; calls that change platform state are never
// repeated by the client: their errors say whether the outcome is unknown
// (OutcomeUnknown) so the caller can reconcile first.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultTimeout             = 10 * time.Second
	DefaultRateLimit           = rate.Limit(20)
	DefaultRateBurst           = 10
	DefaultMaxAttempts         = 4
	DefaultInitialInterval     = 200 * time.Millisecond
	DefaultMaxInterval         = 5 * time.Second
	DefaultMaxElapsedTime      = 30 * time.Second
	DefaultMultiplier          = 2.0
	DefaultRandomizationFactor = 0.5
	DefaultMaxResponseBytes    = 8 << 20
	DefaultMaxVoucherBytes     = 10 << 20
	maxErrorBodyBytes          = 256
	defaultMaxIdleConnsPerHost = 32
	defaultIdleConnTimeout     = 90 * time.Second
	defaultTLSHandshakeTimeout = 10 * time.Second
)

// RetryPolicy bounds the retries of calls that are safe to repeat. Zero fields
// get the defaults noted; the waits grow exponentially with jitter
// (cenkalti/backoff/v5 ExponentialBackOff).
type RetryPolicy struct {
	MaxAttempts         int           // attempts in all, including the first; default 4; 1 disables retries
	InitialInterval     time.Duration // first wait; default 200ms
	MaxInterval         time.Duration // cap on one wait; default 5s
	MaxElapsedTime      time.Duration // no new attempt once this much time has passed; default 30s
	Multiplier          float64       // growth per retry; default 2
	RandomizationFactor float64       // jitter: each wait is drawn from interval*(1±factor); default 0.5
}

// Config configures a Client. Zero values get the defaults noted; New rejects
// invalid values with an error naming the field.
type Config struct {
	// BaseURL is the API root including any path prefix, e.g.
	// https://api.pandapon.com or https://www.xportcn.com/api. Required.
	BaseURL string
	// AccessKey and AccessSecret are the platform credentials. Required. The
	// secret is only used to compute signatures and never logged.
	AccessKey    string
	AccessSecret string
	// UserID is sent in the user-id header (sub-account control). Required.
	UserID string
	// Profile holds the platform facts the documentation leaves open:
	// endpoint paths and methods, the success code, error-code classes,
	// status names, signing, time and amount formats. nil ->
	// platform.Default(). The client keeps it; callers must not modify it.
	Profile *platform.Profile
	// HTTPClient sends the requests; nil -> a tuned client without a global
	// timeout that does not follow redirects (a redirect would hand the
	// replayable signature headers to another URL).
	HTTPClient *http.Client
	// Timeout bounds each attempt (connect, send, read the whole response);
	// a shorter deadline on the caller's ctx wins. Default 10s.
	Timeout time.Duration
	// RateLimit and RateBurst configure the one token bucket shared by every
	// goroutine using the Client; every attempt, retries included, takes a
	// token. Defaults 20/s and 10; rate.Inf disables limiting.
	RateLimit rate.Limit
	RateBurst int
	// Retry bounds retries of the calls that are safe to repeat.
	Retry RetryPolicy
	// MaxResponseBytes caps how much of a response body is read; default 8 MiB.
	MaxResponseBytes int64
	// MaxVoucherBytes caps the file AlibabaUploadVoucher buffers; default 10 MiB.
	MaxVoucherBytes int64
	// Logger receives one Debug line per attempt and Info/Warn lines for
	// retries; nil discards. Credentials are never logged.
	Logger *slog.Logger
	// Now gives the signing timestamp; nil -> time.Now.
	Now func() time.Time
	// Observe, when set, is called after every attempt with the endpoint name,
	// the envelope code (or the HTTP status when there is no envelope, or 0
	// when there is no response), the attempt's duration and its error (nil on
	// success). It must be safe for concurrent use; metrics hook here.
	Observe func(endpoint string, code int, d time.Duration, err error)
}

// Result is the decoded answer of a call. RequestID and DevelopID come from
// the envelope so callers can record the platform's request id of every step.
type Result[T any] struct {
	RequestID string
	DevelopID string
	Data      T
	// Attempts is the number of attempts the call started (1 without retries).
	Attempts int
}

// Client calls the platform API. It is safe for concurrent use; all
// goroutines share its rate limiter and connection pool.
type Client struct {
	base       string
	accessKey  string
	secret     string
	userID     string
	profile    *platform.Profile
	hc         *http.Client
	timeout    time.Duration
	limiter    *rate.Limiter
	retry      RetryPolicy
	maxBody    int64
	maxVoucher int64
	log        *slog.Logger
	now        func() time.Time
	observe    func(string, int, time.Duration, error)
}

// New validates cfg, applies the defaults and returns a Client.
func New(cfg Config) (*Client, error) {
	base, err := validateBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	if cfg.AccessKey == "" {
		return nil, errors.New("apiclient config: AccessKey is required")
	}
	if cfg.AccessSecret == "" {
		return nil, errors.New("apiclient config: AccessSecret is required")
	}
	if cfg.UserID == "" {
		return nil, errors.New("apiclient config: UserID is required")
	}
	for name, v := range map[string]string{"AccessKey": cfg.AccessKey, "AccessSecret": cfg.AccessSecret, "UserID": cfg.UserID} {
		if strings.ContainsAny(v, "\r\n\x00") || strings.TrimSpace(v) != v {
			return nil, fmt.Errorf("apiclient config: %s contains whitespace or control characters", name)
		}
	}
	profile := cfg.Profile
	if profile == nil {
		profile = platform.Default()
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("apiclient config: Timeout %v is negative", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.RateLimit < 0 {
		return nil, fmt.Errorf("apiclient config: RateLimit %v is negative", cfg.RateLimit)
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = DefaultRateLimit
	}
	if cfg.RateBurst < 0 {
		return nil, fmt.Errorf("apiclient config: RateBurst %d is negative", cfg.RateBurst)
	}
	if cfg.RateBurst == 0 {
		cfg.RateBurst = DefaultRateBurst
	}
	rp, err := normalizeRetry(cfg.Retry)
	if err != nil {
		return nil, err
	}
	if cfg.MaxResponseBytes < 0 || cfg.MaxVoucherBytes < 0 {
		return nil, errors.New("apiclient config: MaxResponseBytes and MaxVoucherBytes must not be negative")
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.MaxVoucherBytes == 0 {
		cfg.MaxVoucherBytes = DefaultMaxVoucherBytes
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = newHTTPClient()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Client{
		base:       base,
		accessKey:  cfg.AccessKey,
		secret:     cfg.AccessSecret,
		userID:     cfg.UserID,
		profile:    profile,
		hc:         hc,
		timeout:    cfg.Timeout,
		limiter:    rate.NewLimiter(cfg.RateLimit, cfg.RateBurst),
		retry:      rp,
		maxBody:    cfg.MaxResponseBytes,
		maxVoucher: cfg.MaxVoucherBytes,
		log:        log,
		now:        now,
		observe:    cfg.Observe,
	}, nil
}

func validateBaseURL(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("apiclient config: BaseURL is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("apiclient config: BaseURL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("apiclient config: BaseURL %q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("apiclient config: BaseURL %q: host is missing", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("apiclient config: BaseURL %q: must not contain a query, fragment or user info", raw)
	}
	return strings.TrimRight(raw, "/"), nil
}

func normalizeRetry(p RetryPolicy) (RetryPolicy, error) {
	if p.MaxAttempts < 0 || p.InitialInterval < 0 || p.MaxInterval < 0 || p.MaxElapsedTime < 0 ||
		p.Multiplier < 0 || p.RandomizationFactor < 0 || p.RandomizationFactor > 1 {
		return p, fmt.Errorf("apiclient config: Retry %+v: fields must not be negative and RandomizationFactor must be in [0,1]", p)
	}
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.InitialInterval == 0 {
		p.InitialInterval = DefaultInitialInterval
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = DefaultMaxInterval
	}
	if p.MaxElapsedTime == 0 {
		p.MaxElapsedTime = DefaultMaxElapsedTime
	}
	if p.Multiplier == 0 {
		p.Multiplier = DefaultMultiplier
	}
	if p.Multiplier < 1 {
		return p, fmt.Errorf("apiclient config: Retry.Multiplier %v must be at least 1", p.Multiplier)
	}
	if p.RandomizationFactor == 0 {
		p.RandomizationFactor = DefaultRandomizationFactor
	}
	if p.InitialInterval > p.MaxInterval {
		return p, fmt.Errorf("apiclient config: Retry.InitialInterval %v exceeds MaxInterval %v", p.InitialInterval, p.MaxInterval)
	}
	return p, nil
}

func newHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 100
	tr.MaxIdleConnsPerHost = defaultMaxIdleConnsPerHost
	tr.IdleConnTimeout = defaultIdleConnTimeout
	tr.TLSHandshakeTimeout = defaultTLSHandshakeTimeout
	tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Limiter returns the Client's shared rate limiter, e.g. for metrics on
// available tokens. Changing its limit affects every caller.
func (c *Client) Limiter() *rate.Limiter { return c.limiter }

// Profile returns the platform profile the Client uses.
func (c *Client) Profile() *platform.Profile { return c.profile }

// request is one logical call, independent of attempts.
type request struct {
	endpoint    string
	method      string
	path        string // already filled
	query       url.Values
	body        []byte // nil for GET
	contentType string
	safe        bool // may be retried by the client
	taobao      bool // a Taobao endpoint (else 1688), for the amount unit
}

// jsonRequest builds the request of an endpoint that takes a JSON body (the
// profile's validation allows only POST for those). Amount fields are
// written in the platform's unit.
func (c *Client) jsonRequest(e platform.Endpoint, safe bool, v any) (request, error) {
	endpoint := string(e)
	b, err := json.Marshal(v)
	if err != nil {
		return request{}, fmt.Errorf("%s: encode request: %w", endpoint, err)
	}
	if c.yuan(e) {
		if b, err = convertAmounts(b, amountFieldNames(reflect.TypeOf(v)), fenToYuanNumber); err != nil {
			return request{}, fmt.Errorf("%s: encode request: %w", endpoint, err)
		}
	}
	fact := c.profile.Endpoint(e)
	return request{endpoint: endpoint, method: fact.Method, path: fact.Path, body: b,
		contentType: "application/json", safe: safe, taobao: taobaoEndpoint(e)}, nil
}

// idRequest builds the request of an endpoint whose one argument is a refund
// id (or none, when refundID is ""): the id goes into the path template's
// {refundId} if it has one, else into the refundId query parameter of a GET
// or the JSON body of a POST.
func (c *Client) idRequest(e platform.Endpoint, refundID string, safe bool) (request, error) {
	endpoint := string(e)
	fact := c.profile.Endpoint(e)
	r := request{endpoint: endpoint, method: fact.Method, path: fact.Path, safe: safe, taobao: taobaoEndpoint(e)}
	if e == platform.AlibabaLogisticsCompanies { // the one endpoint without arguments
		return r, nil
	}
	if err := checkID(endpoint, "refundID", refundID); err != nil {
		return request{}, err
	}
	switch {
	case strings.Contains(fact.Path, "{refundId}"):
		r.path = Fill(fact.Path, refundID)
	case fact.Method == http.MethodGet:
		r.query = url.Values{"refundId": {refundID}}
	default:
		b, err := json.Marshal(map[string]string{"refundId": refundID})
		if err != nil {
			return request{}, fmt.Errorf("%s: encode request: %w", endpoint, err)
		}
		r.body, r.contentType = b, "application/json"
	}
	return r, nil
}

// Fill substitutes {refundId} in a path template, escaping the value.
func Fill(path, refundID string) string {
	return strings.ReplaceAll(path, "{refundId}", url.PathEscape(refundID))
}

// taobaoEndpoint reports whether the endpoint is Taobao's (for the amount unit).
func taobaoEndpoint(e platform.Endpoint) bool { return strings.HasPrefix(string(e), "taobao_") }

// yuan reports whether the endpoint's platform writes amounts in yuan.
func (c *Client) yuan(e platform.Endpoint) bool {
	return c.profile.AmountUnit(taobaoEndpoint(e)) == platform.UnitYuan
}

func checkID(endpoint, field, v string) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("%s: %s is empty: %w", endpoint, field, ErrInvalidArgument)
	}
	if strings.ContainsAny(v, "\r\n\x00") || len(v) > 128 {
		return fmt.Errorf("%s: %s %q is not a valid id: %w", endpoint, field, excerpt.Of(v, 40), ErrInvalidArgument)
	}
	return nil
}

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

// do runs req with rate limiting, signing, retries (only when req.safe), and
// envelope decoding, and returns the successful envelope.
func (c *Client) do(ctx context.Context, req request) (envelopeWire, int, error) {
	maxTries := uint(1)
	if req.safe {
		maxTries = uint(c.retry.MaxAttempts)
	}
	attempts := 0
	var lastErr error
	eb := &hintedBackOff{max: c.retry.MaxInterval, exp: &backoff.ExponentialBackOff{
		InitialInterval:     c.retry.InitialInterval,
		RandomizationFactor: c.retry.RandomizationFactor,
		Multiplier:          c.retry.Multiplier,
		MaxInterval:         c.retry.MaxInterval,
	}}
	op := func() (envelopeWire, error) {
		if err := c.wait(ctx, req.endpoint); err != nil {
			return envelopeWire{}, backoff.Permanent(err)
		}
		attempts++
		env, err := c.attempt(ctx, req, attempts)
		if err != nil {
			lastErr = err
			if !errors.Is(err, ErrRetryable) {
				return env, backoff.Permanent(err)
			}
			var he *HTTPError
			if errors.As(err, &he) {
				eb.hint = he.RetryAfter
			}
		}
		return env, err
	}
	env, err := backoff.Retry(ctx, op,
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

// wait takes a token from the shared limiter before an attempt.
func (c *Client) wait(ctx context.Context, endpoint string) error {
	if err := c.limiter.Wait(ctx); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("%s: wait for rate limiter: %w", endpoint, cerr)
		}
		// The limiter refuses at once a wait that would outlast ctx's deadline.
		return fmt.Errorf("%s: wait for rate limiter: %w (%v)", endpoint, context.DeadlineExceeded, err)
	}
	return nil
}

// attempt makes one signed HTTP exchange.
func (c *Client) attempt(ctx context.Context, req request, n int) (env envelopeWire, err error) {
	start := time.Now()
	var out attemptOutcome
	defer func() {
		d := time.Since(start)
		code := 0
		switch {
		case out.haveEnv:
			code = int(out.env.Code)
		case out.httpStatus != 0:
			code = out.httpStatus
		}
		if c.observe != nil {
			c.observe(req.endpoint, code, d, err)
		}
		attrs := []slog.Attr{
			slog.String("endpoint", req.endpoint), slog.Int("attempt", n),
			slog.Int("http_status", out.httpStatus), slog.Int("code", code),
			slog.String("request_id", string(out.env.RequestID)), slog.Duration("duration", d),
		}
		if err != nil {
			attrs = append(attrs, slog.String("error", err.Error()))
		}
		c.log.LogAttrs(ctx, slog.LevelDebug, "apiclient: attempt", attrs...)
	}()
	nonce, err := NewNonce()
	if err != nil {
		return env, fmt.Errorf("%s: %w", req.endpoint, err)
	}
	ts := c.timestamp()
	signature := Sign(c.profile.Signature, c.accessKey, ts, nonce, c.secret)
	scrub := c.scrubber(signature, nonce)

	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var sent atomic.Bool
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				sent.Store(true)
			}
		},
	})
	u := c.base + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	var body io.Reader
	switch {
	case req.body != nil:
		body = bytes.NewReader(req.body)
	case !req.safe:
		// net/http's Transport silently resends a GET that failed on a reused
		// connection, which would cancel a refund twice. It documents that it
		// never resends a request that has a body but no GetBody: give the
		// mutating GET an empty body of that kind (nothing extra goes on the
		// wire; the transport probes it and finds it empty).
		body = emptyBody{}
	}
	hreq, err := http.NewRequestWithContext(actx, req.method, u, body)
	if err != nil {
		return env, fmt.Errorf("%s: build request: %w", req.endpoint, err)
	}
	if req.contentType != "" {
		hreq.Header.Set("Content-Type", req.contentType)
	}
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set(HeaderAccessKey, c.accessKey)
	hreq.Header.Set(HeaderTimestamp, ts)
	hreq.Header.Set(HeaderNonce, nonce)
	hreq.Header.Set(HeaderUserID, c.userID)
	hreq.Header.Set(HeaderSignature, signature)

	resp, err := c.hc.Do(hreq)
	if err != nil {
		return env, &TransportError{Endpoint: req.endpoint, Sent: sent.Load(), Err: scrubErr(err, scrub)}
	}
	defer resp.Body.Close()
	out.httpStatus = resp.StatusCode
	raw, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return env, &TransportError{Endpoint: req.endpoint, Sent: true, Err: scrubErr(err, scrub)}
	}
	// A server (or proxy) echoing our headers must not smuggle credentials
	// into errors and logs: remove them from the body before anything reads it.
	raw = []byte(scrub(string(raw)))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		he := &HTTPError{Endpoint: req.endpoint, StatusCode: resp.StatusCode, Body: excerpt.Bytes(raw, maxErrorBodyBytes),
			RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
		var e envelopeWire
		if json.Unmarshal(raw, &e) == nil {
			he.Code, he.Msg, he.RequestID = int(e.Code), string(e.Msg), string(e.RequestID)
			he.Class = c.profile.Class(he.Code)
		}
		return env, he
	}
	if int64(len(raw)) > c.maxBody {
		return env, &DecodeError{Endpoint: req.endpoint, HTTPStatus: resp.StatusCode,
			Err: fmt.Errorf("response body exceeds %d bytes", c.maxBody)}
	}
	env, err = decodeEnvelope(raw)
	if err != nil {
		return env, &DecodeError{Endpoint: req.endpoint, HTTPStatus: resp.StatusCode, Body: excerpt.Bytes(raw, maxErrorBodyBytes), Err: err}
	}
	out.env, out.haveEnv = env, true
	if code := int(env.Code); code != c.profile.Envelope.SuccessCode {
		return env, &APIError{Endpoint: req.endpoint, HTTPStatus: resp.StatusCode, Code: code,
			Msg: string(env.Msg), RequestID: string(env.RequestID), Class: c.profile.Class(code),
			Retryable: c.profile.Retryable(code), NotApplied: c.profile.NotApplied(code)}
	}
	return env, nil
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

// scrubber returns a function that removes the secret, the signature and the
// nonce from text that came back from the server before it is put into an
// error or a log line.
func (c *Client) scrubber(signature, nonce string) func(string) string {
	var pairs []string
	for _, s := range []string{c.secret, signature, nonce} {
		if len(s) >= 4 {
			pairs = append(pairs, s, "[REDACTED]")
		}
	}
	if len(pairs) == 0 {
		return func(s string) string { return s }
	}
	r := strings.NewReplacer(pairs...)
	return r.Replace
}

// redactedError keeps a cause for errors.Is/As while replacing its text.
type redactedError struct {
	msg   string
	cause error
}

// Error returns the redacted text.
func (e *redactedError) Error() string { return e.msg }

// Unwrap returns the original error for errors.Is/As.
func (e *redactedError) Unwrap() error { return e.cause }

func scrubErr(err error, scrub func(string) string) error {
	if s := scrub(err.Error()); s != err.Error() {
		return &redactedError{msg: s, cause: err}
	}
	return err
}
