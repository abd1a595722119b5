package refundflow_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// unnamedLine is a platform transport whose Taobao refund query answers
// leave the sub-order out (purchaseOrderLineId empty), as the platform's
// answers may: the documentation does not say the field is always there.
type unnamedLine struct{}

var lineID = regexp.MustCompile(`"purchaseOrderLineId":("[^"]*"|[0-9]+)`)

func (unnamedLine) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.URL.Path, "/refund/query") {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	b = lineID.ReplaceAll(b, []byte(`"purchaseOrderLineId":""`))
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// TestAdoptingTheRefundACallbackNamedWhenTheAnswerDoesNotNameTheSubOrder:
// a case whose sub-order the platform files under another order stops,
// its attention text naming the refund a callback named there and saying
// to adopt it (and the console fills that refund in). When the platform's
// answer for the refund leaves the sub-order out, the adoption was
// refused every time ("does not say which sub-order it is for"): only the
// refunds listed when the form was read counted. The callback named it
// for the case's sub-order: it is adopted, and nothing is sent.
func TestAdoptingTheRefundACallbackNamedWhenTheAnswerDoesNotNameTheSubOrder(t *testing.T) {
	r := newRig(t, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	ctx := context.Background()
	const typed = "7100000000000000002"
	_, so, opened := r.lostSubmitOnTypedOrder(typed, sandbox.Faults{})
	c := r.waitState(opened.ID, refundflow.StateNeedsAttention)
	if c.AttentionCode != refundflow.CodeUnverifiable || !strings.Contains(string(c.Plan), `"orderElsewhere"`) {
		t.Fatalf("case stopped with %s, plan %s; want %s on a sub-order filed elsewhere", c.AttentionCode, c.Plan, refundflow.CodeUnverifiable)
	}
	refund := regexp.MustCompile(`--adopt ([0-9]+)`).FindStringSubmatch(c.AttentionMessage)
	if refund == nil {
		t.Fatalf("attention text %q names no refund to adopt", c.AttentionMessage)
	}
	client, err := apiclient.New(apiclient.Config{BaseURL: r.url, AccessKey: testKey, AccessSecret: testSecret, UserID: "u1",
		HTTPClient: &http.Client{Transport: unnamedLine{}}, RateLimit: rate.Inf, Timeout: 5 * time.Second,
		Retry: apiclient.RetryPolicy{MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := refundflow.NewEngine(refundflow.EngineConfig{Store: r.store, Client: client, Policy: testPolicy, Owner: "engine-unnamed"})
	if err != nil {
		t.Fatal(err)
	}
	adopt := r.command(refundflow.InputResolve, refundflow.PlatformTaobao, typed, so)
	adopt.CaseID, adopt.Resolve = c.ID, &refundflow.Resolve{Action: refundflow.ResolveAdopt, Refund: refund[1], Note: "the callback's"}
	h, err := eng.HandleCommand(ctx, adopt, message(adopt))
	if err != nil || h.Code != refundflow.CodeAdopted || h.State != refundflow.StateWaitingSeller {
		t.Fatalf("adopt %s, the answer not naming the sub-order: %+v, %v; want adopted, waiting for the seller", refund[1], h, err)
	}
	r.noDuplicates()
	if n := r.sb.Stats().RefundSubmissions["taobao:"+so]; n != 1 {
		t.Errorf("%d submissions for sub-order %s; want 1", n, so)
	}
}
