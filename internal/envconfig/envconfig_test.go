package envconfig

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

func TestReader(t *testing.T) {
	vars := []Var{{"A_DUR", "5s", "a duration"}, {"A_INT", "3", "an int"}, {"A_LEVEL", "info", "level"}, {"A_STR", "", "a string"}}
	env := map[string]string{"A_INT": " 7 ", "A_STR": "x"}
	r := NewReader(vars, func(k string) string { return env[k] })
	if d := r.Duration("A_DUR", time.Second, time.Minute); d != 5*time.Second {
		t.Errorf("Duration default = %s; want 5s", d)
	}
	if n := r.Int("A_INT", 1, 10); n != 7 {
		t.Errorf("Int = %d; want 7 (trimmed)", n)
	}
	if l := r.LogLevel("A_LEVEL"); l != slog.LevelInfo {
		t.Errorf("LogLevel = %v; want info", l)
	}
	if s := r.String("A_STR"); s != "x" {
		t.Errorf("String = %q; want x", s)
	}
	if err := r.Err(); err != nil {
		t.Fatalf("Err = %v; want nil", err)
	}

	env = map[string]string{"A_DUR": "2h", "A_INT": "x", "A_LEVEL": "loud"}
	r = NewReader(vars, func(k string) string { return env[k] })
	r.Duration("A_DUR", time.Second, time.Minute)
	r.Int("A_INT", 1, 10)
	r.Int64("A_INT", 1, 10)
	r.LogLevel("A_LEVEL")
	r.Fail(errors.New("own check"))
	r.Fail(nil)
	err := r.Err()
	for _, want := range []string{`A_DUR="2h"`, `A_INT="x"`, `A_LEVEL="loud"`, "own check"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Err = %v; want it to mention %s", err, want)
		}
	}
}

func TestUsage(t *testing.T) {
	var b bytes.Buffer
	Usage(&b, []Var{{"X", "", "needed"}, {"Y", "1", "one"}})
	want := "Environment:\n  X (default: none)\n        needed\n  Y (default: 1)\n        one\n"
	if b.String() != want {
		t.Errorf("Usage =\n%s\nwant\n%s", b.String(), want)
	}
}

// The receiver and the worker read the callback stream's settings through
// CallbackStream, so a push limit above the default message size must raise
// MaxMsgSize there, for whichever process creates the stream.
func TestCallbackStreamFitsThePushLimit(t *testing.T) {
	for _, tc := range []struct {
		env         map[string]string
		wantMaxBody int64
		wantMsgSize int32
	}{
		{map[string]string{}, 64 << 10, 1 << 20},
		{map[string]string{"CALLBACK_MAX_BYTES": "2097152"}, 2 << 20, 2<<20 + 4096},
	} {
		r := NewReader(CallbackStreamVars(), func(k string) string { return tc.env[k] })
		stream, maxBody := r.CallbackStream()
		if err := r.Err(); err != nil {
			t.Fatalf("CallbackStream(%v): %v", tc.env, err)
		}
		if maxBody != tc.wantMaxBody || stream.MaxMsgSize != tc.wantMsgSize {
			t.Errorf("CallbackStream(%v) = max body %d, MaxMsgSize %d; want %d, %d", tc.env, maxBody, stream.MaxMsgSize, tc.wantMaxBody, tc.wantMsgSize)
		}
	}

	env := map[string]string{"CALLBACK_STREAM_MAX_BYTES": "536870912", "CALLBACK_STREAM_MAX_AGE": "72h", "CALLBACK_STREAM_REPLICAS": "3",
		"CALLBACK_STREAM_DUPLICATES": "5m", "CALLBACK_STREAM": "CB"}
	r := NewReader(CallbackStreamVars(), func(k string) string { return env[k] })
	stream, _ := r.CallbackStream()
	if r.Err() != nil || stream.Name != "CB" || stream.MaxBytes != 536870912 || stream.MaxAge != 72*time.Hour ||
		stream.Replicas != 3 || stream.Duplicates != 5*time.Minute {
		t.Errorf("CallbackStream(%v) = %+v, %v; want each variable applied", env, stream, r.Err())
	}

	env = map[string]string{"CALLBACK_MAX_BYTES": "lots", "CALLBACK_STREAM_REPLICAS": "9"}
	r = NewReader(CallbackStreamVars(), func(k string) string { return env[k] })
	r.CallbackStream()
	for _, want := range []string{"CALLBACK_MAX_BYTES", "CALLBACK_STREAM_REPLICAS"} {
		if err := r.Err(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CallbackStream(%v) error = %v; want it to name %s", env, err, want)
		}
	}
}

