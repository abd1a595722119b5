package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
)

// apiHandler serves one endpoint after authentication. It returns the
// envelope's data or an error.
type apiHandler func(r *http.Request, c *apiCall) (any, *apiError)

// apiCall is what a handler gets besides the request.
type apiCall struct {
	pathRefundID string // {refundId} from the path, if the template has one
}

// route is one API endpoint: its name (see endpointNames), the profile's
// method and path template.
type route struct {
	name    string
	ep      platform.Endpoint
	method  string
	prefix  string // template before {refundId} (whole path if !hasID)
	suffix  string // template after {refundId}
	hasID   bool
	handler apiHandler
}

// endpointNames are the endpoints' names in Faults, Stats and log lines:
// the product's own names (platform.Endpoint), so an operator reading a
// worker error ("taobao_list: …") injects a fault under the same name.
var endpointNames = func() []struct {
	name string
	ep   platform.Endpoint
} {
	var out []struct {
		name string
		ep   platform.Endpoint
	}
	for _, e := range platform.AllEndpoints() {
		out = append(out, struct {
			name string
			ep   platform.Endpoint
		}{string(e), e})
	}
	return out
}()

// EndpointNames lists the endpoint names Faults and Stats use.
func EndpointNames() []string {
	out := make([]string, len(endpointNames))
	for i, e := range endpointNames {
		out[i] = e.name
	}
	return out
}

func (s *Sandbox) buildRoutes() []route {
	handlers := map[platform.Endpoint]apiHandler{
		platform.TaobaoList:                  s.taobaoList,
		platform.TaobaoRender:                s.taobaoRender,
		platform.TaobaoReturnLogisticsRender: s.taobaoReturnLogisticsRender,
		platform.TaobaoReturnLogisticsSubmit: s.taobaoReturnLogisticsSubmit,
		platform.TaobaoCancel:                s.taobaoCancel,
		platform.TaobaoSubmitMessage:         s.taobaoSubmitMessage,
		platform.TaobaoSubmit:                s.taobaoSubmit,
		platform.TaobaoListMessages:          s.taobaoListMessages,
		platform.TaobaoModify:                s.taobaoModify,
		platform.TaobaoQuery:                 s.taobaoQuery,
		platform.AlibabaRefundInfo:           s.alibabaRefundInfo,
		platform.AlibabaRefundReasons:        s.alibabaRefundReasons,
		platform.AlibabaUploadVoucher:        s.alibabaUploadVoucher,
		platform.AlibabaCreateRefund:         s.alibabaCreateRefund,
		platform.AlibabaGoodsReturn:          s.alibabaGoodsReturn,
		platform.AlibabaLogisticsCompanies:   s.alibabaLogisticsCompanies,
	}
	routes := make([]route, 0, len(endpointNames))
	for _, d := range endpointNames {
		fact := s.prof.Endpoint(d.ep)
		rt := route{name: d.name, ep: d.ep, method: fact.Method, prefix: fact.Path, handler: handlers[d.ep]}
		if i := strings.Index(fact.Path, "{refundId}"); i >= 0 {
			rt.hasID, rt.prefix, rt.suffix = true, fact.Path[:i], fact.Path[i+len("{refundId}"):]
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

// Handler returns the platform API (paths and methods from the profile) and the admin
// endpoints under /_sandbox/.
func (s *Sandbox) Handler() http.Handler {
	admin := s.adminRoutes()
	return s.recoverer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/_sandbox/") {
			if r.Method != http.MethodGet {
				defer s.markChanged()
			}
			admin.ServeHTTP(w, r)
			return
		}
		// Every API call counts (Stats), and most change a refund.
		defer s.markChanged()
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
		s.writeEnvelope(w, http.StatusNotFound, nil, errf(classNotFound, "no such API path %q", excerpt.Of(r.URL.Path, 100)))
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
				s.writeEnvelope(w, http.StatusInternalServerError, nil, errf(classInternal, "internal error"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// serveAPI counts the call, applies injected faults, then processes it.
func (s *Sandbox) serveAPI(w http.ResponseWriter, r *http.Request, rt route, pathID string) {
	s.mu.Lock()
	s.stats.APICalls[rt.name]++
	if s.quota != nil && !s.quota.Allow() {
		s.stats.QuotaRefused++
		s.mu.Unlock()
		s.writeFault(w, r, ErrRateLimit, 0)
		return
	}
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
		s.writeEnvelope(w, s.errorStatus(), nil, errf(platform.ClassRateLimited, "请求过于频繁 (rate limited)"))
	case ErrInternal:
		s.writeEnvelope(w, s.errorStatus(), nil, errf(classInternal, "系统繁忙 (internal error)"))
	case ErrRefused:
		s.writeEnvelope(w, s.errorStatus(), nil, errf(classIllegal, "当前状态不允许此操作 (refused: the state does not allow it)"))
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
		s.writeEnvelope(w, http.StatusMethodNotAllowed, nil, errf(classInvalid, "method %s not allowed; use %s", r.Method, rt.method))
		return
	}
	if e := s.authenticate(r); e != nil {
		s.mu.Lock()
		s.stats.AuthFailures++
		s.mu.Unlock()
		s.log.Info("sandbox: auth failed", "endpoint", rt.name, "class", e.Class, "reason", e.Msg)
		s.writeEnvelope(w, s.errorStatus(), nil, e)
		return
	}
	data, e := rt.handler(r, &apiCall{pathRefundID: pathID})
	if e != nil {
		s.log.Debug("sandbox: api call", "endpoint", rt.name, "class", e.Class)
		s.writeEnvelope(w, s.errorStatus(), nil, e)
		return
	}
	s.log.Debug("sandbox: api call", "endpoint", rt.name, "class", "success")
	s.writeEnvelope(w, http.StatusOK, data, nil)
}

// refundIDArg is the refund id of an endpoint whose only argument it is: the
// path's {refundId}, else ?refundId=, else (an endpoint the profile made a
// POST) the JSON body's refundId.
func refundIDArg(r *http.Request, c *apiCall) (string, *apiError) {
	if c.pathRefundID != "" {
		return c.pathRefundID, nil
	}
	if id := r.URL.Query().Get("refundId"); id != "" {
		return id, nil
	}
	if r.Method != http.MethodPost {
		return "", nil
	}
	body, e := readBody(r)
	if e != nil || len(bytes.TrimSpace(body)) == 0 {
		return "", e
	}
	var in struct {
		RefundID string `json:"refundId"`
	}
	if _, e := decodeJSON(body, &in); e != nil {
		return "", e
	}
	return in.RefundID, nil
}

// discardWriter swallows the response of an AfterEffect call.
type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}
