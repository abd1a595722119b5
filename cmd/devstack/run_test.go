package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/testenv"
	"github.com/refundhub/refundhub/internal/testenv/syncbuf"
)

func TestLoadOrCreateSecretsReusesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "devstack.env")
	first, generated, err := loadOrCreateSecrets(path)
	if created := len(generated) > 0; err != nil || !created {
		t.Fatalf("first load: created=%v err=%v; want created", created, err)
	}
	for _, k := range []string{"UPSTREAM_ACCESS_KEY", "UPSTREAM_ACCESS_SECRET", "CALLBACK_TOKEN", "UPSTREAM_USER_ID", "CONSOLE_PASSWORD", "CONSOLE_SESSION_KEY"} {
		if first[k] == "" {
			t.Errorf("secret %s not generated", k)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("secrets file mode = %v; want 0600", st.Mode().Perm())
	}
	second, generated, err := loadOrCreateSecrets(path)
	if created := len(generated) > 0; err != nil || created {
		t.Fatalf("second load: created=%v err=%v; want reuse", created, err)
	}
	for k, v := range first {
		if second[k] != v {
			t.Errorf("secret %s changed between runs", k)
		}
	}
}

func TestLoadOrCreateSecretsRejectsMalformed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "devstack.env")
	if err := os.WriteFile(path, []byte("not a pair\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadOrCreateSecrets(path); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("loadOrCreateSecrets(malformed) error = %v; want malformed-line error", err)
	}
}

func TestParseConfig(t *testing.T) {
	env := map[string]string{"SANDBOX_ADDR": "127.0.0.1:9999", "RECEIVER_ADDR": "127.0.0.1:7777"}
	getenv := func(k string) string { return env[k] }
	c, err := parseConfig([]string{"devstack", "-components", "sandbox,receiver", "-receiver-addr", "127.0.0.1:6666"}, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.SandboxAddr != "127.0.0.1:9999" || c.ReceiverAddr != "127.0.0.1:6666" || c.NATSPort != 4222 || c.DataDir != "data" ||
		c.GoCommand != "go" || c.ReadyTimeout != 120*time.Second || strings.Join(c.Components, ",") != "sandbox,receiver" {
		t.Errorf("parseConfig = %+v; want SANDBOX_ADDR from the environment, the -receiver-addr flag over RECEIVER_ADDR, the rest defaults", c)
	}
	bad := []struct {
		args []string
		env  map[string]string
		want string // what the error must name
	}{
		{[]string{"devstack", "-components", "sandbox,nope"}, nil, "-components"},
		{[]string{"devstack", "-nats-port", "x"}, nil, "-nats-port"},
		{[]string{"devstack", "-nats-port", "70000"}, nil, "-nats-port"},
		{[]string{"devstack"}, map[string]string{"DEVSTACK_NATS_PORT": "x"}, "DEVSTACK_NATS_PORT"},
		{[]string{"devstack", "-ready-timeout", "-1s"}, nil, "-ready-timeout"},
		{[]string{"devstack", "-receiver-addr", "no-port"}, nil, "-receiver-addr"},
		{[]string{"devstack"}, map[string]string{"WORKER_METRICS_ADDR": "no-port"}, "WORKER_METRICS_ADDR"},
		{[]string{"devstack", "-unknown-flag"}, nil, "unknown-flag"},
	}
	for _, tc := range bad {
		_, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseConfig(%q, env %v) error = %v; want an error naming %s", tc.args, tc.env, err, tc.want)
		}
	}
	// A flag given wins over a bad variable, which is then not read.
	if _, err := parseConfig([]string{"devstack", "-nats-port", "4333"}, func(k string) string { return map[string]string{"DEVSTACK_NATS_PORT": "x"}[k] }, io.Discard); err != nil {
		t.Errorf("parseConfig(-nats-port 4333, DEVSTACK_NATS_PORT=x) = %v; want the flag to win", err)
	}
}

// TestHelpListsEveryVariable: -h prints devstack's table with its defaults.
func TestHelpListsEveryVariable(t *testing.T) {
	var help bytes.Buffer
	if _, err := parseConfig([]string{"devstack", "-h"}, func(string) string { return "" }, &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("parseConfig(-h) = %v; want flag.ErrHelp", err)
	}
	for _, v := range envVars {
		if !strings.Contains(help.String(), v.Name+" (default: "+v.Default+")") || !strings.Contains(help.String(), "-"+flagFor[v.Name]) {
			t.Errorf("-h output lacks %s with its default %q and its flag -%s:\n%s", v.Name, v.Default, flagFor[v.Name], help.String())
		}
	}
}

