package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/envconfig/logtest"
	"github.com/refundhub/refundhub/internal/testenv/syncbuf"
)

// syncBuffer is a log and output sink the test reads while it is written.
type syncBuffer = syncbuf.Buffer

func envFunc(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestHelpListsEveryVariable(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"sandbox", "-h"}, envFunc(nil), &out, &errOut); err != nil {
		t.Fatalf("-h: %v", err)
	}
	for _, v := range envVars {
		if !strings.Contains(out.String(), v.Name) {
			t.Errorf("-h output lacks %s", v.Name)
		}
	}
	if !strings.Contains(out.String(), "127.0.0.1:8090") {
		t.Error("-h output lacks the default address")
	}
}

func TestMissingSecret(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"sandbox"}, envFunc(map[string]string{"UPSTREAM_ACCESS_KEY": "k"}), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "UPSTREAM_ACCESS_SECRET") {
		t.Fatalf("run without a secret: %v; want an error naming UPSTREAM_ACCESS_SECRET", err)
	}
}

func TestBadValues(t *testing.T) {
	base := map[string]string{"UPSTREAM_ACCESS_KEY": "k", "UPSTREAM_ACCESS_SECRET": "s", "SANDBOX_ADDR": "127.0.0.1:0"}
	badProfile := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(badProfile, []byte("[endpoints.taobao_query]\npath = \"no-slash\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, kv := range map[string][2]string{
		"delay":      {"SANDBOX_SELLER_DELAY", "soon"},
		"decision":   {"SANDBOX_SELLER_DECISION", "maybe"},
		"rate":       {"SANDBOX_ERROR_RATE", "2"},
		"kinds":      {"SANDBOX_ERROR_KINDS", "http500,boom"},
		"latency":    {"SANDBOX_LATENCY", "5ms-1ms"},
		"retries":    {"SANDBOX_PUSH_RETRIES", "-3"},
		"bool":       {"SANDBOX_AUTO_CREATE", "perhaps"},
		"profile":    {"UPSTREAM_PROFILE", badProfile},
		"no profile": {"UPSTREAM_PROFILE", filepath.Join(t.TempDir(), "missing.toml")},
		"callback":   {"CALLBACK_URL", "ftp://x"},
		"push rate":  {"SANDBOX_DROP_PUSH_RATE", "x"},
		"seed":       {"SANDBOX_SEED", "1.5"},
		"numeric":    {"SANDBOX_TAOBAO_NUMERIC_STATUS", "yes please"},
		"retry wait": {"SANDBOX_PUSH_RETRY_INTERVAL", "-1s"},
		"omit total": {"SANDBOX_TAOBAO_LIST_OMIT_TOTAL", "sometimes"},
		"page cap":   {"SANDBOX_TAOBAO_LIST_MAX_PAGE_SIZE", "-1"},
		"page cap 2": {"SANDBOX_TAOBAO_LIST_MAX_PAGE_SIZE", "101"},
		"page cap 3": {"SANDBOX_TAOBAO_LIST_MAX_PAGE_SIZE", "ten"},
		"quota":      {"SANDBOX_RATE_QUOTA", "-1"},
		"quota NaN":  {"SANDBOX_RATE_QUOTA", "NaN"},
		"quota 2":    {"SANDBOX_RATE_QUOTA", "ten"},
		"burst":      {"SANDBOX_RATE_QUOTA_BURST", "-1"},
	} {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		env[kv[0]] = kv[1]
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := run(ctx, []string{"sandbox"}, envFunc(env), io.Discard, io.Discard)
		cancel()
		if err == nil || !strings.Contains(err.Error(), kv[0]) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %s=%q: err %v; want a one-line error naming the variable", name, kv[0], kv[1], err)
		}
	}
	if err := run(context.Background(), []string{"sandbox", "extra"}, envFunc(base), io.Discard, io.Discard); err == nil {
		t.Error("unexpected argument accepted")
	}
}

// runSandbox runs the sandbox with env until the returned cancel (or the
// test's end), and returns the address it logged it listens on.
func runSandbox(t *testing.T, env map[string]string, stdout, stderr *syncBuffer) (addr string, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ran := make(chan error, 1)
	go func() { ran <- run(ctx, []string{"sandbox"}, envFunc(env), stdout, stderr) }()

	re := regexp.MustCompile(`"addr":"(127\.0\.0\.1:\d+)"`)
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			return m[1], cancel, ran
		}
		select {
		case err := <-ran:
			t.Fatalf("run exited early: %v\n%s", err, stderr.String())
		case <-deadline.C:
			t.Fatalf("no listening address logged:\n%s", stderr.String())
		case <-poll.C:
		}
	}
}

