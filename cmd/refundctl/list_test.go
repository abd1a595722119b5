package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/casestore"
)

// TestListPagesPastAThousand: --limit reads past one store page
// (casestore.MaxListLimit); when more cases match, list prints a cursor
// that --after takes; --json keeps stdout one array (the cursor goes to
// stderr) and names the command that opened each case.
func TestListPagesPastAThousand(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	ctx := context.Background()
	const total = casestore.MaxListLimit + 5
	err := st.Update(ctx, func(tx *casestore.Tx) error {
		for i := 1; i <= total; i++ {
			if _, err := tx.CreateCase(ctx, casestore.NewCase{Platform: "taobao", OrderID: "1", SubOrderID: fmt.Sprint(10000 + i),
				State: "requested", OpenedBy: fmt.Sprintf("cmd-open-%05d", i)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	r := e.mustRun("list", "--limit", "1003")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 1+1003+1 || lines[len(lines)-1] != "more cases: repeat with --after 1003" {
		t.Fatalf("list --limit 1003: %d lines, last %q; want header, 1003 cases and the cursor line", len(lines), lines[len(lines)-1])
	}
	if !strings.HasPrefix(lines[1003], "1003 ") {
		t.Errorf("list --limit 1003: last case line %q; want case 1003", lines[1003])
	}

	var out []caseJSON
	r = e.mustRun("list", "--after", "1003", "--json")
	decodeJSON(t, r.stdout, &out)
	if len(out) != 2 || out[0].ID != 1004 || out[1].OpenedBy != "cmd-open-01005" || r.stderr != "" {
		t.Errorf("list --after 1003 --json: %d cases (%+v), stderr %q; want 1004 and 1005 with openedBy, no cursor", len(out), out, r.stderr)
	}

	r = e.mustRun("list", "--limit", "2", "--json", "--after-id", "10")
	out = nil
	decodeJSON(t, r.stdout, &out)
	if len(out) != 2 || out[0].ID != 11 || out[0].OpenedBy != "cmd-open-00011" || strings.TrimSpace(r.stderr) != "refundctl: more cases: repeat with --after 12" {
		t.Errorf("list --limit 2 --json --after-id 10: %d cases, stderr %q; want 11 and 12 and the cursor on stderr", len(out), r.stderr)
	}

	r = e.mustRun("list", "--limit", fmt.Sprint(total), "--json")
	out = nil
	decodeJSON(t, r.stdout, &out)
	if len(out) != total || out[total-1].ID != total || r.stderr != "" {
		t.Errorf("list --limit %d --json: %d cases, stderr %q; want all, no cursor", total, len(out), r.stderr)
	}
	if r := e.mustRun("list", "--limit", fmt.Sprint(total)); strings.Contains(r.stdout, "more cases") {
		t.Errorf("list of every case prints a cursor")
	}
}
