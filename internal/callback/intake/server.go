// Package intake is the HTTP front door for platform callbacks: it
// authenticates a push (URL token, optionally Standard Webhooks signatures),
// reads it within a size limit, validates it with package callback and
// publishes it to JetStream with package events, answering 200 only after the
// PubAck. cmd/receiver wires it to configuration; cmd/receiverbench drives
// the same handler stack under load.
package intake

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/platform"
)

// Config is what the receiver needs to know; cmd/receiver fills it from the
// environment.
type Config struct {
	// Token is the secret last path segment of the callback URL. Required.
	Token string
	// SigningSecrets, when not empty, turns on Standard Webhooks
	// verification; each is a "whsec_<base64>" secret and a signature by
	// any of them is accepted (rotation).
	SigningSecrets []string
	// MaxBytes bounds the request body (callback.DefaultMaxBytes if <= 0).
	MaxBytes int64
	// TypeNames are the known message types (callback.DefaultTypeNames if nil).
	TypeNames callback.TypeNames
	// Profile says which body fields each platform's messages are known to
	// carry; the others are counted in receiver_body_unknown_fields_total
	// (platform.Default() if nil).
	Profile *platform.Profile
	// Tracer, when set, traces every callback (a span for the request and
	// a child for its publish, whose context goes into the message's
	// traceparent header). Nil: no span work at all, so the hot path
	// allocates nothing for tracing (TestCallbackAllocs).
	Tracer trace.Tracer
}

// Publisher stores a message durably; *events.Publisher implements it.
// Publish must not keep m (or its Header) after it returns: the receiver
// reuses both.
type Publisher interface {
	Publish(ctx context.Context, m *nats.Msg, msgID string) (events.Ack, error)
}

// ReadyFunc reports whether callbacks can be stored right now (NATS
// connected, stream reachable); /readyz answers 503 while it fails.
type ReadyFunc func(ctx context.Context) error

// Server is the receiver's HTTP handler stack.
type Server struct {
	echo    *echo.Echo
	parser  *callback.Parser
	profile *platform.Profile
	// rejectLog bounds the warnings about refused pushes (a misconfigured
	// sender would otherwise log every request).
	rejectLog rate.Sometimes
	refused   atomic.Int64 // refused pushes, for the warning
	pub       Publisher
	ready     ReadyFunc
	logger    *slog.Logger
	metrics   *metrics
	tracer    trace.Tracer // nil: tracing off
	token     []byte
	webhooks  []*standardwebhooks.Webhook
	maxBytes  int64

	// subjects[platform][type] is callbacks.<platform>.<type> for every
	// known type; parkedSubject[platform] is parked.callbacks.<platform>.
	subjects      map[callback.Platform]map[string]string
	parkedSubject map[callback.Platform]string

	reqPrefix string
	reqSeq    atomic.Uint64
	bufs      sync.Pool // *[]byte request bodies
	msgs      sync.Pool // *outMsg
}

// outMsg is one outgoing message with its header map and the headers' values,
// reused across requests.
type outMsg struct {
	m  nats.Msg
	h  nats.Header
	ch events.CallbackHeaders
}

