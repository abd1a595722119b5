package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore/accountstest"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/console"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/reasons"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// Console API tokens of the remote tests; no output may contain them.
const (
	consoleOperatorToken = "console-op-token-SECRET-5d1e"
	consoleViewerToken   = "console-viewer-token-SECRET-88ab"
)

// startConsole runs the console over e's store and JetStream on loopback
// HTTP, with an operator (olga) and a viewer (vera) and its write handle
// for dead letters, and returns its URL.
func startConsole(e *env) string { return startConsoleWith(e, nil, nil) }

// startConsoleWrapped is startConsole with its handler wrapped by wrap
// (nil: not wrapped), to act when a request comes.
func startConsoleWrapped(e *env, wrap func(http.Handler) http.Handler) string {
	return startConsoleWith(e, wrap, nil)
}

// startConsoleWith is startConsoleWrapped with the console's reasons
// look-up (nil: a console without platform credentials).
func startConsoleWith(e *env, wrap func(http.Handler) http.Handler, lookup func(context.Context, reasons.Query) reasons.Result) string {
	t := e.t
	t.Helper()
	st, err := casestore.OpenReadOnly(context.Background(), e.dbPath, nil)
	if err != nil {
		t.Fatalf("OpenReadOnly: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	seedConsoleAccounts(t, e.dbPath)
	dl, err := casestore.OpenExisting(context.Background(), e.dbPath, nil)
	if err != nil {
		t.Fatalf("OpenExisting: %v", err)
	}
	t.Cleanup(func() { _ = dl.Close() })
	srv, err := console.New(console.Config{SessionKey: []byte(strings.Repeat("k", 32)), VerdictWait: time.Second},
		console.Deps{Store: st, DeadLetters: dl, JetStream: e.js, Ready: func(context.Context) error { return nil }, Logger: slog.New(slog.DiscardHandler),
			Reasons: lookup})
	if err != nil {
		t.Fatalf("console.New: %v", err)
	}
	h := srv.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return hs.URL
}

// seedConsoleAccounts stores the console accounts olga (operator) and
// vera (viewer) with their API tokens, as refundctl console users and
// tokens add would.
func seedConsoleAccounts(t *testing.T, dbPath string) {
	t.Helper()
	accountstest.AddAt(t, dbPath,
		accountstest.Account{Name: "olga", Password: "password-of-olga", Token: consoleOperatorToken, Role: casestore.RoleOperator},
		accountstest.Account{Name: "vera", Password: "password-of-vera", Token: consoleViewerToken, Role: casestore.RoleViewer})
}

// remoteRun runs refundctl with REFUNDHUB_URL and token set, and with
// DB_PATH and NATS_URL pointing nowhere, so that only the console can
// answer.
func (e *env) remoteRun(url, token string, args ...string) result {
	e.t.Helper()
	saved := maps.Clone(e.vars)
	defer func() { e.vars = saved }()
	e.vars = maps.Clone(saved)
	e.vars["REFUNDHUB_URL"], e.vars["REFUNDHUB_TOKEN"] = url, token
	e.vars["DB_PATH"], e.vars["NATS_URL"] = e.t.TempDir()+"/none.db", "nats://127.0.0.1:1"
	r := e.run(args...)
	for _, s := range []string{r.stdout, r.stderr, r.line()} {
		if strings.Contains(s, consoleOperatorToken) || strings.Contains(s, consoleViewerToken) {
			e.t.Fatalf("refundctl %v: output contains the console token", args)
		}
	}
	return r
}

// masked is refundctl's output with what differs from one case or
// command to the next (ids, case numbers, states at the verdict's moment,
// ages, times) replaced, so the two ways can be compared line by line.
func masked(s string) string {
	for _, m := range []struct{ re, to string }{
		{`cmd-[0-9a-f]{24}`, "CMD"},
		{`case \d+ is [a-z_]+`, "case N is S"},
		{`show \d+`, "show N"},
		{`--state [a-z_]+`, "--state S"},
		{`\b\d{19}\b`, "ORDER"},
	} {
		s = regexp.MustCompile(m.re).ReplaceAllString(s, m.to)
	}
	return s
}

// ages masks list's AGE and IDLE columns, which move with the clock.
var ages = regexp.MustCompile(`\b\d+(s|m|h\d\dm)\b`)

// TestRemoteMode runs refundctl against the console's API over real HTTP,
// with the console, worker and sandbox in-process and no DB_PATH or NATS
// of its own: request and ship print as they do on the host (one 1688
// return filed each way, the second under the console's account), list
// and show print the very same text and JSON, wait follows a case; bad
// flags are refused before anything is sent, the console's refusals are
// shown with their code, a viewer cannot act, and the host-only commands
// say REFUNDHUB_URL. No token appears in any output.
func TestRemoteMode(t *testing.T) {
	e := newEnv(t)
	startStack(e)
	url := startConsole(e)
	remote := func(args ...string) result { return e.remoteRun(url, consoleOperatorToken, args...) }

	request := func(order string) []string {
		return []string{"request", "--platform", "1688", "--order", order, "--type", "return", "--goods-status", "aftersaleBuyerReceived",
			"--reason", "七天无理由退货", "--amount", "9500", "--description", "no longer needed", "--wait", "20s"}
	}
	direct := e.run(request("3305075341149134270")...)
	viaConsole := remote(request("3305075341149134271")...)
	if direct.err != nil || viaConsole.err != nil {
		t.Fatalf("request: direct exit %d (%s), remote exit %d (%s)", direct.code(), direct.line(), viaConsole.code(), viaConsole.line())
	}
	if masked(viaConsole.stdout) != masked(direct.stdout) || !strings.Contains(direct.stdout, "applied: case") {
		t.Errorf("request through the console printed\n%s\nwant as on the host\n%s", viaConsole.stdout, direct.stdout)
	}
	idDirect, _, _ := strings.Cut(direct.stdout, "\n")
	idRemote, _, _ := strings.Cut(viaConsole.stdout, "\n")
	m := e.lastMsg(events.DefaultCommandStreamName, "commands.1688.request_refund.>")
	if c, err := refundflow.DecodeCommand(m.Data); err != nil || c.ID != idRemote || c.Operator != "olga" {
		t.Errorf("the request filed through the console = %+v, %v; want command %s by olga (the token's account)", c, err, idRemote)
	}

	for _, id := range []string{idDirect, idRemote} {
		if r := remote("wait", "--command", id, "--state", "waiting_return_shipment", "--deadline", "30s"); r.err != nil {
			t.Fatalf("remote wait --command %s: exit %d (%s)", id, r.code(), r.line())
		}
	}
	ship := func(order string) []string {
		return []string{"ship", "--platform", "1688", "--order", order, "--company", "YTO", "--waybill", "YT1234567890", "--wait", "20s"}
	}
	direct, viaConsole = e.run(ship("3305075341149134270")...), remote(ship("3305075341149134271")...)
	if direct.err != nil || viaConsole.err != nil || masked(viaConsole.stdout) != masked(direct.stdout) {
		t.Errorf("ship: direct exit %d %q, remote exit %d %q (%s); want both applied, printed alike",
			direct.code(), direct.stdout, viaConsole.code(), viaConsole.stdout, viaConsole.line())
	}
	for _, id := range []string{idDirect, idRemote} {
		if r := remote("wait", "--command", id, "--state", "succeeded", "--deadline", "45s"); r.err != nil {
			t.Fatalf("remote wait --command %s succeeded: exit %d (%s)", id, r.code(), r.line())
		}
	}

	// A rejected command with --json: the same object either way, but for
	// what differs by nature (ids, order, operator, time, case).
	cancelJSON := func(r result, order string) commandResult {
		t.Helper()
		if r.code() != exitRefused {
			t.Errorf("cancel --json on the finished case of %s: exit %d (%s); want 4 (rejected)", order, r.code(), r.line())
		}
		var res commandResult
		decodeJSON(t, r.stdout, &res)
		if res.Command.OrderID != order || res.Verdict == nil {
			t.Fatalf("cancel --json for %s printed %+v; want its command and verdict", order, res)
		}
		if want := events.CommandSubject("1688", "cancel", "1688:"+order); res.Subject != want {
			t.Errorf("cancel --json for %s: stored on %s; want %s", order, res.Subject, want)
		}
		res.ID, res.Sequence, res.Command.ID, res.Command.OrderID, res.Command.CaseID, res.Subject = "", 0, "", "", 0, ""
		res.Command.Operator, res.Command.IssuedAt = "", time.Time{}
		res.Verdict.CaseID, res.Verdict.Next = 0, masked(res.Verdict.Next)
		return res
	}
	cancel := func(order string) []string {
		return []string{"cancel", "--platform", "1688", "--order", order, "--json", "--wait", "20s"}
	}
	if d, r := cancelJSON(e.run(cancel("3305075341149134270")...), "3305075341149134270"),
		cancelJSON(remote(cancel("3305075341149134271")...), "3305075341149134271"); !reflect.DeepEqual(d, r) {
		t.Errorf("cancel --json through the console = %+v (verdict %+v); want as on the host %+v (verdict %+v)", r, *r.Verdict, d, *d.Verdict)
	}

	// Reads: the same bytes either way.
	for _, args := range [][]string{
		{"list", "--json"}, {"list"}, {"list", "--limit", "1"}, {"list", "--limit", "1", "--after", "1"},
		{"list", "--state", "succeeded,closed", "--json"}, {"list", "--open"}, {"list", "--platform", "taobao"},
		{"show", "1"}, {"show", "2", "--json"}, {"show", "--command", idRemote},
		{"show", "--platform", "1688", "--order", "3305075341149134270", "--json"},
	} {
		d, r := e.run(args...), remote(args...)
		if d.err != nil || r.err != nil {
			t.Errorf("refundctl %v: direct exit %d (%s), remote exit %d (%s)", args, d.code(), d.line(), r.code(), r.line())
			continue
		}
		if ages.ReplaceAllString(r.stdout, "AGE") != ages.ReplaceAllString(d.stdout, "AGE") || r.stderr != d.stderr {
			t.Errorf("refundctl %v through the console printed\n%s%s\nwant as on the host\n%s%s", args, r.stdout, r.stderr, d.stdout, d.stderr)
		}
	}

	// Refusals.
	n := e.streamCount(events.DefaultCommandStreamName)
	batch := writeTemp(t, "one.csv", "platform,order,type,goods-status,reason,amount,description\n"+
		"1688,3305075341149134279,return,aftersaleBuyerReceived,七天无理由退货,9500,no longer needed\n")
	for _, tc := range []struct {
		token string
		code  int
		want  string
		args  []string
	}{
		{consoleOperatorToken, 2, "--waybill: 1 to 64 printable characters", []string{"ship", "--case", "1", "--company", "YTO", "--waybill", " x"}},
		{consoleOperatorToken, 1, "--case 99: no such case in the console at " + url, []string{"cancel", "--case", "99"}},
		{consoleOperatorToken, 1, "CASE 99: no such case in the console at " + url, []string{"cancel", "99"}},
		{consoleOperatorToken, 2, "--platform taobao: case 1 is for platform 1688; leave --platform out or fix --case", []string{"cancel", "--case", "1", "--platform", "taobao"}},
		{consoleViewerToken, 1, "console: forbidden (403): acting on cases needs the operator role", []string{"cancel", "--case", "1"}},
		{"wrong-token", 1, "console: unauthorized (401)", []string{"list"}},
		{"", 2, "REFUNDHUB_TOKEN is not set", []string{"list"}},
		{consoleOperatorToken, 2, "doctor is not available through the console", []string{"doctor"}},
		{consoleOperatorToken, 1, "case 99 not found", []string{"show", "99"}},
		{consoleViewerToken, 1, "publishing failed at line 2", []string{"request", "--file", batch}},
	} {
		r := e.remoteRun(url, tc.token, tc.args...)
		if r.code() != tc.code || !strings.Contains(r.line(), tc.want) {
			t.Errorf("remote refundctl %v = exit %d %q; want exit %d with %q", tc.args, r.code(), r.line(), tc.code, tc.want)
		}
	}
	if got := e.streamCount(events.DefaultCommandStreamName); got != n {
		t.Errorf("COMMANDS holds %d commands after refused ones; want %d", got, n)
	}
	// A viewer's batch says why on its row; a console that does not
	// answer sends nothing.
	if r := e.remoteRun(url, consoleViewerToken, "request", "--file", batch); !strings.Contains(r.stdout,
		"line 2: batch-") || !strings.Contains(r.stdout, "failed: console: forbidden (403): acting on cases needs the operator role") {
		t.Errorf("a viewer's batch through the console printed %q; want its row failed, forbidden", r.stdout)
	}
	if r := e.remoteRun("http://127.0.0.1:1", consoleOperatorToken, "request", "--file", batch); r.code() != 1 ||
		!strings.Contains(r.line(), "console at http://127.0.0.1:1") || !strings.HasSuffix(r.line(), "; nothing sent") {
		t.Errorf("a batch through a console that does not answer = exit %d %q; want exit 1, naming it, nothing sent", r.code(), r.line())
	}

	// The same --id for a different command: refused, nothing sent.
	if r := remote("cancel", "--case", "1", "--id", idRemote); r.code() != exitRefused || !strings.Contains(r.line(), "console: conflict (409)") {
		t.Errorf("remote cancel under the request's id = exit %d %q; want exit 4, conflict", r.code(), r.line())
	}
}

// TestRemoteVerdictOnceTheCaseRests: through the console, an applied
// command's verdict is asked for again until its case settles, as on the
// host (describeSettled): here the case stops when refundctl first asks
// again, and the verdict says so and why. A verdict that cannot be read
// again is reported as first read, exit 0: the command was applied.
func TestRemoteVerdictOnceTheCaseRests(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	ctx := context.Background()
	var k, k2 casestore.Case
	if err := st.Update(ctx, func(tx *casestore.Tx) error {
		var err error
		if k, err = tx.CreateCase(ctx, casestore.NewCase{Platform: "taobao", OrderID: "700", SubOrderID: "701", State: "rendering"}); err != nil {
			return err
		}
		if err := tx.RecordCommandOutcome(ctx, casestore.CommandOutcome{CommandID: "cmd-rests-2", Verdict: casestore.VerdictApplied, CaseID: k.ID}); err != nil {
			return err
		}
		if k2, err = tx.CreateCase(ctx, casestore.NewCase{Platform: "taobao", OrderID: "800", SubOrderID: "801", State: "rendering"}); err != nil {
			return err
		}
		return tx.RecordCommandOutcome(ctx, casestore.CommandOutcome{CommandID: "cmd-rests-3", Verdict: casestore.VerdictApplied, CaseID: k2.ID})
	}); err != nil {
		t.Fatal(err)
	}
	var asked, askedUnread atomic.Int32
	url := startConsoleWrapped(e, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && r.URL.Path == "/api/v1/commands/cmd-rests-3" {
				askedUnread.Add(1)
				http.Error(w, "bad gateway", http.StatusBadGateway) // a proxy in the way
				return
			}
			if r.Method == http.MethodGet && r.URL.Path == "/api/v1/commands/cmd-rests-2" && asked.Add(1) == 1 {
				// The form read: the reason is not offered.
				if err := st.Update(r.Context(), func(tx *casestore.Tx) error {
					k.State, k.ParkedState, k.AttentionCode, k.AttentionMessage = "needs_attention", "rendering", "reason_not_offered", "not offered"
					_, err := tx.UpdateCase(r.Context(), k)
					return err
				}); err != nil {
					t.Errorf("stop the case: %v", err)
				}
			}
			next.ServeHTTP(w, r)
		})
	})
	r := e.remoteRun(url, consoleOperatorToken, "cancel", fmt.Sprint(k.ID), "--id", "cmd-rests-2", "--wait", "10s")
	if r.err != nil || !strings.Contains(r.stdout, fmt.Sprintf("applied: case %d is needs_attention (reason_not_offered: not offered); to do: ", k.ID)) {
		t.Errorf("cancel through the console: exit %d (%s), stdout %q; want the verdict on the stopped case, with what to do", r.code(), r.line(), r.stdout)
	}
	if asked.Load() == 0 {
		t.Errorf("refundctl did not ask for the verdict again while the case was rendering")
	}
	// Asked again and not answered: the command was applied all the same.
	r = e.remoteRun(url, consoleOperatorToken, "cancel", fmt.Sprint(k2.ID), "--id", "cmd-rests-3", "--wait", "10s")
	if r.err != nil || !strings.Contains(r.stdout, fmt.Sprintf("applied: case %d is rendering", k2.ID)) {
		t.Errorf("cancel through the console, its verdict not read again: exit %d (%s), stdout %q; want exit 0, applied as first read",
			r.code(), r.line(), r.stdout)
	}
	if n := askedUnread.Load(); n != 1 {
		t.Errorf("refundctl asked %d times for a verdict the console could not give; want once, then the verdict as read", n)
	}
}

