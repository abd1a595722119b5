package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/testenv/syncbuf"
)

// lockedBuffer is a log and output sink the test reads while it is written.
type lockedBuffer = syncbuf.Buffer

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-poll.C:
		}
	}
}

// testEnviron is the environment the stack tests give devstack: what the go
// command and cgo need to build (PATH, HOME, TMPDIR, GO*, CGO_*, CC, XDG_*,
// proxies) and nothing that configures the product, so a NATS_URL or
// LOG_LEVEL in the developer's shell cannot reach the stack under test.
func testEnviron() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "PATH", k == "HOME", k == "TMPDIR", k == "CC", k == "CXX",
			strings.HasPrefix(k, "GO"), strings.HasPrefix(k, "CGO_"), strings.HasPrefix(k, "XDG_"),
			strings.HasSuffix(strings.ToUpper(k), "_PROXY"):
			env = append(env, kv)
		}
	}
	return env
}

// stack is one devstack run started the way the README's first command does.
type stack struct {
	out    *lockedBuffer
	cancel context.CancelFunc
	done   chan error
}

// startStack runs devstack with args and testEnviron plus extra (KEY=VALUE).
func startStack(t *testing.T, args []string, extra ...string) *stack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &stack{out: &lockedBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- run(ctx, args, append(testEnviron(), extra...), s.out, s.out) }()
	waitUntil(t, 5*time.Minute, "devstack ready", func() bool {
		select {
		case err := <-s.done:
			t.Fatalf("devstack exited before ready: %v\n%s", err, s.out.String())
		default:
		}
		return strings.Contains(s.out.String(), "devstack: ready.")
	})
	return s
}

func (s *stack) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("devstack run returned %v\n%s", err, s.out.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("devstack did not stop\n%s", s.out.String())
	}
	if !strings.Contains(s.out.String(), "devstack: nats stopped") {
		t.Errorf("devstack did not stop NATS last:\n%s", s.out.String())
	}
}