// New builds the handler stack. It fails on an empty token, a malformed
// signing secret or invalid type names; errors never quote secrets.
func New(cfg Config, pub Publisher, ready ReadyFunc, logger *slog.Logger) (*Server, error) {
	if cfg.Token == "" {
		return nil, errors.New("callback token is empty")
	}
	if pub == nil || ready == nil || logger == nil {
		return nil, errors.New("receiver: publisher, ready func and logger are required")
	}
	names := cfg.TypeNames
	if names == nil {
		names = callback.DefaultTypeNames()
	}
	parser, err := callback.NewParser(names)
	if err != nil {
		return nil, err
	}
	prof := cfg.Profile
	if prof == nil {
		prof = platform.Default()
	}
	s := &Server{
		rejectLog: rate.Sometimes{First: 1, Interval: rejectLogEvery},
		profile:   prof,
		parser:    parser,
		pub:       pub,
		ready:     ready,
		logger:    logger,
		metrics:   newMetrics(),
		tracer:    cfg.Tracer,
		token:     []byte(cfg.Token),
		maxBytes:  cfg.MaxBytes,
	}
	if s.maxBytes <= 0 {
		s.maxBytes = callback.DefaultMaxBytes
	}
	s.subjects = map[callback.Platform]map[string]string{}
	s.parkedSubject = map[callback.Platform]string{}
	for _, p := range []callback.Platform{callback.PlatformTaobao, callback.Platform1688} {
		s.parkedSubject[p] = events.ParkedSubject(p.String())
		s.subjects[p] = map[string]string{}
		for typ := range names[p] {
			s.subjects[p][typ] = events.AcceptedSubject(p.String(), typ)
		}
	}
	for i, secret := range cfg.SigningSecrets {
		if !strings.HasPrefix(secret, "whsec_") {
			return nil, fmt.Errorf("signing secret #%d: want the form whsec_<base64>", i+1)
		}
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			return nil, fmt.Errorf("signing secret #%d: not valid base64 after whsec_", i+1)
		}
		s.webhooks = append(s.webhooks, wh)
	}
	var rb [4]byte
	if _, err := rand.Read(rb[:]); err != nil {
		return nil, fmt.Errorf("request id prefix: %w", err)
	}
	s.reqPrefix = hex.EncodeToString(rb[:]) + "-"
	s.bufs.New = func() any { b := make([]byte, 0, 4096); return &b }
	s.msgs.New = func() any { return &outMsg{h: make(nats.Header, 8)} }

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.logger.Error("panic in handler", "path", c.Path(), "err", err, "stack", string(stack))
			return err
		},
	}))
	s.echo = e
	s.routes(e)
	return s, nil
}

// rejectLogEvery is how often a refused push is logged at warn at most.
const rejectLogEvery = 10 * time.Second

// Handler returns the HTTP handler (an *echo.Echo).
func (s *Server) Handler() http.Handler { return s.echo }

// Registry returns the Prometheus registry served on /metrics.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

// SigningEnabled reports whether Standard Webhooks verification is on.
func (s *Server) SigningEnabled() bool { return len(s.webhooks) > 0 }

const headerRequestID = "X-Request-Id"

var successBody = []byte(`{"code":200,"msg":"success"}` + "\n")

// handleCallback is POST /callbacks/:token. Order of checks: token,
// content type, size, signature (over the raw bytes), envelope; then the
// synchronous publish, and 200 only after the PubAck.
//
// The request id (the sender's X-Request-Id if sane, else generated) goes
// into the message headers and logs, and back to the sender as X-Request-Id
// on error responses; the 200 stays as small as possible.
func (s *Server) handleCallback(c echo.Context) error {
	reqID := s.requestID(c.Request().Header.Get(headerRequestID))
	var span trace.Span
	if s.tracer != nil {
		span = s.startSpan(c, reqID)
		defer span.End()
	}
	err := s.callback(c, reqID)
	if err != nil {
		c.Response().Header()[headerRequestID] = []string{reqID}
		if span != nil {
			span.SetStatus(codes.Error, errorCode(err))
		}
	}
	return err
}

