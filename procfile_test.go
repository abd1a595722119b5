package refundhub_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProcfileWithTheDocumentedEnv runs the Procfile's own command lines,
// as a runner does, with the .env documented in docs/operations.md taken
// literally (foreman passes $CALLBACK_TOKEN as written), after the one
// documented build command. A callback the sandbox pushes must reach the
// receiver and be answered 200: with the literal token it was 401.
func TestProcfileWithTheDocumentedEnv(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every binary and runs the Procfile's processes")
	}
	dir := t.TempDir()
	buildDocumented(t, filepath.Join(dir, "bin"))
	port, sbPort, rcvPort := freePort(t), freePort(t), freePort(t)
	sbAddr, rcvAddr := fmt.Sprintf("127.0.0.1:%d", sbPort), fmt.Sprintf("127.0.0.1:%d", rcvPort)
	var env []string
	for _, kv := range documentedEnv(t) {
		// Only the address moves; "$CALLBACK_TOKEN" stays as written.
		env = append(env, strings.Replace(kv, "127.0.0.1:8080", rcvAddr, 1))
	}
	procs := procfileLines(t)
	for _, name := range []string{"nats", "sandbox", "receiver", "worker"} {
		line, ok := procs[name]
		if !ok {
			t.Fatalf("Procfile has no %s line", name)
		}
		// Each process as the Procfile says, on free ports (NATS's flag,
		// the others' address variables) so the test runs beside other
		// stacks.
		line = strings.Replace(line, "-p 4222", fmt.Sprintf("-p %d", port), 1)
		cmd := exec.Command("sh", "-c", "exec "+line)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		cmd.Env = append(cmd.Env, fmt.Sprintf("NATS_URL=nats://127.0.0.1:%d", port), "DB_PATH=data/refunds.db",
			"LOG_FORMAT=text", "SANDBOX_ADDR="+sbAddr, "RECEIVER_ADDR="+rcvAddr, "UPSTREAM_BASE_URL=http://"+sbAddr,
			fmt.Sprintf("WORKER_METRICS_ADDR=127.0.0.1:%d", freePort(t)))
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("%s output:\n%s", name, logs.String())
			}
		})
		if name == "nats" {
			waitFor(t, "NATS", func() bool { return dial(fmt.Sprintf("127.0.0.1:%d", port)) })
		}
	}
	waitFor(t, "the sandbox", func() bool { return dial(sbAddr) })
	waitFor(t, "the receiver", func() bool { return ok("http://" + rcvAddr + "/readyz") })

	body := `{"platform":"1688","order_id":"3305075341149134260","amount":9500,"carriage":500}`
	resp, err := http.Post("http://"+sbAddr+"/_sandbox/orders", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("create order: %d", resp.StatusCode)
	}
	var last string
	waitFor(t, "the order callback delivered to the receiver", func() bool {
		var log struct {
			Callbacks []struct {
				Status    string `json:"status"`
				LastError string `json:"last_error"`
			} `json:"callbacks"`
		}
		r, err := http.Get("http://" + sbAddr + "/_sandbox/callbacks")
		if err != nil {
			return false
		}
		defer r.Body.Close()
		if json.NewDecoder(r.Body).Decode(&log) != nil || len(log.Callbacks) == 0 {
			return false
		}
		last = log.Callbacks[0].Status + " " + log.Callbacks[0].LastError
		return log.Callbacks[0].Status == "delivered"
	})
	if t.Failed() {
		t.Logf("last push: %s", last)
	}
}

// buildDocumented builds the binaries into dir with the one build command
// the Procfile and docs/operations.md document.
func buildDocumented(t *testing.T, dir string) {
	t.Helper()
	build := exec.Command("go", "build", "-o", dir+"/", "./cmd/...", "github.com/nats-io/nats-server/v2")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the documented build: %v\n%s", err, out)
	}
}

// documentedEnvText is the .env block of docs/operations.md, as written.
func documentedEnvText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)A\\s+`\\.env` beside the Procfile.*?```sh\n(.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatal("docs/operations.md has no .env block")
	}
	return string(m[1])
}

// documentedEnv reads the .env block of docs/operations.md, values as
// written (no expansion, as foreman does).
func documentedEnv(t *testing.T) []string {
	t.Helper()
	text := documentedEnvText(t)
	var env []string
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env = append(env, k+"="+v)
		}
	}
	if len(env) < 5 {
		t.Fatalf(".env block %q: want at least the five documented variables", text)
	}
	return env
}

// procfileLines returns the Procfile's processes by name.
func procfileLines(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("Procfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if name, cmd, ok := strings.Cut(line, ":"); ok {
			out[strings.TrimSpace(name)] = strings.TrimSpace(cmd)
		}
	}
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func dial(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return err == nil
}

func ok(url string) bool {
	r, err := http.Get(url)
	if err != nil {
		return false
	}
	r.Body.Close()
	return r.StatusCode == 200
}

// waitFor polls cond until it holds, failing after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}
