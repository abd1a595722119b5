package refundflow_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestACommandsVerdictDoesNotWaitForASlowPlatformRead: a request's first
// step is a read (the refund form), which the engine runs before its
// decision commits (lookahead). When the platform throttles or is slow,
// that read takes long (the client's retries under a rate limit took 19 s
// in devstack), and the operator, waiting for the verdict the decision
// records, was told "no verdict: is the worker running?". The read here
// is held at the platform's door: the verdict must be recorded while it
// is held, for a new case and for a request filed again on a stopped one,
// and the request then goes through once the read comes back, submitted
// once.
func TestACommandsVerdictDoesNotWaitForASlowPlatformRead(t *testing.T) {
	for _, again := range []bool{false, true} {
		name := "a new case"
		if again {
			name = "a request filed again on a stopped case"
		}
		t.Run(name, func(t *testing.T) {
			r := newRig(t, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
			ctx := context.Background()
			o, so := r.order(sandbox.PlatformTaobao, nil)
			if again {
				first := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
				first.Request = taobaoRequest(false)
				first.Request.ReasonID = 9999 // not offered: the case stops
				r.handle(first)
				if c := r.caseOf(refundflow.PlatformTaobao, o, so); c.State != string(refundflow.StateNeedsAttention) || c.AttentionCode != refundflow.AttnReasonNotOffered {
					t.Fatalf("request with a reason not offered: %s %s; want it stopped reason_not_offered", c.State, c.AttentionCode)
				}
			}
			g := newGate()
			t.Cleanup(func() {
				select {
				case <-g.open:
				default:
					close(g.open)
				}
			})
			eng := r.gatedEngine("engine-slow-platform", g, 0)
			cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
			cmd.Request = taobaoRequest(false)
			type result struct {
				h   refundflow.Handled
				err error
			}
			done := make(chan result, 1)
			go func() {
				h, err := eng.HandleCommand(ctx, cmd, message(cmd))
				done <- result{h, err}
			}()
			select {
			case <-g.arrived:
			case res := <-done:
				t.Fatalf("the request was handled without a platform call: %+v, %v", res.h, res.err)
			case <-time.After(10 * time.Second):
				t.Fatal("the request's form was never read")
			}

			var o1 casestore.CommandOutcome
			r.waitFor("the verdict while the form's read is held", func() bool {
				var err error
				o1, err = r.store.CommandOutcome(ctx, cmd.ID)
				if err != nil && !errors.Is(err, casestore.ErrNotFound) {
					t.Fatal(err)
				}
				return err == nil
			})
			if o1.Verdict != casestore.VerdictApplied || o1.Code != "requested" {
				t.Fatalf("verdict while the read is held: %+v; want applied (requested)", o1)
			}
			k, err := r.store.GetCase(ctx, o1.CaseID)
			if err != nil || k.State != string(refundflow.StateRendering) || k.LeaseOwner != "engine-slow-platform" {
				t.Fatalf("case while the read is held: %+v, %v; want rendering, leased by the engine whose read it is", k, err)
			}

			close(g.open)
			var res result
			select {
			case res = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("the request is still handled 30 s after its read came back")
			}
			if res.err != nil || res.h.State != refundflow.StateWaitingSeller {
				t.Fatalf("the request once the read came back: %+v, %v; want waiting_seller", res.h, res.err)
			}
			if n := r.sb.Stats().RefundSubmissions["taobao:"+so]; n != 1 {
				t.Errorf("submissions for %s: %d; want 1", so, n)
			}
			r.noDuplicates()
		})
	}
}

// panicking is a platform transport that panics on calls whose path ends
// in suffix, as a bug in reading the platform's answer would; the others
// pass.
type panicking struct{ suffix string }

func (p panicking) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, p.suffix) {
		panic("a bug reading the platform")
	}
	return http.DefaultTransport.RoundTrip(req)
}

// TestAPanicInACommandsReadFailsTheCommandNotTheProcess: a command's
// read now runs on a goroutine of its own (so that a slow one does not
// hold the verdict), and the form's read lists the sub-order's refunds on
// another beside it. A panic on either would end the worker process, and
// every input in flight with it, where on the input's own goroutine the
// worker's guard fails the one input. It is raised again on the input's
// goroutine: in the form's read, and in the list beside it.
func TestAPanicInACommandsReadFailsTheCommandNotTheProcess(t *testing.T) {
	for _, where := range []string{"/render", "/queryList"} {
		r := newRig(t, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
		client, err := apiclient.New(apiclient.Config{BaseURL: r.url, AccessKey: testKey, AccessSecret: testSecret, UserID: "u1",
			HTTPClient: &http.Client{Transport: panicking{suffix: where}}, RateLimit: rate.Inf, Timeout: 5 * time.Second,
			Retry: apiclient.RetryPolicy{MaxAttempts: 1}})
		if err != nil {
			t.Fatal(err)
		}
		eng, err := refundflow.NewEngine(refundflow.EngineConfig{Store: r.store, Client: client, Policy: testPolicy, Owner: "engine-panicking"})
		if err != nil {
			t.Fatal(err)
		}
		o, so := r.order(sandbox.PlatformTaobao, nil)
		cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
		cmd.Request = taobaoRequest(false)
		raised := func() (v any) {
			defer func() { v = recover() }()
			_, _ = eng.HandleCommand(context.Background(), cmd, message(cmd))
			return nil
		}()
		// With the stack where it happened: the worker's guard logs the
		// stack of the goroutine it catches it on.
		if s := fmt.Sprint(raised); !strings.HasPrefix(s, "a bug reading the platform") || !strings.Contains(s, "panicking.RoundTrip") {
			t.Errorf("HandleCommand with a read (%s) that panics raised %v; want the read's panic, on the command's goroutine, with the stack where it happened", where, raised)
		}
	}
}
