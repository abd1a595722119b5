package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/opcommands"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/testenv"
)

// screenshotDirEnv names a directory that also receives the finished
// case's screenshot at 1280×800 (TestBrowser), so the README's image
// (docs/images/console-case.png) can be made again by running the test.
const screenshotDirEnv = "REFUNDHUB_SCREENSHOT_DIR"

// viewport is a window size the pages must be legible at.
type viewport struct {
	name          string
	width, height int64
	phone         bool // emulates a phone: the page's viewport meta applies
}

var (
	desktop = viewport{name: "1280x800", width: 1280, height: 800}
	phone   = viewport{name: "375x667", width: 375, height: 667, phone: true}
)

// emulate sets the tab's viewport to v.
func (v viewport) emulate() chromedp.Action[chromedp.Void] {
	if v.phone {
		return chromedp.EmulateViewport(v.width, v.height, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
	}
	return chromedp.EmulateViewport(v.width, v.height)
}

// saveViewportScreenshot writes the visible part of the page at 1280×800 as
// PNG to $REFUNDHUB_SCREENSHOT_DIR/name when that is set (the README's
// image: what an operator sees on opening the page, not the whole page).
func saveViewportScreenshot(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	dir := os.Getenv(screenshotDirEnv)
	if dir == "" {
		return
	}
	if err := chromedp.Do(ctx, desktop.emulate(), chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`)); err != nil {
		t.Fatalf("screenshot %s: set the viewport: %v", name, err)
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot (%s): %s", screenshotDirEnv, path)
}

// fileTaobaoReturn files a Taobao return of received goods (reason 4005,
// which the sandbox's form offers and which needs no voucher) and returns
// its case once the sandbox's seller agreed and the worker waits for the
// return shipment: a case with a refund, offering ship, cancel and message.
func fileTaobaoReturn(t *testing.T, s *stack, st *casestore.Store, sub string) casestore.Case {
	t.Helper()
	return fileRequest(t, s, st, sub, "a11y-test",
		refundflow.Request{ReturnGoods: true, GoodsStatus: "3", ReasonID: 4005, Description: "accessibility test"},
		refundflow.StateWaitingReturnShipment, 45*time.Second)
}

// deadLetter publishes a cancel for a case that does not exist and
// returns the dead letter the worker makes of it.
func deadLetter(t *testing.T, s *stack, st *casestore.Store, caseID int64) casestore.DeadLetter {
	t.Helper()
	id, err := opcommands.NewID()
	if err != nil {
		t.Fatal(err)
	}
	cmd := refundflow.Command{ID: id, Kind: refundflow.InputCancel, Platform: refundflow.PlatformTaobao, CaseID: caseID,
		Operator: "a11y-test", IssuedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if _, err := opcommands.Publish(context.Background(), s.js, cmd); err != nil {
		t.Fatalf("publish cancel: %v", err)
	}
	var dead []casestore.DeadLetter
	eventstest.WaitFor(t, 30*time.Second, "a dead letter", func() bool {
		dead, err = st.DeadLetters(context.Background(), casestore.DeadLetterFilter{})
		return err == nil && len(dead) > 0
	})
	return dead[0]
}

// labelsJS lists, for the page, every form control a person can reach
// (not type=hidden, rendered) that has no accessible label: no <label for>
// and no wrapping <label> with text (el.labels, which also catches a label
// whose id is duplicated), no aria-label, no aria-labelledby naming
// elements with text. It also lists every <label for> naming no control.
const labelsJS = `(() => {
  const text = (el) => (el && el.textContent || '').trim();
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.name ? '[name=' + el.name + ']' : '');
  const bad = [];
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden' || el.getClientRects().length === 0) continue;
    const byLabel = Array.from(el.labels || []).some((l) => text(l) !== '');
    const byAria = (el.getAttribute('aria-label') || '').trim() !== '';
    const byRef = (el.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean)
      .some((id) => text(document.getElementById(id)) !== '');
    if (!byLabel && !byAria && !byRef) bad.push(name(el) + ' has no label');
  }
  for (const l of document.querySelectorAll('label[for]')) {
    const c = document.getElementById(l.htmlFor);
    if (!c || !['INPUT', 'SELECT', 'TEXTAREA'].includes(c.tagName)) bad.push('label for=' + l.htmlFor + ' (' + text(l) + ') names no control');
  }
  return bad;
})()`

// reachableJS marks every element the keyboard must reach (rendered,
// visible, enabled links with href, buttons and form controls but
// type=hidden) with data-a11y-key, one key per element and one per radio
// group (Tab stops once in a group, arrows move within), and returns the
// keys with a description each; and every element with a positive
// tabindex, which breaks the reading order.
const reachableJS = `(() => {
  const shown = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.name ? '[name=' + el.name + ']' : '') +
    (el.tagName === 'A' ? '[href=' + el.getAttribute('href') + ']' : '') +
    (el.tagName === 'BUTTON' || el.tagName === 'A' ? ' "' + el.textContent.trim().slice(0, 40) + '"' : '');
  const want = {};
  let i = 0;
  for (const el of document.querySelectorAll('a[href], button, input, select, textarea')) {
    if (el.type === 'hidden' || el.disabled || !shown(el)) continue;
    const key = el.type === 'radio' && el.name ? 'radio:' + (el.form ? el.form.id : '') + ':' + el.name : 'e' + (i++);
    el.dataset.a11yKey = key;
    want[key] = want[key] || name(el);
  }
  const positive = Array.from(document.querySelectorAll('[tabindex]')).filter((el) => el.tabIndex > 0).map(name);
  return {want: want, positive: positive};
})()`

// focusedJS describes document.activeElement: its key from reachableJS
// (or a description when it has none), and whether it shows a focus
// indicator (an outline: the layout's :focus rule or the browser's ring).
const focusedJS = `(() => {
  const el = document.activeElement;
  if (!el || el === document.body || el === document.documentElement) return {key: ''};
  const cs = getComputedStyle(el);
  return {key: el.dataset.a11yKey || 'other:' + el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + '.' + el.className,
    indicated: cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0};
})()`

// layoutJS checks the page at the current viewport (width in px): no
// horizontal overflow of the document (what is wider than the window is
// named; tables scroll inside a wrapper), body text of 14px or more, and
// no element whose content is cut off by overflow hidden or clip.
const layoutJS = `((width) => {
  const bad = [];
  const name = (el) => {
    const box = el.parentElement && el.parentElement.closest('[id]');
    return el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className ? '.' + el.className : '') + (box ? ' in #' + box.id : '');
  };
  const de = document.documentElement;
  if (window.innerWidth !== width) bad.push('the window is ' + window.innerWidth + 'px wide; want ' + width + ' (the page is zoomed out to fit)');
  if (de.scrollWidth > width) {
    const scrolls = (el) => { for (let p = el.parentElement; p; p = p.parentElement) { const o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll') return true; } return false; };
    const wide = Array.from(document.body.querySelectorAll('*')).filter((el) => el.getBoundingClientRect().right > width + 1 && !scrolls(el) &&
      !Array.from(el.children).some((c) => c.getBoundingClientRect().right > width + 1));
    bad.push('the document is ' + de.scrollWidth + 'px wide in a ' + width + 'px window; too wide: ' + Array.from(new Set(wide.map(name))).slice(0, 8).join(', '));
  }
  const fs = parseFloat(getComputedStyle(document.body).fontSize);
  if (fs < 14) bad.push('body font-size ' + fs + 'px; want 14px or more');
  for (const el of document.body.querySelectorAll('*')) {
    const cs = getComputedStyle(el);
    const clipX = cs.overflowX === 'hidden' || cs.overflowX === 'clip', clipY = cs.overflowY === 'hidden' || cs.overflowY === 'clip';
    if ((clipX && el.scrollWidth > el.clientWidth + 1) || (clipY && el.scrollHeight > el.clientHeight + 1) ||
        (cs.textOverflow === 'ellipsis' && el.scrollWidth > el.clientWidth + 1)) {
      bad.push(name(el) + ' cuts off its content (overflow ' + cs.overflowX + '/' + cs.overflowY + ', ' + el.scrollWidth + 'x' + el.scrollHeight + ' in ' + el.clientWidth + 'x' + el.clientHeight + ')');
    }
  }
  return bad;
})`

// a11yPage is a console page and how to open it.
type a11yPage struct {
	name string
	open []chromedp.Action[chromedp.Void] // ends on the page, ready
}

// TestBrowserAccessibility visits every kind of page of the console in
// chromium (login, overview, a filtered case list, a case in
// needs_attention with its resolve and cancel forms, a Taobao case waiting
// for the return shipment with its ship, message and cancel forms, the
// request form, the dead letters, one dead letter with its forms, a bulk
// confirmation, an error page) as an operator, and checks on each: every
// form control has an accessible label; pressing Tab from the top until
// focus comes round again reaches every visible link, button and control
// (a radio group once), each showing a focus indicator, and no element
// has a positive tabindex; at 1280×800 and at phone width (375×667,
// emulated) the document does not overflow sideways, body text is 14px or
// more and nothing is cut off by overflow hidden. Enter on the focused
// Filter button submits the cases filter. Phone-width screenshots of every
// page are logged.
func TestBrowserAccessibility(t *testing.T) {
	chromium := testenv.Installed(t, "chromium", "apt-get install chromium")
	s := startStack(t)
	st, err := casestore.OpenReadOnly(context.Background(), s.dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dead := deadLetter(t, s, st, 4646)
	parked := parkTaobaoRequest(t, s, st, "911")
	returning := fileTaobaoReturn(t, s, st, "912")
	base, _ := startConsole(t, consoleEnv(s.natsURL, s.dbPath))

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 800))...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(alloc)
	defer cancelCtx()
	ctx, cancelT := context.WithTimeout(ctx, 240*time.Second)
	defer cancelT()

	// The pages must not change under the checks (a live page replaces its
	// sections when a case changes, and the worker still touches cases):
	// the event stream is blocked, and the pages work without it.
	if _, err := chromedp.Call(ctx, network.SetBlockedURLs, network.SetBlockedURLsParams{
		URLPatterns: []*network.BlockPattern{{URLPattern: base + "/api/v1/events?*", Block: true}}}); err != nil {
		t.Fatalf("block the event stream: %v", err)
	}

	// open goes to path and waits for every element in ready: the forms
	// whose controls the checks must see.
	open := func(path string, ready ...string) []chromedp.Action[chromedp.Void] {
		steps := []chromedp.Action[chromedp.Void]{chromedp.Navigate(base + path)}
		for _, sel := range ready {
			steps = append(steps, chromedp.WaitVisible(chromedp.CSS(sel)))
		}
		return steps
	}
	login := a11yPage{name: "login", open: open("/login", "#name")}
	pages := []a11yPage{
		{name: "overview", open: open("/", "#open-cases", "#attention", "#lag")},
		{name: "cases", open: open("/cases?open=true&platform=taobao&sort=created&order=asc", "#filters", "#cases")},
		{name: "case needing attention", open: open(fmt.Sprintf("/cases/%d", parked.ID), "#why", "#resolve", "#cancel")},
		{name: "case waiting for the return shipment", open: open(fmt.Sprintf("/cases/%d", returning.ID), "#why", "#ship", "#message", "#cancel", "#timeline")},
		{name: "request form", open: open("/requests/new", "#request")},
		{name: "dead letters", open: open("/dead-letters", "#dl-groups")},
		{name: "dead letter", open: open(fmt.Sprintf("/dead-letters/%d", dead.ID), "#retry", "#discard")},
		{name: "bulk confirmation", open: append(open("/dead-letters", "form.dl-bulk"),
			chromedp.Click(chromedp.CSS(`form.dl-bulk button[value="discard"]`)), chromedp.WaitVisible(chromedp.ID("#bulk-confirm")))},
		{name: "error", open: open("/cases/987654", "p.error")},
	}

	check := func(p a11yPage) {
		t.Helper()
		for _, v := range []viewport{desktop, phone} {
			octx, cancel := context.WithTimeout(ctx, 20*time.Second)
			err := chromedp.Do(octx, append([]chromedp.Action[chromedp.Void]{v.emulate()}, p.open...)...)
			cancel()
			if err != nil {
				t.Fatalf("%s at %s: open, and wait for what it must show: %v", p.name, v.name, err)
			}
			if v == desktop {
				checkLabels(ctx, t, p.name)
				checkKeyboard(ctx, t, p.name)
			}
			checkLayout(ctx, t, p.name, v)
			if v.phone {
				fullScreenshot(ctx, t, fmt.Sprintf("phone-%s.png", strings.ReplaceAll(p.name, " ", "-")))
			}
		}
	}

	check(login)
	if err := chromedp.Do(ctx, desktop.emulate(), chromedp.Navigate(base+"/login"), chromedp.WaitVisible(chromedp.ID("#name")),
		chromedp.SendKeys(chromedp.ID("#name"), operatorName), chromedp.SendKeys(chromedp.ID("#password"), operatorPassword),
		chromedp.Submit(chromedp.ID("#password")), chromedp.WaitVisible(chromedp.CSS("nav"))); err != nil {
		t.Fatalf("log in: %v", err)
	}
	blocked, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`fetch('/api/v1/events?cursor=0').then(() => false, () => true)`, chromedp.EvalAwaitPromise))
	if err != nil || !blocked {
		t.Fatalf("the event stream is not blocked (%v): the pages could change under the checks", err)
	}
	for _, p := range pages {
		check(p)
	}

	// Enter on the focused Filter button submits the filter.
	want := parked.SubOrderID
	enterCtx, cancelEnter := context.WithTimeout(ctx, 15*time.Second)
	defer cancelEnter()
	if err := chromedp.Do(enterCtx, desktop.emulate(), chromedp.Navigate(base+"/cases"), chromedp.WaitVisible(chromedp.ID("#filters")),
		chromedp.SendKeys(chromedp.ID("#q"), want), chromedp.Focus(chromedp.CSS(`#filters button[type="submit"]`)),
		// The typed text is the field's property; only the page the
		// filter answers carries it in the value attribute.
		chromedp.KeyEvent("\r"), chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#q[value="%s"]`, want)))); err != nil {
		t.Fatalf("Enter on the focused Filter button: no filtered list within 15s: %v", err)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if u, err := url.Parse(loc); err != nil || u.Query().Get("q") != want {
		t.Errorf("after Enter on the Filter button the browser is at %s; want the list filtered by q=%s", loc, want)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#cases tbody tr').length`)); err != nil || n != 1 {
		t.Errorf("the list filtered by q=%s has %d rows (%v); want case %d alone", want, n, err, parked.ID)
	}
}