// TestChildEnv: the components get devstack's environment, then the wiring
// where the user left a variable unset or blank, then the addresses devstack
// waits on whatever the environment says; each name once.
func TestChildEnv(t *testing.T) {
	environ := []string{"PATH=/bin", "SANDBOX_PUSH_RETRY_INTERVAL=1m", "LOG_LEVEL=", "SANDBOX_ADDR=127.0.0.1:1111"}
	got := childEnv(environ,
		map[string]string{"SANDBOX_PUSH_RETRY_INTERVAL": "10s", "NATS_URL": "nats://x", "LOG_LEVEL": "debug"},
		map[string]string{"SANDBOX_ADDR": "127.0.0.1:2222"})
	want := []string{"PATH=/bin", "SANDBOX_PUSH_RETRY_INTERVAL=1m", "LOG_LEVEL=debug", "NATS_URL=nats://x", "SANDBOX_ADDR=127.0.0.1:2222"}
	if !slices.Equal(got, want) {
		t.Errorf("childEnv(%q, ...) = %q; want %q", environ, got, want)
	}
}

// refundctl.env carries what the parts were given, a variable of
// devstack's own environment included: refundctl reasons asks the sandbox
// the worker asks, with the same credentials. Variables refundctl does not
// read stay out.
func TestRefundctlEnvHasWhatThePartsGot(t *testing.T) {
	child := childEnv([]string{"PATH=/bin", "UPSTREAM_BASE_URL=http://127.0.0.1:9999", "DB_URL=postgres://u@h/db?sslmode=disable",
		"CALLBACK_SIGNING_SECRETS=whsec_abc", "EDITOR=vi"},
		map[string]string{"UPSTREAM_BASE_URL": "http://127.0.0.1:8090", "UPSTREAM_ACCESS_KEY": "k", "UPSTREAM_ACCESS_SECRET": "s",
			"UPSTREAM_USER_ID": "42", "NATS_URL": "nats://127.0.0.1:4222", "DB_PATH": "data/refunds.db", "CALLBACK_TOKEN": "t",
			"WORKER_SHUTDOWN_TIMEOUT": "10s"}, nil)
	got := cliVars(child, "http://127.0.0.1:8080")
	want := map[string]string{"UPSTREAM_BASE_URL": "http://127.0.0.1:9999", "UPSTREAM_ACCESS_KEY": "k", "UPSTREAM_ACCESS_SECRET": "s",
		"UPSTREAM_USER_ID": "42", "NATS_URL": "nats://127.0.0.1:4222", "DB_PATH": "data/refunds.db", "CALLBACK_TOKEN": "t",
		"RECEIVER_URL": "http://127.0.0.1:8080", "DB_URL": "postgres://u@h/db?sslmode=disable", "CALLBACK_SIGNING_SECRETS": "whsec_abc"}
	if !maps.Equal(got, want) {
		t.Errorf("cliVars = %v;\nwant %v", got, want)
	}
}

// refundctl.env is sourced by a shell (set -a; . data/refundctl.env): a
// value a user gave devstack (a PostgreSQL URL with & and ?, a secret with
// a quote, a dollar or a space) comes out of it as it went in.
func TestWriteCLIEnvQuotesForTheShell(t *testing.T) {
	sh := testenv.Installed(t, "sh", "apt-get install dash") // the shell that sources it
	path := filepath.Join(t.TempDir(), "refundctl.env")
	vars := map[string]string{"DB_URL": "postgres://u:p@h/db?sslmode=disable&application_name=x", "UPSTREAM_ACCESS_SECRET": `it's $HOME; echo owned`,
		"UPSTREAM_PROFILE": "/tmp/my profile.toml", "CALLBACK_TOKEN": "plain"}
	if err := writeCLIEnv(path, vars); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sh, "-c", `set -a; . "$0"; set +a; printf '%s\n' "$DB_URL" "$UPSTREAM_ACCESS_SECRET" "$UPSTREAM_PROFILE" "$CALLBACK_TOKEN"`, path).Output()
	if err != nil {
		t.Fatalf("sourcing %s: %v", path, err)
	}
	want := vars["DB_URL"] + "\n" + vars["UPSTREAM_ACCESS_SECRET"] + "\n" + vars["UPSTREAM_PROFILE"] + "\n" + vars["CALLBACK_TOKEN"] + "\n"
	if string(out) != want {
		t.Errorf("sourced refundctl.env gives %q; want %q", out, want)
	}
}

// A refundctl.env left world-readable (by hand, or by a tool with a loose
// umask) must come out of devstack's rewrite as 0600: it holds the callback
// token. os.WriteFile alone keeps an existing file's mode.
func TestWriteCLIEnvTightensExistingLooseFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "refundctl.env")
	if err := os.WriteFile(path, []byte("CALLBACK_TOKEN=old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	if err := writeCLIEnv(path, map[string]string{"CALLBACK_TOKEN": "new-token"}); err != nil {
		t.Fatalf("writeCLIEnv: %v", err)
	}
	assertPrivate(t, path, "CALLBACK_TOKEN='new-token'\n")
}

