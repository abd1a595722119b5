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
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
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
	DefaultMaxIdleConns        = 32
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
	// MaxIdleConns is how many connections to the platform the tuned client
	// keeps open between calls (ignored with HTTPClient); default 32. Set
	// it to the number of calls the caller runs at once: when more calls
	// than this finish together, the extra connections are closed and the
	// next calls open new ones, each a TCP and TLS handshake (round trips
	// across the border before the request is even sent).
	MaxIdleConns int
	// Timeout bounds each attempt (connect, send, read the whole response);
	// a shorter deadline on the caller's ctx wins. Default 10s.
	Timeout time.Duration
	// RateLimit and RateBurst configure the one token bucket shared by every
	// goroutine using the Client; every attempt, retries included, takes a
	// token. Defaults 20/s and 10; rate.Inf disables limiting.
	//
	// RateLimit is a ceiling: while the platform rate-limits the account,
	// each rate-limited answer cuts the rate to 0.7 of what the platform
	// took lately (half while that is unknown), down to RateFloor (default
	// 1/s, at most RateLimit; RateLimit itself keeps the rate fixed), a
	// Retry-After on it holds every call (at most Retry.MaxInterval), and
	// the rate climbs back by RateLimit every RateRecovery (default 1m)
	// once none comes (pace).
	RateLimit    rate.Limit
	RateBurst    int
	RateFloor    rate.Limit
	RateRecovery time.Duration
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
	// Tracer, when set, traces every call: a span named for the endpoint
	// (the API method) and a child per HTTP attempt. Spans carry the
	// endpoint, the platform's code and requestId and the HTTP status,
	// never a credential, nonce or signature. Nil: no spans.
	Tracer trace.Tracer
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
	pace       *pace
	retry      RetryPolicy
	maxBody    int64
	maxVoucher int64
	log        *slog.Logger
	now        func() time.Time
	observe    func(string, int, time.Duration, error)
	tracer     trace.Tracer // a no-op tracer when Config.Tracer is nil
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
	if cfg.RateFloor < 0 || cfg.RateRecovery < 0 {
		return nil, fmt.Errorf("apiclient config: RateFloor %v or RateRecovery %v is negative", cfg.RateFloor, cfg.RateRecovery)
	}
	if cfg.RateFloor == 0 {
		cfg.RateFloor = DefaultRateFloor
	}
	if cfg.RateRecovery == 0 {
		cfg.RateRecovery = DefaultRateRecovery
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
	if cfg.MaxIdleConns < 0 {
		return nil, fmt.Errorf("apiclient config: MaxIdleConns %d is negative", cfg.MaxIdleConns)
	}
	if cfg.MaxIdleConns == 0 {
		cfg.MaxIdleConns = DefaultMaxIdleConns
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = newHTTPClient(cfg.MaxIdleConns)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tracer := cfg.Tracer
	if tracer == nil {
		tracer = noop.NewTracerProvider().Tracer("")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Client{
		base:      base,
		accessKey: cfg.AccessKey,
		secret:    cfg.AccessSecret,
		userID:    cfg.UserID,
		profile:   profile,
		hc:        hc,
		timeout:   cfg.Timeout,
		pace: newPace(cfg.RateLimit, cfg.RateFloor, cfg.RateBurst, cfg.RateRecovery, rp.MaxInterval,
			time.Now, log), // not Now: a signing clock set back must not stop the climb
		retry:      rp,
		maxBody:    cfg.MaxResponseBytes,
		maxVoucher: cfg.MaxVoucherBytes,
		log:        log,
		now:        now,
		observe:    cfg.Observe,
		tracer:     tracer,
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

// newHTTPClient is the tuned client, keeping up to idle connections open
// (one host: the platform's).
func newHTTPClient(idle int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = idle
	tr.MaxIdleConnsPerHost = idle
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

// Rate is the platform calls per second the Client allows itself now:
// Config.RateLimit, or less while the platform rate-limits the account
// (Config.RateFloor). For a gauge.
func (c *Client) Rate() float64 { return float64(c.pace.Rate()) }

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