// TestRemoteReasons: with REFUNDHUB_URL set, reasons asks the console,
// which asks the platform with its own credentials (the operator's host
// has none), and prints what it prints on the host; a console without
// credentials, or a viewer's token, is a clear refusal. (It was refused:
// "reasons is not available through the console".)
func TestRemoteReasons(t *testing.T) {
	e := newEnv(t)
	e.openStore() // the console reads a store the worker made
	p := startPlatform(t, sandbox.Config{})
	vars := p.upstreamVars("")
	cfg, err := loadUpstream(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	client, err := apiclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	url := startConsoleWith(e, nil, func(ctx context.Context, q reasons.Query) reasons.Result { return reasons.Lookup(ctx, client, q) })
	args := []string{"reasons", "--platform", "taobao", "--order", "3305075341149134260", "--sub-order", "3305075341149134261", "--goods-status", "1"}

	host := runRefundctl(t, vars, args...)
	remote := e.remoteRun(url, consoleOperatorToken, args...)
	ids := regexp.MustCompile(`requestId [0-9a-f]+`) // the platform's, one per call
	if remote.err != nil || host.err != nil || ids.ReplaceAllString(remote.stdout, "ID") != ids.ReplaceAllString(host.stdout, "ID") ||
		!strings.Contains(remote.stdout, "1004") {
		t.Errorf("reasons through the console: exit %d %q\n%s\nwant as on the host (exit %d):\n%s", remote.code(), remote.line(), remote.stdout, host.code(), host.stdout)
	}
	if r := e.remoteRun(url, consoleOperatorToken, append(args, "--json")...); r.err != nil || !strings.Contains(r.stdout, `"id": 1004`) && !strings.Contains(r.stdout, `"id":1004`) {
		t.Errorf("reasons --json through the console: exit %d %q\n%s", r.code(), r.line(), r.stdout)
	}
	if r := e.remoteRun(url, consoleViewerToken, args...); r.code() != 1 || !strings.Contains(r.line(), "forbidden (403)") {
		t.Errorf("reasons through the console with a viewer's token: exit %d %q; want exit 1, forbidden", r.code(), r.line())
	}
	e2 := newEnv(t)
	e2.openStore()
	bare := startConsole(e2)
	if r := e2.remoteRun(bare, consoleOperatorToken, args...); r.code() != 1 || !strings.Contains(r.line(), "not_configured (501)") ||
		!strings.Contains(r.line(), "no platform credentials") {
		t.Errorf("reasons through a console without platform credentials: exit %d %q; want exit 1 saying it has none", r.code(), r.line())
	}
	if r := e.remoteRun(url, consoleOperatorToken, "reasons", "--platform", "taobao", "--order", "1"); r.code() != 2 || !strings.Contains(r.line(), "--sub-order") {
		t.Errorf("reasons through the console without --sub-order: exit %d %q; want exit 2 naming the flag", r.code(), r.line())
	}
}

// TestABatchRunAgainByAnotherOperatorIsAlreadyFiled: a file filed on the
// host is run again through the console by another operator before the
// worker decided it (within JetStream's duplicate window). Its rows are
// the same commands (their ids derived from the rows): already filed,
// nothing stored again. The console answered 409 conflict (another
// operator) and the batch stopped at its first row, advising a new id,
// which would file the request twice.
func TestABatchRunAgainByAnotherOperatorIsAlreadyFiled(t *testing.T) {
	e := newEnv(t)
	e.openStore() // no worker: the verdicts stay pending
	url := startConsole(e)
	file := writeTemp(t, "two.csv", "platform,order,sub-order,type,goods-status,reason-id,amount,description\n"+
		"taobao,3305075341149134300,3305075341149134301,refund,1,1004,max,not shipped in time\n"+
		"1688,3305075341149134302,,return,aftersaleBuyerReceived,20025,9500,no longer needed\n")
	e.vars["REFUNDCTL_OPERATOR"] = "hannah"
	if r := e.run("request", "--file", file, "--no-wait"); r.err != nil || !strings.Contains(r.stdout, "2 rows: 2 filed, 0 already filed") {
		t.Fatalf("the batch on the host: exit %d (%s):\n%s", r.code(), r.line(), r.stdout)
	}
	n := e.streamCount(events.DefaultCommandStreamName)
	r := e.remoteRun(url, consoleOperatorToken, "request", "--file", file, "--no-wait")
	if r.err != nil || !strings.Contains(r.stdout, "2 rows: 0 filed, 2 already filed, 0 invalid") {
		t.Errorf("the same batch through the console by olga: exit %d (%s):\n%s\nwant both rows already filed", r.code(), r.line(), r.stdout)
	}
	if got := e.streamCount(events.DefaultCommandStreamName); got != n {
		t.Errorf("COMMANDS holds %d commands after the second run; want %d", got, n)
	}
}

// TestABatchWhoseVerdictsCannotBeReadThroughTheConsoleIsPending: the
// console files the rows, then fails every read of a verdict (here 500).
// The rows were sent: each is pending, saying why (exit 5), and the
// summary counts them filed. The run exited 1 ("reading the verdicts")
// with a summary of "0 filed", which reads as a batch to send again.
func TestABatchWhoseVerdictsCannotBeReadThroughTheConsoleIsPending(t *testing.T) {
	e := newEnv(t)
	e.openStore()
	var posted atomic.Bool
	url := startConsoleWrapped(e, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost {
				posted.Store(true)
			}
			if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/v1/commands/") && posted.Load() {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = w.Write([]byte(`{"error":{"code":"internal","message":"the verdict broke"}}`))
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	file := writeTemp(t, "one.csv", "platform,order,sub-order,type,goods-status,reason-id,amount,description\n"+
		"taobao,3305075341149134310,3305075341149134311,refund,1,1004,max,not shipped in time\n")
	r := e.remoteRun(url, consoleOperatorToken, "request", "--file", file, "--wait", "2500ms")
	for _, want := range []string{
		"filed: pending: sent; its verdict could not be read (console: internal (500): the verdict broke): do not send it again",
		"1 rows: 1 filed, 0 already filed, 0 invalid; verdicts: 0 applied, 0 rejected, 1 pending",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if r.code() != exitPending {
		t.Errorf("exit %d (%s); want %d, pending", r.code(), r.line(), exitPending)
	}
}