// TestRunKeepsItsStateAcrossARestart: with SANDBOX_STATE_FILE, an order
// created before a stop is there after the next start (devstack sets it).
func TestRunKeepsItsStateAcrossARestart(t *testing.T) {
	env := map[string]string{"UPSTREAM_ACCESS_KEY": "k", "UPSTREAM_ACCESS_SECRET": "s", "SANDBOX_ADDR": "127.0.0.1:0",
		"SANDBOX_STATE_FILE": filepath.Join(t.TempDir(), "sandbox-state.json")}
	var stdout, stderr syncBuffer
	addr, cancel, done := runSandbox(t, env, &stdout, &stderr)
	resp, err := http.Post("http://"+addr+"/_sandbox/orders", "application/json", strings.NewReader(`{"platform":"1688","order_id":"42","amount":500}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		t.Fatalf("create order: HTTP %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}

	var stdout2, stderr2 syncBuffer
	addr, cancel, done = runSandbox(t, env, &stdout2, &stderr2)
	resp, err = http.Get("http://" + addr + "/_sandbox/orders/42?platform=1688")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET the order created before the restart: HTTP %d; want 200", resp.StatusCode)
	}
	if line := logtest.Find(logtest.Parse(t, stderr2.String()), "sandbox: state restored"); line == nil {
		t.Errorf("no \"sandbox: state restored\" line at the second start:\n%s", stderr2.String())
	}
	cancel()
	<-done
}

func TestRunServesAndStops(t *testing.T) {
	env := map[string]string{"UPSTREAM_ACCESS_KEY": "k", "UPSTREAM_ACCESS_SECRET": "super-secret-value",
		"SANDBOX_ADDR": "127.0.0.1:0", "SANDBOX_LATENCY": "0ms-1ms", "SANDBOX_PUSH_RETRIES": "0"}
	var stdout, stderr syncBuffer
	addr, cancel, done := runSandbox(t, env, &stdout, &stderr)
	resp, err := http.Get("http://" + addr + "/_sandbox/healthz")
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ok"`) {
		t.Errorf("healthz: HTTP %d %s", resp.StatusCode, body)
	}
	// An unsigned call is logged ("auth failed"), once with "msg" twice.
	resp, err = http.Post("http://"+addr+"/open/order/refund/queryList", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("unsigned call: %v", err)
	}
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after cancel: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop after cancel")
	}
	if strings.Contains(stderr.String(), "super-secret-value") {
		t.Error("the secret appeared in the log")
	}
	// One log format (JSON by default), nothing on stdout, and a clean stop
	// says nothing at warn or above.
	if stdout.String() != "" {
		t.Errorf("stdout = %q; want nothing (logs go to stderr)", stdout.String())
	}
	lines := logtest.Parse(t, stderr.String())
	logtest.Quiet(t, lines)
	for _, msg := range []string{"sandbox listening", "sandbox: auth failed", "sandbox stopped"} {
		if logtest.Find(lines, msg) == nil {
			t.Errorf("no %q line:\n%s", msg, stderr.String())
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"":                                       "",
		"http://127.0.0.1:8080/callbacks/tok123": "http://127.0.0.1:8080/callbacks/REDACTED",
		"https://u:p@h/cb?token=x":               "https://h/REDACTED?REDACTED",
		"http://h/":                              "http://h/",
		"::bad":                                  "<unparsable URL>",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q; want %q", in, got, want)
		}
	}
}

// TestListPagingFaultsFromEnv: the Taobao list paging faults are off unless
// their variables say otherwise.
func TestListPagingFaultsFromEnv(t *testing.T) {
	base := map[string]string{"UPSTREAM_ACCESS_KEY": "k", "UPSTREAM_ACCESS_SECRET": "s"}
	c, err := loadConfig(envFunc(base))
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if c.sb.Faults.TaobaoListOmitTotal || c.sb.Faults.TaobaoListMaxPageSize != 0 || c.sb.Faults.RateQuota != 0 {
		t.Errorf("defaults: omit total %v, max page size %d, quota %v; want false, 0, 0", c.sb.Faults.TaobaoListOmitTotal,
			c.sb.Faults.TaobaoListMaxPageSize, c.sb.Faults.RateQuota)
	}
	base["SANDBOX_TAOBAO_LIST_OMIT_TOTAL"] = "true"
	base["SANDBOX_TAOBAO_LIST_MAX_PAGE_SIZE"] = "20"
	base["SANDBOX_RATE_QUOTA"] = "2.5"
	base["SANDBOX_RATE_QUOTA_BURST"] = "4"
	if c, err = loadConfig(envFunc(base)); err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if !c.sb.Faults.TaobaoListOmitTotal || c.sb.Faults.TaobaoListMaxPageSize != 20 || c.sb.Faults.RateQuota != 2.5 || c.sb.Faults.RateQuotaBurst != 4 {
		t.Errorf("set: omit total %v, max page size %d, quota %v burst %d; want true, 20, 2.5, 4", c.sb.Faults.TaobaoListOmitTotal,
			c.sb.Faults.TaobaoListMaxPageSize, c.sb.Faults.RateQuota, c.sb.Faults.RateQuotaBurst)
	}
}

