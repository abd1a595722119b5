package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// run builds and starts the stack and stops it when ctx ends. environ is the
// environment devstack was started with (main passes os.Environ()): devstack
// reads its own variables from it (envVars) and hands it, with its wiring on
// top, to every process it starts, the go build included. Unlike the other
// commands it takes the whole list, not a getenv, because it passes the
// environment on; a test gives it exactly the environment the stack sees.
func run(ctx context.Context, args []string, environ []string, stdout, stderr out) error {
	stdout, stderr = &syncWriter{w: stdout}, &syncWriter{w: stderr}
	getenv := getenvFrom(environ)
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dataDir, "vouchers"), 0o750); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	secretsPath := filepath.Join(dataDir, "devstack.env")
	secrets, generated, err := loadOrCreateSecrets(secretsPath)
	if err != nil {
		return err
	}
	if len(generated) > 0 {
		fmt.Fprintf(stdout, "devstack: generated development secrets in %s\n", filepath.Join(dataDir, "devstack.env"))
	}

	ns, err := startNATS(cfg, filepath.Join(dataDir, "nats"))
	if err != nil {
		return err
	}
	defer func() {
		ns.Shutdown()
		ns.WaitForShutdown()
		fmt.Fprintln(stdout, "devstack: nats stopped")
	}()
	natsURL := ns.ClientURL()
	fmt.Fprintf(stdout, "devstack: nats (JetStream, store %s) on %s\n", filepath.Join(dataDir, "nats"), natsURL)

	root, err := moduleRoot()
	if err != nil {
		return err
	}
	binDir := filepath.Join(dataDir, "bin")
	var present []string
	for _, c := range cfg.Components {
		if _, err := os.Stat(filepath.Join(root, "cmd", c, "main.go")); err != nil {
			fmt.Fprintf(stdout, "devstack: cmd/%s not found in this checkout; skipping it\n", c)
			continue
		}
		present = append(present, c)
	}
	targets := present
	tools := false
	if _, err := os.Stat(filepath.Join(root, "cmd", "refundctl", "main.go")); err == nil {
		targets = append(append([]string(nil), present...), "refundctl") // the operator CLI, built beside the stack
		tools = true
	}
	bld := builder{goCmd: cfg.GoCommand, root: root, binDir: binDir, environ: environ, stdout: stdout, stderr: stderr}
	if err := bld.build(ctx, targets); err != nil {
		return err
	}

	// wiring is what connects the parts; a variable set in devstack's own
	// environment wins over it (childEnv).
	wiring := map[string]string{
		"NATS_URL":               natsURL,
		"UPSTREAM_ACCESS_KEY":    secrets["UPSTREAM_ACCESS_KEY"],
		"UPSTREAM_ACCESS_SECRET": secrets["UPSTREAM_ACCESS_SECRET"],
		"UPSTREAM_USER_ID":       secrets["UPSTREAM_USER_ID"],
		"UPSTREAM_BASE_URL":      "http://" + cfg.SandboxAddr,
		"CALLBACK_TOKEN":         secrets["CALLBACK_TOKEN"],
		"CALLBACK_URL":           "http://" + cfg.ReceiverAddr + "/callbacks/" + secrets["CALLBACK_TOKEN"],
		"DB_PATH":                filepath.Join(dataDir, "refunds.db"),
		// The sandbox keeps its orders and refunds across a restart of the
		// stack, as the worker keeps its cases: a case open when the stack
		// stopped finds its refund again.
		"SANDBOX_STATE_FILE": filepath.Join(dataDir, "sandbox-state.json"),
		// Local runs retry undelivered pushes in seconds, not the platform's 30 minutes.
		"SANDBOX_PUSH_RETRY_INTERVAL": "10s",
		// In-flight steps get 10 s on Ctrl-C, well inside devstack's stop grace.
		"WORKER_SHUTDOWN_TIMEOUT": "10s",
		// 1688 requests name voucher images by file name in this directory.
		"WORKER_VOUCHER_DIR": filepath.Join(dataDir, "vouchers"),
		// The console signs its sessions with a key kept in devstack.env, so
		// a login survives a restart of the stack.
		"CONSOLE_SESSION_KEY": secrets["CONSOLE_SESSION_KEY"],
	}
	// The addresses devstack waits on are its own settings (flag or
	// variable): the components always get those.
	addrs := map[string]string{
		"SANDBOX_ADDR":        cfg.SandboxAddr,
		"RECEIVER_ADDR":       cfg.ReceiverAddr,
		"WORKER_METRICS_ADDR": cfg.MetricsAddr,
		"CONSOLE_ADDR":        cfg.ConsoleAddr,
	}
	childEnviron := childEnv(environ, wiring, addrs)
	cliEnv := filepath.Join(dataDir, "refundctl.env")
	if err := writeCLIEnv(cliEnv, cliVars(childEnviron, "http://"+cfg.ReceiverAddr)); err != nil {
		return err
	}
	readyURL := map[string]string{
		"sandbox":  "http://" + cfg.SandboxAddr + "/_sandbox/healthz",
		"receiver": "http://" + cfg.ReceiverAddr + "/readyz",
		"worker":   "http://" + cfg.MetricsAddr + "/healthz",
		"console":  "http://" + cfg.ConsoleAddr + "/healthz",
	}

	sup := &supervisor{stdout: stdout, stderr: stderr, exited: make(chan childExit, len(present))}
	// The grace exceeds every component's own drain time (worker 10 s here,
	// receiver 10 s), so each stops cleanly rather than being killed.
	defer sup.stopAll(30 * time.Second)
	for _, c := range present {
		if err := sup.start(c, filepath.Join(binDir, c), childEnviron); err != nil {
			return err
		}
		if err := waitReady(ctx, readyURL[c], cfg.ReadyTimeout, sup.exited); err != nil {
			var e exitError
			if errors.As(err, &e) {
				when := "before it was ready"
				if e.name != c { // an earlier part died while this one started
					when = "while " + c + " was starting"
				}
				return fmt.Errorf("%s exited %s (%s); stopped the stack", e.name, when, childExit(e).explain(cfg.DataDir))
			}
			return fmt.Errorf("%s did not become ready: %w", c, err)
		}
	}
	if slices.Contains(present, "sandbox") {
		// With the receiver up, their ORDER_CREATE pushes are delivered
		// at once rather than retried.
		seedExampleOrders(ctx, stdout, "http://"+cfg.SandboxAddr)
	}
	// The development console account and token, once the worker has
	// migrated the store (it is ready) and the console can check a token.
	var login consoleLogin
	if tools && slices.Contains(present, "worker") && slices.Contains(present, "console") {
		p := consoleProvisioner{refundctl: filepath.Join(binDir, "refundctl"), env: childEnviron,
			consoleURL: "http://" + cfg.ConsoleAddr, secrets: secrets, passwordNew: slices.Contains(generated, "CONSOLE_PASSWORD")}
		var tokenNew bool
		if login, tokenNew, err = p.ensure(ctx); err != nil {
			return fmt.Errorf("development console account: %w", err)
		}
		if tokenNew {
			secrets["CONSOLE_TOKEN"] = login.Token
			if err := writeSecrets(secretsPath, secrets); err != nil {
				return err
			}
		}
	}
	printWelcome(stdout, cfg, present, tools, binDir, cliEnv, login)

	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "devstack: stopping (components first, then nats)")
		return nil
	case e := <-sup.exited:
		return fmt.Errorf("%s exited unexpectedly (%s); stopped the stack", e.name, e.explain(cfg.DataDir))
	}
}

