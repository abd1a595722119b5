package runbook

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/refundflow"
)

// TestEmbedded: the embedded runbook parses and has what to do for every
// attention reason and every state the code can produce, in plain text.
func TestEmbedded(t *testing.T) {
	b := Embedded()
	for _, code := range refundflow.AttentionCodes() {
		r, ok := b.Reasons[code]
		if !ok || r.Do == "" || r.Means == "" {
			t.Errorf("attention reason %s: row %+v; want what it means and what to do", code, r)
		}
		if strings.ContainsAny(r.Do, "`|") || strings.Contains(r.Do, "**") {
			t.Errorf("attention reason %s: %q keeps markdown", code, r.Do)
		}
	}
	for _, s := range refundflow.States() {
		if r := b.States[string(s)]; r.Do == "" {
			t.Errorf("state %s: no advice", s)
		}
	}
	if got := b.Reasons[refundflow.AttnVoucherRequired].Do; got != "re-request with --voucher (the console's Request again: Vouchers)" {
		t.Errorf("voucher_required advice %q; want the runbook's words without code marks", got)
	}
}

// TestEveryStoppedAtOpensASentence: Tailor keeps or drops a "Stopped at
// STATE" sentence by the states it names, so one run on from the
// sentence before it (a missing full stop) is kept or dropped with that
// sentence, for every case whatever its state.
func TestEveryStoppedAtOpensASentence(t *testing.T) {
	b := Embedded()
	for _, rows := range []map[string]Row{b.States, b.Reasons} {
		for code, r := range rows {
			for i := strings.Index(r.Do, "Stopped at "); i >= 0; {
				if i > 0 && !strings.HasSuffix(r.Do[:i], ". ") {
					t.Errorf("%s: %q runs on from the sentence before it (no full stop)", code, excerpt(r.Do, i))
				}
				next := strings.Index(r.Do[i+1:], "Stopped at ")
				if next < 0 {
					break
				}
				i += 1 + next
			}
		}
	}
}

// excerpt is the text of s around i, for an error message.
func excerpt(s string, i int) string { return s[max(0, i-40):min(len(s), i+40)] }

func TestParse(t *testing.T) {
	md := "# Runbook\n\n## States\n\n| State | Means | What to do |\n|---|---|---|\n" +
		"| `a` | the [guide](g.md#x) says | run `x --y` in the **console** ([console](console.md#forms)) |\n\n## Attention reasons\n\n| R | M | D |\n|---|---|---|\n" +
		"| `r` | m | d |\n\n## Other\n\n| `z` | not | read |\n"
	b, err := Parse(md)
	if err != nil {
		t.Fatal(err)
	}
	// A link to a docs page keeps its section: the reader goes to it
	// (it printed "docs/console.md", the section lost).
	if got := b.States["a"]; got != (Row{Means: "the guide says", Do: "run x --y in the console (docs/console.md#forms)"}) {
		t.Errorf("state a = %+v", got)
	}
	if len(b.Reasons) != 1 || b.Reasons["r"].Do != "d" {
		t.Errorf("reasons = %+v; want only r", b.Reasons)
	}
	for name, bad := range map[string]string{
		"no reasons":    "## States\n| `a` | m | d |\n",
		"no states":     "## Attention reasons\n| `a` | m | d |\n",
		"malformed row": "## States\n| `a` | m |\n## Attention reasons\n| `r` | m | d |\n",
		"empty":         "",
	} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%s: parsed; want an error", name)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("## States\n| `a` | m | d |\n## Attention reasons\n| `r` | m | d |\n")
	f.Add("## States\n| `a` | m |\n")
	f.Fuzz(func(t *testing.T, md string) {
		b, err := Parse(md)
		if err == nil && (len(b.States) == 0 || len(b.Reasons) == 0) {
			t.Fatalf("parsed %q without both tables", md)
		}
	})
}

// TestForCase: the runbook's commands for any case name the case, so the
// operator can run them as printed; other capitals stay.
func TestForCase(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Taobao: refundctl modify CASE --amount … changes it; refundctl show CASE prints it", "Taobao: refundctl modify 12 --amount … changes it; refundctl show 12 prints it"},
		{"tell the seller: Taobao refundctl message N --text …", "tell the seller: Taobao refundctl message 12 --text …"},
		{"resolve --close --note …, then request N CASE", "resolve --close --note …, then request N CASE"},
		{"refundctl ship NO --company C", "refundctl ship NO --company C"},
	} {
		if got := ForCase(tc.in, 12); got != tc.want {
			t.Errorf("ForCase(%q, 12) = %q; want %q", tc.in, got, tc.want)
		}
	}
	if got := ForCase("refundctl show CASE", 0); got != "refundctl show CASE" {
		t.Errorf("ForCase without a case = %q; want the advice as written", got)
	}
	// Every placeholder the embedded runbook writes is one ForCase fills.
	for code, r := range Embedded().Reasons {
		if out := ForCase(r.Do, 7); regexp.MustCompile(`refundctl [a-z-]+ (CASE|N)\b`).MatchString(out) {
			t.Errorf("%s: %q keeps a placeholder", code, out)
		}
	}
}

