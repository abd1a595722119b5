package console

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/deadletters"
)

// Error is a failure with a stable machine code, answered as
// {"error":{"code","message"}} on the API and as an error page on pages.
type Error struct {
	Code    string
	Message string
	// Param names the query parameter or form field at fault, for
	// invalid_argument (answered as "param"; empty: none in particular).
	Param string
}

// Error implements error.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Error codes of the console, each with its HTTP status in statusOf.
const (
	CodeUnauthorized     = "unauthorized"       // 401: no or wrong token or session
	CodeForbidden        = "forbidden"          // 403: the role may not, or the CSRF token is missing or wrong
	CodeNotFound         = "not_found"          // 404: no such case or route
	CodeInvalidArgument  = "invalid_argument"   // 400: a bad filter, cursor or form field
	CodeMethodNotAllowed = "method_not_allowed" // 405
	CodeBadJSON          = "bad_json"           // 400: a body that is not one JSON object
	CodeUnknownField     = "unknown_field"      // 400: a body field the API does not take (operator and issuedAt are the console's)
	CodeInvalidCommand   = "invalid_command"    // 400: a command its validation refuses; the message names the fields
	CodeConflict         = "conflict"           // 409: a command id already used for a different command
	CodeRateLimited      = "rate_limited"       // 429: too many failed logins from this address
	CodeNotReady         = "not_ready"          // 503 from /readyz
	CodeUnavailable      = "unavailable"        // 503: the command could not be published (NATS down); nothing was stored
	CodeUnconfirmed      = "unconfirmed"        // 504: the command was sent and its storing not confirmed in time: it may be stored; the message names its id
	CodeStoreUnavailable = "store_unavailable"  // 503: the case database does not answer or cannot write (down, restarting, failing over, disk full)
	CodeNotConfigured    = "not_configured"     // 501: this console lacks what the route needs (platform credentials for reasons)
	CodeInternal         = "internal"           // 500: a bug, or the store failed

	// Refusals of a dead-letter action (409): the letter's state forbids
	// it, and nothing changed. Package deadletters owns the first three.
	CodeDeadLetterRetried   = string(deadletters.RefusedRetried)   // retried already
	CodeDeadLetterDiscarded = string(deadletters.RefusedDiscarded) // discarded already
	CodePermanentFailure    = string(deadletters.RefusedPermanent) // a permanent failure retried without force
	CodeCountChanged        = "count_changed"                      // a bulk action's filter matches another number than expected

	// CodeMessageGone (410): a replay of a stream message the callback
	// stream no longer holds (aged out after its max age, or deleted).
	CodeMessageGone = "message_gone"
)

// statusOf is the one table from code to HTTP status.
var statusOf = map[string]int{
	CodeUnauthorized:     http.StatusUnauthorized,
	CodeForbidden:        http.StatusForbidden,
	CodeNotFound:         http.StatusNotFound,
	CodeInvalidArgument:  http.StatusBadRequest,
	CodeMethodNotAllowed: http.StatusMethodNotAllowed,
	CodeBadJSON:          http.StatusBadRequest,
	CodeUnknownField:     http.StatusBadRequest,
	CodeInvalidCommand:   http.StatusBadRequest,
	CodeConflict:         http.StatusConflict,
	CodeRateLimited:      http.StatusTooManyRequests,
	CodeNotReady:         http.StatusServiceUnavailable,
	CodeUnavailable:      http.StatusServiceUnavailable,
	CodeUnconfirmed:      http.StatusGatewayTimeout,
	CodeStoreUnavailable: http.StatusServiceUnavailable,
	CodeNotConfigured:    http.StatusNotImplemented,
	CodeInternal:         http.StatusInternalServerError,

	CodeDeadLetterRetried:   http.StatusConflict,
	CodeDeadLetterDiscarded: http.StatusConflict,
	CodePermanentFailure:    http.StatusConflict,
	CodeCountChanged:        http.StatusConflict,
	CodeMessageGone:         http.StatusGone,
}

func invalidArg(msg string) error { return &Error{Code: CodeInvalidArgument, Message: msg} }

// invalidParam is invalid_argument for query parameter param; the message
// names it too, for people.
func invalidParam(param, msg string) *Error {
	return &Error{Code: CodeInvalidArgument, Param: param, Message: param + ": " + msg}
}

