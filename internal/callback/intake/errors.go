package intake

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/refundhub/refundhub/internal/callback"
)

// Error is an HTTP-level failure with a stable machine code. Envelope
// rejections are *callback.Error instead; handleError maps both, and Echo's
// own errors (404, 405), in one place.
type Error struct {
	Code    string
	Message string
}

// Error implements error.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// HTTP error codes of the receiver (the envelope codes come from package
// callback and all map to 400).
const (
	CodeUnauthorized         = "unauthorized"           // 401: wrong or missing URL token
	CodeSignatureMissing     = "signature_missing"      // 401: signing on, webhook-id/-timestamp/-signature absent
	CodeSignatureInvalid     = "signature_invalid"      // 401: no listed secret produced a matching v1 signature, or malformed headers
	CodeSignatureExpired     = "signature_expired"      // 401: webhook-timestamp outside ±5 min
	CodeUnsupportedMediaType = "unsupported_media_type" // 415: Content-Type is not JSON
	CodeBodyTooLarge         = "body_too_large"         // 413: more than CALLBACK_MAX_BYTES
	CodeBodyUnreadable       = "body_unreadable"        // 400: the body could not be read (client went away, bad chunking)
	CodeUnavailable          = "unavailable"            // 503: NATS down or no PubAck in time; Retry-After set
	CodeNotReady             = "not_ready"              // 503 from /readyz
	CodeNotFound             = "not_found"              // 404
	CodeMethodNotAllowed     = "method_not_allowed"     // 405
	CodeInternal             = "internal"               // 500: a bug
)

// statusOf is the one table from code to HTTP status.
var statusOf = map[string]int{
	CodeUnauthorized:         http.StatusUnauthorized,
	CodeSignatureMissing:     http.StatusUnauthorized,
	CodeSignatureInvalid:     http.StatusUnauthorized,
	CodeSignatureExpired:     http.StatusUnauthorized,
	CodeUnsupportedMediaType: http.StatusUnsupportedMediaType,
	CodeBodyTooLarge:         http.StatusRequestEntityTooLarge,
	CodeBodyUnreadable:       http.StatusBadRequest,
	CodeUnavailable:          http.StatusServiceUnavailable,
	CodeNotReady:             http.StatusServiceUnavailable,
	CodeNotFound:             http.StatusNotFound,
	CodeMethodNotAllowed:     http.StatusMethodNotAllowed,
	CodeInternal:             http.StatusInternalServerError,
}

// RetryAfterSeconds is the Retry-After value sent with 503. The platform
// documents its own schedule (30 min) and probably ignores it; other senders
// and load balancers honour it.
const RetryAfterSeconds = 5

var (
	errUnauthorized     = &Error{Code: CodeUnauthorized, Message: "missing or wrong callback token"}
	errMediaType        = &Error{Code: CodeUnsupportedMediaType, Message: "Content-Type must be application/json"}
	errTooLarge         = &Error{Code: CodeBodyTooLarge, Message: "request body exceeds the configured limit"}
	errUnreadable       = &Error{Code: CodeBodyUnreadable, Message: "request body could not be read"}
	errUnavailable      = &Error{Code: CodeUnavailable, Message: "callback could not be stored durably; retry later"}
	errSignatureMissing = &Error{Code: CodeSignatureMissing, Message: "webhook-id, webhook-timestamp and webhook-signature headers are required"}
	errSignatureInvalid = &Error{Code: CodeSignatureInvalid, Message: "no valid webhook signature"}
	errSignatureExpired = &Error{Code: CodeSignatureExpired, Message: "webhook-timestamp is outside the allowed window"}
)

// errorBody is {"error":{"code":…,"message":…}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// handleError is the Echo HTTPErrorHandler: every error any handler returns
// becomes a JSON body with a stable code, and is counted.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, msg, status := CodeInternal, "internal error", http.StatusInternalServerError
	var cbErr *callback.Error
	var rErr *Error
	var hErr *echo.HTTPError
	switch {
	case errors.As(err, &cbErr):
		code, msg, status = string(cbErr.Code), cbErr.Message, http.StatusBadRequest
	case errors.As(err, &rErr):
		code, msg = rErr.Code, rErr.Message
		if st, ok := statusOf[code]; ok {
			status = st
		}
	case errors.As(err, &hErr):
		switch hErr.Code {
		case http.StatusNotFound:
			code, msg, status = CodeNotFound, "no such route", http.StatusNotFound
		case http.StatusMethodNotAllowed:
			code, msg, status = CodeMethodNotAllowed, "method not allowed", http.StatusMethodNotAllowed
		case http.StatusRequestEntityTooLarge:
			code, msg, status = CodeBodyTooLarge, errTooLarge.Message, http.StatusRequestEntityTooLarge
		default:
			code, msg, status = CodeInternal, http.StatusText(hErr.Code), hErr.Code
		}
	}
	if status == http.StatusServiceUnavailable {
		c.Response().Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
	}
	if status >= 500 && code != CodeUnavailable && code != CodeNotReady {
		s.logger.Error("request failed", "path", c.Path(), "code", code, "err", err)
	} else if status < 500 && strings.HasPrefix(c.Path(), "/callbacks") {
		refused := s.refused.Add(1)
		// A refused push is a lost hint until the platform retries (30
		// minutes later): say so at warn, at most once per rejectLogEvery,
		// with the reason. c.Path() is the route pattern, never the token.
		s.rejectLog.Do(func() {
			s.logger.Warn("callback refused; the platform retries it in 30 minutes", "code", code, "status", status,
				"reason", msg, "request_id", c.Response().Header().Get(headerRequestID), "remote", c.RealIP(),
				"refused_since_start", refused)
		})
	} else if s.debug() {
		// c.Path() is the route pattern ("/callbacks/:token"), never the token.
		s.logger.Debug("request rejected", "path", c.Path(), "code", code, "status", status, "request_id", c.Response().Header().Get(headerRequestID))
	}
	s.metrics.reject(code, status, strings.HasPrefix(c.Path(), "/callbacks"))
	var werr error
	if c.Request().Method == http.MethodHead {
		werr = c.NoContent(status)
	} else {
		werr = c.JSON(status, errorBody{Error: errorDetail{Code: code, Message: msg}})
	}
	if werr != nil {
		s.logger.Debug("write error response", "err", werr)
	}
}
