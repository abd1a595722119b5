package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/apiclient"
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
// phase (one sub-order each, 123.45 yuan apiece so that yuan shows), and
// one 1688 order and refund per phase.
type account struct {
	taobaoOrder    string
	taobaoByPhase  map[platform.Phase]string // refund id
	freeSubOrder   string                    // a sub-order without a refund, to render
	alibabaOrder   string                    // the first 1688 order
	alibabaByPhase map[platform.Phase]string
}

func seedAccount(t *testing.T, p *platformStub) account {
	t.Helper()
	a := account{taobaoOrder: "3305075341149134260", taobaoByPhase: map[platform.Phase]string{},
		freeSubOrder: "3305075341149134269", alibabaOrder: "3305075341149134300", alibabaByPhase: map[platform.Phase]string{}}
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
	for i, ph := range platform.Phases() {
		order := fmt.Sprintf("33050753411491343%02d", i)
		p.admin(t, http.MethodPost, "/_sandbox/orders", sandbox.CreateOrderRequest{Platform: sandbox.Platform1688, OrderID: order,
			SubOrders: []sandbox.SubOrder{{SubOrderID: order[:17] + "99", Amount: 12345, Quantity: 1, Title: "item"}}}, nil)
		ref, err := p.sb.SeedRefund(sandbox.RefundSeed{Platform: sandbox.Platform1688, OrderID: order, Status: string(ph), CreatedAt: created})
		if err != nil {
			t.Fatalf("seed 1688 %s: %v", ph, err)
		}
		a.alibabaByPhase[ph] = ref.RefundID
	}
	return a
}

// taobaoArgs and alibabaArgs give doctor every flag.
func (a account) taobaoArgs(extra ...string) []string {
	return append([]string{"doctor", "--platform", "taobao", "--order", a.taobaoOrder, "--sub-order", a.freeSubOrder,
		"--refund", a.taobaoByPhase[platform.PhaseWaitBuyerReturn]}, extra...)
}