func startNATS(cfg config, storeDir string) (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{
		ServerName: "devstack",
		Host:       cfg.NATSHost,
		Port:       cfg.NATSPort,
		JetStream:  true,
		StoreDir:   storeDir,
		NoSigs:     true, // devstack owns signal handling and shuts NATS down last
	})
	if err != nil {
		return nil, fmt.Errorf("configure nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("nats did not start on %s:%d (is the port in use? set -nats-port)", cfg.NATSHost, cfg.NATSPort)
	}
	return ns, nil
}

// progressEvery is how often a build still running says so. go build is
// silent while it compiles; on a cold module cache the first build runs for
// a few minutes, which without a sign of life looks like a hang.
const progressEvery = 15 * time.Second

// builder compiles the components into binDir with the environment devstack
// was given. goCmd without a slash is looked up in the process's PATH
// (exec.LookPath).
type builder struct {
	goCmd, root, binDir string
	environ             []string
	stdout, stderr      out
	// newTicker paces the "still building" lines; nil means a real ticker
	// every progressEvery. Tests give their own channel so they drive the
	// lines without waiting on the clock.
	newTicker func() (tick <-chan time.Time, stop func())
}

// build compiles comps one at a time, saying which it is building, that it
// is still at it, and when each is done. One go build per binary costs
// little, since later builds find the shared packages in the build cache,
// and lets each line name the binary it is about.
func (b builder) build(ctx context.Context, comps []string) error {
	if len(comps) == 0 {
		return nil
	}
	fmt.Fprintf(b.stdout, "devstack: building %s into %s (a cold module cache takes a few minutes; later runs are cached)\n",
		strings.Join(comps, ", "), b.binDir)
	for i, c := range comps {
		fmt.Fprintf(b.stdout, "devstack: building %s (%d/%d)\n", c, i+1, len(comps))
		start := time.Now()
		if err := b.buildOne(ctx, c, start); err != nil {
			return fmt.Errorf("build %s: %w", c, err)
		}
		fmt.Fprintf(b.stdout, "devstack: built %s in %s\n", c, time.Since(start).Round(time.Second))
	}
	return nil
}

