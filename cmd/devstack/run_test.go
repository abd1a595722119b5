package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateSecretsReusesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "devstack.env")
	first, created, err := loadOrCreateSecrets(path)
	if err != nil || !created {
		t.Fatalf("first load: created=%v err=%v; want created", created, err)
	}
	for _, k := range []string{"UPSTREAM_ACCESS_KEY", "UPSTREAM_ACCESS_SECRET", "CALLBACK_TOKEN", "UPSTREAM_USER_ID"} {
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
	second, created, err := loadOrCreateSecrets(path)
	if err != nil || created {
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
	env := map[string]string{"SANDBOX_ADDR": "127.0.0.1:9999"}
	getenv := func(k string) string { return env[k] }
	c, err := parseConfig([]string{"devstack", "-components", "sandbox,receiver"}, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.SandboxAddr != "127.0.0.1:9999" || c.NATSPort != 4222 || strings.Join(c.Components, ",") != "sandbox,receiver" {
		t.Errorf("parseConfig = %+v", c)
	}
	bad := [][]string{
		{"devstack", "-components", "sandbox,nope"},
		{"devstack", "-nats-port", "x"},
		{"devstack", "-nats-port", "70000"},
		{"devstack", "-ready-timeout", "-1s"},
		{"devstack", "-receiver-addr", "no-port"},
		{"devstack", "-unknown-flag"},
	}
	for _, args := range bad {
		if _, err := parseConfig(args, getenv, io.Discard); err == nil {
			t.Errorf("parseConfig(%q) succeeded; want error", args)
		}
	}
}

func TestMergeEnvUserWins(t *testing.T) {
	user := map[string]string{"SANDBOX_PUSH_RETRY_INTERVAL": "1m"}
	got := mergeEnv([]string{"PATH=/bin"}, func(k string) string { return user[k] },
		map[string]string{"SANDBOX_PUSH_RETRY_INTERVAL": "10s", "NATS_URL": "nats://x"})
	joined := strings.Join(got, "\n")
	if strings.Contains(joined, "SANDBOX_PUSH_RETRY_INTERVAL=10s") {
		t.Errorf("mergeEnv overrode the user's variable: %q", got)
	}
	if !strings.Contains(joined, "NATS_URL=nats://x") || !strings.Contains(joined, "PATH=/bin") {
		t.Errorf("mergeEnv = %q; want base and wiring", got)
	}
}