func (a account) alibabaArgs(extra ...string) []string {
	args := []string{"doctor", "--platform", "1688", "--order", a.alibabaOrder}
	for _, ph := range platform.Phases() {
		args = append(args, "--refund", a.alibabaByPhase[ph])
	}
	return append(args, extra...)
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
		if c.Status != doctor.Confirmed {
			t.Errorf("1688 %s: %s (%s %s); want confirmed", c.Key, c.Status, c.Seen, c.Detail)
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

// anotherPlatform is the profile of a platform that differs from every
// guess doctor can see (the file says how).
const anotherPlatform = "../../internal/doctor/testdata/another_platform.toml"

func truthProfile(t *testing.T) *platform.Profile {
	t.Helper()
	p, err := platform.Load(anotherPlatform)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDoctorFindsAnotherPlatform is the first day on a platform whose facts
// differ from the profile's guesses: doctor reports each difference, its
// patch (with the two decisions it leaves to the operator made) validates,
// and with it doctor confirms everything and the client agrees with the
// platform where the built-in profile does not.
func TestDoctorFindsAnotherPlatform(t *testing.T) {
	p := startPlatform(t, sandbox.Config{Profile: truthProfile(t), TaobaoNumericStatus: true, NumericDevelopID: true,
		Faults: sandbox.Faults{TaobaoListOmitTotal: true}})
	a := seedAccount(t, p)
	dir := t.TempDir()

	// Day one: the built-in profile.
	tb := doctorJSON(t, p.upstreamVars(""), exitContradicted, a.taobaoArgs()...)
	want := map[string]doctor.Status{
		"signature": doctor.Contradicted, "envelope.success_msg": doctor.Contradicted, "error_codes.not_found": doctor.Contradicted,
		"endpoints.taobao_render": doctor.Contradicted, "times.layouts": doctor.Contradicted, "amounts.taobao": doctor.Confirmed,
		"taobao.list.items_field": doctor.Contradicted, "taobao.list.total_field": doctor.NotObservable,
		"wire.developId": doctor.Confirmed, "envelope.success_code": doctor.Confirmed, "endpoints.taobao_query": doctor.Confirmed,
		"taobao.refund_type": doctor.NotObservable, "taobao.goods_status": doctor.NotObservable,
	}
	for _, ph := range platform.Phases() {
		want["taobao.refund_status."+string(ph)] = doctor.Contradicted
	}
	for key, status := range want {
		if c := checkOf(t, tb, key); c.Status != status {
			t.Errorf("day one, %s: %s (seen %q, %s); want %s", key, c.Status, c.Seen, c.Detail, status)
		}
	}
	for key, seen := range map[string]string{"wire.developId": "number", "taobao.list.total_field": "no total",
		"endpoints.taobao_render": "not found", "times.layouts": "+08:00"} {
		if c := checkOf(t, tb, key); !strings.Contains(c.Seen+c.Detail, seen) {
			t.Errorf("day one, %s: seen %q, detail %q; want it to mention %q", key, c.Seen, c.Detail, seen)
		}
	}
	changes := map[string]string{}
	for _, ch := range tb.Changes {
		b, _ := json.Marshal(ch.Value)
		changes[ch.Key] = string(b)
	}
	for key, value := range map[string]string{
		"signature.letter_case": `"lower"`, "envelope.success_msg": `"OK"`, "taobao.list.items_field": `"rows"`,
		"times.layouts":                          `["2006-01-02T15:04:05Z07:00","2006-01-02 15:04:05"]`,
		"taobao.refund_status.wait_seller_agree": `{"code":10,"names":["WaitSellerAgree","WAIT_SELLER_AGREE"]}`,
		"taobao.refund_status.closed":            `{"code":14,"names":["CLOSED"]}`, // the name matched but for case
	} {
		if changes[key] != value {
			t.Errorf("day one, change %s = %s; want %s", key, changes[key], value)
		}
	}
	decisions := map[string]string{}
	for _, d := range tb.Decisions {
		decisions[d.Key] = d.Suggestion
	}
	if _, ok := decisions["endpoints.taobao_render.path"]; !ok || !strings.Contains(decisions["error_codes.not_found"], "40400") || len(decisions) != 2 {
		t.Errorf("day one decisions %v; want the render path and the not-found code 40400, nothing else", decisions)
	}
	if tb.PatchError != "" {
		t.Fatalf("day one patch does not validate: %s\n%s", tb.PatchError, tb.Patch)
	}
	// The human report ends with the same patch (docs/first-day.md cuts it
	// out with sed).
	text := runRefundctl(t, p.upstreamVars(""), a.taobaoArgs()...)
	if _, patch, ok := strings.Cut(text.stdout, "\nProfile patch (save it as the UPSTREAM_PROFILE file; see docs/first-day.md):\n\n"); !ok || patch != tb.Patch {
		t.Errorf("the text report's patch differs from --json's:\n%s\n---\n%s", patch, tb.Patch)
	}

	// The operator decides: the render's real path (from the platform's
	// documentation), and that 40400 means not found.
	patch := decide(t, tb.Patch, map[string]string{
		`# endpoints.taobao_render.path = "<the real path>"`: `endpoints.taobao_render.path = "/open/order/refund/form/render"`,
		`# error_codes.not_found = [40400, 4041]`:            `error_codes.not_found = [40400, 4041]`,
	})
	patchFile := filepath.Join(dir, "taobao.toml")
	writeFile(t, patchFile, patch)

	// 1688 with that profile: only its statuses and amounts still differ
	// (and so the client cannot read a refund's yuan yet).
	ab := doctorJSON(t, p.upstreamVars(patchFile), exitContradicted, a.alibabaArgs()...)
	for _, c := range ab.Checks {
		wantBad := strings.HasPrefix(c.Key, "alibaba.refund_status.") || c.Key == "amounts.alibaba" || c.Key == "decode.alibaba_refund_info"
		if wantBad != (c.Status == doctor.Contradicted) || c.Status == doctor.NotObservable {
			t.Errorf("1688 with the Taobao patch, %s: %s (%s %s); want %s", c.Key, c.Status, c.Seen, c.Detail,
				map[bool]string{true: "contradicted", false: "confirmed"}[wantBad])
		}
	}
	if len(ab.Decisions) != 0 || ab.PatchError != "" {
		t.Fatalf("1688 decisions %v, patch error %q; want none", ab.Decisions, ab.PatchError)
	}
	if c := checkOf(t, ab, "amounts.alibaba"); !strings.Contains(c.Seen, "123.45") {
		t.Errorf("1688 amounts seen %q; want the yuan amount 123.45", c.Seen)
	}
	patchFile = filepath.Join(dir, "profile.toml")
	writeFile(t, patchFile, ab.Patch)

	// With the final profile every observable guess is confirmed.
	vars := p.upstreamVars(patchFile)
	for _, args := range [][]string{a.taobaoArgs(), a.alibabaArgs()} {
		rep := doctorJSON(t, vars, 0, args...)
		for _, c := range rep.Checks {
			if c.Status == doctor.Contradicted || c.Status == doctor.NotObservable && c.Key != "taobao.list.total_field" {
				t.Errorf("final profile, %s %s: %s (%s %s)", args[2], c.Key, c.Status, c.Seen, c.Detail)
			}
		}
	}

	// And the client, given the patch, agrees with the platform; with the
	// built-in profile it does not.
	final, err := platform.Parse(readFile(t, patchFile), "final")
	if err != nil {
		t.Fatal(err)
	}
	clientAgrees(t, p, a, final)
	c := newDoctorClient(t, p, nil)
	if _, err := c.TaobaoQuery(context.Background(), a.taobaoByPhase[platform.PhaseSuccess]); apiclient.ErrorClass(err) != platform.ClassAuthBadSignature {
		t.Errorf("with the built-in profile: %v; want the signature rejected", err)
	}
}

// clientAgrees reads every seeded refund through the client with prof and
// checks what the platform says: phases, amounts in fen, times, the list,
// the render at its real path.
func clientAgrees(t *testing.T, p *platformStub, a account, prof *platform.Profile) {
	t.Helper()
	ctx := context.Background()
	c := newDoctorClient(t, p, prof)
	for _, ph := range platform.Phases() {
		id := a.taobaoByPhase[ph]
		q, err := c.TaobaoQuery(ctx, id)
		if err != nil {
			t.Fatalf("TaobaoQuery(%s): %v", id, err)
		}
		ro := q.Data.RefundOrderAggregate.RefundOrder
		if ro.Phase != ph || ro.RefundFee != 12345 {
			t.Errorf("TaobaoQuery(%s) phase %q (status %s), fee %d; want %s and 12345 fen", id, ro.Phase, ro.RefundStatus, ro.RefundFee, ph)
		}
		if !ph.Terminal() {
			if _, err := prof.ParseTime(ro.TimeoutDate); err != nil {
				t.Errorf("TaobaoQuery(%s) timeoutDate: %v", id, err)
			}
		}
		info, err := c.AlibabaRefundInfo(ctx, a.alibabaByPhase[ph])
		if err != nil || info.Data.Phase != ph || info.Data.ApplyPayment != 12345 {
			t.Errorf("AlibabaRefundInfo(%s) = phase %q (status %s), applyPayment %d, %v; want %s and 12345 fen",
				a.alibabaByPhase[ph], info.Data.Phase, info.Data.Status, info.Data.ApplyPayment, err, ph)
		}
	}
	list, err := c.TaobaoList(ctx, apiclient.ListRefundsRequest{PurchaseOrderID: a.taobaoOrder, PageNo: 1, PageSize: 20})
	if err != nil || len(list.Data.List) != len(platform.Phases()) || list.Data.HasTotal {
		t.Errorf("TaobaoList = %d items, total given %v, %v; want 6 items and no total", len(list.Data.List), list.Data.HasTotal, err)
	}
	for _, item := range list.Data.List {
		if item.RefundOrder.Phase == "" {
			t.Errorf("listed refund %s status %s: no phase", item.RefundOrder.RefundID, item.RefundOrder.RefundStatus)
		}
	}
	render, err := c.TaobaoRender(ctx, apiclient.RenderRequest{SubOrderID: a.freeSubOrder, RefundType: prof.Taobao.RefundType.RefundOnly,
		GoodsStatus: prof.Taobao.GoodsStatus.NotShipped})
	if err != nil || render.Data.RefundOrderTemplate.MaxRefundFee.MaxRefundFee != 12345 {
		t.Errorf("TaobaoRender = %+v, %v; want a form with 12345 fen at most", render.Data.RefundOrderTemplate.MaxRefundFee, err)
	}
}

func newDoctorClient(t *testing.T, p *platformStub, prof *platform.Profile) *apiclient.Client {
	t.Helper()
	c, err := apiclient.New(apiclient.Config{BaseURL: p.srv.URL, AccessKey: drKey, AccessSecret: drSecret, UserID: drUser,
		Profile: prof, RateLimit: 1000, Retry: apiclient.RetryPolicy{MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// decide makes the operator's decisions in a patch: each commented line
// replaced by its completed form.
func decide(t *testing.T, patch string, lines map[string]string) string {
	t.Helper()
	for from, to := range lines {
		if !strings.Contains(patch, from+"\n") {
			t.Fatalf("patch lacks the line %q:\n%s", from, patch)
		}
		patch = strings.Replace(patch, from+"\n", to+"\n", 1)
	}
	if _, err := platform.Parse([]byte(patch), "decided"); err != nil {
		t.Fatalf("the patch with the operator's decisions does not validate: %v\n%s", err, patch)
	}
	return patch
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDoctorCallsOnlyReadOnlyEndpoints: with every flag, on either
// platform, and while it tries signature variants and meets a moved path,
// doctor sends requests only to endpoints without side effects (and to the
// one unknown path it asks for on purpose). The platform's own counters and
// every refund it holds agree: nothing was submitted, cancelled, shipped or
// messaged.
func TestDoctorCallsOnlyReadOnlyEndpoints(t *testing.T) {
	truth := truthProfile(t)
	for _, tc := range []struct {
		name string
		cfg  sandbox.Config
	}{
		{"built-in profile", sandbox.Config{TaobaoNumericStatus: true}},
		{"another platform", sandbox.Config{Profile: truth, TaobaoNumericStatus: true, NumericDevelopID: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startPlatform(t, tc.cfg)
			a := seedAccount(t, p)
			refunds := map[string]json.RawMessage{}
			for _, byPhase := range []map[platform.Phase]string{a.taobaoByPhase, a.alibabaByPhase} {
				for _, id := range byPhase {
					var raw json.RawMessage
					p.admin(t, http.MethodGet, "/_sandbox/refunds/"+id, nil, &raw)
					refunds[id] = raw
				}
			}
			vars := p.upstreamVars("")
			for _, args := range [][]string{a.taobaoArgs(), a.taobaoArgs("--json"), a.alibabaArgs(), a.alibabaArgs("--json"),
				{"doctor", "--platform", "taobao"}, {"doctor", "--platform", "1688", "--order", a.alibabaOrder}} {
				if r := runRefundctl(t, vars, args...); r.code() != 0 && r.code() != exitContradicted {
					t.Fatalf("refundctl %s: exit %d (%s)", strings.Join(args, " "), r.code(), r.line())
				}
			}

			got := p.requests()
			if len(got) < 20 {
				t.Fatalf("the platform got %d requests; want doctor's calls", len(got))
			}
			for _, req := range got {
				method, path, _ := strings.Cut(req, " ")
				if path == apiclient.UnknownPath {
					continue
				}
				e, ok := endpointAt(platform.Default(), method, path)
				if !ok || e.SideEffect() {
					t.Errorf("doctor sent %s: endpoint %q (known %v); want only endpoints without side effects", req, e, ok)
				}
			}
			st := p.sb.Stats()
			for name, n := range st.APICalls {
				if e := platform.Endpoint(name); e.SideEffect() {
					t.Errorf("the platform counted %d calls of %s, which has side effects", n, name)
				}
			}
			if len(st.RefundSubmissions)+len(st.ReturnLogisticsSubmissions)+len(st.Cancels) != 0 || st.DuplicateSubmissions != 0 {
				t.Errorf("platform stats %+v; want no submission, return or cancel", st)
			}
			for id, before := range refunds {
				var after json.RawMessage
				p.admin(t, http.MethodGet, "/_sandbox/refunds/"+id, nil, &after)
				if !bytes.Equal(before, after) {
					t.Errorf("refund %s changed:\nbefore %s\nafter  %s", id, before, after)
				}
			}
		})
	}
}

// endpointAt finds the profile endpoint a request went to.
func endpointAt(p *platform.Profile, method, path string) (platform.Endpoint, bool) {
	for _, e := range platform.AllEndpoints() {
		f := p.Endpoint(e)
		if f.Method != method {
			continue
		}
		prefix, suffix, hasID := strings.Cut(f.Path, "{refundId}")
		if !hasID && path == f.Path ||
			hasID && len(path) > len(prefix)+len(suffix) && strings.HasPrefix(path, prefix) && strings.HasSuffix(path, suffix) {
			return e, true
		}
	}
	return "", false
}
