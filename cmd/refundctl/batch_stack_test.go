package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
)

// batchFile writes a 200-row batch file, mostly Taobao with every fifth
// row a 1688 return (each row its own order: the sandbox creates them),
// and three bad rows; it returns the path and the bad rows' file lines
// with what their error must say.
func batchFile(t *testing.T) (string, map[int]string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("platform,order,sub-order,type,goods-status,reason-id,reason,amount,description,voucher\r\n")
	bad := map[int]string{}
	for i := 1; i <= 200; i++ {
		line := i + 1
		order := fmt.Sprintf("3305075341%09d", i)
		switch {
		case line == 10:
			fmt.Fprintf(&b, "taobao,%s,,refund,1,1004,,max,not shipped in time,\r\n", order)
			bad[line] = "invalid: sub-order: required for Taobao"
		case line == 100:
			fmt.Fprintf(&b, "1688,%s,,return,aftersaleBuyerReceived,,七天无理由退货,max,no longer needed,\r\n", order)
			bad[line] = "invalid: amount max: Taobao only"
		case line == 150:
			fmt.Fprintf(&b, "taobao,%s,%s1,refund,4,1004,,max,\"not shipped, still\",\r\n", order, order)
			bad[line] = `invalid: goods-status "4": want 1, 2 or 3`
		case i%5 == 0:
			fmt.Fprintf(&b, "1688,%s,,return,aftersaleBuyerReceived,,七天无理由退货,9500,no longer needed,\r\n", order)
		case i%7 == 0: // what a spreadsheet would run: the export escapes it
			fmt.Fprintf(&b, "taobao,%s,%s1,refund,1,1004,,max,\"=HYPERLINK(\"\"http://e.example\"\",\"\"late\"\")\",\r\n", order, order)
		default:
			fmt.Fprintf(&b, "taobao,%s,%s1,refund,1,1004,,max,\"not shipped, in time\",\r\n", order, order)
		}
	}
	path := filepath.Join(t.TempDir(), "refunds.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, bad
}

// TestBatchFilesOnceAgainstStack is issue 15's "a 200-row CSV with 3 bad
// rows files 197 cases, and files nothing new when run again", against
// the embedded stack: the first run files 197 requests (each applied) and
// reports the 3 bad rows by line and column (exit 6); the second run, and
// a third after the verdicts were pruned (days later, past JetStream's
// duplicate window), publish nothing and report every row already filed
// with its verdict; list --export csv read back as a batch files nothing
// either. All of it on the host and through the console (REFUNDHUB_URL:
// an operator's laptop, which said "not available through the console").
func TestBatchFilesOnceAgainstStack(t *testing.T) {
	for _, way := range []string{"on the host", "through the console"} {
		t.Run(way, func(t *testing.T) {
			e := newEnv(t)
			startStack(e)
			run := e.run
			if way == "through the console" {
				url := startConsole(e)
				run = func(args ...string) result { return e.remoteRun(url, consoleOperatorToken, args...) }
			}
			batchFilesOnce(t, e, run)
		})
	}
}

func batchFilesOnce(t *testing.T, e *env, run func(args ...string) result) {
	start := time.Now()
	path, bad := batchFile(t)
	commands := e.capture(events.SubjectCommands + ".>")

	r := run("request", "--file", path, "--wait", "60s")
	if r.code() != exitInvalidRows {
		t.Fatalf("first run: exit %d (%s); want %d\n%s", r.code(), r.line(), exitInvalidRows, r.stdout)
	}
	const first = "200 rows: 197 filed, 0 already filed, 3 invalid; verdicts: 197 applied, 0 rejected, 0 pending"
	lines := checkBatchOutput(t, "first run", r.stdout, first, bad)
	for line, text := range lines {
		if bad[line] == "" && !strings.Contains(text, ": filed: applied: case ") {
			t.Errorf("first run, line %d: %q; want filed and applied", line, text)
		}
	}
	if !strings.Contains(r.line(), "3 of 200 rows invalid, not sent (the first on line 10)") {
		t.Errorf("first run: error %q; want the invalid rows counted", r.line())
	}
	st := e.openStoreRO()
	cases, err := st.ListCases(context.Background(), casestore.CaseFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != 197 {
		t.Fatalf("first run: %d cases; want 197", len(cases))
	}
	for _, c := range cases {
		if !strings.HasPrefix(c.OpenedBy, "batch-") {
			t.Errorf("case %d opened by %q; want a batch- command", c.ID, c.OpenedBy)
		}
	}
	if n := len(commands.all()); n != 197 {
		t.Errorf("first run published %d commands; want 197", n)
	}
	t.Logf("first run: %s", time.Since(start))

	again := func(name string) {
		t.Helper()
		before := len(commands.all())
		r := run("request", "--file", path, "--wait", "60s")
		if r.code() != exitInvalidRows {
			t.Fatalf("%s: exit %d (%s); want %d\n%s", name, r.code(), r.line(), exitInvalidRows, r.stdout)
		}
		lines := checkBatchOutput(t, name, r.stdout,
			"200 rows: 0 filed, 197 already filed, 3 invalid; verdicts: 197 applied, 0 rejected, 0 pending", bad)
		for line, text := range lines {
			if bad[line] == "" && !strings.Contains(text, ": already filed: applied: case ") {
				t.Errorf("%s, line %d: %q; want already filed, applied", name, line, text)
			}
		}
		if n := len(commands.all()) - before; n != 0 {
			t.Errorf("%s published %d commands; want none", name, n)
		}
	}
	again("second run")

	// Days later: the worker pruned its inbox and verdicts, JetStream
	// forgot the ids. The cases remember which command opened them.
	pruner, err := casestore.Open(context.Background(), e.dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pruner.PruneInbox(context.Background(), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	_ = pruner.Close()
	if _, err := st.CommandOutcome(context.Background(), cases[0].OpenedBy); err == nil {
		t.Fatal("the verdicts were not pruned")
	}
	again("run after the verdicts were pruned")

	// The export, read back as a batch, is the same commands: nothing new.
	exp := mustRunWith(t, run, "list", "--export", "csv", "--limit", "1000").stdout
	expPath := filepath.Join(t.TempDir(), "export.csv")
	if err := os.WriteFile(expPath, []byte(exp), 0o600); err != nil {
		t.Fatal(err)
	}
	// No cell of it runs in a spreadsheet; the formula-like descriptions
	// are text (after an apostrophe) and file as they were (below).
	recs, err := csv.NewReader(strings.NewReader(exp)).ReadAll()
	if err != nil {
		t.Fatalf("the export: %v", err)
	}
	escaped := 0
	for _, rec := range recs[1:] {
		for _, cell := range rec {
			if cell == `'=HYPERLINK("http://e.example","late")` {
				escaped++
			} else if v := strings.TrimLeft(cell, " "); v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
				t.Errorf("export cell %q would run in a spreadsheet", cell)
			}
		}
	}
	if escaped != 23 {
		t.Errorf("the export holds %d escaped formulas; want the 23 rows filed with one", escaped)
	}
	before := len(commands.all())
	r = run("request", "--file", expPath, "--no-wait")
	if r.err != nil || !strings.Contains(r.stdout, "197 rows: 0 filed, 197 already filed, 0 invalid") {
		t.Errorf("the export as a batch: exit %d (%s); want 197 already filed:\n%s", r.code(), r.line(), tail(r.stdout))
	}
	if n := len(commands.all()) - before; n != 0 {
		t.Errorf("the export as a batch published %d commands; want none", n)
	}
	// An exported row edited without clearing its id is not "already
	// filed": its id opened a case with another request.
	edited := strings.Replace(exp, "not shipped, in time", "not shipped, and late", 1)
	r = run("request", "--file", writeTemp(t, "edited.csv", edited), "--no-wait")
	if r.code() != exitInvalidRows || !strings.Contains(r.stdout, "with another request (as list --export shows it): clear the id") ||
		!strings.Contains(r.stdout, "197 rows: 0 filed, 196 already filed, 1 invalid") {
		t.Errorf("an edited export row keeping its id: exit %d (%s); want it invalid:\n%s", r.code(), r.line(), tail(r.stdout))
	}
	if cases2, _ := st.ListCases(context.Background(), casestore.CaseFilter{Limit: 1000}); len(cases2) != 197 {
		t.Errorf("after every run: %d cases; want 197", len(cases2))
	}

	// A row whose request is already on its open case (filed by a single
	// request, under another id) is already filed, not a failure; a row
	// asking something else of an open case is rejected (exit 4).
	mustRunWith(t, run, "request", "--platform", "1688", "--order", "3305075349000000001", "--type", "return", "--goods-status",
		"aftersaleBuyerReceived", "--reason", "七天无理由退货", "--amount", "9500", "--description", "no longer needed")
	more := writeTemp(t, "more.csv", "platform,order,type,goods-status,reason,amount,description\n"+
		"1688,3305075349000000001,return,aftersaleBuyerReceived,七天无理由退货,9500,no longer needed\n"+
		"1688,3305075341000000005,return,aftersaleBuyerReceived,七天无理由退货,9500,changed my mind\n")
	r = run("request", "--file", more, "--wait", "60s")
	if r.code() != exitRefused {
		t.Errorf("duplicate and conflicting rows: exit %d (%s); want %d\n%s", r.code(), r.line(), exitRefused, r.stdout)
	}
	for _, want := range []string{
		": already filed: rejected (duplicate) on case ",
		": filed: rejected (case_open) on case ",
		"2 rows: 1 filed, 1 already filed, 0 invalid; verdicts: 0 applied, 1 rejected, 0 pending\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("duplicate and conflicting rows: output lacks %q:\n%s", want, r.stdout)
		}
	}
	t.Logf("whole test: %s", time.Since(start))
}

// mustRunWith is run's result, failing the test on an error.
func mustRunWith(t *testing.T, run func(args ...string) result, args ...string) result {
	t.Helper()
	r := run(args...)
	if r.err != nil {
		t.Fatalf("refundctl %s: exit %d: %s", strings.Join(args, " "), r.code(), r.line())
	}
	return r
}

// checkBatchOutput checks a batch's output: one line per row (the bad
// ones saying why, by column) and the summary; it returns each row's line
// by its file line.
func checkBatchOutput(t *testing.T, name, stdout, summary string, bad map[int]string) map[int]string {
	t.Helper()
	out := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(out) != 201 {
		t.Fatalf("%s: %d output lines; want 200 rows and a summary:\n%s", name, len(out), tail(stdout))
	}
	if out[200] != summary {
		t.Errorf("%s: summary %q; want %q", name, out[200], summary)
	}
	lines := map[int]string{}
	for _, l := range out[:200] {
		var n int
		if _, err := fmt.Sscanf(l, "line %d:", &n); err != nil {
			t.Fatalf("%s: result line %q does not start with its line number", name, l)
		}
		lines[n] = l
	}
	for line, want := range bad {
		if !strings.Contains(lines[line], want) {
			t.Errorf("%s, line %d: %q; want it to say %q", name, line, lines[line], want)
		}
	}
	return lines
}

// tail is the end of a long output, for failure messages.
func tail(s string) string {
	if len(s) > 2000 {
		return "…" + s[len(s)-2000:]
	}
	return s
}
