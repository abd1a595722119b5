package refundhub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/testenv"
)

// TestProcfileUnderARealRunner runs the Procfile under a real Procfile
// runner, in a directory holding the Procfile, the binaries of the one
// documented build command and the .env of docs/operations.md, and drives
// docs/walkthrough.md's 1688 walkthrough through the refundctl binary. Then it
// stops the runner as a terminal or a supervisor would, SIGTERM to its
// process group, and checks that every process exited by itself within the
// runner's grace period. A second run stops the runner alone by its PID, as
// `kill PID` does: the runner must pass the signal on and leave no process
// behind (the case a `go run` line in the Procfile failed).
//
// Only addresses move, so that the test runs beside other stacks: NATS's
// -p flag in the copied Procfile, 127.0.0.1:8080 in the .env's CALLBACK_URL
// (its $CALLBACK_TOKEN stays as written), and the components' address
// variables in the runner's environment, which the runner passes on.
func TestProcfileUnderARealRunner(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every binary and runs the Procfile under foreman")
	}
	runners := []struct {
		name string
		// path finds the runner or skips (see installed).
		path func(t *testing.T) string
	}{
		{"foreman", func(t *testing.T) string { return testenv.Installed(t, "foreman", "apt-get install ruby-foreman") }},
		// Debian bookworm does not package honcho, so .ci/run cannot
		// install it: it runs where someone installed it.
		{"honcho", func(t *testing.T) string {
			path, err := exec.LookPath("honcho")
			if err != nil {
				t.Skip("honcho not found on PATH (not packaged by Debian; pip install honcho to run it)")
			}
			return path
		}},
	}
	bin := filepath.Join(t.TempDir(), "bin")
	built := false
	for _, r := range runners {
		t.Run(r.name, func(t *testing.T) {
			runner := r.path(t)
			if !built {
				buildDocumented(t, bin)
				built = true
			}
			t.Run("walkthrough, then SIGTERM to the process group", func(t *testing.T) {
				s := startProcfile(t, runner, bin)
				walkthrough1688(t, s)
				s.stop(t, -s.cmd.Process.Pid)
			})
			t.Run("SIGTERM to the runner alone", func(t *testing.T) {
				s := startProcfile(t, runner, bin)
				s.stop(t, s.cmd.Process.Pid)
			})
		})
	}
}

// procfileStack is the Procfile's processes run by a runner in dir.
type procfileStack struct {
	dir                                         string
	natsURL, sandbox, receiver, worker, console string // addresses
	token                                       string // the .env's CALLBACK_TOKEN

	cmd    *exec.Cmd     // the runner
	out    *bytes.Buffer // its output; read only after it exited
	exited chan error    // its exit, once
	procs  processes     // the Procfile's processes under it
}