// The worker and refundctl doctor read the platform connection through
// Upstream: the profile is loaded and validated, and an error never quotes a
// credential.
func TestUpstream(t *testing.T) {
	dir := t.TempDir()
	profile := dir + "/profile.toml"
	if err := os.WriteFile(profile, []byte("[envelope]\nsuccess_msg = \"OK\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"UPSTREAM_ACCESS_KEY": "k", "UPSTREAM_ACCESS_SECRET": " s3cr3t ", "UPSTREAM_USER_ID": "u",
		"UPSTREAM_PROFILE": profile, "UPSTREAM_RATE_LIMIT": "5"}
	r := NewReader(UpstreamVars(), func(k string) string { return env[k] })
	cfg := r.Upstream()
	if err := r.Err(); err != nil {
		t.Fatalf("Err = %v", err)
	}
	if cfg.BaseURL != "http://127.0.0.1:8090" || cfg.AccessSecret != "s3cr3t" || cfg.RateLimit != 5 || cfg.RateBurst != 10 ||
		cfg.RateFloor != 1 || cfg.RateRecovery != time.Minute ||
		cfg.Timeout != 10*time.Second || cfg.Retry.MaxAttempts != 4 || cfg.Profile == nil || cfg.Profile.Envelope.SuccessMsg != "OK" {
		t.Errorf("Upstream = %+v; want the defaults, the trimmed secret, rate 5 and the profile's success msg OK", cfg)
	}

	// The rate's floor: at most the ceiling, its default too.
	for _, tc := range []struct {
		limit, floor string
		want         float64
		bad          bool
	}{
		{"0.5", "", 0.5, false},
		{"10", "2.5", 2.5, false},
		{"10", "10", 10, false},
		{"10", "11", 0, true},
		{"10", "0", 0, true},
		{"10", "few", 0, true},
	} {
		env := map[string]string{"UPSTREAM_ACCESS_KEY": "k", "UPSTREAM_ACCESS_SECRET": "s", "UPSTREAM_USER_ID": "u",
			"UPSTREAM_RATE_LIMIT": tc.limit, "UPSTREAM_RATE_MIN": tc.floor}
		r := NewReader(UpstreamVars(), func(k string) string { return env[k] })
		cfg := r.Upstream()
		switch err := r.Err(); {
		case tc.bad && (err == nil || !strings.Contains(err.Error(), "UPSTREAM_RATE_MIN")):
			t.Errorf("UPSTREAM_RATE_LIMIT=%s UPSTREAM_RATE_MIN=%s: err %v; want one naming UPSTREAM_RATE_MIN", tc.limit, tc.floor, err)
		case !tc.bad && (err != nil || float64(cfg.RateFloor) != tc.want):
			t.Errorf("UPSTREAM_RATE_LIMIT=%s UPSTREAM_RATE_MIN=%s: floor %v, err %v; want %v", tc.limit, tc.floor, cfg.RateFloor, err, tc.want)
		}
	}

	env = map[string]string{"UPSTREAM_ACCESS_SECRET": "s3cr3t", "UPSTREAM_PROFILE": dir + "/missing.toml", "UPSTREAM_TIMEOUT": "1h"}
	r = NewReader(UpstreamVars(), func(k string) string { return env[k] })
	r.Upstream()
	err := r.Err()
	for _, want := range []string{"UPSTREAM_ACCESS_KEY and UPSTREAM_USER_ID are not set", "UPSTREAM_PROFILE", "UPSTREAM_TIMEOUT"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Err = %v; want it to mention %q", err, want)
		}
	}
	// The credentials' explanation once, however many are missing.
	if n := strings.Count(errText(err), "every platform call is signed"); n != 1 {
		t.Errorf("Err = %v; want the credentials explained once, not %d times", err, n)
	}
	if err != nil && strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("Err quotes the secret: %v", err)
	}
}

// TestOneLogSetUp: both formats write durations as text, the level is
// honoured, and a bad format is named.
func TestOneLogSetUp(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		env := map[string]string{"LOG_FORMAT": format, "LOG_LEVEL": "warn"}
		r := NewReader(LogVars(), func(k string) string { return env[k] })
		lc := r.Log()
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		log := lc.Logger(&b)
		log.Info("hidden")
		log.Warn("shown", "wait", 1500*time.Millisecond)
		out := b.String()
		if strings.Contains(out, "hidden") || !strings.Contains(out, "1.5s") || strings.Contains(out, "1500000000") {
			t.Errorf("%s: %q; want only the warning, its duration as 1.5s", format, out)
		}
		if (format == "json") != strings.HasPrefix(out, "{") {
			t.Errorf("%s: %q is not in that format", format, out)
		}
	}
	r := NewReader(LogVars(), func(k string) string { return map[string]string{"LOG_FORMAT": "xml"}[k] })
	r.Log()
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "LOG_FORMAT") {
		t.Errorf("LOG_FORMAT=xml: %v; want an error naming it", err)
	}
}

func TestStore(t *testing.T) {
	vars := []Var{V("DB_PATH", "data/refunds.db", ""), StoreURLVar()}
	for _, c := range []struct {
		env     map[string]string
		want    string
		wantErr bool
	}{
		{env: nil, want: "data/refunds.db"},
		{env: map[string]string{"DB_PATH": "/srv/r.db"}, want: "/srv/r.db"},
		{env: map[string]string{"DB_PATH": "/srv/r.db", "DB_URL": " postgres://u:pw@db/r "}, want: "postgres://u:pw@db/r"},
		{env: map[string]string{"DB_URL": "postgresql://db/r"}, want: "postgresql://db/r"},
		{env: map[string]string{"DB_URL": "mysql://u:s3cret@db/r"}, wantErr: true},
		{env: map[string]string{"DB_URL": "/srv/r.db"}, wantErr: true},
	} {
		r := NewReader(vars, func(k string) string { return c.env[k] })
		got, err := r.Store(), r.Err()
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("Store() with %v = %q, %v; want %q (error %v)", c.env, got, err, c.want, c.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Store() error quotes DB_URL: %v", err)
		}
	}
}

// errText is err's text, "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