// buildOne runs go build for one component while a goroutine it owns prints
// a "still building" line on every tick; the goroutine has ended when
// buildOne returns.
func (b builder) buildOne(ctx context.Context, comp string, start time.Time) error {
	tick, stopTick := b.ticker()
	defer stopTick()
	done := make(chan struct{})
	var progress sync.WaitGroup
	progress.Add(1)
	go func() {
		defer progress.Done()
		for {
			select {
			case <-done:
				return
			case <-tick:
				fmt.Fprintf(b.stdout, "devstack: still building %s (%s so far)…\n", comp, time.Since(start).Round(time.Second))
			}
		}
	}()
	defer progress.Wait()
	defer close(done)

	cmd := exec.CommandContext(ctx, b.goCmd, "build", "-o", filepath.Join(b.binDir, comp), "./cmd/"+comp)
	cmd.Dir = b.root
	cmd.Env = b.environ
	cmd.Stdout, cmd.Stderr = b.stdout, b.stderr
	return cmd.Run()
}

func (b builder) ticker() (<-chan time.Time, func()) {
	if b.newTicker != nil {
		return b.newTicker()
	}
	t := time.NewTicker(progressEvery)
	return t.C, t.Stop
}

// childExit is a child that exited while the stack ran: its name, and how
// (cmd.Wait's error: "exit status 2", "signal: killed"), for the
// developer who otherwise has to guess between a crash, a kill and an
// exit on bad configuration.
type childExit struct{ name, how string }

// explain is how e exited and where to look, for the stack's last line:
// a signal leaves no last words (kill -9, the kernel's out-of-memory
// killer), an exit status does (the child's log above).
func (e childExit) explain(dataDir string) string {
	why := e.how + ": its last lines above say why"
	if strings.HasPrefix(e.how, "signal: ") {
		why = e.how + ": killed from outside (kill, or the kernel's out-of-memory killer: dmesg says)"
	}
	return why + "; run devstack again to restart it, with " + dataDir + " as it was"
}

// exitError is waitReady's error when a part exits while it waits.
type exitError childExit

func (e exitError) Error() string { return fmt.Sprintf("%s exited (%s)", e.name, e.how) }

// supervisor owns the child processes.
type supervisor struct {
	stdout, stderr out
	mu             sync.Mutex
	procs          []*exec.Cmd
	names          []string
	waits          []chan struct{}
	exited         chan childExit
	stopping       bool
}

func (s *supervisor) start(name, bin string, env []string) error {
	cmd := exec.Command(bin)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C reaches devstack only; it stops children in order
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	var pipes sync.WaitGroup
	pipes.Add(2)
	go s.prefix(&pipes, name, stdout, s.stdout)
	go s.prefix(&pipes, name, stderr, s.stdout)
	done := make(chan struct{})
	go func() {
		pipes.Wait()
		how := "exit status 0"
		if err := cmd.Wait(); err != nil {
			how = err.Error() // "exit status 2", "signal: killed"
		}
		close(done)
		s.mu.Lock()
		stopping := s.stopping
		s.mu.Unlock()
		if !stopping {
			s.exited <- childExit{name: name, how: how}
		}
	}()
	s.mu.Lock()
	s.procs = append(s.procs, cmd)
	s.names = append(s.names, name)
	s.waits = append(s.waits, done)
	s.mu.Unlock()
	fmt.Fprintf(s.stdout, "devstack: started %s (pid %d)\n", name, cmd.Process.Pid)
	return nil
}

func (s *supervisor) prefix(wg *sync.WaitGroup, name string, r interface{ Read([]byte) (int, error) }, w out) {
	defer wg.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fmt.Fprintf(w, "%-8s | %s\n", name, sc.Text())
	}
}

