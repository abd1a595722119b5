package intake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/refundhub/refundhub/internal/callback/intake"
	"github.com/refundhub/refundhub/internal/events"
)

// The receiver's hand-written plumbing (request ids, content types, the
// bounded body read, logging by outcome), driven in process through the
// real handler stack.

func newInProcess(t *testing.T, cfg intake.Config, pub intake.Publisher, ready intake.ReadyFunc, logger *slog.Logger) http.Handler {
	t.Helper()
	if cfg.Token == "" {
		cfg.Token = testToken
	}
	if ready == nil {
		ready = func(context.Context) error { return nil }
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	srv, err := intake.New(cfg, pub, ready, logger)
	if err != nil {
		t.Fatal(err)
	}
	return srv.Handler()
}

// serveWithin serves req on h and fails the test if the handler has not
// returned within the deadline (a read loop that stops making progress
// would otherwise hang the test binary).
func serveWithin(t *testing.T, h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(w, req)
	}()
	select {
	case <-done:
		return w
	case <-time.After(5 * time.Second):
		t.Fatalf("%s %s: the handler did not return within 5s", req.Method, req.URL)
		return nil
	}
}

// generatedRequestID is the form of an id the receiver makes itself.
var generatedRequestID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9]+$`)

// TestRequestIDKeptOrReplaced: a sender's X-Request-Id of 1-64 letters,
// digits, '-', '_' and '.' travels with the message; anything else is
// replaced by one the receiver makes.
func TestRequestIDKeptOrReplaced(t *testing.T) {
	pub := &recordingPublisher{}
	h := newInProcess(t, intake.Config{}, pub, nil, nil)
	kept := []string{"a", "z", "A", "Z", "0", "9", "-", "_", ".", "req-1.2_3", strings.Repeat("r", 64)}
	replaced := []string{"", "`", "{", "@", "[", "/", ":", " ", "a b", "+", "é", "id\x00", strings.Repeat("r", 65)}
	for _, id := range append(append([]string{}, kept...), replaced...) {
		req := httptest.NewRequest(http.MethodPost, "/callbacks/"+testToken, bytes.NewReader(goodOrder))
		req.Header.Set("Content-Type", "application/json")
		if id != "" {
			req.Header["X-Request-Id"] = []string{id}
		}
		if w := serveWithin(t, h, req); w.Code != http.StatusOK {
			t.Fatalf("POST with X-Request-Id %q = %d %s; want 200", id, w.Code, w.Body)
		}
		got := pub.headers[len(pub.headers)-1].Get(events.HeaderRequestID)
		wantKept := len(pub.headers) <= len(kept)
		switch {
		case wantKept && got != id:
			t.Errorf("X-Request-Id %q: message carries %q; want it kept", id, got)
		case !wantKept && (got == id || !generatedRequestID.MatchString(got)):
			t.Errorf("X-Request-Id %q: message carries %q; want a generated id", id, got)
		}
	}
}

// TestContentTypes: application/json and application/<x>+json, any case,
// any parameters; nothing else.
func TestContentTypes(t *testing.T) {
	h := newInProcess(t, intake.Config{}, &stubPublisher{}, nil, nil)
	for _, c := range []struct {
		ct   string
		want int
	}{
		{"application/json", 200},
		{"APPLICATION/JSON", 200},
		{"application/json; charset=utf-8", 200},
		{" application/json ;x=y", 200},
		{"application/vnd.api+json", 200},
		{"application/x+json", 200},
		{"Application/Problem+JSON; charset=utf-8", 200},
		{"application/+json", 415},
		{"application/jsonx", 415},
		{"application/json+xml", 415},
		{"text/json", 415},
		{"text/x+json", 415},
		{"application/xml", 415},
		{";application/json", 415},
		{"json", 415},
		{"", 415},
	} {
		req := httptest.NewRequest(http.MethodPost, "/callbacks/"+testToken, bytes.NewReader(goodOrder))
		req.Header.Set("Content-Type", c.ct)
		if w := serveWithin(t, h, req); w.Code != c.want {
			t.Errorf("POST with Content-Type %q = %d %s; want %d", c.ct, w.Code, w.Body, c.want)
		}
	}
}

// padded returns a valid envelope of exactly n bytes (n >= 200).
func padded(t *testing.T, n int) []byte {
	t.Helper()
	head := []byte(`{"pad":"`)
	tail := goodOrder[1:] // the rest of the envelope, after a `",`
	fill := n - len(head) - len(`",`) - len(tail)
	if fill < 0 {
		t.Fatalf("padded(%d): the envelope alone is %d bytes", n, len(goodOrder))
	}
	b := append(append(append(head, bytes.Repeat([]byte("x"), fill)...), `",`...), tail...)
	if len(b) != n || !json.Valid(b) {
		t.Fatalf("padded(%d) made %d bytes, valid %v", n, len(b), json.Valid(b))
	}
	return b
}

// TestBodySizeLimit: a body of up to MaxBytes is read whole, with or
// without a Content-Length, at sizes below, at and above the size of the
// receiver's pooled buffer (4 KiB); one byte more is 413. Each request goes
// to a new server, so that it starts from a fresh pooled buffer.
func TestBodySizeLimit(t *testing.T) {
	for _, max := range []int{1024, 4096, 10000} {
		for _, n := range []int{max - 1, max, max + 1} {
			want := http.StatusOK
			if n > max {
				want = http.StatusRequestEntityTooLarge
			}
			body := padded(t, n)
			for _, withLength := range []bool{true, false} {
				var r io.Reader = bytes.NewReader(body)
				if !withLength {
					r = chunked{r}
				}
				h := newInProcess(t, intake.Config{MaxBytes: int64(max)}, &stubPublisher{}, nil, nil)
				req := httptest.NewRequest(http.MethodPost, "/callbacks/"+testToken, r)
				req.Header.Set("Content-Type", "application/json")
				req.ContentLength = int64(n)
				if !withLength {
					req.ContentLength = -1
				}
				if w := serveWithin(t, h, req); w.Code != want {
					t.Errorf("MaxBytes %d, %d-byte body (Content-Length sent: %v) = %d %s; want %d", max, n, withLength, w.Code, w.Body, want)
				}
			}
		}
	}
}

// TestHandlerAllocationBudget pins what the pooled buffers and messages buy
// (BenchmarkHandleCallback): an accepted callback served in process costs
// at most 16 allocations, the response recorder's included.
func TestHandlerAllocationBudget(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers at random")
	}
	h := newInProcess(t, intake.Config{}, &stubPublisher{}, nil, nil)
	body := bytes.NewReader(goodOrder)
	req := httptest.NewRequest(http.MethodPost, "/callbacks/"+testToken, body)
	req.Header.Set("Content-Type", "application/json")
	var bad string
	got := testing.AllocsPerRun(200, func() {
		body.Reset(goodOrder)
		req.Body = io.NopCloser(body)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			bad = w.Body.String()
		}
	})
	if bad != "" {
		t.Fatalf("POST good order: %s; want 200", bad)
	}
	if got > 16 {
		t.Errorf("an accepted callback allocates %.0f times; want at most 16", got)
	}
}