// errStoreUnavailable is the message of store_unavailable: what the
// operator sees instead of "internal error" while the database is away.
// A read changed nothing; a write that failed at its commit may have been
// saved all the same, so a form sent is looked for before it is sent again.
const (
	errStoreUnavailable      = "the case database does not answer or cannot write (restarting, failing over, unreachable, or its disk full); nothing was changed: try again in a moment"
	errStoreUnavailableWrite = "the case database does not answer or cannot write (restarting, failing over, unreachable, or its disk full); what you sent may not have been saved: in a moment, look before sending it again"
)

// storeUnavailable is store_unavailable's message for request r. The
// pages a form redirects to once it acted (?command=, ?replayed=, ?done=)
// say what was done, lest the operator do it again. Logging in and out
// write nothing an operator must look for.
func storeUnavailable(r *http.Request) string {
	const away = "The case database does not answer or cannot write (restarting, failing over, unreachable, or its disk full): reload in a moment"
	q := r.URL.Query()
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodHead && r.URL.Path != "/login" && r.URL.Path != "/logout":
		return errStoreUnavailableWrite
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		return errStoreUnavailable
	case commandIDSyntax.MatchString(q.Get("command")):
		return "command " + q.Get("command") + " was sent, and the worker applies it once the case database answers; do not send it again. " + away + " for its verdict"
	case q.Get("replayed") != "" && strings.HasPrefix(r.URL.Path, "/cases/"):
		return "the callback was replayed into the stream; do not replay it again. " + away
	case (q.Get("done") == "retried" || q.Get("done") == "discarded") && strings.HasPrefix(r.URL.Path, "/dead-letters/"):
		return "the dead letter was " + q.Get("done") + "; do not do it again. " + away
	}
	return errStoreUnavailable
}

var (
	errUnauthorized = &Error{Code: CodeUnauthorized, Message: "a valid API token (Authorization: Bearer …) or session is required"}
	errCSRF         = &Error{Code: CodeForbidden, Message: "missing or wrong CSRF token; reload the page and send the form again"}
	errNotOperator  = &Error{Code: CodeForbidden, Message: "acting on cases needs the operator role"}
	errRateLimited  = &Error{Code: CodeRateLimited, Message: "too many failed logins from this address; wait a minute"}
)

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
}

// machinePath reports whether a path is answered for programs (JSON
// errors) rather than people (error pages).
func machinePath(p string) bool {
	return strings.HasPrefix(p, "/api/") || p == "/readyz" || p == "/metrics" || p == "/healthz"
}

// handleError is the Echo HTTPErrorHandler: every error a handler returns
// gets its code's status, as JSON on the API and as a page elsewhere.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, msg, param, status := CodeInternal, "internal error", "", http.StatusInternalServerError
	var cErr *Error
	var hErr *echo.HTTPError
	switch {
	case errors.As(err, &cErr):
		code, msg, param = cErr.Code, cErr.Message, cErr.Param
		if st, ok := statusOf[code]; ok {
			status = st
		}
	case casestore.Unavailable(err):
		code, msg, status = CodeStoreUnavailable, storeUnavailable(c.Request()), http.StatusServiceUnavailable
	case errors.As(err, &hErr):
		switch hErr.Code {
		case http.StatusNotFound:
			code, msg, status = CodeNotFound, "no such page", http.StatusNotFound
		case http.StatusMethodNotAllowed:
			code, msg, status = CodeMethodNotAllowed, "method not allowed", http.StatusMethodNotAllowed
		default:
			code, msg, status = CodeInternal, http.StatusText(hErr.Code), hErr.Code
		}
	}
	if status >= 500 && code != CodeNotReady && code != CodeNotConfigured {
		// c.Path() is the route pattern; errors never carry secrets.
		s.logger.Error("request failed", "path", c.Path(), "code", code, "err", err)
	}
	if status == http.StatusUnauthorized && machinePath(c.Request().URL.Path) {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="refundhub console"`)
	}
	if status == http.StatusServiceUnavailable {
		c.Response().Header().Set("Retry-After", strconv.Itoa(5))
	}
	var werr error
	switch {
	case c.Request().Method == http.MethodHead:
		werr = c.NoContent(status)
	case machinePath(c.Request().URL.Path):
		werr = c.JSON(status, errorBody{Error: errorDetail{Code: code, Message: msg, Param: param}})
	default:
		werr = s.render(c, status, "error.html", errorPage{page: s.pageBase(c, "Error"), Status: status, Code: code, Message: msg})
	}
	if werr != nil {
		s.logger.Debug("write error response", "err", werr)
	}
}
