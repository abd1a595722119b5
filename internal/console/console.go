// Package console is the operator console: server-rendered pages and a
// versioned JSON API (/api/v1) over the case store, read through a
// read-only connection, and the operator's actions, published as
// refundflow commands through package opcommands exactly as refundctl
// publishes them.
//
// Every route but /healthz and the login page needs credentials: an API
// token (Authorization: Bearer) on any route; a session cookie, got on the
// login page with an account's name and password, on pages and on the
// event stream (/api/v1/events) the case page follows. Accounts and tokens
// live in the case store (refundctl console users, tokens) and are read on
// every request, so disabling an account or revoking a token takes effect
// at once. A session is checked when a stream opens: an open stream
// outlives the session. Forms carry a CSRF token bound to the session.
package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/deadletters"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/reasons"
)

// Config is the console's behaviour, read by cmd/console from the
// environment.
type Config struct {
	// SessionKey signs session cookies and CSRF tokens; at least 32 bytes.
	SessionKey []byte
	// SessionTTL is how long a login lasts (default 12h).
	SessionTTL time.Duration
	// SecureCookie marks the session cookie Secure: set it whenever the
	// console is reached over HTTPS (a proxy in front of it).
	SecureCookie bool
	// VerdictWait is how long an action waits for the worker's verdict
	// before showing it as pending (default 5s).
	VerdictWait time.Duration
	// PublishWait bounds the wait for JetStream's acknowledgement of a
	// command (default 5s). Past it the command may be stored or not: the
	// console says so, naming its id (CodeUnconfirmed).
	PublishWait time.Duration
	// EventsInterval is how often an event stream (/api/v1/events) reads
	// the store for changed cases (default 1s).
	EventsInterval time.Duration
	// CallbackStream is the callback stream a replay reads and stores
	// into (default events.DefaultStreamName, the receiver's).
	CallbackStream string
}

// Deps are what the console works on.
type Deps struct {
	// Store is the case store, opened read-only.
	Store *casestore.Store
	// DeadLetters is a second handle on the same file, opened for writing
	// (casestore.OpenExisting: it never creates or migrates) and used for
	// nothing but marking a dead letter retried or discarded, through
	// package deadletters as refundctl does, and noting a replayed
	// callback on its case's timeline (package replay). A separate handle
	// keeps every page and API read on the read-only Store, so no read
	// path can write by mistake, and the console's only writes are those,
	// each in its own transaction. nil leaves dead letters read-only
	// (their actions answer unavailable) and replays unrecorded.
	DeadLetters *casestore.Store
	// JetStream publishes commands; nil leaves the console read-only
	// (actions answer unavailable).
	JetStream jetstream.JetStream
	// Ready reports whether the console can serve (/readyz).
	Ready func(context.Context) error
	// Logger receives the console's logs; never a token or key.
	Logger *slog.Logger
	// Tracer, when set, traces every command the console issues: a span
	// per command (issue), continuing the caller's traceparent on API
	// requests, whose context goes with the command to the worker. nil:
	// no span work at all (tracing off).
	Tracer trace.Tracer
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Reasons asks the platform which refund reasons it offers
	// (reasons.Lookup over the console's own platform client): the
	// request form's "Look up the reasons". nil: the console has no
	// platform credentials, and the form points to refundctl reasons.
	Reasons func(context.Context, reasons.Query) reasons.Result
}

// Server is the console's HTTP handler and what it holds.
type Server struct {
	cfg    Config
	store  *casestore.Store
	js     jetstream.JetStream
	ready  func(context.Context) error
	logger *slog.Logger
	tracer trace.Tracer // nil when tracing is off
	now    func() time.Time
	// settler retries and discards dead letters (nil without
	// Deps.DeadLetters).
	settler *deadletters.Settler
	// notes is Deps.DeadLetters, where a replay is noted on its case's
	// timeline (nil: not noted).
	notes    *casestore.Store
	sessions sessions
	// passwords checks logins against the store's accounts.
	passwords *casestore.Passwords
	// logins slows failed logins per remote address, accountLogins per
	// account name (guessing one account's password from many
	// addresses).
	logins        *loginLimiter
	accountLogins *loginLimiter
	metrics       *metrics
	pages         pages
	echo          *echo.Echo
	// reasons is Deps.Reasons (nil: no look-up); lookups paces each
	// account's look-ups.
	reasons func(context.Context, reasons.Query) reasons.Result
	lookups lookupLimiter
	// whereLooks bounds the pages looking at JetStream at once for a
	// pending command (storedWhere): one past it is shown without.
	whereLooks chan struct{}
	// streamsDone, closed once by CloseStreams, ends the event streams.
	streamsDone  chan struct{}
	closeStreams sync.Once
}

// Failed logins per remote address: 5 at once, then one every 12 s; per
// account name: 10 at once, then one every 30 s, whatever the addresses.
const (
	loginBurst        = 5
	loginEvery        = 12 * time.Second
	accountLoginBurst = 10
	accountLoginEvery = 30 * time.Second
)

