package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/casework"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// stack credentials of the embedded platform.
const (
	stackKey    = "stack-access-key-0001"
	stackSecret = "stack-secret-DO-NOT-PRINT-91f2"
)

// startStack completes e into the product as devstack runs it, in-process:
// the sandbox over loopback HTTP (creating unknown orders on first use, as
// devstack's does), the real receiver, and a worker (internal/casework
// around the refundflow engine, wired as cmd/worker wires them) on e's
// JetStream and case store. refundctl then runs against it through e.run,
// with the platform credentials doctor and reasons read.
func startStack(e *env) {
	t := e.t
	t.Helper()
	e.startReceiver()
	sb, err := sandbox.New(sandbox.Config{AccessKey: stackKey, AccessSecret: stackSecret, AutoCreate: true, Seed: 11,
		CallbackURL: e.vars["RECEIVER_URL"] + "/callbacks/" + testToken, PushRetryInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("sandbox.New: %v", err)
	}
	sbSrv := httptest.NewServer(sb.Handler())
	store, err := casestore.Open(context.Background(), e.dbPath, nil) // migrates, as the worker does at start-up
	if err != nil {
		t.Fatalf("casestore.Open: %v", err)
	}
	client, err := apiclient.New(apiclient.Config{BaseURL: sbSrv.URL, AccessKey: stackKey, AccessSecret: stackSecret,
		UserID: "stack-user", Timeout: 2 * time.Second, RateLimit: 1000, RateBurst: 100})
	if err != nil {
		t.Fatalf("apiclient.New: %v", err)
	}
	metrics, err := casework.NewMetrics(prometheus.NewRegistry(), store)
	if err != nil {
		t.Fatalf("NewMetrics: %v", err)
	}
	engine, err := refundflow.NewEngine(refundflow.EngineConfig{Store: store, Client: client, Policy: refundflow.DefaultPolicy(),
		LeaseTTL: 5 * time.Second, RetryDelay: 50 * time.Millisecond, RetryMax: 400 * time.Millisecond, OnStep: metrics.OnStep})
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	w, err := casework.New(casework.Config{Consumer: "refundctl-test-worker", Concurrency: 4, AckWait: 5 * time.Second,
		MaxDeliver: 20, UnknownCaseWait: 2 * time.Second, RetryBase: 50 * time.Millisecond, RetryMax: 400 * time.Millisecond,
		TimerInterval: 50 * time.Millisecond, ReconcileInterval: 300 * time.Millisecond, ReconcileAge: 2 * time.Second,
		InboxRetention: time.Hour, HousekeepingInterval: time.Hour, ShutdownTimeout: 2 * time.Second,
		Stream: events.DefaultStreamConfig(), WorkStreams: events.DefaultWorkStreamsConfig()},
		casework.Deps{Store: store, Engine: engine, JetStream: e.js, Logger: slog.New(slog.DiscardHandler), Metrics: metrics})
	if err != nil {
		t.Fatalf("casework.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = sb.Run(ctx) })
	wg.Go(func() {
		if err := w.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("worker: %v", err)
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		sbSrv.Close()
		_ = store.Close()
	})
	for k, v := range map[string]string{"UPSTREAM_BASE_URL": sbSrv.URL, "UPSTREAM_ACCESS_KEY": stackKey,
		"UPSTREAM_ACCESS_SECRET": stackSecret, "UPSTREAM_USER_ID": "stack-user"} {
		e.vars[k] = v
	}
}

// helpExamples returns the examples of `refundctl CMD --help` as argument
// lists without the leading "refundctl": continuation lines joined, shell
// quoting undone, comments dropped.
func helpExamples(t *testing.T, e *env, cmd string) [][]string {
	t.Helper()
	help := e.mustRun(cmd, "--help").stdout
	_, examples, ok := strings.Cut(help, "\nExamples:\n")
	if !ok {
		t.Fatalf("%s --help has no Examples section:\n%s", cmd, help)
	}
	examples, _, _ = strings.Cut(examples, "\n\n")
	var out [][]string
	for line := range strings.SplitSeq(strings.ReplaceAll(examples, "\\\n", " "), "\n") {
		args, err := shellWords(line)
		if err != nil {
			t.Fatalf("%s --help example %q: %v", cmd, line, err)
		}
		if len(args) == 0 {
			continue
		}
		if args[0] != "refundctl" {
			t.Fatalf("%s --help example %q does not start with refundctl", cmd, line)
		}
		out = append(out, args[1:])
	}
	return out
}

// shellWords splits a command line as sh would for the examples' needs:
// blanks separate words, '…' and "…" quote, # starts a comment.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ' || c == '\t':
			if inWord {
				words, inWord = append(words, cur.String()), false
				cur.Reset()
			}
		case c == '#' && !inWord:
			return words, nil
		case c == '\'' || c == '"':
			end := strings.IndexByte(s[i+1:], c)
			if end < 0 {
				return nil, errors.New("unterminated quote")
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// TestHelpExamplesDoNotPark runs every example of `request --help`, `ship
// --help` and `reasons --help` as written against the embedded stack: each
// request is applied and its case gets past choosing the reason (the
// submit) without parking; the shipment is applied; each reasons example
// lists reasons; message's and cancel's examples that name the Taobao
// request's sub-order are applied to its case, which the seller leaves open.
// (The examples that name a case by id, 12 or --case 12, cannot be run as
// written: ids depend on the store's history.)
func TestHelpExamplesDoNotPark(t *testing.T) {
	e := newEnv(t)
	startStack(e)
	// The Taobao example's order, with a seller who decides nothing, so
	// that message and cancel find its case open.
	body := `{"platform":"taobao","order_id":"3305075341149134260","sub_orders":[{"sub_order_id":"3305075341149134261","amount":20000}],"seller":{"decision":"manual"}}`
	resp, err := http.Post(e.vars["UPSTREAM_BASE_URL"]+"/_sandbox/orders", "application/json", strings.NewReader(body))
	if err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("create the Taobao example's order: %v %v", resp, err)
	}
	resp.Body.Close()
	examples := helpExamples(t, e, "request")
	if len(examples) < 2 {
		t.Fatalf("request --help has %d examples; want one per platform", len(examples))
	}
	for _, args := range examples {
		r := e.run(args...)
		if r.err != nil {
			t.Errorf("refundctl %s: exit %d: %s\n%s", strings.Join(args, " "), r.code(), r.line(), r.stdout)
			continue
		}
		id, _, _ := strings.Cut(r.stdout, "\n")
		st := e.openStoreRO()
		var c casestore.Case
		past := []string{string(refundflow.StateWaitingSeller), string(refundflow.StateWaitingReturnShipment),
			string(refundflow.StateWaitingSellerReceive), string(refundflow.StateSucceeded), string(refundflow.StateClosed)}
		eventstest.WaitFor(t, 30*time.Second, "case of "+id+" submitted or parked", func() bool {
			var err error
			c, err = st.CaseOpenedBy(context.Background(), id)
			return err == nil && (slices.Contains(past, c.State) || c.State == string(refundflow.StateNeedsAttention))
		})
		if c.State == string(refundflow.StateNeedsAttention) || c.AttentionCode != "" {
			t.Errorf("refundctl %s: case %d is %s (%s: %s); want it submitted, not parked",
				strings.Join(args, " "), c.ID, c.State, c.AttentionCode, c.AttentionMessage)
		}
	}

	// ship's example follows request's 1688 example, once the sandbox's
	// seller has asked for the goods back.
	st := e.openStoreRO()
	eventstest.WaitFor(t, 30*time.Second, "the 1688 case waits for the return shipment", func() bool {
		c, err := st.OpenCase(context.Background(), casestore.Platform1688, "3305075341149134262", "")
		return err == nil && c.State == string(refundflow.StateWaitingReturnShipment)
	})
	for _, cmd := range []string{"ship", "message", "cancel"} {
		ran := 0
		for _, args := range helpExamples(t, e, cmd) {
			if namesCaseByID(args) {
				continue
			}
			ran++
			if r := e.run(args...); r.err != nil || !strings.Contains(r.stdout, "applied: case") {
				t.Errorf("refundctl %s: exit %d (%s); want applied:\n%s", strings.Join(args, " "), r.code(), r.line(), r.stdout)
			}
		}
		if ran == 0 {
			t.Errorf("%s --help has no example that names its case by order or sub-order", cmd)
		}
	}

	examples = helpExamples(t, e, "reasons")
	if len(examples) == 0 {
		t.Fatal("reasons --help has no examples")
	}
	for _, args := range examples {
		r := e.run(args...)
		if r.err != nil || !strings.Contains(r.stdout, "\"id\"") && !strings.Contains(r.stdout, "GOODS-STATUS") {
			t.Errorf("refundctl %s: exit %d (%s); want reasons listed:\n%s", strings.Join(args, " "), r.code(), r.line(), r.stdout)
		}
	}
}

// openStoreRO opens e's store read-only, as refundctl does.
func (e *env) openStoreRO() *casestore.Store {
	e.t.Helper()
	st, err := casestore.OpenReadOnly(context.Background(), e.dbPath, nil)
	if err != nil {
		e.t.Fatalf("casestore.OpenReadOnly: %v", err)
	}
	e.t.Cleanup(func() { _ = st.Close() })
	return st
}

// readmeLines returns the shell lines of README.md's section titled title,
// continuation lines joined.
func readmeLines(t *testing.T, title string) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## "+title+"\n")
	if !ok {
		t.Fatalf("README.md has no %q section", title)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var lines []string
	for i, block := range strings.Split(section, "```sh\n") {
		if i == 0 {
			continue
		}
		block, _, _ = strings.Cut(block, "```")
		for line := range strings.SplitSeq(strings.ReplaceAll(block, "\\\n", " "), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				lines = append(lines, line)
			}
		}
	}
	return lines
}

// runReadme runs README lines against e's embedded stack as the shell
// would for what they use: refundctl lines in-process; `id=$(refundctl …
// | …)` keeps the first line printed, `case=$(refundctl … | cut -d ' ' -f
// 2)` the second word; $id and $case are substituted; curl calls the
// sandbox's admin API (devstack's address replaced by the stack's). Other
// lines (the environment) are skipped: the stack's is set already. It
// returns the variables and how many refundctl lines ran.
func runReadme(t *testing.T, e *env, lines []string) (vars map[string]string, ran int) {
	t.Helper()
	vars = map[string]string{}
	for _, line := range lines {
		name, cmd, assign := "", line, false
		for _, v := range []string{"id", "case"} {
			if rest, ok := strings.CutPrefix(line, v+"=$("); ok {
				name, cmd, assign = v, rest, true
				cmd, _, _ = strings.Cut(cmd, " | ")
			}
		}
		for _, v := range []string{"case", "id"} { // $case before $id: neither is a prefix of the other
			cmd = strings.ReplaceAll(cmd, "$"+v, vars[v])
		}
		args, err := shellWords(cmd)
		if err != nil {
			t.Fatalf("README line %q: %v", line, err)
		}
		switch {
		case len(args) > 0 && args[0] == "curl":
			readmeCurl(t, e, args)
			continue
		case len(args) == 0 || args[0] != "refundctl":
			continue
		}
		r := e.run(args[1:]...)
		if r.err != nil {
			t.Fatalf("README step %q: exit %d: %s\n%s", line, r.code(), r.line(), r.stdout)
		}
		if assign {
			first, _, _ := strings.Cut(r.stdout, "\n")
			if name == "case" {
				if f := strings.Fields(first); len(f) > 1 {
					first = f[1]
				}
			}
			vars[name] = first
		}
		ran++
	}
	return vars, ran
}

// readmeCurl runs a README curl line (curl [-s] [-X METHOD] URL [-d BODY])
// against the stack's sandbox.
func readmeCurl(t *testing.T, e *env, args []string) {
	t.Helper()
	method, url, body := http.MethodGet, "", ""
	for i := 1; i < len(args); i++ {
		switch args[i] {
		case "-s":
		case "-X":
			i++
			method = args[i]
		case "-d":
			i++
			body = args[i]
		default:
			url = strings.Replace(args[i], "http://127.0.0.1:8090", e.vars["UPSTREAM_BASE_URL"], 1)
		}
	}
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatalf("README curl %q: %v", strings.Join(args, " "), err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("README curl %q: %v", strings.Join(args, " "), err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("README curl %q: HTTP %d", strings.Join(args, " "), resp.StatusCode)
	}
}

// TestReadmeTaobaoWalkthrough runs the README's Taobao walkthrough as
// written (its refundctl lines, $id as the request prints it) against the
// embedded stack: every step exits 0 and the case succeeds.
func TestReadmeTaobaoWalkthrough(t *testing.T) {
	lines := readmeLines(t, "Taobao walkthrough")
	e := newEnv(t)
	startStack(e)
	vars, ran := runReadme(t, e, lines)
	if ran < 5 || vars["id"] == "" {
		t.Fatalf("ran %d refundctl steps of the README (id %q); want the whole walkthrough", ran, vars["id"])
	}
	c, err := e.openStoreRO().CaseOpenedBy(context.Background(), vars["id"])
	if err != nil || c.State != string(refundflow.StateSucceeded) {
		t.Errorf("the README's Taobao case: %+v, %v; want succeeded", c, err)
	}
}

// TestReadmeRefusalPath runs the README's refusal path as written against
// the embedded stack: the seller refuses, the operator modifies the amount,
// the seller agrees, and the case succeeds with the modified amount, the
// refund submitted once.
func TestReadmeRefusalPath(t *testing.T) {
	lines := readmeLines(t, "When the seller refuses")
	e := newEnv(t)
	startStack(e)
	vars, ran := runReadme(t, e, lines)
	if ran < 5 || vars["id"] == "" || vars["case"] == "" {
		t.Fatalf("ran %d refundctl steps of the README (id %q, case %q); want the whole refusal path", ran, vars["id"], vars["case"])
	}
	st := e.openStoreRO()
	c, err := st.CaseOpenedBy(context.Background(), vars["id"])
	if err != nil || c.State != string(refundflow.StateSucceeded) || strconv.FormatInt(c.ID, 10) != vars["case"] {
		t.Fatalf("the README's refused case: %+v, %v; want case %s succeeded", c, err, vars["case"])
	}
	var plan struct {
		Fee int64 `json:"fee"`
	}
	if err := json.Unmarshal(c.Plan, &plan); err != nil || plan.Fee != 5000 {
		t.Errorf("the README's refused case ended with plan %s; want the modified fee 5000", c.Plan)
	}
}

// namesCaseByID reports whether a command's words name its case by id:
// --case N, or N as its argument (`cancel 12`).
func namesCaseByID(args []string) bool {
	if slices.Contains(args, "--case") {
		return true
	}
	if len(args) < 2 {
		return false
	}
	_, err := strconv.ParseInt(args[1], 10, 64)
	return err == nil
}
