package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cli runs the refundctl binary devstack built, with the environment
// devstack wrote for it (data/refundctl.env), as an operator would after
// `set -a; . data/refundctl.env; set +a`.
type cli struct {
	t   *testing.T
	bin string
	env []string
}

func newCLI(t *testing.T, data string) *cli {
	t.Helper()
	f, err := os.Open(filepath.Join(data, "refundctl.env"))
	if err != nil {
		t.Fatalf("devstack did not write refundctl.env: %v", err)
	}
	defer f.Close()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			// KEY='VALUE', as a shell reads it (devstack's values have
			// no quote of their own).
			k, v, _ := strings.Cut(line, "=")
			env = append(env, k+"="+strings.TrimSuffix(strings.TrimPrefix(v, "'"), "'"))
		}
	}
	return &cli{t: t, bin: filepath.Join(data, "bin", "refundctl"), env: env}
}

// run runs refundctl and fails the test unless it exits 0.
func (c *cli) run(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.try(args...)
	if code != 0 {
		c.t.Fatalf("refundctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func (c *cli) try(args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = c.env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("refundctl %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), 0
}

var caseIs = regexp.MustCompile(`case (\d+) is `)

// caseOf is the case id in wait's output ("case 12 is waiting_seller …").
func caseOf(t *testing.T, out string) int64 {
	t.Helper()
	m := caseIs.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no case id in %q", out)
	}
	id, _ := strconv.ParseInt(m[1], 10, 64)
	return id
}