func streamMsgs(t *testing.T, natsURL string) uint64 {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "CALLBACKS")
	if err != nil {
		t.Fatalf("stream CALLBACKS: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestStackEndToEnd runs the whole stack as `go run ./cmd/devstack` does,
// sends a callback from the sandbox through the receiver into JetStream,
// stops it with nothing lost, and starts it again on the same data.
func TestStackEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every component; skipped with -short")
	}
	data := t.TempDir()
	natsPort := freePort(t)
	sandboxAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	receiverAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	metricsAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	consoleAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	args := []string{"devstack", "-data", data, "-nats-port", strconv.Itoa(natsPort),
		"-sandbox-addr", sandboxAddr, "-receiver-addr", receiverAddr, "-worker-metrics-addr", metricsAddr,
		"-console-addr", consoleAddr}
	natsURL := "nats://127.0.0.1:" + strconv.Itoa(natsPort)

	// A component's variable in devstack's environment reaches it.
	const reason = "refused-by-the-stack-test"
	s := startStack(t, args, "SANDBOX_SELLER_REFUSE_REASON="+reason)
	var seller struct {
		RefuseReason string `json:"refuse_reason"`
	}
	getJSON(t, "http://"+sandboxAddr+"/_sandbox/seller", &seller)
	if seller.RefuseReason != reason {
		t.Errorf("sandbox refuse reason = %q; want %q from devstack's environment", seller.RefuseReason, reason)
	}
	secrets, err := os.ReadFile(filepath.Join(data, "devstack.env"))
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]string{}
	for _, line := range strings.Split(string(secrets), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			stored[k] = v
		}
	}
	for _, k := range []string{"UPSTREAM_ACCESS_SECRET", "CONSOLE_SESSION_KEY"} {
		if v := stored[k]; v == "" || strings.Contains(s.out.String(), v) {
			t.Errorf("devstack.env %s = %q; want a value, never in devstack's output", k, v)
		}
	}
	// The development account's password and API token are printed once,
	// in devstack's summary, and in no component's log; the password opens
	// a session on the console's login page.
	token, password := stored["CONSOLE_TOKEN"], stored["CONSOLE_PASSWORD"]
	if n := strings.Count(s.out.String(), token); token == "" || n != 1 {
		t.Errorf("devstack output holds the console token %d times; want once (devstack.env CONSOLE_TOKEN = %q)", n, token)
	}
	if n := strings.Count(s.out.String(), password); password == "" || n != 1 {
		t.Errorf("devstack output holds the console password %d times; want once (devstack.env CONSOLE_PASSWORD = %q)", n, password)
	}
	if !strings.Contains(s.out.String(), "log in as dev (operator) with password "+password) {
		t.Errorf("devstack output does not say how to log in:\n%s", s.out.String())
	}
	if code := postLogin(t, consoleAddr, "dev", password); code != http.StatusSeeOther {
		t.Errorf("console login as dev with the printed password = %d; want 303 (a session)", code)
	}
	if !strings.Contains(s.out.String(), "console   http://"+consoleAddr) {
		t.Errorf("devstack output does not print the console's URL http://%s:\n%s", consoleAddr, s.out.String())
	}
	if ids := consoleAnswers(t, consoleAddr, token); len(ids) != 0 {
		t.Errorf("console lists cases %v; want none (none was requested)", ids)
	}

	// The documentation's Taobao example orders hold their sub-orders on
	// the sandbox: made on first use from a sub-order alone, the order took
	// the sub-order's id, and the walkthrough's case named another.
	for _, o := range exampleOrders {
		if !holds(context.Background(), http.DefaultClient, "http://"+sandboxAddr, o) {
			t.Errorf("the sandbox's Taobao order %s does not hold the examples' sub-order %s", o.order, o.subOrder)
		}
	}
	// An admin-created order makes the sandbox push ORDER_CREATE to the
	// receiver (beyond the example orders' pushes, counted first).
	delivered := func() int {
		r, err := http.Get("http://" + sandboxAddr + "/_sandbox/stats")
		if err != nil {
			return -1
		}
		defer r.Body.Close()
		var st struct {
			Callbacks struct{ Delivered, Pending int } `json:"callbacks"`
		}
		if json.NewDecoder(r.Body).Decode(&st) != nil || st.Callbacks.Pending > 0 {
			return -1 // the example orders' pushes are not all in yet
		}
		return st.Callbacks.Delivered
	}
	var before int
	waitUntil(t, time.Minute, "the example orders' pushes to be delivered", func() bool { before = delivered(); return before >= 0 })
	msgsBefore := streamMsgs(t, natsURL)
	resp, err := http.Post("http://"+sandboxAddr+"/_sandbox/orders", "application/json",
		strings.NewReader(`{"platform":"1688","order_id":"3305075341149134260","amount":10000}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		t.Fatalf("create order: HTTP %d", resp.StatusCode)
	}
	waitUntil(t, time.Minute, "the ORDER_CREATE push to be delivered", func() bool { return delivered() > before })
	if n := streamMsgs(t, natsURL); n <= msgsBefore {
		t.Fatalf("CALLBACKS holds %d messages after a delivered push; want more than the %d before it", n, msgsBefore)
	}
	s.stop(t)
	first := s.out.String()

	// A second run reuses the data: the stored callback and the secrets are still there.
	s2 := startStack(t, args)
	defer s2.stop(t)
	if strings.Contains(s2.out.String(), "generated development secrets") {
		t.Error("second run generated new secrets; want the stored ones reused")
	}
	// The same login works on the restarted stack.
	if !strings.Contains(s2.out.String(), token) || !strings.Contains(s2.out.String(), password) {
		t.Errorf("second run does not print the stored console password and token; first run:\n%s\nsecond:\n%s", first, s2.out.String())
	}
	consoleAnswers(t, consoleAddr, token)
	if code := postLogin(t, consoleAddr, "dev", password); code != http.StatusSeeOther {
		t.Errorf("console login as dev on the second run = %d; want 303", code)
	}
	if n := streamMsgs(t, natsURL); n < 1 {
		t.Fatalf("after restart CALLBACKS holds %d messages; want the stored callback kept", n)
	}
	// So does the sandbox's order (it forgot its orders and refunds, and
	// a case open across the restart parked refund_missing).
	r, err := http.Get("http://" + sandboxAddr + "/_sandbox/orders/3305075341149134260?platform=1688")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Errorf("after restart the sandbox answers GET of the order created before it with HTTP %d; want 200 (kept in data/sandbox-state.json)", r.StatusCode)
	}
}

// postLogin posts name and password to the console's login page and
// returns the status (303 with a session, 401 refused).
func postLogin(t *testing.T, addr, name, password string) int {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm("http://"+addr+"/login", url.Values{"name": {name}, "password": {password}})
	if err != nil {
		t.Fatalf("POST /login: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// consoleAnswers checks the console devstack started: /healthz without
// credentials, /api/v1/cases refused without a token and answered with the
// development token. It returns the ids of the cases listed.
func consoleAnswers(t *testing.T, addr, token string) []int64 {
	t.Helper()
	get := func(path, bearer string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.Bytes()
	}
	if code, _ := get("/healthz", ""); code != http.StatusOK {
		t.Errorf("console GET /healthz = %d; want 200", code)
	}
	if code, _ := get("/api/v1/cases", ""); code != http.StatusUnauthorized {
		t.Errorf("console GET /api/v1/cases without a token = %d; want 401", code)
	}
	code, body := get("/api/v1/cases?limit=1000", token)
	var list struct {
		Cases *[]struct {
			ID int64 `json:"id"`
		} `json:"cases"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &list) != nil || list.Cases == nil {
		t.Fatalf("console GET /api/v1/cases with the printed token = %d %s; want 200 and a case list", code, body)
	}
	var ids []int64
	for _, c := range *list.Cases {
		ids = append(ids, c.ID)
	}
	return ids
}