// TestNewNamesTheBadSecret: a bad signing secret is named by its position
// (1-based), never quoted.
func TestNewNamesTheBadSecret(t *testing.T) {
	for _, secrets := range [][]string{{secretNew, "plainsecret"}, {secretOld, "whsec_%%%notbase64"}} {
		_, err := intake.New(intake.Config{Token: testToken, SigningSecrets: secrets}, &stubPublisher{},
			func(context.Context) error { return nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil || !strings.Contains(err.Error(), "secret #2:") {
			t.Errorf("New with secrets [good, %q] = %v; want an error naming secret #2", secrets[1], err)
		}
	}
}

// TestReadyzGivesTheCheckADeadline: the readiness check runs with a
// deadline that leaves it time to answer (2 s) and cannot hang /readyz.
func TestReadyzGivesTheCheckADeadline(t *testing.T) {
	var left time.Duration
	var ctxErr error
	ready := func(ctx context.Context) error {
		deadline, ok := ctx.Deadline()
		if !ok {
			return errors.New("no deadline")
		}
		left, ctxErr = time.Until(deadline), ctx.Err()
		return ctxErr
	}
	h := newInProcess(t, intake.Config{}, &stubPublisher{}, ready, nil)
	w := serveWithin(t, h, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if w.Code != http.StatusOK || ctxErr != nil || left <= time.Second || left > 2*time.Second {
		t.Errorf("/readyz = %d %s; the check had %s left (ctx err %v); want 200 and between 1 s and 2 s", w.Code, w.Body, left, ctxErr)
	}
}

// logRecord is one captured log line.
type logRecord struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
	Code  string `json:"code"`
}

// logSink collects JSON log lines at every level.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *logSink) take(t *testing.T) []logRecord {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []logRecord
	for _, line := range strings.Split(strings.TrimSpace(s.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var r logRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	s.buf.Reset()
	return out
}

// funcPublisher is a Publisher made of a function.
type funcPublisher func(ctx context.Context, m *nats.Msg, msgID string) (events.Ack, error)

func (f funcPublisher) Publish(ctx context.Context, m *nats.Msg, msgID string) (events.Ack, error) {
	return f(ctx, m, msgID)
}

// TestLogLevelByOutcome: a bug (500) is logged as an error; a refusal, a
// failed publish (503) and a failed readiness check are not, each is logged
// at the level that says who has to act.
func TestLogLevelByOutcome(t *testing.T) {
	sink := &logSink{}
	logger := slog.New(slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var cancelReq context.CancelFunc
	var mode string
	pub := funcPublisher(func(ctx context.Context, m *nats.Msg, msgID string) (events.Ack, error) {
		switch mode {
		case "panic":
			panic("publisher bug")
		case "sender gone":
			cancelReq()
			return events.Ack{}, ctx.Err()
		case "nats down":
			return events.Ack{}, nats.ErrConnectionClosed
		}
		return events.Ack{Sequence: 1}, nil
	})
	ready := func(context.Context) error { return errors.New("stream unreachable") }
	h := newInProcess(t, intake.Config{}, pub, ready, logger)

	type want struct {
		level, msg, code string
	}
	for _, c := range []struct {
		name   string
		mode   string
		path   string
		status int
		logs   []want // in order; nothing else may be logged
	}{
		{"publisher panics", "panic", "/callbacks/" + testToken, 500, []want{
			{"ERROR", "panic in handler", ""}, {"ERROR", "request failed", intake.CodeInternal}}},
		{"nats down", "nats down", "/callbacks/" + testToken, 503, []want{
			{"WARN", "callback not stored; answering 503", ""}, {"DEBUG", "request rejected", intake.CodeUnavailable}}},
		{"sender gone during publish", "sender gone", "/callbacks/" + testToken, 503, []want{
			{"DEBUG", "sender went away during publish", ""}, {"DEBUG", "request rejected", intake.CodeUnavailable}}},
		// A refused push is a lost hint: warned about (at most once per 10 s).
		{"wrong token", "", "/callbacks/nope", 401, []want{{"WARN", "callback refused; the platform retries it in 30 minutes", intake.CodeUnauthorized}}},
		{"stored", "", "/callbacks/" + testToken, 200, []want{{"DEBUG", "callback stored", ""}}},
		{"not ready", "", "/readyz", 503, []want{{"DEBUG", "not ready", ""}, {"DEBUG", "request rejected", intake.CodeNotReady}}},
	} {
		mode = c.mode
		method := http.MethodPost
		var body io.Reader = bytes.NewReader(goodOrder)
		if c.path == "/readyz" {
			method, body = http.MethodGet, nil
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancelReq = cancel
		req := httptest.NewRequest(method, c.path, body).WithContext(ctx)
		req.Header.Set("Content-Type", "application/json")
		w := serveWithin(t, h, req)
		cancel()
		if w.Code != c.status {
			t.Errorf("%s: status %d %s; want %d", c.name, w.Code, w.Body, c.status)
		}
		var got []want
		for _, r := range sink.take(t) {
			got = append(got, want{r.Level, r.Msg, r.Code})
		}
		if len(got) != len(c.logs) {
			t.Errorf("%s: logged %v; want %v", c.name, got, c.logs)
			continue
		}
		for i := range got {
			if got[i] != c.logs[i] {
				t.Errorf("%s: logged %v; want %v", c.name, got, c.logs)
				break
			}
		}
	}
}

// TestAnnouncedBodyReadIntoOneBuffer: a body whose Content-Length is
// announced and larger than the pooled buffer is read into one buffer of
// its size, not grown step by step. Each run serves one request on a new
// server (a fresh pool); a 30,000-byte body may cost one allocation more
// than a 1,000-byte one. (Both stay under 32 KiB: a larger allocation can
// start a GC cycle, whose own allocations would be counted too.)
func TestAnnouncedBodyReadIntoOneBuffer(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers at random")
	}
	// The fewest of a few measurements: a GC cycle that happens to start
	// during one adds its own allocations.
	measure := func(size int) float64 {
		fewest := math.Inf(1)
		for range 5 {
			fewest = min(fewest, allocsServing(t, padded(t, size)))
		}
		return fewest
	}
	small, large := measure(1000), measure(30000)
	if large > small+1 {
		t.Errorf("a 30,000-byte body on a new server allocates %.0f times; a 1,000-byte one %.0f; want at most one more", large, small)
	}

	// The buffer goes back to the pool, and a body of the same size reuses
	// it: no allocation for the read at all.
	h := newInProcess(t, intake.Config{MaxBytes: 1 << 20}, &stubPublisher{}, nil, nil)
	serveSize := func(size int) func() {
		body := padded(t, size)
		return func() {
			req := httptest.NewRequest(http.MethodPost, "/callbacks/"+testToken, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				t.Fatalf("POST %d bytes: %d %s; want 200", size, w.Code, w.Body)
			}
		}
	}
	reuseSmall := testing.AllocsPerRun(50, serveSize(1000))
	reuseLarge := testing.AllocsPerRun(50, serveSize(30000))
	if reuseLarge > reuseSmall {
		t.Errorf("30,000-byte bodies in a row allocate %.0f times each; 1,000-byte ones %.0f; want no more", reuseLarge, reuseSmall)
	}
}

// allocsServing is the allocations of serving body once on a new server.
func allocsServing(t *testing.T, body []byte) float64 {
	t.Helper()
	var bad string
	allocs := testing.AllocsPerRun(10, func() {
		srv, err := intake.New(intake.Config{Token: testToken, MaxBytes: 1 << 20}, &stubPublisher{},
			func(context.Context) error { return nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			bad = err.Error()
			return
		}
		req := httptest.NewRequest(http.MethodPost, "/callbacks/"+testToken, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		srv.Handler().ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			bad = w.Body.String()
		}
	})
	if bad != "" {
		t.Fatalf("POST %d bytes: %s; want 200", len(body), bad)
	}
	return allocs
}

// TestSigningEnabled reports whether Standard Webhooks verification is on:
// cmd/receiver logs it at start-up.
func TestSigningEnabled(t *testing.T) {
	for _, secrets := range [][]string{nil, {secretNew}} {
		srv, err := intake.New(intake.Config{Token: testToken, SigningSecrets: secrets}, &stubPublisher{},
			func(context.Context) error { return nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := srv.SigningEnabled(), len(secrets) > 0; got != want {
			t.Errorf("SigningEnabled with %d secrets = %v; want %v", len(secrets), got, want)
		}
	}
}
