package main

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
)

// TestIdleIsSinceTheCaseLastMoved: a case stopped three hours ago and
// checked by the worker a moment ago (a write that finds nothing new) is
// idle for three hours. IDLE and --older-than read the last write, so
// `list --open --older-than 2h`, the way to find stuck cases, found none
// while the reconciler checked them every 15 minutes.
func TestIdleIsSinceTheCaseLastMoved(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	seedCases(t, st)
	db, err := sql.Open("sqlite3", "file:"+e.dbPath+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	if _, err := db.Exec(`UPDATE cases SET moved_at = ?, updated_at = ? WHERE id = 2`, now.Add(-3*time.Hour).UnixMilli(), now.UnixMilli()); err != nil {
		t.Fatal(err)
	}
	consoleURL := startConsole(e)
	for _, run := range []func(...string) result{e.run, func(args ...string) result { return e.remoteRun(consoleURL, consoleOperatorToken, args...) }} {
		r := run("list", "--open", "--older-than", "2h")
		lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
		if r.err != nil || len(lines) != 2 || !strings.HasPrefix(lines[1], "2 ") {
			t.Fatalf("list --open --older-than 2h: exit %d (%s)\n%s\nwant case 2 alone, stopped three hours ago", r.code(), r.line(), r.stdout)
		}
		if !strings.Contains(lines[1], " 3h00m ") && !strings.Contains(lines[1], " 2h59m ") {
			t.Errorf("case 2's row %q; want IDLE 3h", lines[1])
		}
		if out := run("show", "2").stdout; !strings.Contains(out, "Last moved:") {
			t.Errorf("show 2 does not say when the case last moved:\n%s", out)
		}
	}
}