// TestLoadConfigReportsEveryProblem: every bad variable is named at once, and
// neither the access secret nor the receiver's token in CALLBACK_URL is
// quoted.
func TestLoadConfigReportsEveryProblem(t *testing.T) {
	env := map[string]string{"UPSTREAM_ACCESS_SECRET": "s3cret-value", "CALLBACK_URL": "ftp://h/callbacks/tok-1234567890abcdef",
		"SANDBOX_SEED": "x", "SANDBOX_LATENCY": "2m", "SANDBOX_ERROR_KINDS": "boom", "SANDBOX_PUSH_TIMEOUT": "0s"}
	_, err := loadConfig(envFunc(env))
	if err == nil {
		t.Fatalf("loadConfig(%v) succeeded; want errors", env)
	}
	for _, want := range []string{"UPSTREAM_ACCESS_KEY", "CALLBACK_URL", "SANDBOX_SEED", "SANDBOX_LATENCY", "SANDBOX_ERROR_KINDS", "SANDBOX_PUSH_TIMEOUT"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("loadConfig(%v) error = %v; want it to name %s", env, err, want)
		}
	}
	for _, secret := range []string{"s3cret-value", "tok-1234567890abcdef"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("loadConfig error quotes %q:\n%v", secret, err)
		}
	}
}

// TestLoadConfigDefaults: unset variables take the documented defaults, and
// unset SANDBOX_ERROR_KINDS leaves the list empty for the sandbox's own choice.
func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(envFunc(map[string]string{"UPSTREAM_ACCESS_KEY": "k", "UPSTREAM_ACCESS_SECRET": "s"}))
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	sb := c.sb
	if c.addr != "127.0.0.1:8090" || !sb.AutoCreate || sb.Seller.Decision != "agree" || sb.Seller.DecideAfter != 2*time.Second ||
		sb.Seller.ReceiveAfter != 2*time.Second || sb.PushTimeout != time.Second || sb.PushRetries != 5 ||
		sb.PushRetryInterval != 30*time.Minute || sb.Faults.ErrorKinds != nil || sb.Faults.ErrorRate != 0 ||
		!sb.TaobaoNumericStatus || sb.NumericDevelopID || sb.Seed != 0 || c.profilePath != "" {
		t.Errorf("loadConfig(no variables) = %+v; want the documented defaults", c)
	}
}

// TestCallbackURLExpandsTheToken: foreman passes .env values as written, so
// the documented CALLBACK_URL=…/callbacks/$CALLBACK_TOKEN reached the
// sandbox literally and every push got 401. The sandbox expands it.
func TestCallbackURLExpandsTheToken(t *testing.T) {
	env := map[string]string{"UPSTREAM_ACCESS_KEY": "k", "UPSTREAM_ACCESS_SECRET": "s",
		"CALLBACK_TOKEN": "tok-0123456789abcdef", "CALLBACK_URL": "http://127.0.0.1:8080/callbacks/$CALLBACK_TOKEN"}
	cfg, err := loadConfig(envFunc(env))
	if err != nil {
		t.Fatal(err)
	}
	if want := "http://127.0.0.1:8080/callbacks/tok-0123456789abcdef"; cfg.sb.CallbackURL != want {
		t.Errorf("CallbackURL = %q; want %q", cfg.sb.CallbackURL, want)
	}
	env["CALLBACK_URL"] = "http://127.0.0.1:8080/callbacks/${CALLBACK_TOKEN}"
	if cfg, err = loadConfig(envFunc(env)); err != nil || !strings.HasSuffix(cfg.sb.CallbackURL, "/tok-0123456789abcdef") {
		t.Errorf("${} form: %q, %v", cfg.sb.CallbackURL, err)
	}
}
