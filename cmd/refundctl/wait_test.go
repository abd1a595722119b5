package main

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/refundhub/refundhub/internal/casestore"
)

func TestShowByOrder(t *testing.T) {
	e := newEnv(t)
	seedCases(t, e.openStore())
	var got struct {
		Case     caseJSON       `json:"case"`
		Steps    []stepJSON     `json:"steps"`
		Timeline []timelineJSON `json:"timeline"`
	}
	decodeJSON(t, e.mustRun("show", "--platform", "taobao", "--sub-order", "301", "--json").stdout, &got)
	if got.Case.ID != 3 {
		t.Errorf("show by sub-order 301 = case %d; want 3", got.Case.ID)
	}
	if out := e.mustRun("show", "--platform", "1688", "--order", "200").stdout; !strings.HasPrefix(out, "Case 2\n") {
		t.Errorf("show by order 200:\n%s", out)
	}
	e.wantErr(1, "no case for taobao order 200", "show", "--platform", "taobao", "--order", "200")
}

func TestWait(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	seedCases(t, st)

	if out := e.mustRun("wait", "1").stdout; !strings.HasPrefix(out, "case 1 is waiting_seller (after ") {
		t.Errorf("wait 1 = %q", out)
	}
	var c caseJSON
	decodeJSON(t, e.mustRun("wait", "--platform", "taobao", "--sub-order", "301", "--state", "succeeded,closed", "--json").stdout, &c)
	if c.ID != 3 || c.State != "succeeded" {
		t.Errorf("wait --json = %+v", c)
	}
	e.wantErr(1, "case 3 finished as succeeded, not closed", "wait", "3", "--state", "closed")
	e.wantErr(1, "timed out after 300ms: case 1 is waiting_seller, not succeeded", "wait", "1", "--state", "succeeded", "--deadline", "300ms")
	// A stopped case says why and what to do, when it is what was waited
	// for and when it is not.
	// Case 2 is a 1688 case: the advice is 1688's, its commands name the
	// case (it said "refundctl modify CASE", which 1688 refuses).
	todo := "to do: " + runbookAdvice("seller_refused", 2, "1688", "waiting_seller")
	if strings.Contains(todo, "refundctl modify") || !strings.Contains(todo, "1688: no modification (waitbuyermodify; modify is refused)") ||
		!strings.Contains(todo, "refundctl resolve 2 --close") {
		t.Fatalf("the advice for 1688 case 2 = %q; want 1688's way, naming the case", todo)
	}
	if out := e.mustRun("wait", "2", "--state", "needs_attention").stdout; !strings.HasPrefix(out, "case 2 is needs_attention (after ") ||
		!strings.Contains(out, "seller_refused: seller refused: used item; "+todo) || strings.Count(out, "\n") != 1 {
		t.Errorf("wait 2 --state needs_attention = %q; want the case, its attention and what to do, on one line", out)
	}
	r := e.wantErr(1, "timed out after 300ms: case 2 is needs_attention (seller_refused: seller refused: used item), not succeeded; "+todo,
		"wait", "2", "--state", "succeeded", "--deadline", "300ms")
	if want := "refundctl: case 2 stopped: needs_attention (seller_refused: seller refused: used item); " + todo + "; still waiting for succeeded, in case it moves on, until "; strings.Count(r.stderr, want) != 1 {
		t.Errorf("wait 2 --state succeeded: stderr %q; want one note, when it first saw the case stopped: %q", r.stderr, want)
	}
	e.wantErr(1, "timed out after 300ms: no case for 1688 order 4242", "wait", "--platform", "1688", "--order", "4242", "--deadline", "300ms")
	e.wantErr(2, `--state "done"`, "wait", "1", "--state", "done")
	e.wantErr(2, "--deadline and --interval must be positive", "wait", "1", "--deadline", "0s")

	// A case that appears and moves while waiting.
	var wg sync.WaitGroup
	var res result
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Not e.run: it may call t.Fatalf, which must not run outside the test goroutine.
		var out, errb bytes.Buffer
		err := run(context.Background(), []string{"wait", "--platform", "1688", "--order", "777", "--state", "waiting_seller",
			"--deadline", "60s", "--interval", "20ms"}, func(k string) string { return e.vars[k] }, &out, &errb)
		res = result{stdout: out.String(), stderr: errb.String(), err: err}
	}()
	ctx := context.Background()
	err := st.Update(ctx, func(tx *casestore.Tx) error {
		c, err := tx.CreateCase(ctx, casestore.NewCase{Platform: "1688", OrderID: "777", State: "requested", OpenedBy: "cmd-0123456789abcdef01234567"})
		if err != nil {
			return err
		}
		c.State = "waiting_seller"
		_, err = tx.UpdateCase(ctx, c)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if res.err != nil || !strings.HasPrefix(res.stdout, "case 4 is waiting_seller") {
		t.Errorf("wait for a new case: %q, %v", res.stdout, res.err)
	}
	// By the request command that opened it.
	decodeJSON(t, e.mustRun("wait", "--command", "cmd-0123456789abcdef01234567", "--json").stdout, &c)
	if c.ID != 4 {
		t.Errorf("wait --command = case %d; want 4", c.ID)
	}
	if out := e.mustRun("show", "--command", "cmd-0123456789abcdef01234567").stdout; !strings.HasPrefix(out, "Case 4\n") {
		t.Errorf("show --command:\n%s", out)
	}
	e.wantErr(1, "timed out after 200ms: no case for command cmd-ffffffffffffffffffffffff", "wait", "--command", "cmd-ffffffffffffffffffffffff", "--deadline", "200ms")
	e.wantErr(1, "no case for command cmd-ffffffffffffffffffffffff (no verdict from the worker yet)", "show", "--command", "cmd-ffffffffffffffffffffffff")
	e.wantErr(2, `--command "x y": not a command id`, "show", "--command", "x y")
	e.wantErr(2, "--command selects the case by itself", "show", "--command", "cmd-ffffffffffffffffffffffff", "--platform", "taobao")

	// The attention text is the seller's own: whatever it holds, the line
	// stays one line, with no terminal control codes.
	ctx0 := context.Background()
	var rude casestore.Case
	if err := st.Update(ctx0, func(tx *casestore.Tx) error {
		c, err := tx.CreateCase(ctx0, casestore.NewCase{Platform: "taobao", OrderID: "500", SubOrderID: "501", State: "requested"})
		if err != nil {
			return err
		}
		c.State, c.ParkedState, c.AttentionCode = "needs_attention", "waiting_seller", "seller_refused"
		c.AttentionMessage = "seller refused: line one\nline two \x1b[31mred"
		rude, err = tx.UpdateCase(ctx0, c)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	id := strconv.FormatInt(rude.ID, 10)
	if out := e.mustRun("wait", id, "--state", "needs_attention").stdout; strings.Count(out, "\n") != 1 || strings.ContainsRune(out, 0x1b) ||
		!strings.Contains(out, "seller refused: line one line two  [31mred;") {
		t.Errorf("wait %s = %q; want one line, control characters as spaces", id, out)
	}
	r = e.wantErr(1, "seller refused: line one line two  [31mred), not succeeded", "wait", id, "--state", "succeeded", "--deadline", "200ms")
	if strings.Count(r.stderr, "\n") != 1 || strings.ContainsRune(r.stderr, 0x1b) {
		t.Errorf("wait %s --state succeeded: stderr %q; want the note on one line, without control characters", id, r.stderr)
	}
	if err := st.Update(ctx0, func(tx *casestore.Tx) error {
		return tx.RecordCommandOutcome(ctx0, casestore.CommandOutcome{CommandID: "cmd-rude-1", Verdict: casestore.VerdictApplied, CaseID: rude.ID})
	}); err != nil {
		t.Fatal(err)
	}
	if r := e.run("cancel", "--case", id, "--id", "cmd-rude-1", "--wait", "2s"); strings.Count(r.stdout, "\n") != 2 || strings.ContainsRune(r.stdout, 0x1b) {
		t.Errorf("cancel's verdict on case %s: %q; want the id and one verdict line, without control characters", id, r.stdout)
	}
}
