package logtest

import (
	"strings"
	"testing"
)

// recorder collects what Parse and Quiet report instead of failing.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, format)
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, logs string
		bad        bool
	}{
		{"json lines", `{"time":"t","level":"INFO","msg":"a","timeout":"10s","ms":12}` + "\n" + `{"time":"t","level":"INFO","msg":"b"}` + "\n", false},
		{"plain line", `{"time":"t","level":"INFO","msg":"a"}` + "\nreceiver listening on http://x\n", true},
		{"bare duration", `{"time":"t","level":"INFO","msg":"a","retry_in":250000000}`, true},
		{"duplicate msg", `{"time":"t","level":"INFO","msg":"handled","msg":"id-1"}`, true},
		{"no level", `{"time":"t","msg":"a"}`, true},
	} {
		r := &recorder{TB: t}
		lines := Parse(r, tc.logs)
		if got := len(r.errs) > 0; got != tc.bad {
			t.Errorf("%s: Parse(%q) reported %v; want a problem: %v", tc.name, tc.logs, r.errs, tc.bad)
		}
		if !tc.bad && Find(lines, "b") == nil && strings.Contains(tc.logs, `"msg":"b"`) {
			t.Errorf("%s: Find(b) = nil", tc.name)
		}
	}
	r := &recorder{TB: t}
	Quiet(r, Parse(t, `{"time":"t","level":"WARN","msg":"nats disconnected"}`))
	if len(r.errs) != 1 {
		t.Errorf("Quiet(a WARN line) reported %d problems; want 1", len(r.errs))
	}
}