// stopAll sends SIGTERM to the children in reverse start order and waits for
// each to exit (they drain and finish in-flight work); a child still running
// after the grace period is killed.
func (s *supervisor) stopAll(grace time.Duration) {
	s.mu.Lock()
	s.stopping = true
	procs, names, waits := s.procs, s.names, s.waits
	s.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		_ = procs[i].Process.Signal(syscall.SIGTERM)
		select {
		case <-waits[i]:
		case <-time.After(grace):
			fmt.Fprintf(s.stdout, "devstack: %s did not stop within %s; killing it\n", names[i], grace)
			_ = procs[i].Process.Kill()
			<-waits[i]
		}
		fmt.Fprintf(s.stdout, "devstack: %s stopped\n", names[i])
	}
}

func waitReady(ctx context.Context, url string, timeout time.Duration, exited <-chan childExit) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e := <-exited:
			return exitError(e)
		case <-deadline.C:
			return fmt.Errorf("no 200 from %s within %s", url, timeout)
		case <-tick.C:
		}
	}
}

// loadOrCreateSecrets reads KEY=VALUE lines from path, generating any missing
// development secret and writing the file back (mode 0600); generated
// names those it made. CONSOLE_PASSWORD is the development console
// account's password; CONSOLE_TOKEN, its API token, is not generated here
// but made by refundctl and stored afterwards (consoleProvisioner).
func loadOrCreateSecrets(path string) (secrets map[string]string, generated []string, err error) {
	secrets = map[string]string{}
	if b, err := os.ReadFile(path); err == nil {
		// A file left readable by others (copied, restored, created by an
		// older devstack) is tightened, not only files devstack rewrites.
		if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				return nil, nil, fmt.Errorf("tighten %s to mode 0600: %w", path, err)
			}
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				return nil, nil, fmt.Errorf("%s: malformed line (want KEY=VALUE)", path)
			}
			secrets[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("read secrets: %w", err)
	}
	// Random bytes, hex-encoded (a 36-character password is within
	// bcrypt's 72 bytes).
	want := map[string]int{"UPSTREAM_ACCESS_KEY": 16, "UPSTREAM_ACCESS_SECRET": 24, "CALLBACK_TOKEN": 24,
		"CONSOLE_PASSWORD": 18, "CONSOLE_SESSION_KEY": 32}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if secrets[k] != "" {
			continue
		}
		b := make([]byte, want[k])
		if _, err := rand.Read(b); err != nil {
			return nil, nil, fmt.Errorf("generate secret: %w", err)
		}
		secrets[k] = hex.EncodeToString(b)
		generated = append(generated, k)
	}
	if secrets["UPSTREAM_USER_ID"] == "" {
		secrets["UPSTREAM_USER_ID"] = "2100007341207"
		generated = append(generated, "UPSTREAM_USER_ID")
	}
	if len(generated) > 0 {
		if err := writeSecrets(path, secrets); err != nil {
			return nil, nil, err
		}
	}
	return secrets, generated, nil
}

// writeSecrets writes secrets to path as sorted KEY=VALUE lines, mode 0600.
func writeSecrets(path string, secrets map[string]string) error {
	var b strings.Builder
	b.WriteString("# Development secrets generated by devstack. Local use only.\n")
	for _, k := range slices.Sorted(maps.Keys(secrets)) {
		fmt.Fprintf(&b, "%s=%s\n", k, secrets[k])
	}
	if err := writePrivateFile(path, []byte(b.String())); err != nil {
		return fmt.Errorf("write secrets: %w", err)
	}
	return nil
}

