package console

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/testenv"
)

// TestLiveListsInBrowser: in chromium, the cases page and the overview
// follow the event stream: when the worker's store changes a case, the
// open list shows its new state and the overview its new counts, without
// a reload (the note says so).
func TestLiveListsInBrowser(t *testing.T) {
	chromium := testenv.Installed(t, "chromium", "apt-get install chromium")
	ts := newTestServer(t,
		seedCase{order: "100", sub: "101", state: "waiting_seller"},
		seedCase{order: "200", sub: "201", state: "waiting_seller"},
		seedCase{order: "300", sub: "301", state: "needs_attention", attention: refundflow.AttnSellerRefused},
	)
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
	// setState moves case i as the worker would, through a writing store.
	setState := func(i int, state string) {
		t.Helper()
		w, err := casestore.Open(context.Background(), ts.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		err = w.Update(context.Background(), func(tx *casestore.Tx) error {
			c := ts.cases[i]
			c.State, c.AttentionCode, c.AttentionMessage, c.ParkedState = state, "", "", ""
			c, err := tx.UpdateCase(context.Background(), c)
			ts.cases[i] = c
			return err
		})
		if err != nil {
			t.Fatalf("move case %d to %s: %v", ts.cases[i].ID, state, err)
		}
	}

	do("log in", chromedp.Navigate(ts.http.URL+"/login"), chromedp.WaitVisible(chromedp.ID("#name")),
		chromedp.SendKeys(chromedp.ID("#name"), viewerName), chromedp.SendKeys(chromedp.ID("#password"), viewerPassword),
		chromedp.Submit(chromedp.ID("#password")),
		chromedp.WaitVisible(chromedp.ID("#open-cases")))

	// The overview: 3 open cases; one finishes.
	if got := text("#totals"); !strings.Contains(got, "3 open case(s)") {
		t.Fatalf("overview totals = %q; want 3 open cases", got)
	}
	setState(0, "succeeded")
	do("overview updates", chromedp.WaitVisible(chromedp.ID("#live-status")))
	if got := text("#totals"); !strings.Contains(got, "2 open case(s)") {
		t.Errorf("overview totals after a case finished = %q; want 2 open cases, without a reload", got)
	}

	// The list, sorted by id: case 2 moves on while it is open.
	do("cases page", chromedp.Navigate(ts.http.URL+"/cases?sort=id&order=asc"), chromedp.WaitVisible(chromedp.ID("#cases")))
	row := `#cases tr[data-case="` + itoa(ts.cases[1].ID) + `"]`
	if got := text(row); !strings.Contains(got, "waiting_seller") {
		t.Fatalf("row of case 2 = %q; want waiting_seller", got)
	}
	setState(1, "succeeded")
	do("list updates", chromedp.WaitVisible(chromedp.ID("#live-status")))
	if got := text(row); !strings.Contains(got, "succeeded") {
		t.Errorf("row of case 2 after it succeeded = %q; want succeeded, without a reload", got)
	}
	if got := text("#live-status"); !strings.Contains(got, "Updated at") {
		t.Errorf("live note = %q; want it to say the list was updated", got)
	}
}