// startSpan starts the callback's span (tracing on) and hands its context
// to the rest of the request. Only the route pattern is recorded, never
// the path with its token.
func (s *Server) startSpan(c echo.Context, reqID string) trace.Span {
	req := c.Request()
	ctx, span := s.tracer.Start(req.Context(), "receive callback", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.route", routeCallback), attribute.String("request_id", reqID)))
	c.SetRequest(req.WithContext(ctx))
	return span
}

// errorCode is the machine code of a handler's error, for its span.
func errorCode(err error) string {
	var cbErr *callback.Error
	var rErr *Error
	switch {
	case errors.As(err, &cbErr):
		return string(cbErr.Code)
	case errors.As(err, &rErr):
		return rErr.Code
	}
	return CodeInternal
}

func (s *Server) callback(c echo.Context, reqID string) error {
	req := c.Request()

	if !s.tokenMatches(c.Param("token")) {
		return errUnauthorized
	}
	if !isJSONContentType(req.Header.Get(echo.HeaderContentType)) {
		return errMediaType
	}
	bp := s.bufs.Get().(*[]byte)
	defer s.putBuf(bp)
	raw, err := readBody(req.Body, req.ContentLength, s.maxBytes, (*bp)[:0])
	*bp = raw[:0]
	if err != nil {
		return err
	}
	signed := false
	if len(s.webhooks) > 0 {
		if err := s.verify(raw, req.Header); err != nil {
			return err
		}
		signed = true
	}
	ev, err := s.parser.Parse(raw)
	if err != nil {
		return err
	}
	if len(ev.OtherFields) > 0 {
		s.countUnknownFields(&ev)
	}

	// The message, its header map and the header values come from a pool:
	// Publish is done with them when it returns (nats.go serialises the
	// headers while publishing). Subjects come precomputed from the type names.
	om := s.msgs.Get().(*outMsg)
	defer s.putMsg(om)
	om.ch = events.CallbackHeaders{Platform: ev.Platform.String(), Type: ev.Type, Received: time.Now(), RequestID: reqID,
		ParkReason: string(ev.Park), ParkDetail: ev.ParkDetail, Verified: signed}
	h := om.h
	om.ch.Fill(h)
	var subject string
	if ev.Parked() {
		subject = s.parkedSubject[ev.Platform]
	} else {
		subject = s.subjects[ev.Platform][ev.Type]
	}
	om.m = nats.Msg{Subject: subject, Data: raw, Header: h}

	start := time.Now()
	var ack events.Ack
	if s.tracer != nil {
		ack, err = s.tracedPublish(req.Context(), &om.m, &ev)
	} else {
		ack, err = s.pub.Publish(req.Context(), &om.m, ev.ID)
	}
	s.metrics.publishSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		if req.Context().Err() != nil {
			// The sender hung up; nobody is waiting for the answer.
			s.logger.Debug("sender went away during publish", "request_id", reqID, "subject", subject, "err", err)
		} else {
			s.logger.Warn("callback not stored; answering 503", "request_id", reqID, "subject", subject, "err", err)
		}
		return errUnavailable
	}
	switch {
	case ack.Duplicate:
		s.metrics.duplicate.Inc()
		s.metrics.duplicates.Inc()
	case ev.Parked():
		s.metrics.park(ev.Park)
	default:
		s.metrics.accepted.Inc()
	}
	if ev.Parked() {
		// Parking is worth an Info line: an operator has to look at it.
		s.logger.Info("callback parked", "request_id", reqID, "subject", subject, "type", ev.Type,
			"reason", string(ev.Park), "seq", ack.Sequence, "duplicate", ack.Duplicate)
	} else if s.debug() {
		s.logger.Debug("callback stored", "request_id", reqID, "subject", subject, "seq", ack.Sequence, "duplicate", ack.Duplicate)
	}
	// What c.Blob does, minus the Content-Type canonicalisation and the
	// []string allocated for it on every request.
	res := c.Response()
	res.Header()[echo.HeaderContentType] = jsonContentType
	res.WriteHeader(http.StatusOK)
	_, err = res.Write(successBody)
	return err
}

// tracedPublish publishes m inside a producer span, a child of the
// request's, whose context goes into m's trace headers: the worker's span
// for the message is its child.
func (s *Server) tracedPublish(ctx context.Context, m *nats.Msg, ev *callback.Event) (events.Ack, error) {
	ctx, span := s.tracer.Start(ctx, "publish callback", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.destination.name", m.Subject),
			attribute.String("platform", ev.Platform.String()), attribute.String("callback.type", ev.Type),
			attribute.String("msg_id", ev.ID)))
	defer span.End()
	events.InjectTrace(ctx, m.Header)
	ack, err := s.pub.Publish(ctx, m, ev.ID)
	if err != nil {
		span.SetStatus(codes.Error, "not stored")
		span.RecordError(err)
		return ack, err
	}
	span.SetAttributes(attribute.Int64("messaging.stream.sequence", int64(ack.Sequence)), attribute.Bool("duplicate", ack.Duplicate))
	return ack, nil
}

// jsonContentType is the Content-Type value of every 200, shared: net/http
// copies the header when the status is written, and nothing appends to it.
var jsonContentType = []string{echo.MIMEApplicationJSON}

// handleProbe is GET /callbacks/:token: 200 for the right token (the
// platform's address verification), 401 otherwise; nothing is published.
func (s *Server) handleProbe(c echo.Context) error {
	if !s.tokenMatches(c.Param("token")) {
		return errUnauthorized
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, successBody)
}

func (s *Server) handleHealthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReadyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		s.logger.Debug("not ready", "err", err)
		return &Error{Code: CodeNotReady, Message: "not ready: " + err.Error()}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// tokenMatches compares the URL token with the configured one in constant