// checkLabels fails the test for every unlabelled control of the page.
func checkLabels(ctx context.Context, t *testing.T, page string) {
	t.Helper()
	bad, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](labelsJS))
	if err != nil {
		t.Fatalf("%s: labels: %v", page, err)
	}
	for _, b := range bad {
		t.Errorf("%s: %s", page, b)
	}
}

// reachable is what reachableJS says of the page: the elements the
// keyboard must reach, by key, and those with a positive tabindex.
type reachable struct {
	Want     map[string]string `json:"want"`
	Positive []string          `json:"positive"`
}

// focused is what focusedJS says of the focused element.
type focused struct {
	Key       string `json:"key"`
	Indicated bool   `json:"indicated"`
}

// checkKeyboard presses Tab from the top of the page until focus comes
// back to the first element it reached, and fails the test for every
// element the keyboard must reach (reachableJS) that it did not, for a
// focused element without a focus indicator, and for a positive tabindex.
func checkKeyboard(ctx context.Context, t *testing.T, page string) {
	t.Helper()
	r, err := chromedp.Run(ctx, chromedp.Evaluate[reachable](reachableJS))
	if err != nil {
		t.Fatalf("%s: list what the keyboard must reach: %v", page, err)
	}
	for _, p := range r.Positive {
		t.Errorf("%s: %s has a positive tabindex", page, p)
	}
	// From the top: focus on the document itself, none on an element.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)`)); err != nil {
		t.Fatalf("%s: blur: %v", page, err)
	}
	reached := map[string]bool{}
	first := ""
	// Every element once, and a few more for focus leaving the document
	// between the last element and the first.
	limit := 2*len(r.Want) + 10
	for i := 0; ; i++ {
		if i == limit {
			t.Errorf("%s: focus did not come back to %s within %d presses of Tab", page, first, limit)
			break
		}
		if err := chromedp.Do(ctx, chromedp.KeyEvent("\t")); err != nil {
			t.Fatalf("%s: Tab %d: %v", page, i+1, err)
		}
		f, err := chromedp.Run(ctx, chromedp.Evaluate[focused](focusedJS))
		if err != nil {
			t.Fatalf("%s: Tab %d: %v", page, i+1, err)
		}
		if f.Key == "" {
			continue // focus left the document, or has not entered it yet
		}
		if f.Key == first {
			break
		}
		if first == "" {
			first = f.Key
		}
		if !f.Indicated && !reached[f.Key] {
			t.Errorf("%s: %s has keyboard focus but no focus indicator", page, describe(r.Want, f.Key))
		}
		reached[f.Key] = true
	}
	t.Logf("%s: Tab reached %d of the %d elements to reach, and came back to the first", page, len(reached), len(r.Want))
	for k, what := range r.Want {
		if !reached[k] {
			t.Errorf("%s: %s cannot be reached with Tab", page, what)
		}
	}
}

func describe(want map[string]string, key string) string {
	if d, ok := want[key]; ok {
		return d
	}
	return key
}

// checkLayout fails the test for every legibility problem layoutJS finds
// on the page at viewport v.
func checkLayout(ctx context.Context, t *testing.T, page string, v viewport) {
	t.Helper()
	bad, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](fmt.Sprintf("(%s)(%d)", layoutJS, v.width)))
	if err != nil {
		t.Fatalf("%s at %s: layout: %v", page, v.name, err)
	}
	for _, b := range bad {
		t.Errorf("%s at %s: %s", page, v.name, b)
	}
}

// fullScreenshot writes the whole page as PNG to the test's artifact
// directory and logs where, as TestBrowser does (kept after the test with
// go test -artifacts).
func fullScreenshot(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
