package sandbox

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/refundhub/refundhub/internal/apiclient"
)

// developID is the developId every envelope carries (format of the documented
// example: a 19-digit number as a string).
const developID = "1021090911993463110"

// apiError is a failed API call: an envelope code and message (HTTP 200).
type apiError struct {
	Code int
	Msg  string
}

func errf(code int, format string, args ...any) *apiError {
	return &apiError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// apiHandler serves one endpoint after authentication. It returns the
// envelope's data or an error.
type apiHandler func(r *http.Request, c *apiCall) (any, *apiError)

// apiCall is what a handler gets besides the request.
type apiCall struct {
	pathRefundID string // {refundId} from the path, if the template has one
}

// route is one API endpoint: its name (a field of Paths), method
// and path template.
type route struct {
	name    string
	method  string
	prefix  string // template before {refundId} (whole path if !hasID)
	suffix  string // template after {refundId}
	hasID   bool
	handler apiHandler
}

func (s *Sandbox) buildRoutes() []route {
	p := s.cfg.Paths
	defs := []struct {
		name, method, tmpl string
		h                  apiHandler
	}{
		{"TaobaoList", http.MethodPost, p.TaobaoList, s.taobaoList},
		{"TaobaoRender", http.MethodPost, p.TaobaoRender, s.taobaoRender},
		{"TaobaoReturnLogisticsRender", http.MethodGet, p.TaobaoReturnLogisticsRender, s.taobaoReturnLogisticsRender},
		{"TaobaoReturnLogisticsSubmit", http.MethodPost, p.TaobaoReturnLogisticsSubmit, s.taobaoReturnLogisticsSubmit},
		{"TaobaoCancel", http.MethodGet, p.TaobaoCancel, s.taobaoCancel},
		{"TaobaoSubmitMessage", http.MethodPost, p.TaobaoSubmitMessage, s.taobaoSubmitMessage},
		{"TaobaoSubmit", http.MethodPost, p.TaobaoSubmit, s.taobaoSubmit},
		{"TaobaoListMessages", http.MethodPost, p.TaobaoListMessages, s.taobaoListMessages},
		{"TaobaoModify", http.MethodPost, p.TaobaoModify, s.taobaoModify},
		{"TaobaoQuery", http.MethodGet, p.TaobaoQuery, s.taobaoQuery},
		{"AlibabaRefundInfo", http.MethodPost, p.AlibabaRefundInfo, s.alibabaRefundInfo},
		{"AlibabaRefundReasons", http.MethodPost, p.AlibabaRefundReasons, s.alibabaRefundReasons},
		{"AlibabaUploadVoucher", http.MethodPost, p.AlibabaUploadVoucher, s.alibabaUploadVoucher},
		{"AlibabaCreateRefund", http.MethodPost, p.AlibabaCreateRefund, s.alibabaCreateRefund},
		{"AlibabaGoodsReturn", http.MethodPost, p.AlibabaGoodsReturn, s.alibabaGoodsReturn},
		{"AlibabaLogisticsCompanies", http.MethodGet, p.AlibabaLogisticsCompanies, s.alibabaLogisticsCompanies},
	}
	routes := make([]route, 0, len(defs))
	for _, d := range defs {
		rt := route{name: d.name, method: d.method, prefix: d.tmpl, handler: d.h}
		if i := strings.Index(d.tmpl, "{refundId}"); i >= 0 {
			rt.hasID, rt.prefix, rt.suffix = true, d.tmpl[:i], d.tmpl[i+len("{refundId}"):]
		}
		routes = append(routes, rt)
	}
	return routes
}

// match reports whether the escaped path matches the route and returns the
// unescaped {refundId}.
func (rt route) match(escapedPath string) (string, bool) {
	if !rt.hasID {
		return "", escapedPath == rt.prefix
	}
	if len(escapedPath) <= len(rt.prefix)+len(rt.suffix) ||
		!strings.HasPrefix(escapedPath, rt.prefix) || !strings.HasSuffix(escapedPath, rt.suffix) {
		return "", false
	}
	raw := escapedPath[len(rt.prefix) : len(escapedPath)-len(rt.suffix)]
	if strings.Contains(raw, "/") {
		return "", false
	}
	id, err := url.PathUnescape(raw)
	if err != nil {
		return "", false
	}
	return id, true
}

// Handler returns the platform API (paths from Config.Paths) and the admin
// endpoints under /_sandbox/.
func (s *Sandbox) Handler() http.Handler {
	admin := s.adminRoutes()
	return s.recoverer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/_sandbox/") {
			admin.ServeHTTP(w, r)
			return
		}
		escaped := r.URL.EscapedPath()
		var fallback *route // path matches, method does not: answered with 405
		var fallbackID string
		for i, rt := range s.routes {
			id, ok := rt.match(escaped)
			if !ok {
				continue
			}
			if rt.method == r.Method {
				s.serveAPI(w, r, rt, id)
				return
			}
			if fallback == nil {
				fallback, fallbackID = &s.routes[i], id
			}
		}
		if fallback != nil {
			s.serveAPI(w, r, *fallback, fallbackID)
			return
		}
		s.writeEnvelope(w, http.StatusNotFound, nil, errf(apiclient.CodeNotFound, "no such API path %q", truncate(r.URL.Path, 100)))
	}))
}

