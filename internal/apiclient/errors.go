package apiclient

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/refundhub/refundhub/internal/platform"
)

// ErrRetryable marks a failure that may succeed if the same call is made again
// later: transport failures, HTTP 5xx and 429, and envelope codes listed in
// Config.RetryableCodes. Test with errors.Is(err, ErrRetryable). The client
// itself only repeats calls that are safe to repeat (see the method docs); for
// the others the caller decides, usually after reconciling (see OutcomeUnknown).
var ErrRetryable = errors.New("retryable")

// ErrInvalidArgument is returned, wrapped, when a call's arguments are rejected
// before anything is sent (missing ids, empty files, ...).
var ErrInvalidArgument = errors.New("invalid argument")

// APIError is a verdict from the platform that the call failed: the envelope
// code is not CodeSuccess, or the envelope succeeded but the data reports a
// business failure (NestedCode/NestedMsg set): A5 data.success == false, or a
// Taobao success flag (cancelSuccess, messageSubmitSuccess, submitSuccess,
// modifySuccess) that is false.
type APIError struct {
	Endpoint   string // endpoint name (a platform.Endpoint)
	HTTPStatus int    // HTTP status of the response: 2xx, or the profile's envelope.error_http_status
	Code       int    // envelope code; CodeSuccess for nested failures
	Msg        string // envelope msg
	RequestID  string // envelope requestId, for the platform's logs
	NestedCode string // A5 data.errorCode, or "<flag>=false" for a Taobao flag
	NestedMsg  string // A5 data.errorInfo, or a description of the false flag
	// Class is what the profile says Code means (platform.ClassUnknown for a
	// code it does not list, and for nested failures).
	Class platform.ErrorClass
	// Retryable reports that Code is in one of the profile's retryable
	// classes; errors.Is(err, ErrRetryable) uses it.
	Retryable bool
	// NotApplied reports that the answer proves the call had no effect: the
	// code is in one of the profile's not_applied classes, or the failure is
	// nested (the platform processed the call and reported it not done).
	// NotApplied(err) uses it.
	NotApplied bool
	// RetryAfter is the answer's Retry-After hint (0 if none): a rate
	// limit the platform answers with its envelope waits for it as an
	// HTTP 429 does (HTTPError.RetryAfter).
	RetryAfter time.Duration
}

// Error describes the failure without any credential.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: platform error code %d", e.Endpoint, e.Code)
	if e.Msg != "" {
		fmt.Fprintf(&b, " %q", e.Msg)
	}
	if e.Nested() {
		fmt.Fprintf(&b, ", nested %s", e.NestedCode)
		if e.NestedMsg != "" {
			fmt.Fprintf(&b, " %q", e.NestedMsg)
		}
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (requestId %s)", e.RequestID)
	}
	return b.String()
}

// ErrorClass returns the class of err's platform code (an *APIError or an
// *HTTPError carrying an envelope), or platform.ClassUnknown.
func ErrorClass(err error) platform.ErrorClass {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Class
	}
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Class
	}
	return platform.ClassUnknown
}

// Nested reports whether the failure was found inside a successful envelope.
func (e *APIError) Nested() bool { return e.NestedCode != "" || e.NestedMsg != "" }

// Is makes errors.Is(err, ErrRetryable) true for retryable codes.
func (e *APIError) Is(target error) bool { return target == ErrRetryable && e.Retryable }

// HTTPError is a non-2xx HTTP response. 5xx and 429 are retryable. When the
// body held an envelope its code, msg and requestId are kept.
type HTTPError struct {
	Endpoint   string
	StatusCode int
	Code       int // envelope code if the body was an envelope, else 0
	Class      platform.ErrorClass
	Msg        string // envelope msg if any
	RequestID  string // envelope requestId if any
	Body       string // start of the body (at most 256 bytes), credentials removed
	// RetryAfter is the server's Retry-After hint (0 if none). The client
	// waits at least this long (capped at Retry.MaxInterval) before retrying.
	RetryAfter time.Duration
}

