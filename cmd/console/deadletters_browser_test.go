package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/opcommands"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/testenv"
)

// TestBrowserDeadLetters: in chromium, the overview's dead-letter number
// leads to the grouped page; a viewer sees no form there; an operator's
// "Discard all…" confirms exactly the group's letters, asks for a note,
// and shows each verdict; the letters are discarded under the operator's
// name.
func TestBrowserDeadLetters(t *testing.T) {
	chromium := testenv.Installed(t, "chromium", "apt-get install chromium")
	s := startStack(t)
	st, err := casestore.OpenReadOnly(context.Background(), s.dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Two commands for cases that do not exist: the worker gives up on both
	// for the same reason.
	for _, caseID := range []int64{4242, 4343} {
		id, err := opcommands.NewID()
		if err != nil {
			t.Fatal(err)
		}
		cmd := refundflow.Command{ID: id, Kind: refundflow.InputCancel, Platform: refundflow.Platform("taobao"), CaseID: caseID,
			Operator: "olga", IssuedAt: time.Now().UTC().Truncate(time.Millisecond)}
		if _, err := opcommands.Publish(context.Background(), s.js, cmd); err != nil {
			t.Fatal(err)
		}
	}
	var dead []casestore.DeadLetter
	eventstest.WaitFor(t, 20*time.Second, "2 dead letters", func() bool {
		dead, err = st.DeadLetters(context.Background(), casestore.DeadLetterFilter{})
		return err == nil && len(dead) == 2
	})
	base, _ := startConsole(t, consoleEnv(s.natsURL, s.dbPath))

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 800))...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(alloc)
	defer cancelCtx()
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	defer cancelT()
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	count := func(sel string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
		if err != nil {
			t.Fatalf("count %s: %v", sel, err)
		}
		return n
	}
	login := func(name, password string) {
		t.Helper()
		do("log in", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("#name")),
			chromedp.SendKeys(chromedp.ID("#name"), name), chromedp.SendKeys(chromedp.ID("#password"), password),
			chromedp.Submit(chromedp.ID("#password")), chromedp.WaitVisible(chromedp.CSS("nav")))
	}

	login(viewerName, viewerPassword)
	do("overview to dead letters", chromedp.Click(chromedp.CSS(`#dead-letters a[href="/dead-letters"]`)), chromedp.WaitVisible(chromedp.ID("#dl-groups")))
	if got := text("#dl-groups .dl-count"); got != "2" || count(".dl-group") != 1 {
		t.Errorf("grouped page: %d groups, count %q; want one group of 2", count(".dl-group"), got)
	}
	if n := count(`form.dl-bulk`); n != 0 {
		t.Errorf("a viewer's grouped page has %d bulk forms; want none", n)
	}
	do("log out", chromedp.Click(chromedp.CSS("header form button")), chromedp.WaitVisible(chromedp.ID("#name")))

	login(operatorName, operatorPassword)
	do("grouped page", chromedp.Navigate(base+"/dead-letters"), chromedp.WaitVisible(chromedp.CSS("form.dl-bulk")))
	do("discard all", chromedp.Click(chromedp.CSS(`form.dl-bulk button[value="discard"]`)), chromedp.WaitVisible(chromedp.ID("#bulk-confirm")))
	want := fmt.Sprintf("exactly 2 dead letter(s): %d, %d", dead[0].ID, dead[1].ID)
	if got := text("#bulk-count"); !strings.Contains(got, want) {
		t.Errorf("confirmation says %q; want %q", got, want)
	}
	do("confirm", chromedp.SendKeys(chromedp.ID("#note"), "no such cases"), chromedp.Submit(chromedp.ID("#note")),
		chromedp.WaitVisible(chromedp.ID("#bulk-verdicts")))
	if n := count(`#bulk-verdicts tr[data-outcome="discarded"]`); n != 2 {
		t.Errorf("verdicts: %d discarded; want 2:\n%s", n, text("#bulk-verdicts"))
	}
	for _, d := range dead {
		if got, err := st.DeadLetter(context.Background(), d.ID); err != nil || got.DiscardedBy != "olga" || got.DiscardNote != "no such cases" {
			t.Errorf("dead letter %d = %+v, %v; want discarded by olga with the note", d.ID, got, err)
		}
	}
}