// printWelcome is devstack's start-up summary. login is the development
// console account's name, password and API token, printed here and
// nowhere else (empty when devstack did not run the console and worker).
func printWelcome(w out, cfg config, present []string, tools bool, binDir, cliEnv string, login consoleLogin) {
	fmt.Fprintf(w, "\ndevstack: ready. Ctrl-C stops everything; data stays in %s.\n", cfg.DataDir)
	fmt.Fprintf(w, "  nats      nats://%s:%d\n", cfg.NATSHost, cfg.NATSPort)
	for _, c := range present {
		switch c {
		case "sandbox":
			fmt.Fprintf(w, "  sandbox   http://%s  (admin: /_sandbox/stats, /_sandbox/orders, /_sandbox/faults)\n", cfg.SandboxAddr)
		case "receiver":
			fmt.Fprintf(w, "  receiver  http://%s/callbacks/<CALLBACK_TOKEN>  (/readyz, /metrics)\n", cfg.ReceiverAddr)
		case "worker":
			fmt.Fprintf(w, "  worker    http://%s/metrics\n", cfg.MetricsAddr)
		case "console":
			fmt.Fprintf(w, "  console   http://%s\n", cfg.ConsoleAddr)
			if login.Name != "" {
				fmt.Fprintf(w, "            log in as %s (operator) with password %s\n", login.Name, login.Password)
				fmt.Fprintf(w, "            API token (Authorization: Bearer) %s  (both kept in devstack.env)\n", login.Token)
			}
			if login.Warning != "" {
				fmt.Fprintf(w, "            warning: %s\n", login.Warning)
			}
		}
	}
	fmt.Fprintf(w, "\nTry next, in another terminal (docs/walkthrough.md has a five-minute walkthrough):\n")
	if tools {
		fmt.Fprintf(w, "  set -a; . %s; set +a      # NATS_URL, DB_PATH, RECEIVER_URL, CALLBACK_TOKEN, UPSTREAM_*\n", cliEnv)
		fmt.Fprintf(w, "  %s request --platform 1688 --order 3305075341149134260 --type return \\\n"+
			"      --goods-status aftersaleBuyerReceived --reason-id 20025 --amount 9500 --description '七天无理由退货'\n", filepath.Join(binDir, "refundctl"))
		fmt.Fprintf(w, "  %s list\n", filepath.Join(binDir, "refundctl"))
	}
	fmt.Fprintf(w, "  curl -s http://%s/_sandbox/stats\n\n", cfg.SandboxAddr)
}

// cliShared are the variables refundctl reads that the stack's parts are
// given too. refundctl.env passes them on as the parts got them (devstack's
// own environment included): `reasons` and `doctor` ask the sandbox the
// worker asks, signed as it signs; every other command reaches the same
// NATS and case store (DB_URL when the worker runs on PostgreSQL); trigger
// and replay sign what they post as the receiver expects.
var cliShared = []string{"NATS_URL", "DB_PATH", "DB_URL", "CALLBACK_TOKEN", "CALLBACK_SIGNING_SECRETS", "CALLBACK_STREAM",
	"UPSTREAM_BASE_URL", "UPSTREAM_ACCESS_KEY", "UPSTREAM_ACCESS_SECRET", "UPSTREAM_USER_ID", "UPSTREAM_PROFILE"}

// cliVars is refundctl.env's content: cliShared as childEnviron has them
// (those set), and the receiver's URL, which only refundctl reads.
func cliVars(childEnviron []string, receiverURL string) map[string]string {
	getenv := getenvFrom(childEnviron)
	vars := map[string]string{"RECEIVER_URL": receiverURL}
	for _, k := range cliShared {
		if v := getenv(k); v != "" {
			vars[k] = v
		}
	}
	return vars
}

// writeCLIEnv writes the variables refundctl needs to talk to this stack, as
// KEY='VALUE' lines a shell can source (set -a; . refundctl.env), each value
// single-quoted so that what a user gave devstack (a URL with & and ?, a
// secret with a quote or a dollar) is read back as it was. Mode 0600: it
// holds the callback token and the platform credentials.
func writeCLIEnv(path string, vars map[string]string) error {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by devstack on every start: the environment refundctl needs for this stack.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, shellQuote(vars[k]))
	}
	return writePrivateFile(path, []byte(b.String()))
}

// shellQuote is v as one single-quoted shell word: nothing in it is
// expanded; a quote in it closes the quoting, is escaped, and reopens it.
func shellQuote(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// writePrivateFile replaces path with data, readable by its owner only. It
// writes a temporary file in the same directory (os.CreateTemp makes it 0600)
// and renames it over path, so the mode is 0600 every time even when an
// older path was 0644 (os.WriteFile keeps an existing file's mode), the
// secrets are never readable by others for a moment, and a reader sees the
// old file or the new one, never half of it.
func writePrivateFile(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	// CreateTemp already asks for 0600; the Chmod says so rather than
	// relying on it.
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// moduleRoot finds the directory holding go.mod, from the working directory up,
// so devstack works from any directory inside the checkout.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run devstack inside the project checkout (no go.mod found above the working directory)")
		}
		dir = parent
	}
}

// syncWriter serialises writes from the children's log pumps and devstack itself.
type syncWriter struct {
	mu sync.Mutex
	w  out
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