// time. A token of another length is compared as if it were the configured
// one and then refused, so the time taken reveals neither the configured
// token's content nor its length. (Hashing both sides with SHA-256 gave the
// same guarantee for about 0.5 µs per request under load.)
func (s *Server) tokenMatches(given string) bool {
	sameLen := subtle.ConstantTimeEq(int32(min(len(given), math.MaxInt32)), int32(len(s.token)))
	g := []byte(given)
	if len(g) != len(s.token) {
		g = s.token
	}
	return subtle.ConstantTimeCompare(g, s.token)&sameLen == 1
}

func (s *Server) debug() bool { return s.logger.Enabled(context.Background(), slog.LevelDebug) }

func (s *Server) putMsg(om *outMsg) {
	clear(om.h)
	om.m = nats.Msg{}
	om.ch = events.CallbackHeaders{}
	s.msgs.Put(om)
}

func (s *Server) putBuf(bp *[]byte) {
	if cap(*bp) <= 1<<20 {
		s.bufs.Put(bp)
	}
}

// requestID keeps a sane incoming X-Request-Id and otherwise makes one from a
// per-process random prefix and a counter (no allocation beyond the string).
func (s *Server) requestID(in string) string {
	if in != "" && len(in) <= 64 {
		ok := true
		for i := 0; i < len(in) && ok; i++ {
			c := in[i]
			ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		}
		if ok {
			return in
		}
	}
	var b [32]byte
	out := append(b[:0], s.reqPrefix...)
	out = strconv.AppendUint(out, s.reqSeq.Add(1), 10)
	return string(out)
}

// verify checks the Standard Webhooks headers against every secret. Missing
// headers and a timestamp outside ±5 min are the same for every secret, so
// they are reported as such rather than as a bad signature.
func (s *Server) verify(raw []byte, h http.Header) error {
	if h.Get(standardwebhooks.HeaderWebhookID) == "" || h.Get(standardwebhooks.HeaderWebhookTimestamp) == "" ||
		h.Get(standardwebhooks.HeaderWebhookSignature) == "" {
		return errSignatureMissing
	}
	for _, wh := range s.webhooks {
		err := wh.Verify(raw, h)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, standardwebhooks.ErrMessageTooOld), errors.Is(err, standardwebhooks.ErrMessageTooNew):
			return errSignatureExpired
		case errors.Is(err, standardwebhooks.ErrRequiredHeaders):
			return errSignatureMissing
		case errors.Is(err, standardwebhooks.ErrInvalidHeaders):
			return errSignatureInvalid
		}
	}
	return errSignatureInvalid
}

// isJSONContentType accepts application/json and application/<x>+json, with
// any parameters (charset), case-insensitively.
func isJSONContentType(ct string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	if strings.EqualFold(ct, echo.MIMEApplicationJSON) {
		return true
	}
	const app = "application/"
	return len(ct) > len(app)+5 && strings.EqualFold(ct[:len(app)], app) && strings.EqualFold(ct[len(ct)-5:], "+json")
}

// readBody reads r into buf, failing with errTooLarge as soon as more than
// max bytes arrive (or a Content-Length announces more), so an oversize body
// is never buffered whole.
func readBody(r io.Reader, contentLength, max int64, buf []byte) ([]byte, error) {
	if contentLength > max {
		return buf, errTooLarge
	}
	if contentLength > 0 && int64(cap(buf)) < contentLength+1 {
		buf = make([]byte, 0, contentLength+1)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		limit := cap(buf)
		if int64(limit) > max+1 {
			limit = int(max + 1)
		}
		n, err := r.Read(buf[len(buf):limit])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > max {
			return buf, errTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, errUnreadable
		}
	}
}

// countUnknownFields counts the fields of an accepted body that neither the
// decoder reads nor the profile lists for its kind: the first evidence of
// what the real platform sends (refundctl parked shows unknown types; this
// shows unknown fields inside known ones).
func (s *Server) countUnknownFields(ev *callback.Event) {
	taobao := ev.Platform == callback.PlatformTaobao
	for _, f := range ev.OtherFields {
		if !s.profile.KnownField(taobao, ev.Kind, f) {
			s.metrics.unknownField(ev.Platform.String(), ev.Type, f)
		}
	}
}
