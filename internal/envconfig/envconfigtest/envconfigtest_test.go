package envconfigtest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/envconfig"
)

func TestDocumented(t *testing.T) {
	page := "# Page\n\n| Status | Codes |\n|---|---|\n| 400 | `NOT_A_VAR` |\n\n" +
		"| Variable | Default | Meaning |\n|---|---|---|\n| `A_ONE` | `1` | one |\n| `B_TWO`, `C_THREE` | `2`, `3` | two, three with `INLINE_CODE` |\n\n" +
		"Prose with `D_FOUR`.\n\n| Variable | Default |\n|:--|--|\n| `E_FIVE` | none |\n"
	got, err := Documented(page)
	if want := []string{"A_ONE", "B_TWO", "C_THREE", "E_FIVE"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("Documented(page) = %q, %v; want %q", got, err, want)
	}
	for name, bad := range map[string]string{
		"pattern":  "| Variable | Default |\n|---|---|\n| `CALLBACK_STREAM*` | as for the receiver |\n",
		"no name":  "| Variable | Default |\n|---|---|\n| LOG_LEVEL | info |\n",
		"no table": "# Page\n\n`LOG_LEVEL` is documented in prose only.\n",
	} {
		if got, err := Documented(bad); err == nil {
			t.Errorf("Documented(%s page) = %q, nil; want an error", name, got)
		}
	}
}

// recorder is a testing.TB that keeps the failures instead of reporting them.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...) }

func TestCheckReference(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cmd.md")
	if err := os.WriteFile(path, []byte("| Variable | Default | Meaning |\n|---|---|---|\n| `READ_DOCUMENTED` | x | |\n| `GONE` | y | no longer read |\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := []envconfig.Var{envconfig.V("READ_DOCUMENTED", "x", ""), envconfig.V("UNDOCUMENTED", "", ""), envconfig.V("NEVER_READ", "", "")}
	load := func(getenv func(string) string) {
		r := envconfig.NewReader(vars, getenv)
		r.String("READ_DOCUMENTED")
		r.String("UNDOCUMENTED")
		getenv("NOT_IN_TABLE")
	}
	rec := &recorder{TB: t}
	CheckReference(rec, vars, load, path)
	for _, want := range []string{
		"NEVER_READ: in the command's table but never read",
		"NOT_IN_TABLE: read by the command but not in its table",
		"UNDOCUMENTED: read by the command but not documented",
		"NEVER_READ: read by the command but not documented", // the table is what -h says the command reads
		"GONE: documented in " + path + " but the command does not read it",
	} {
		found := false
		for _, e := range rec.errs {
			found = found || strings.HasPrefix(e, want)
		}
		if !found {
			t.Errorf("CheckReference failures = %q; want one starting %q", rec.errs, want)
		}
	}
	if len(rec.errs) != 5 {
		t.Errorf("CheckReference reported %d failures; want 5: %q", len(rec.errs), rec.errs)
	}

	rec = &recorder{TB: t}
	CheckReference(rec, vars[:1], func(getenv func(string) string) { getenv("READ_DOCUMENTED"); getenv("GONE") }, path)
	if len(rec.errs) != 2 {
		t.Errorf("CheckReference(GONE read, not in the table) failures = %q; want 2 (not in the table, not in the table but documented)", rec.errs)
	}
}
