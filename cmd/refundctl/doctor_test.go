package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/doctor"
	"github.com/refundhub/refundhub/internal/platform"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// The platform credentials of the doctor tests; no output may contain the
// secret.
const (
	drKey    = "doctor-access-key-0001"
	drSecret = "doctor-secret-DO-NOT-PRINT-7c1e"
	drUser   = "2100007341207"
)

// platformStub is the sandbox over real HTTP, every request it gets recorded.
type platformStub struct {
	sb  *sandbox.Sandbox
	srv *httptest.Server
	mu  sync.Mutex
	got []string // "METHOD /path"
}

// startPlatform runs the sandbox with cfg (credentials filled in) and a
// manual seller, so nothing changes on a timer.
func startPlatform(t *testing.T, cfg sandbox.Config) *platformStub {
	t.Helper()
	cfg.AccessKey, cfg.AccessSecret, cfg.AutoCreate, cfg.Seed = drKey, drSecret, true, 7
	cfg.Seller = sandbox.SellerPolicy{Decision: sandbox.DecisionManual}
	sb, err := sandbox.New(cfg)
	if err != nil {
		t.Fatalf("sandbox.New: %v", err)
	}
	p := &platformStub{sb: sb}
	h := sb.Handler()
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/_sandbox/") {
			p.mu.Lock()
			p.got = append(p.got, r.Method+" "+r.URL.Path)
			p.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sb.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		p.srv.Close()
	})
	return p
}

func (p *platformStub) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.got...)
}

// admin calls the sandbox's admin API.
func (p *platformStub) admin(t *testing.T, method, path string, body, out any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, p.srv.URL+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s = %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
}

// account is what the tests seed: a Taobao order with one refund in each
// phase (one sub-order each, 123.45 yuan apiece so that yuan shows), and a
// 1688 refund.
type account struct {
	taobaoOrder string
	taobaoByPhase map[platform.Phase]string // refund id
	freeSubOrder  string                    // a sub-order without a refund, to render
	alibabaOrder  string
	alibabaRefund string
}

func seedAccount(t *testing.T, p *platformStub) account {
	t.Helper()
	a := account{taobaoOrder: "3305075341149134260", taobaoByPhase: map[platform.Phase]string{},
		freeSubOrder: "3305075341149134269", alibabaOrder: "3305075341149134300"}
	subs := []sandbox.SubOrder{}
	for i := range platform.Phases() {
		subs = append(subs, sandbox.SubOrder{SubOrderID: fmt.Sprintf("33050753411491342%02d", 61+i), Amount: 12345, Quantity: 1, Title: "item"})
	}
	subs = append(subs, sandbox.SubOrder{SubOrderID: a.freeSubOrder, Amount: 12345, Quantity: 1, Title: "item"})
	p.admin(t, http.MethodPost, "/_sandbox/orders", sandbox.CreateOrderRequest{Platform: sandbox.PlatformTaobao, OrderID: a.taobaoOrder, SubOrders: subs}, nil)
	created := time.Now().Add(-time.Hour)
	for i, ph := range platform.Phases() {
		ref, err := p.sb.SeedRefund(sandbox.RefundSeed{Platform: sandbox.PlatformTaobao, OrderID: a.taobaoOrder, SubOrderID: subs[i].SubOrderID,
			Status: string(ph), CreatedAt: created})
		if err != nil {
			t.Fatalf("seed %s: %v", ph, err)
		}
		a.taobaoByPhase[ph] = ref.RefundID
	}
	p.admin(t, http.MethodPost, "/_sandbox/orders", sandbox.CreateOrderRequest{Platform: sandbox.Platform1688, OrderID: a.alibabaOrder,
		SubOrders: []sandbox.SubOrder{{SubOrderID: "3305075341149134301", Amount: 12345, Quantity: 1, Title: "item"}}}, nil)
	ref, err := p.sb.SeedRefund(sandbox.RefundSeed{Platform: sandbox.Platform1688, OrderID: a.alibabaOrder, Status: string(platform.PhaseWaitBuyerReturn), CreatedAt: created})
	if err != nil {
		t.Fatalf("seed 1688: %v", err)
	}
	a.alibabaRefund = ref.RefundID
	return a
}

// taobaoArgs and alibabaArgs give doctor every flag.
func (a account) taobaoArgs(extra ...string) []string {
	return append([]string{"doctor", "--platform", "taobao", "--order", a.taobaoOrder, "--sub-order", a.freeSubOrder,
		"--refund", a.taobaoByPhase[platform.PhaseWaitBuyerReturn]}, extra...)
}

func (a account) alibabaArgs(extra ...string) []string {
	return append([]string{"doctor", "--platform", "1688", "--order", a.alibabaOrder, "--refund", a.alibabaRefund}, extra...)
}