// recoverer turns a handler panic into a 500 instead of a dropped connection.
// Handlers validate their input; this is the last line of defence.
func (s *Sandbox) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as documented by net/http
					panic(v)
				}
				s.log.Error("sandbox: handler panic", "path", r.URL.Path, "panic", fmt.Sprint(v))
				s.writeEnvelope(w, http.StatusInternalServerError, nil, errf(apiclient.CodeInternal, "internal error"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// serveAPI counts the call, applies injected faults, then processes it.
func (s *Sandbox) serveAPI(w http.ResponseWriter, r *http.Request, rt route, pathID string) {
	s.mu.Lock()
	s.stats.APICalls[rt.name]++
	kind, after, latency, timeoutAfter := s.pickFaultLocked(rt.name)
	s.mu.Unlock()

	if (latency > 0 || kind == ErrTimeout || kind == ErrLate) && r.Body != nil {
		// Read the (bounded) body before waiting: net/http only notices a client
		// hanging up once the handler has consumed the body, and a waiting
		// handler must stop when the client gives up.
		b, err := io.ReadAll(io.LimitReader(r.Body, 2*maxVoucherSize+1))
		if err != nil {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
	}

	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	switch {
	case kind == "":
		s.process(w, r, rt, pathID)
	case kind == ErrLate:
		s.processLate(w, r, rt, pathID, timeoutAfter)
	case after:
		s.process(discardWriter{h: http.Header{}}, r, rt, pathID)
		s.writeFault(w, r, kind, timeoutAfter)
	default:
		s.writeFault(w, r, kind, timeoutAfter)
	}
}

// pickFaultLocked decides the fault of one call: a forced error first, else a
// random one. Callers hold s.mu.
func (s *Sandbox) pickFaultLocked(name string) (kind ErrorKind, after bool, latency, timeoutAfter time.Duration) {
	f := &s.faults
	timeoutAfter = f.TimeoutAfter
	if timeoutAfter == 0 {
		timeoutAfter = DefaultTimeoutAfter
	}
	targeted := len(f.Endpoints) == 0
	for _, e := range f.Endpoints {
		targeted = targeted || e == name
	}
	if targeted && f.LatencyMax > 0 {
		latency = f.LatencyMin
		if span := f.LatencyMax - f.LatencyMin; span > 0 {
			latency += time.Duration(s.randInt(int64(span) + 1))
		}
	} else if targeted {
		latency = f.LatencyMin
	}
	for i := range f.ForceErrors {
		fe := &f.ForceErrors[i]
		if fe.Endpoint != name || fe.Count <= 0 {
			continue
		}
		fe.Count--
		kind, after = fe.Kind, fe.AfterEffect
		if fe.Count == 0 {
			f.ForceErrors = append(f.ForceErrors[:i:i], f.ForceErrors[i+1:]...)
		}
		return kind, after, latency, timeoutAfter
	}
	if targeted && f.ErrorRate > 0 && s.randFloat() < f.ErrorRate {
		kinds := f.ErrorKinds
		if len(kinds) == 0 {
			kinds = []ErrorKind{ErrHTTP500, ErrTimeout, ErrRateLimit}
		}
		kind = kinds[s.randInt(int64(len(kinds)))]
	}
	return kind, false, latency, timeoutAfter
}

// processLate takes the call into effect timeoutAfter after it arrived
// (ErrLate), answering the client only if it is still waiting then.
func (s *Sandbox) processLate(w http.ResponseWriter, r *http.Request, rt route, pathID string, timeoutAfter time.Duration) {
	t := time.NewTimer(timeoutAfter)
	defer t.Stop()
	select {
	case <-t.C:
		s.process(w, r, rt, pathID)
		return
	case <-r.Context().Done():
	}
	<-t.C // the client gave up; the request still arrives
	s.process(discardWriter{h: http.Header{}}, r.WithContext(context.WithoutCancel(r.Context())), rt, pathID)
}

func (s *Sandbox) writeFault(w http.ResponseWriter, r *http.Request, kind ErrorKind, timeoutAfter time.Duration) {
	switch kind {
	case ErrHTTP500:
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
	case ErrHTTP503:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
	case ErrTimeout:
		t := time.NewTimer(timeoutAfter)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
		http.Error(w, "Gateway Timeout", http.StatusGatewayTimeout)
	case ErrRateLimit:
		s.writeEnvelope(w, http.StatusOK, nil, errf(apiclient.CodeRateLimited, "请求过于频繁 (rate limited)"))
	case ErrInternal:
		s.writeEnvelope(w, http.StatusOK, nil, errf(apiclient.CodeInternal, "系统繁忙 (internal error)"))
	case ErrReset:
		hj, ok := w.(http.Hijacker)
		if !ok {
			http.Error(w, "Bad Gateway", http.StatusBadGateway)
			return
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST instead of FIN: the client sees a reset
		}
		_ = conn.Close()
	}
}

// process authenticates and runs the handler.
func (s *Sandbox) process(w http.ResponseWriter, r *http.Request, rt route, pathID string) {
	if r.Method != rt.method {
		w.Header().Set("Allow", rt.method)
		s.writeEnvelope(w, http.StatusMethodNotAllowed, nil, errf(apiclient.CodeInvalidParam, "method %s not allowed; use %s", r.Method, rt.method))
		return
	}
	if e := s.authenticate(r); e != nil {
		s.mu.Lock()
		s.stats.AuthFailures++
		s.mu.Unlock()
		s.log.Info("sandbox: auth failed", "endpoint", rt.name, "code", e.Code, "msg", e.Msg)
		s.writeEnvelope(w, http.StatusOK, nil, e)
		return
	}
	data, e := rt.handler(r, &apiCall{pathRefundID: pathID})
	code := apiclient.CodeSuccess
	if e != nil {
		code = e.Code
	}
	s.log.Debug("sandbox: api call", "endpoint", rt.name, "code", code)
	s.writeEnvelope(w, http.StatusOK, data, e)
}

// authenticate checks the signed headers (reference §2) in the documented order.
func (s *Sandbox) authenticate(r *http.Request) *apiError {
	h := r.Header
	key, ts, sig, uid := h.Get(apiclient.HeaderAccessKey), h.Get(apiclient.HeaderTimestamp),
		h.Get(apiclient.HeaderSignature), h.Get(apiclient.HeaderUserID)
	var missing []string
	for _, kv := range [][2]string{{apiclient.HeaderAccessKey, key}, {apiclient.HeaderTimestamp, ts},
		{apiclient.HeaderUserID, uid}, {apiclient.HeaderSignature, sig}} {
		if kv[1] == "" {
			missing = append(missing, kv[0])
		}
	}
	if len(missing) > 0 {
		return errf(apiclient.CodeMissingAuth, "缺少请求头 (missing headers): %s", strings.Join(missing, ", "))
	}
	if subtle.ConstantTimeCompare([]byte(key), []byte(s.cfg.AccessKey)) != 1 {
		return errf(apiclient.CodeUnknownAccessKey, "access-key 不存在 (unknown access key)")
	}
	t, ok := parseTimestamp(ts)
	if !ok {
		return errf(apiclient.CodeExpiredTimestamp, "timestamp 格式错误 (want 10-digit seconds or 13-digit milliseconds)")
	}
	if d := s.now().Sub(t); d > s.cfg.TimestampWindow || d < -s.cfg.TimestampWindow {
		return errf(apiclient.CodeExpiredTimestamp, "timestamp 已过期 (outside the ±%s window)", s.cfg.TimestampWindow)
	}
	want := legacySign(key, ts, h.Get(apiclient.HeaderNonce), s.cfg.AccessSecret)
	if subtle.ConstantTimeCompare([]byte(sig), []byte(want)) != 1 {
		return errf(apiclient.CodeBadSignature, "签名错误 (bad signature)")
	}
	return nil
}

// parseTimestamp accepts 10-digit seconds and 13-digit milliseconds.
func parseTimestamp(ts string) (time.Time, bool) {
	if len(ts) != 10 && len(ts) != 13 {
		return time.Time{}, false
	}
	for _, c := range ts {
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	if len(ts) == 10 {
		return time.Unix(n, 0), true
	}
	return time.UnixMilli(n), true
}

// writeEnvelope writes {requestId, code, developId, msg, data}.
func (s *Sandbox) writeEnvelope(w http.ResponseWriter, status int, data any, e *apiError) {
	env := apiclient.Envelope{RequestID: s.randHex(32), Code: apiclient.CodeSuccess, DevelopID: developID,
		Msg: apiclient.MsgSuccess, Data: json.RawMessage("null")}
	if e != nil {
		env.Code, env.Msg = apiclient.FlexInt(e.Code), e.Msg
	} else if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			s.log.Error("sandbox: encode response", "err", err)
			env.Code, env.Msg = apiclient.CodeInternal, "internal error"
		} else {
			env.Data = b
		}
	}
	var b []byte
	if s.cfg.NumericDevelopID {
		// The documented drift: some pages declare developId an integer.
		b, _ = json.Marshal(struct {
			RequestID string          `json:"requestId"`
			Code      int             `json:"code"`
			DevelopID json.Number     `json:"developId"`
			Msg       string          `json:"msg"`
			Data      json.RawMessage `json:"data"`
		}{env.RequestID, int(env.Code), json.Number(developID), env.Msg, env.Data})
	} else {
		b, _ = json.Marshal(env) // cannot fail: plain strings, ints and valid raw JSON
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// readBody reads at most maxJSONBody bytes.
func readBody(r *http.Request) ([]byte, *apiError) {
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBody+1))
	if err != nil {
		return nil, errf(apiclient.CodeMalformedJSON, "read body: %v", err)
	}
	if len(b) > maxJSONBody {
		return nil, errf(apiclient.CodeInvalidParam, "请求体过大 (body exceeds %d bytes)", maxJSONBody)
	}
	return b, nil
}

// decodeJSON decodes a JSON object body into v (a wire type) and checks that
// every required field is present, not null and not an empty string. It
// returns the set of fields present.
func decodeJSON(body []byte, v any, required ...string) (map[string]json.RawMessage, *apiError) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, errf(apiclient.CodeMalformedJSON, "请求体为空 (empty body; want a JSON object)")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, errf(apiclient.CodeMalformedJSON, "请求体不是合法的 JSON 对象 (malformed JSON)")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, errf(apiclient.CodeMalformedJSON, "字段类型错误 (field %q: wrong type)", te.Field)
		}
		return nil, errf(apiclient.CodeMalformedJSON, "字段类型错误 (wrong field type): %s", truncate(err.Error(), 120))
	}
	var missing []string
	for _, k := range required {
		raw, ok := fields[k]
		raw = bytes.TrimSpace(raw)
		if !ok || bytes.Equal(raw, []byte("null")) || bytes.Equal(raw, []byte(`""`)) {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, errf(apiclient.CodeMissingParam, "缺少必填参数 (missing required fields): %s", strings.Join(missing, ", "))
	}
	return fields, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// discardWriter swallows the response of an AfterEffect call.
type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}