// Error describes the failure without any credential.
func (e *HTTPError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: http status %d %s", e.Endpoint, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != 0 {
		fmt.Fprintf(&b, ", code %d %q", e.Code, e.Msg)
	} else if e.Body != "" {
		fmt.Fprintf(&b, ", body %q", e.Body)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (requestId %s)", e.RequestID)
	}
	return b.String()
}

// Temporary reports whether the status is 5xx or 429.
func (e *HTTPError) Temporary() bool {
	return e.StatusCode >= 500 || e.StatusCode == http.StatusTooManyRequests
}

// Is makes errors.Is(err, ErrRetryable) true for 5xx and 429.
func (e *HTTPError) Is(target error) bool { return target == ErrRetryable && e.Temporary() }

// TransportError is a failure to get a response: dial, TLS, connection reset,
// the per-attempt Timeout, or a cancelled context while the request was in
// flight. It is always retryable. Sent reports whether the whole request had
// been written when the failure happened; if so the platform may have acted
// on it.
type TransportError struct {
	Endpoint string
	Sent     bool
	Err      error
}

// Error describes the failure without any credential.
func (e *TransportError) Error() string {
	sent := "before the request was sent"
	if e.Sent {
		sent = "after the request was sent"
	}
	return fmt.Sprintf("%s: transport failure %s: %v", e.Endpoint, sent, e.Err)
}

// Unwrap returns the cause (a *url.Error, net error or context error).
func (e *TransportError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrRetryable) true.
func (e *TransportError) Is(target error) bool { return target == ErrRetryable }

// DecodeError is a 2xx response whose body is not a readable envelope, or
// whose data does not fit the endpoint's type, or that exceeds the size limit.
// It is not retryable.
type DecodeError struct {
	Endpoint   string
	HTTPStatus int
	RequestID  string // if the envelope itself decoded
	Body       string // start of the body (at most 256 bytes), credentials removed
	Err        error
}

// Error describes the failure without any credential.
func (e *DecodeError) Error() string {
	s := fmt.Sprintf("%s: decode response (http %d): %v", e.Endpoint, e.HTTPStatus, e.Err)
	if e.RequestID != "" {
		s += " (requestId " + e.RequestID + ")"
	}
	return s
}

// Unwrap returns the decoding error.
func (e *DecodeError) Unwrap() error { return e.Err }

// NotApplied reports whether a failed call certainly had no effect on the
// platform, so that a side effect may be sent again at once: the request
// never went out whole (arguments refused before sending, the caller's
// context ended while it waited for the rate limiter, a connection that
// failed before the request was written), a gateway or the platform refused
// it with an HTTP 4xx (429 included) or redirected it (3xx: never followed), the platform answered with an envelope
// code listed in Config.NotAppliedCodes, or it reported a nested business
// failure (the call was processed and not done). Everything else that
// failed may have taken effect: see OutcomeUnknown.
func NotApplied(err error) bool {
	if err == nil {
		return false
	}
	var te *TransportError
	if errors.As(err, &te) {
		return !te.Sent
	}
	var he *HTTPError
	if errors.As(err, &he) {
		return he.StatusCode < 500 // a redirect or a refusal: not processed
	}
	var de *DecodeError
	if errors.As(err, &de) {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.NotApplied
	}
	// No response type in the chain: the client failed before it sent
	// anything (every exchange's failure carries one of the types above).
	return true
}

// OutcomeUnknown reports whether a call failed in a way that leaves open
// whether the platform acted on it: the request was written and then the
// connection failed or the timeout hit, the platform answered 5xx, answered
// 2xx with an unreadable body, or answered with an envelope code in none of
// the profile's not_applied classes (internal, and any unlisted code, by
// default).
// A worker that sees true for a mutating call must reconcile (query the
// platform) before submitting again. It is the complement of NotApplied for
// failed calls.
func OutcomeUnknown(err error) bool {
	return err != nil && !NotApplied(err)
}