// upstreamVars is the worker's platform configuration for p, with the
// profile file when not empty.
func (p *platformStub) upstreamVars(profile string) map[string]string {
	return map[string]string{"UPSTREAM_BASE_URL": p.srv.URL, "UPSTREAM_ACCESS_KEY": drKey, "UPSTREAM_ACCESS_SECRET": drSecret,
		"UPSTREAM_USER_ID": drUser, "UPSTREAM_PROFILE": profile, "UPSTREAM_RATE_LIMIT": "1000", "UPSTREAM_RATE_BURST": "100"}
}

// runRefundctl runs refundctl in-process with vars as the environment and
// checks that no output holds the platform secret.
func runRefundctl(t *testing.T, vars map[string]string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	err := run(ctx, args, func(k string) string { return vars[k] }, &out, &errb)
	r := result{stdout: out.String(), stderr: errb.String(), err: err}
	for _, s := range []string{r.stdout, r.stderr, r.line()} {
		if strings.Contains(s, drSecret) {
			t.Fatalf("refundctl %v: output contains the platform secret", args)
		}
	}
	return r
}

// doctorJSON runs doctor with --json, checks the exit status and decodes the report.
func doctorJSON(t *testing.T, vars map[string]string, wantExit int, args ...string) doctor.Report {
	t.Helper()
	r := runRefundctl(t, vars, append(args, "--json")...)
	if r.code() != wantExit {
		t.Fatalf("refundctl %s: exit %d (%s); want %d\n%s", strings.Join(args, " "), r.code(), r.line(), wantExit, r.stdout)
	}
	var rep doctor.Report
	decodeJSON(t, r.stdout, &rep)
	return rep
}

func checkOf(t *testing.T, rep doctor.Report, key string) doctor.Check {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Key == key {
			return c
		}
	}
	t.Fatalf("report has no check %s", key)
	return doctor.Check{}
}

// TestDoctorConfirmsTheDefaultSandbox: the sandbox speaks the built-in
// profile, so with every id given every guess doctor can observe is
// confirmed, and the patch changes nothing.
func TestDoctorConfirmsTheDefaultSandbox(t *testing.T) {
	p := startPlatform(t, sandbox.Config{TaobaoNumericStatus: true})
	a := seedAccount(t, p)
	vars := p.upstreamVars("")

	tb := doctorJSON(t, vars, 0, a.taobaoArgs()...)
	for _, c := range tb.Checks {
		if c.Status != doctor.Confirmed {
			t.Errorf("taobao %s: %s (%s %s); want confirmed", c.Key, c.Status, c.Seen, c.Detail)
		}
	}
	if tb.Result != doctor.ResultConfirmed || len(tb.Changes) != 0 || len(tb.Decisions) != 0 || tb.PatchError != "" {
		t.Errorf("taobao result %s, changes %v, decisions %v, patch error %q; want confirmed and nothing to change", tb.Result, tb.Changes, tb.Decisions, tb.PatchError)
	}
	for _, ph := range platform.Phases() {
		c := checkOf(t, tb, "taobao.refund_status."+string(ph))
		// Each phase is seen by name (the list) and by number (the v2 query).
		if !strings.Contains(c.Seen, fmt.Sprintf("code %d", platform.Default().TaobaoCode(ph))) || !strings.Contains(c.Seen, platform.Default().TaobaoName(ph)) {
			t.Errorf("%s seen %q; want its name and its code", c.Key, c.Seen)
		}
	}

	ab := doctorJSON(t, vars, 0, a.alibabaArgs()...)
	for _, c := range ab.Checks {
		wantUnseen := strings.HasPrefix(c.Key, "alibaba.refund_status.") && c.Key != "alibaba.refund_status.wait_buyer_return"
		if wantUnseen && c.Status != doctor.NotObservable || !wantUnseen && c.Status != doctor.Confirmed {
			t.Errorf("1688 %s: %s (%s %s); want %s", c.Key, c.Status, c.Seen, c.Detail, map[bool]string{true: "not observable (one refund, one phase)", false: "confirmed"}[wantUnseen])
		}
	}
	if len(ab.UnknownFields)+len(tb.UnknownFields) != 0 {
		t.Errorf("unknown fields %v %v; want none (the sandbox follows the seeds the client's types follow)", tb.UnknownFields, ab.UnknownFields)
	}

	// The human report says the same, and the patch is a valid profile.
	r := runRefundctl(t, vars, a.taobaoArgs()...)
	if r.err != nil || !strings.Contains(r.stdout, "Result: confirmed:") || !strings.Contains(r.stdout, "signature") ||
		!strings.Contains(r.stdout, "Doctor changed nothing.") {
		t.Errorf("text report (err %v):\n%s", r.err, r.stdout)
	}
	if _, err := platform.Parse([]byte(tb.Patch), "patch"); err != nil {
		t.Errorf("patch does not parse: %v\n%s", err, tb.Patch)
	}
}