// TestTailor: the runbook's advice for a code, left with what applies to
// the case's platform and where it stopped.
func TestTailor(t *testing.T) {
	b := Embedded()
	refused := b.Reasons["seller_refused"].Do
	tb, ab := Tailor(refused, "taobao", "waiting_seller"), Tailor(refused, "1688", "waiting_seller")
	if !strings.Contains(tb, "refundctl modify CASE") || strings.Contains(tb, "1688") || !strings.HasPrefix(tb, "wait: a seller may still agree") {
		t.Errorf("seller_refused for Taobao = %q; want the wait and Taobao's ways, not 1688's", tb)
	}
	if strings.Contains(ab, "modify CASE") || !strings.Contains(ab, "1688: no modification (waitbuyermodify; modify is refused)") {
		t.Errorf("seller_refused for 1688 = %q; want 1688's way, not Taobao's", ab)
	}
	offered := b.Reasons["reason_not_offered"].Do
	if got := Tailor(offered, "taobao", "rendering"); strings.Contains(got, "modify_rendering") || !strings.Contains(got, "refundctl resolve CASE --retry") {
		t.Errorf("reason_not_offered stopped at rendering = %q; want no advice for a modification, the retry kept", got)
	}
	if got := Tailor(offered, "taobao", "modify_rendering"); !strings.Contains(got, "Stopped at modify_rendering (a modification): modify again") {
		t.Errorf("reason_not_offered stopped at modify_rendering = %q; want the modification's advice", got)
	}
	// A submission refused whole: nothing reached the platform, and a
	// corrected request replaces the stopped one (it said "cancel, then
	// request", which ended the case for nothing).
	failed := b.Reasons["platform_error"].Do
	if got := Tailor(failed, "taobao", "submitting"); !strings.Contains(got, "refundctl request again for the order with the correction") ||
		strings.Contains(got, "ship CASE") || strings.Contains(got, "modify CASE") || strings.Contains(got, "cancel, then request") {
		t.Errorf("platform_error stopped at submitting = %q; want a corrected request, not a shipment's, a modification's or a filed refund's advice", got)
	}
	for _, at := range []string{"rendering", "uploading_vouchers"} {
		if got := Tailor(failed, "1688", at); !strings.Contains(got, "refundctl request again for the order with the correction") {
			t.Errorf("platform_error stopped at %s (1688) = %q; want a corrected request: nothing reached the platform", at, got)
		}
	}
	for at, want := range map[string]string{"return_rendering": "refundctl ship CASE again", "return_submitting": "refundctl ship CASE again",
		"modify_rendering": "refundctl modify CASE again", "modifying": "refundctl modify CASE again", "cancelling": "refundctl cancel CASE again"} {
		if got := Tailor(failed, "taobao", at); !strings.Contains(got, want) || strings.Contains(got, "request again for the order") ||
			!strings.Contains(got, "cancel, then request") {
			t.Errorf("platform_error stopped at %s = %q; want %q, not a new request", at, got, want)
		}
	}
	if got := stops("Stopped at rendering, uploading_vouchers or submitting: do it."); !slices.Equal(got, []string{"rendering", "uploading_vouchers", "submitting"}) {
		t.Errorf("stops of a list = %q; want the three states", got)
	}
	if got := stops("Stopped at modify_rendering (a modification): do it."); !slices.Equal(got, []string{"modify_rendering"}) {
		t.Errorf("stops with a parenthesis = %q; want modify_rendering", got)
	}
	if got := Tailor(offered, "", ""); got != offered {
		t.Errorf("Tailor with nothing known = %q; want the advice whole", got)
	}
	if got := Tailor("Taobao: only this.", "1688", ""); got != "Taobao: only this." {
		t.Errorf("Tailor leaving nothing = %q; want the advice whole", got)
	}
	if got := Tailor("do this. 1688 and Taobao both take it. Stopped at", "taobao", "rendering"); got != "do this. 1688 and Taobao both take it. Stopped at" {
		t.Errorf("Tailor of sentences it cannot place = %q; want them kept", got)
	}
}

// TestRunbookWritesNoAbbreviations: Tailor splits the runbook's advice
// into sentences at a full stop and a space; an abbreviation there would
// cut a sentence in two.
func TestRunbookWritesNoAbbreviations(t *testing.T) {
	for code, r := range Embedded().Reasons {
		if m := regexp.MustCompile(`\b(e\.g|i\.e|etc|vs|cf|approx)\. `).FindString(r.Do); m != "" {
			t.Errorf("%s: %q in its advice; write it out", code, m)
		}
	}
}