// minSessionKey is the shortest session key accepted: an HMAC key should
// be as long as its hash.
const minSessionKey = 32

// New builds the console. It fails with a short session key, or without
// a store, ready func or logger. A store without accounts yet is fine:
// nobody can log in until refundctl adds one.
func New(cfg Config, deps Deps) (*Server, error) {
	if len(cfg.SessionKey) < minSessionKey {
		return nil, errors.New("console: session key shorter than 32 bytes")
	}
	if deps.Store == nil || deps.Ready == nil || deps.Logger == nil {
		return nil, errors.New("console: store, ready func and logger are required")
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.PublishWait <= 0 {
		cfg.PublishWait = 5 * time.Second
	}
	if cfg.VerdictWait <= 0 {
		cfg.VerdictWait = 5 * time.Second
	}
	if cfg.EventsInterval <= 0 {
		cfg.EventsInterval = time.Second
	}
	if cfg.CallbackStream == "" {
		cfg.CallbackStream = events.DefaultStreamName
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	pg, err := parsePages()
	if err != nil {
		return nil, err
	}
	if err := parseDeadLetterPages(pg); err != nil {
		return nil, err
	}
	passwords := casestore.NewPasswords()
	if err := passwords.Warm(context.Background(), deps.Store); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	s := &Server{
		cfg: cfg, store: deps.Store, js: deps.JetStream, ready: deps.Ready, logger: deps.Logger, tracer: deps.Tracer, now: now,
		sessions:      sessions{key: cfg.SessionKey, ttl: cfg.SessionTTL, secure: cfg.SecureCookie},
		passwords:     passwords,
		logins:        newLoginLimiter(rate.Every(loginEvery), loginBurst),
		accountLogins: newLoginLimiter(rate.Every(accountLoginEvery), accountLoginBurst),
		metrics:       newMetrics(),
		pages:         pg,
		streamsDone:   make(chan struct{}),
		reasons:       deps.Reasons,
		whereLooks:    make(chan struct{}, maxWhereLooks),
	}
	if deps.DeadLetters != nil {
		var pub deadletters.Publisher
		if deps.JetStream != nil {
			pub = deps.JetStream
		}
		s.settler = deadletters.New(deps.DeadLetters, pub, deadletters.Config{ForceName: "the force box"})
		s.notes = deps.DeadLetters
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// The address a login is counted against is the TCP peer: a header
	// such as X-Forwarded-For is the client's to choose.
	e.IPExtractor = echo.ExtractIPDirect()
	e.HTTPErrorHandler = s.handleError
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.logger.Error("panic in handler", "path", c.Path(), "err", err, "stack", string(stack))
			return err
		},
	}))
	e.Use(s.countRequests, s.authenticate)
	s.echo = e
	s.routes(e)
	return s, nil
}

// Handler returns the HTTP handler (an *echo.Echo).
func (s *Server) Handler() http.Handler { return s.echo }

// Registry returns the Prometheus registry served on /metrics.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

// identityKey is where authenticate leaves the caller's Account.
const (
	identityKey = "console.account"
	cookieKey   = "console.session"
)

// who returns the authenticated caller (authenticate ran before).
func who(c echo.Context) Account {
	a, _ := c.Get(identityKey).(Account)
	return a
}

// public lists the routes served without credentials: liveness, and the
// login page that hands out sessions.
var public = map[string]bool{"/healthz": true, "/login": true}

// authenticate lets a request through with a valid bearer token (any
// route) or session cookie (pages), each checked against the case store's
// accounts and tokens on every request, and answers the rest: 401 on the
// API, /readyz and /metrics; a redirect to the login page for a page read;
// 401 for a page form.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if public[r.URL.Path] {
			return next(c)
		}
		if tok, ok := bearer(r); ok {
			a, err := s.tokenAccount(c, tok)
			if err != nil {
				return err
			}
			c.Set(identityKey, a)
			return next(c)
		}
		// Sessions open pages, and the event stream the case page reads.
		if !machinePath(r.URL.Path) || r.URL.Path == eventsPath {
			if ck, err := r.Cookie(sessionCookie); err == nil {
				a, ok, err := s.sessionAccount(c, ck.Value)
				if err != nil {
					return err
				}
				if ok {
					c.Set(identityKey, a)
					c.Set(cookieKey, ck.Value)
					return next(c)
				}
			}
			if (r.Method == http.MethodGet || r.Method == http.MethodHead) && !machinePath(r.URL.Path) {
				return c.Redirect(http.StatusSeeOther, "/login")
			}
		}
		return errUnauthorized
	}
}

// bearer returns the token of an Authorization: Bearer header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get(echo.HeaderAuthorization)
	const p = "Bearer "
	if len(h) > len(p) && (h[:len(p)] == p || h[:len(p)] == "bearer ") {
		return h[len(p):], true
	}
	return "", false
}