type sandboxStats struct {
	RefundSubmissions          map[string]int `json:"refund_submissions"`
	ReturnLogisticsSubmissions map[string]int `json:"return_logistics_submissions"`
	DuplicateSubmissions       int            `json:"duplicate_submissions"`
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

var duplicatesMetric = regexp.MustCompile(`(?m)^receiver_duplicates_total (\d+)`)

func receiverDuplicates(t *testing.T, receiverAddr string) int {
	t.Helper()
	resp, err := http.Get("http://" + receiverAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := duplicatesMetric.FindSubmatch(b)
	if m == nil {
		t.Fatalf("receiver metrics have no receiver_duplicates_total:\n%s", b)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestWalkthrough is docs/walkthrough.md's five-minute walkthrough, run against the
// whole stack started the way `go run ./cmd/devstack` starts it, on both
// platforms: request a return, watch the seller agree, report the return,
// see the refund succeed, replay its callbacks and see them ignored as
// duplicates, and check with the sandbox that nothing was submitted twice.
// Then the ways out of a stopped case (resolveParkedCase) and of a seller's
// refusal (refusalPaths), and the dead letters'.
func TestWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every component; skipped with -short")
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"worker", "refundctl"} {
		if _, err := os.Stat(filepath.Join(root, "cmd", c, "main.go")); err != nil {
			t.Fatalf("cmd/%s is missing: the walkthrough needs it", c)
		}
	}
	// Seller decisions in a fraction of a second instead of the demo's 2 s.
	t.Setenv("SANDBOX_SELLER_DELAY", "200ms")
	t.Setenv("SANDBOX_RECEIVE_DELAY", "200ms")

	data := t.TempDir()
	sandboxAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	receiverAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	consoleAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	s := startStack(t, []string{"devstack", "-data", data, "-nats-port", strconv.Itoa(freePort(t)),
		"-sandbox-addr", sandboxAddr, "-receiver-addr", receiverAddr,
		"-worker-metrics-addr", "127.0.0.1:" + strconv.Itoa(freePort(t)), "-console-addr", consoleAddr},
		"WORKER_UNKNOWN_CASE_WAIT=2s")
	defer s.stop(t)
	ctl := newCLI(t, data)

	flows := []struct {
		platform, orderFlag, order, refundKey string
		request                               []string
		company                               string
		reasons                               []string // the reasons call the README makes first
		reasonID                              string   // one the seller's form offers
	}{
		{
			platform: "1688", orderFlag: "--order", order: "3305075341149134260", refundKey: "1688:3305075341149134260",
			request: []string{"--type", "return", "--goods-status", "aftersaleBuyerReceived", "--reason-id", "20025",
				"--amount", "9500", "--description", "七天无理由退货"},
			company: "YTO",
			reasons: []string{"--order", "3305075341149134260", "--goods-status", "aftersaleBuyerReceived"}, reasonID: "20025",
		},
		{
			platform: "taobao", orderFlag: "--sub-order", order: "1034499579120189839", refundKey: "taobao:1034499579120189839",
			request: []string{"--order", "3296711100591134260", "--type", "return", "--goods-status", "3",
				"--reason-id", "4005", "--amount", "0", "--description", "尺码不合适"},
			company: "SF",
			reasons: []string{"--sub-order", "1034499579120189839", "--type", "return", "--goods-status", "3"}, reasonID: "4005",
		},
	}
	for _, f := range flows {
		t.Run(f.platform, func(t *testing.T) {
			ctl.t = t
			sel := []string{"--platform", f.platform, f.orderFlag, f.order}

			// 0. Which reasons the seller's form offers: refundctl asks the
			// sandbox itself, with what refundctl.env gives it.
			if out := ctl.run(append([]string{"reasons", "--platform", f.platform}, f.reasons...)...); !strings.Contains(out, f.reasonID) {
				t.Errorf("reasons printed %q; want reason %s among them", out, f.reasonID)
			}

			// 1. Request a return and refund: the command id, then the worker's verdict.
			request := append(append([]string{"request"}, sel...), f.request...)
			id, verdict, _ := strings.Cut(ctl.run(request...), "\n")
			if !strings.HasPrefix(id, "cmd-") || !strings.HasPrefix(verdict, "applied: case ") {
				t.Fatalf("request printed %q, %q; want the command id, then its verdict (applied)", id, verdict)
			}
			// 2. The worker submits; the sandbox's seller agrees and asks for the goods back.
			caseID := caseOf(t, ctl.run("wait", "--command", id, "--state", "waiting_return_shipment", "--deadline", "2m"))

			// Commands the worker refuses: verdict "rejected", exit 4, nothing changes.
			refused := func(wantVerdict string, args ...string) (cmdID string) {
				t.Helper()
				out, errOut, code := ctl.try(args...)
				if code != 4 || !strings.Contains(errOut, wantVerdict) {
					t.Errorf("refundctl %s: exit %d, stderr %q; want exit 4 and %q", strings.Join(args, " "), code, errOut, wantVerdict)
				}
				cmdID, _, _ = strings.Cut(out, "\n")
				return cmdID
			}
			// The same request again names the case it duplicates, and
			// wait --command finds that case.
			dup := refused(fmt.Sprintf("rejected (duplicate) on case %d (waiting_return_shipment)", caseID), request...)
			if got := caseOf(t, ctl.run("wait", "--command", dup)); got != caseID {
				t.Errorf("wait --command %s (a duplicate) = case %d; want %d", dup, got, caseID)
			}
			other := append(append([]string{"request"}, sel...), f.request...)
			other[len(other)-1] = "changed my mind"
			refused(fmt.Sprintf("rejected (case_open) on case %d", caseID), other...)
			// Resolve is for a stopped case only; this one waits for the return.
			refused(fmt.Sprintf("rejected (not_parked) on case %d (waiting_return_shipment)", caseID), "resolve", strconv.FormatInt(caseID, 10), "--retry")
			if f.platform == "1688" {
				refused("rejected (not_supported)", append([]string{"cancel"}, sel...)...)
				refused("rejected (not_supported)", append(append([]string{"message"}, sel...), "--text", "photos attached")...)
			}

			// 3. Report the return shipment.
			if out := ctl.run(append(append([]string{"ship"}, sel...), "--company", f.company, "--waybill", "YT1234567890")...); !strings.Contains(out, fmt.Sprintf("applied: case %d is ", caseID)) {
				t.Errorf("ship printed %q; want it applied to case %d", out, caseID)
			}
			// 4. The seller confirms receipt and the refund succeeds.
			ctl.run("wait", "--command", id, "--state", "succeeded", "--deadline", "2m")
			refused(fmt.Sprintf("rejected (case_finished) on case %d (succeeded)", caseID), append([]string{"cancel"}, sel...)...)

			var shown struct {
				Case struct {
					State    string `json:"state"`
					RefundID string `json:"refundId"`
					Version  int64  `json:"version"`
				} `json:"case"`
				Steps []struct {
					Step      string `json:"step"`
					Status    string `json:"status"`
					RequestID string `json:"requestId"`
				} `json:"steps"`
				Timeline []json.RawMessage `json:"timeline"`
			}
			if err := json.Unmarshal([]byte(ctl.run("show", "--command", id, "--json")), &shown); err != nil {
				t.Fatalf("show --json: %v", err)
			}
			if shown.Case.State != "succeeded" || shown.Case.RefundID == "" || len(shown.Steps) == 0 || len(shown.Timeline) == 0 {
				t.Fatalf("show: %+v; want a succeeded case with a refund id, steps and a timeline", shown)
			}
			withRequestID := 0
			for _, st := range shown.Steps {
				if st.RequestID != "" {
					withRequestID++
				}
			}
			if withRequestID == 0 {
				t.Errorf("no step recorded the platform's requestId: %+v", shown.Steps)
			}

			// 5. Replay this platform's refund callbacks: once through the
			// receiver (as the platform would resend them) and once straight
			// into the stream. Both are recognised as duplicates.
			subject := "callbacks." + f.platform + ".ORDER_BUYER_VIEW_ORDER_BUYER_REFUND"
			before := receiverDuplicates(t, receiverAddr)
			var rep struct {
				Count      int `json:"count"`
				Duplicates int `json:"duplicates"`
			}
			if err := json.Unmarshal([]byte(ctl.run("replay", "--subject", subject, "--to", "receiver", "--json")), &rep); err != nil {
				t.Fatalf("replay --to receiver --json: %v", err)
			}
			if rep.Count == 0 {
				t.Fatalf("replay found no %s callbacks to re-deliver", subject)
			}
			if got := receiverDuplicates(t, receiverAddr) - before; got != rep.Count {
				t.Errorf("receiver counted %d duplicates for %d replayed callbacks; want all", got, rep.Count)
			}
			if err := json.Unmarshal([]byte(ctl.run("replay", "--subject", subject, "--to", "stream", "--json")), &rep); err != nil {
				t.Fatalf("replay --to stream --json: %v", err)
			}
			if rep.Duplicates != rep.Count {
				t.Errorf("replay into the stream: %d of %d stored again; want all recognised as duplicates", rep.Count-rep.Duplicates, rep.Count)
			}
			var again struct {
				Case struct {
					State   string `json:"state"`
					Version int64  `json:"version"`
				} `json:"case"`
			}
			if err := json.Unmarshal([]byte(ctl.run("show", "--command", id, "--json")), &again); err != nil {
				t.Fatal(err)
			}
			if again.Case.State != "succeeded" || again.Case.Version != shown.Case.Version {
				t.Errorf("after the replays the case is %s v%d; want it untouched (succeeded v%d)",
					again.Case.State, again.Case.Version, shown.Case.Version)
			}

			// 6. The platform's ground truth: one refund, one return shipment, no duplicates.
			var st sandboxStats
			getJSON(t, "http://"+sandboxAddr+"/_sandbox/stats", &st)
			if st.DuplicateSubmissions != 0 || st.RefundSubmissions[f.refundKey] != 1 {
				t.Errorf("sandbox stats %+v; want exactly one submission for %s and no duplicates", st, f.refundKey)
			}
			if got := st.ReturnLogisticsSubmissions[shown.Case.RefundID]; got != 1 {
				t.Errorf("return logistics submissions for %s = %d; want 1", shown.Case.RefundID, got)
			}
		})
	}

	// A command for a case that does not exist is dead-lettered: rejected
	// with the dead letter's reason. Until the worker gives up on it
	// (WORKER_UNKNOWN_CASE_WAIT) it is pending: exit 5, and wait --command
	// follows it to the verdict.
	ctl.t = t
	if _, errOut, code := ctl.try("ship", "--platform", "taobao", "--case", "999999", "--company", "SF", "--waybill", "SF1"); code != 4 ||
		!strings.Contains(errOut, "rejected (permanent_error)") || !strings.Contains(errOut, "unknown case") {
		t.Errorf("ship to case 999999: exit %d, stderr %q; want exit 4, rejected (permanent_error): unknown case", code, errOut)
	}
	lost := []string{"ship", "--platform", "taobao", "--sub-order", "999999999", "--company", "SF", "--waybill", "SF1", "--id", "ship-nowhere-1"}
	if _, errOut, code := ctl.try(append(lost, "--wait", "500ms")...); code != 5 || !strings.Contains(errOut, "pending: no case for taobao sub-order 999999999 yet") ||
		!strings.Contains(errOut, "refundctl wait --command ship-nowhere-1") {
		t.Errorf("ship to an unknown sub-order, --wait 500ms: exit %d, stderr %q; want exit 5, pending as no case yet, and how to follow it", code, errOut)
	}
	if _, errOut, code := ctl.try("wait", "--command", "ship-nowhere-1", "--deadline", "1m"); code != 4 || !strings.Contains(errOut, "rejected (unknown_case)") {
		t.Errorf("wait --command ship-nowhere-1: exit %d, stderr %q; want exit 4, rejected (unknown_case)", code, errOut)
	}
	if _, errOut, code := ctl.try(lost...); code != 4 || !strings.Contains(errOut, "rejected (unknown_case)") {
		t.Errorf("the same command again: exit %d, stderr %q; want its verdict, rejected (unknown_case)", code, errOut)
	}

	resolveParkedCase(t, ctl)
	refusalPaths(t, ctl, sandboxAddr)
	deadLetterWaysOut(t, ctl)

	// The console devstack started lists the walkthrough's cases to the
	// development token it printed.
	secrets, _, err := loadOrCreateSecrets(filepath.Join(data, "devstack.env"))
	if err != nil {
		t.Fatal(err)
	}
	if ids := consoleAnswers(t, consoleAddr, secrets["CONSOLE_TOKEN"]); len(ids) < len(flows) {
		t.Errorf("console lists cases %v; want at least the walkthrough's %d", ids, len(flows))
	}

	// Bad input gets a one-line error and a non-zero exit.
	if _, errOut, code := ctl.try("show", "999999"); code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("show of an unknown case: exit %d, stderr %q; want a one-line error and non-zero exit", code, errOut)
	}
}

// resolveParkedCase: a Taobao request with a reason the form does not offer
// stops (reason_not_offered). resolve --retry reads the form again (applied;
// it stops again), --close without a note is bad input, --close with one
// ends the case locally (applied, closed_locally, the note on the timeline),
// a resolve of the finished case is refused, and the sub-order takes a new
// request as a new case.
func resolveParkedCase(t *testing.T, ctl *cli) {
	t.Helper()
	sel := []string{"--platform", "taobao", "--order", "3296711100591134990", "--sub-order", "1034499579120189990"}
	request := append(append([]string{"request"}, sel...), "--goods-status", "1", "--reason-id", "5", "--amount", "max", "--description", "不想要了")
	id, _, _ := strings.Cut(ctl.run(request...), "\n")
	caseID := caseOf(t, ctl.run("wait", "--command", id, "--state", "needs_attention", "--deadline", "1m"))
	c := strconv.FormatInt(caseID, 10)

	if _, errOut, code := ctl.try("resolve", c, "--close"); code != 2 || !strings.Contains(errOut, "--note") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("resolve --close without a note: exit %d, stderr %q; want exit 2, one line naming --note", code, errOut)
	}
	if out := ctl.run("resolve", c, "--retry"); !strings.Contains(out, "applied: case "+c+" is ") {
		t.Errorf("resolve --retry printed %q; want it applied to case %s", out, c)
	}
	var shown struct {
		Case struct {
			State         string `json:"state"`
			AttentionCode string `json:"attentionCode"`
		} `json:"case"`
	}
	ctl.run("wait", c, "--state", "needs_attention", "--deadline", "1m")
	if out := ctl.run("resolve", c, "--close", "--note", "filed by phone with the seller"); !strings.Contains(out, "applied: case "+c+" is closed_locally") {
		t.Errorf("resolve --close printed %q; want applied, closed_locally", out)
	}
	if err := json.Unmarshal([]byte(ctl.run("show", c, "--json")), &shown); err != nil || shown.Case.State != "closed_locally" {
		t.Errorf("show %s --json: %+v, %v; want closed_locally", c, shown, err)
	}
	if out := ctl.run("show", c); !strings.Contains(out, "filed by phone with the seller") {
		t.Errorf("show %s does not print the operator's note:\n%s", c, out)
	}
	if _, errOut, code := ctl.try("resolve", c, "--retry"); code != 4 || !strings.Contains(errOut, "rejected (case_finished)") {
		t.Errorf("resolve of a closed case: exit %d, stderr %q; want exit 4, rejected (case_finished)", code, errOut)
	}
	request[len(request)-5] = "1004" // a reason the form offers
	id, verdict, _ := strings.Cut(ctl.run(request...), "\n")
	if got := caseOf(t, verdict); got == caseID {
		t.Errorf("a new request after the close went to case %d; want a new case", got)
	}
	ctl.run("wait", "--command", id, "--state", "waiting_seller", "--deadline", "1m")
}