// A devstack.env that exists but lacks a secret is rewritten with the
// generated one; the rewrite must also take away group and world access.
func TestLoadOrCreateSecretsTightensLooseFileItCompletes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "devstack.env")
	if err := os.WriteFile(path, []byte("UPSTREAM_USER_ID=42\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	secrets, generated, err := loadOrCreateSecrets(path)
	if created := len(generated) > 0; err != nil || !created {
		t.Fatalf("loadOrCreateSecrets(partial file): created=%v err=%v; want the missing secrets created", created, err)
	}
	assertPrivate(t, path, "CALLBACK_TOKEN="+secrets["CALLBACK_TOKEN"]+"\n")
}

// TestLoadOrCreateSecretsTightensLooseCompleteFile: a complete secrets
// file that is readable by others (copied, restored) is not rewritten, but
// its mode is still set to 0600.
func TestLoadOrCreateSecretsTightensLooseCompleteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "devstack.env")
	content := "CALLBACK_TOKEN=0123456789abcdef0123456789abcdef0123456789abcdef\nUPSTREAM_ACCESS_KEY=0123456789abcdef0123456789abcdef\n" +
		"UPSTREAM_ACCESS_SECRET=0123456789abcdef0123456789abcdef0123456789abcdef\nUPSTREAM_USER_ID=42\n" +
		"CONSOLE_PASSWORD=0123456789abcdef0123456789abcdef\n" +
		"CONSOLE_SESSION_KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, generated, err := loadOrCreateSecrets(path); err != nil || len(generated) > 0 {
		t.Fatalf("loadOrCreateSecrets(complete file): generated %v, err=%v; want it read as it is", generated, err)
	}
	assertPrivate(t, path, "UPSTREAM_USER_ID=42\n")
}

// assertPrivate checks that path has mode 0600, holds want, and that no
// temporary file was left beside it.
func assertPrivate(t *testing.T, path, want string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s mode = %v; want 0600", filepath.Base(path), st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), want) {
		t.Errorf("%s =\n%s\nwant it to contain %q", filepath.Base(path), b, want)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q; want only %s (no temporary file left)", names, filepath.Base(path))
	}
}

// TestAChildThatDiesSaysHow: a worker killed under devstack (kill -9, the
// out-of-memory killer) stopped the stack with "worker exited
// unexpectedly" and nothing of how, so a crash, a kill and an exit on bad
// configuration read the same. The exit says how: the signal, or the
// exit status.
func TestAChildThatDiesSaysHow(t *testing.T) {
	for _, tc := range []struct{ script, how string }{
		{"#!/bin/sh\nkill -9 $$\n", "signal: killed"},
		{"#!/bin/sh\necho 'worker: DB_PATH: not a directory' >&2\nexit 2\n", "exit status 2"},
	} {
		bin := filepath.Join(t.TempDir(), "worker")
		if err := os.WriteFile(bin, []byte(tc.script), 0o755); err != nil {
			t.Fatal(err)
		}
		var logs syncbuf.Buffer
		s := &supervisor{stdout: &logs, stderr: &logs, exited: make(chan childExit, 1)}
		if err := s.start("worker", bin, nil); err != nil {
			t.Fatal(err)
		}
		var e childExit
		select {
		case e = <-s.exited:
		case <-time.After(10 * time.Second):
			t.Fatal("the child's exit was never reported")
		}
		if e.name != "worker" || e.how != tc.how {
			t.Errorf("exit reported as %+v; want worker, %q", e, tc.how)
		}
	}
}

// TestAPartsExitSaysWhereToLook: a part killed by a signal left no last
// lines, yet the stack said "its last lines above say why"; and it named
// ./data whatever -data said.
func TestAPartsExitSaysWhereToLook(t *testing.T) {
	killed := childExit{name: "worker", how: "signal: killed"}.explain("/srv/stack")
	if !strings.Contains(killed, "signal: killed: killed from outside (kill, or the kernel's out-of-memory killer: dmesg says)") ||
		strings.Contains(killed, "last lines") || !strings.HasSuffix(killed, "with /srv/stack as it was") {
		t.Errorf("a killed part: %q; want it killed from outside, where to look, and the data directory", killed)
	}
	failed := childExit{name: "worker", how: "exit status 2"}.explain("/srv/stack")
	if !strings.HasPrefix(failed, "exit status 2: its last lines above say why") {
		t.Errorf("a part that exited 2: %q; want its last lines pointed at", failed)
	}
}