// startProcfile starts the runner in a new directory holding the
// Procfile, .env and bin/, and waits until every process is ready.
func startProcfile(t *testing.T, runner, bin string) *procfileStack {
	t.Helper()
	s := &procfileStack{
		dir:      t.TempDir(),
		sandbox:  fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		receiver: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		worker:   fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		console:  fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		out:      &bytes.Buffer{},
		exited:   make(chan error, 1),
	}
	natsPort := freePort(t)
	s.natsURL = fmt.Sprintf("nats://127.0.0.1:%d", natsPort)

	procfile, err := os.ReadFile("Procfile")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(procfile, []byte(" -p 4222 ")) {
		t.Fatalf("Procfile: no NATS port flag -p 4222 to move to a free port:\n%s", procfile)
	}
	procfile = bytes.Replace(procfile, []byte(" -p 4222 "), []byte(fmt.Sprintf(" -p %d ", natsPort)), 1)
	dotenv := documentedEnvText(t)
	if !strings.Contains(dotenv, "127.0.0.1:8080") {
		t.Fatalf(".env block %q: no receiver address 127.0.0.1:8080 to move to a free port", dotenv)
	}
	dotenv = strings.Replace(dotenv, "127.0.0.1:8080", s.receiver, 1)
	for name, b := range map[string][]byte{"Procfile": procfile, ".env": []byte(dotenv)} {
		if err := os.WriteFile(filepath.Join(s.dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(bin, filepath.Join(s.dir, "bin")); err != nil {
		t.Fatal(err)
	}
	for _, kv := range documentedEnv(t) {
		if k, v, _ := strings.Cut(kv, "="); k == "CALLBACK_TOKEN" {
			s.token = v
		}
	}

	s.cmd = exec.Command(runner, "start")
	s.cmd.Dir = s.dir
	s.cmd.Env = append(os.Environ(),
		"NATS_URL="+s.natsURL, "SANDBOX_ADDR="+s.sandbox, "RECEIVER_ADDR="+s.receiver,
		"UPSTREAM_BASE_URL=http://"+s.sandbox, "WORKER_METRICS_ADDR="+s.worker, "CONSOLE_ADDR="+s.console,
		// The worker's default, made absolute so that refundctl reads the
		// same file whatever DB_PATH the caller's environment has.
		"DB_PATH="+filepath.Join(s.dir, "data", "refunds.db"),
		// Seller decisions in a fraction of a second instead of the demo's 2 s.
		"SANDBOX_SELLER_DELAY=200ms", "SANDBOX_RECEIVE_DELAY=200ms")
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("%s start: %v", runner, err)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	t.Cleanup(func() {
		if s.exited != nil { // not stopped: a failure on the way
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.exited
		}
		for p := range s.procs.alive() { // orphans, reported by stop
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(runner), s.out.String())
		}
	})

	waitFor(t, "the sandbox", func() bool { return ok("http://" + s.sandbox + "/_sandbox/healthz") })
	waitFor(t, "the receiver's /readyz", func() bool { return ok("http://" + s.receiver + "/readyz") })
	waitFor(t, "the worker's /readyz", func() bool { return ok("http://" + s.worker + "/readyz") })
	waitFor(t, "the console's /healthz", func() bool { return ok("http://" + s.console + "/healthz") })
	consoleAccountSteps(t, s, bin)
	s.procs = descendants(s.cmd.Process.Pid)
	for _, name := range []string{"nats-server", "sandbox", "receiver", "worker", "console"} {
		if !s.procs.has(name) {
			t.Fatalf("processes under %s: %v; want one running %s", runner, s.procs, name)
		}
	}
	return s
}

// stop sends SIGTERM to pid (negative: a process group) and checks that
// the runner and every process it ran exit, each by itself within the
// runner's grace period.
func (s *procfileStack) stop(t *testing.T, pid int) {
	t.Helper()
	runner := filepath.Base(s.cmd.Path)
	start := time.Now()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to %d: %v", pid, err)
	}
	select {
	case err := <-s.exited:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Errorf("%s: %v", runner, err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("%s still running a minute after SIGTERM", runner)
	}
	s.exited = nil
	t.Logf("%s stopped %v after SIGTERM", runner, time.Since(start).Round(time.Millisecond))
	// A runner kills what outlives its grace period (foreman: 5 s): the
	// processes must stop by themselves within it.
	if bytes.Contains(s.out.Bytes(), []byte("SIGKILL")) {
		t.Errorf("%s had to SIGKILL a process after SIGTERM", runner)
	}
	// Every process has had the runner's grace period already; allow
	// some more for the kernel to tear the last one down.
	deadline := time.Now().Add(10 * time.Second)
	for len(s.procs.alive()) > 0 && time.Now().Before(deadline) {
		<-time.After(50 * time.Millisecond) // polling /proc: a process that exits sends no signal to wait on
	}
	if left := s.procs.alive(); len(left) > 0 {
		t.Errorf("%s exited and left these processes running (pid: name): %v", runner, left)
	}
}

// walkthrough1688 is docs/walkthrough.md's 1688 walkthrough through the
// refundctl binary: each command's verdict and exit status, and the case's
// final state.
func walkthrough1688(t *testing.T, s *procfileStack) {
	t.Helper()
	ctl := refundctl{t: t, bin: filepath.Join(s.dir, "bin", "refundctl"), env: []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"NATS_URL=" + s.natsURL, "DB_PATH=" + filepath.Join(s.dir, "data", "refunds.db"),
		"RECEIVER_URL=http://" + s.receiver, "CALLBACK_TOKEN=" + s.token,
	}}
	sel := []string{"--platform", "1688", "--order", "3305075341149134260"}

	// 1. Request a return and refund: the command id, then the worker's verdict.
	id, verdict, _ := strings.Cut(ctl.run(append(append([]string{"request"}, sel...), "--type", "return",
		"--goods-status", "aftersaleBuyerReceived", "--reason-id", "20025", "--amount", "9500", "--description", "七天无理由退货")...), "\n")
	if !strings.HasPrefix(id, "cmd-") || !strings.HasPrefix(verdict, "applied: case ") {
		t.Fatalf("request printed %q, %q; want the command id, then its verdict (applied)", id, verdict)
	}
	// 2. The seller agrees and asks for the goods back: this needs the
	// sandbox's callback to reach the receiver with the .env's token.
	if out := ctl.run("wait", "--command", id, "--state", "waiting_return_shipment", "--deadline", "1m"); !strings.Contains(out, "is waiting_return_shipment") {
		t.Fatalf("wait --state waiting_return_shipment printed %q", out)
	}
	ctl.run("show", "--command", id)
	// 3. Report the return shipment.
	if out := ctl.run(append(append([]string{"ship"}, sel...), "--company", "YTO", "--waybill", "YT1234567890")...); !strings.Contains(out, "\napplied: case ") {
		t.Errorf("ship printed %q; want the command id, then applied", out)
	}
	// 4. The seller confirms receipt and the refund succeeds.
	ctl.run("wait", "--command", id, "--state", "succeeded", "--deadline", "1m")
	var shown struct {
		Case struct {
			State    string `json:"state"`
			RefundID string `json:"refundId"`
			Version  int64  `json:"version"`
		} `json:"case"`
	}
	if err := json.Unmarshal([]byte(ctl.run("show", "--command", id, "--json")), &shown); err != nil {
		t.Fatalf("show --json: %v", err)
	}
	if shown.Case.State != "succeeded" || shown.Case.RefundID == "" {
		t.Fatalf("show: %+v; want a succeeded case with a refund id", shown.Case)
	}
	if out := ctl.run("list"); !strings.Contains(out, "succeeded") {
		t.Errorf("list printed %q; want the succeeded case", out)
	}
	// 5. Replayed callbacks, through the receiver (with the .env's token)
	// and into the stream, are recognised as duplicates.
	subject := "callbacks.1688.ORDER_BUYER_VIEW_ORDER_BUYER_REFUND"
	for _, to := range []string{"receiver", "stream"} {
		var rep struct {
			Count      int `json:"count"`
			Duplicates int `json:"duplicates"`
		}
		if err := json.Unmarshal([]byte(ctl.run("replay", "--subject", subject, "--to", to, "--json")), &rep); err != nil {
			t.Fatalf("replay --to %s --json: %v", to, err)
		}
		if rep.Count == 0 || (to == "stream" && rep.Duplicates != rep.Count) {
			t.Errorf("replay --to %s: %+v; want callbacks replayed, into the stream all as duplicates", to, rep)
		}
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
		t.Errorf("after the replays the case is %s v%d; want it untouched (succeeded v%d)", again.Case.State, again.Case.Version, shown.Case.Version)
	}
	// The platform's ground truth: one refund submitted, none twice.
	var st struct {
		RefundSubmissions    map[string]int `json:"refund_submissions"`
		DuplicateSubmissions int            `json:"duplicate_submissions"`
	}
	getJSON(t, "http://"+s.sandbox+"/_sandbox/stats", &st)
	if st.DuplicateSubmissions != 0 || st.RefundSubmissions["1688:3305075341149134260"] != 1 {
		t.Errorf("sandbox stats %+v; want exactly one submission and no duplicates", st)
	}
}

// consoleAccountSteps runs docs/operations.md's `bin/refundctl console`
// lines beside the Procfile, as documented (the store at DB_PATH, which
// the stack's environment sets as the worker's), then logs in on the
// console with the password the first printed and reads its API with the
// token the second printed.
func consoleAccountSteps(t *testing.T, s *procfileStack, bin string) {
	t.Helper()
	b, err := os.ReadFile("docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := regexp.MustCompile(`(?m)^bin/refundctl (console .*)$`).FindAllStringSubmatch(string(b), -1)
	if len(lines) != 2 {
		t.Fatalf("docs/operations.md: %d `bin/refundctl console` lines; want the users add and tokens add steps", len(lines))
	}
	ctl := refundctl{t: t, bin: filepath.Join(bin, "refundctl"), env: []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "DB_PATH=" + filepath.Join(s.dir, "data", "refunds.db")}}
	var outs []string
	for _, l := range lines {
		outs = append(outs, ctl.run(strings.Fields(l[1])...))
	}
	pw := regexp.MustCompile(`(?m)^password: (\S+)$`).FindStringSubmatch(outs[0])
	tok := regexp.MustCompile(`(?m)^(rhc_\S+)$`).FindStringSubmatch(outs[1])
	if pw == nil || tok == nil {
		t.Fatalf("the documented steps printed %q and %q; want a password, then a token", outs[0], outs[1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm("http://"+s.console+"/login", url.Values{"name": {"dev"}, "password": {pw[1]}})
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("console login with the printed password: %v %v; want 303", resp, err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.console+"/api/v1/cases", nil)
	req.Header.Set("Authorization", "Bearer "+tok[1])
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the console with the printed token: %v %v; want 200", resp, err)
	} else {
		resp.Body.Close()
	}
}

// refundctl runs the refundctl binary with a fixed environment.
type refundctl struct {
	t   *testing.T
	bin string
	env []string
}

// run runs refundctl and fails the test unless it exits 0.
func (c refundctl) run(args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = c.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("refundctl %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
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

// processes are PIDs with the command name each ran when recorded.
type processes map[int]string

// descendants lists the processes below pid, from /proc.
func descendants(pid int) processes {
	parent := map[int]int{}
	names := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, comm, ok := procStat(p)
		if ok {
			parent[p], names[p] = ppid, comm
		}
	}
	out := processes{}
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out[p] = names[p]
				break
			}
		}
	}
	return out
}

func (ps processes) has(name string) bool {
	for _, n := range ps {
		if n == name {
			return true
		}
	}
	return false
}

// alive are those still running: a PID now running another program, or
// a zombie, counts as gone.
func (ps processes) alive() processes {
	out := processes{}
	for p, name := range ps {
		if _, comm, ok := procStat(p); ok && comm == name {
			out[p] = name
		}
	}
	return out
}

// procStat reads a process's parent and command name from /proc/PID/stat;
// ok is false for a process that is gone or a zombie.
func procStat(pid int) (ppid int, comm string, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", false
	}
	// "PID (COMM) STATE PPID …"; COMM may hold spaces and parentheses.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return 0, "", false
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 2 || f[0] == "Z" {
		return 0, "", false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, string(b[open+1 : end]), err == nil
}