// deadLetterWaysOut: the dead letter of a command for a case that does not
// exist is a permanent failure. retry refuses it without --force (exit 4),
// --force republishes it (and it dies again), and discard keeps the record
// out of the default list, with the note.
func deadLetterWaysOut(t *testing.T, ctl *cli) {
	t.Helper()
	type deadLetter struct {
		ID          int64  `json:"id"`
		Reason      string `json:"reason"`
		Error       string `json:"error"`
		RetriedAt   string `json:"retriedAt"`
		DiscardNote string `json:"discardNote"`
	}
	list := func(args ...string) []deadLetter {
		var dls []deadLetter
		if err := json.Unmarshal([]byte(ctl.run(append([]string{"dead-letters", "list", "--json"}, args...)...)), &dls); err != nil {
			t.Fatalf("dead-letters list --json: %v", err)
		}
		return dls
	}
	pendingPermanent := func() (deadLetter, bool) {
		for _, d := range list() {
			if d.Reason == "permanent_error" && d.RetriedAt == "" && strings.Contains(d.Error, "unknown case") {
				return d, true
			}
		}
		return deadLetter{}, false
	}
	first, ok := pendingPermanent()
	if !ok {
		t.Fatalf("no pending permanent_error dead letter for the unknown case: %+v", list())
	}
	dl := strconv.FormatInt(first.ID, 10)
	if _, errOut, code := ctl.try("dead-letters", "retry", dl); code != 4 || !strings.Contains(errOut, "--force") {
		t.Errorf("retry of a permanent failure: exit %d, stderr %q; want exit 4 asking for --force", code, errOut)
	}
	ctl.run("dead-letters", "retry", dl, "--force")
	var again deadLetter
	deadline := time.Now().Add(time.Minute)
	for again, ok = pendingPermanent(); !ok || again.ID == first.ID; again, ok = pendingPermanent() {
		if time.Now().After(deadline) {
			t.Fatalf("the forced retry did not die again: %+v", list())
		}
		<-time.After(100 * time.Millisecond) // polling the worker, which gives no signal to wait on
	}
	dl = strconv.FormatInt(again.ID, 10)
	ctl.run("dead-letters", "discard", dl, "--note", "no such case: typo in --case")
	for _, d := range list() {
		if d.ID == again.ID {
			t.Errorf("dead-letters list still shows discarded %d", d.ID)
		}
	}
	var found bool
	for _, d := range list("--discarded") {
		found = found || (d.ID == again.ID && d.DiscardNote == "no such case: typo in --case")
	}
	if !found {
		t.Errorf("dead-letters list --discarded does not show %d with its note: %+v", again.ID, list("--discarded"))
	}
	if _, errOut, code := ctl.try("dead-letters", "retry", dl, "--force"); code != 4 || !strings.Contains(errOut, "discarded") {
		t.Errorf("retry of a discarded dead letter: exit %d, stderr %q; want exit 4, discarded", code, errOut)
	}
}
