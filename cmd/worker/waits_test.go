package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// Worker-level regression tests for issue 11: waits that used to hold
// consumer slots, rejected calls that were treated as unknown outcomes, and
// a restart that made no progress for a minute. Each failed on the code
// before the fix.

// ratelimitRequest publishes a request for a new order of the platform and
// returns the order, sub-order and command id.
func (s *stack) request(p refundflow.Platform) (string, string) {
	s.t.Helper()
	plat := sandbox.PlatformTaobao
	req := &refundflow.Request{GoodsStatus: "1", ReasonID: 1001, Description: "不想要了"}
	if p == refundflow.Platform1688 {
		plat = sandbox.Platform1688
		req = &refundflow.Request{GoodsStatus: "refundWaitSellerSend", ReasonID: 20001, Amount: 3000, Description: "不想要了"}
	}
	o, so := s.order(plat, nil)
	s.publish(refundflow.Command{Kind: refundflow.InputRequestRefund, Platform: p, OrderID: o, SubOrderID: so, Request: req})
	return o, so
}

// metricValue reads one sample of the worker's metrics ("" when absent).
func metricValue(t *testing.T, url, series string) string {
	t.Helper()
	for _, line := range strings.Split(scrape(t, url), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// Issue 11.10: eight rate-limited 1688 creates and a rate-limited Taobao
// submit all succeed within seconds of the limit lifting, with one
// submission each. A rate limit proves the platform did not apply the call,
// so none of them waits the in-flight window or the intent grace (an hour
// each here) that an unknown outcome needs.
func TestRateLimitedSubmissionsGoThroughSoonAfterTheLimitLifts(t *testing.T) {
	limit := sandbox.Faults{ForceErrors: []sandbox.ForcedError{
		{Endpoint: "alibaba_create_refund", Kind: sandbox.ErrRateLimit, Count: 100000},
		{Endpoint: "taobao_submit", Kind: sandbox.ErrRateLimit, Count: 100000}}}
	s := newStack(t, limit, quickSeller, 1, map[string]string{"WORKER_INTENT_IN_FLIGHT": "1h", "WORKER_INTENT_GRACE": "1h",
		"WORKER_CONCURRENCY": "4", "WORKER_MAX_ACK_PENDING": "8"})
	s.sb.SetSeller(sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	s.start()
	type order struct {
		p      refundflow.Platform
		o, key string
	}
	var orders []order
	for range 8 {
		o, _ := s.request(refundflow.Platform1688)
		orders = append(orders, order{refundflow.Platform1688, o, "1688:" + o})
	}
	o, so := s.request(refundflow.PlatformTaobao)
	orders = append(orders, order{refundflow.PlatformTaobao, o, "taobao:" + so})
	ids := make([]int64, len(orders))
	for i, ord := range orders {
		sub := ""
		if ord.p == refundflow.PlatformTaobao {
			sub = so
		}
		ids[i] = s.caseFor(ord.p, ord.o, sub)
	}
	// Every case has had its submission refused at least once.
	waitFor(t, 20*time.Second, "a rate-limited attempt on every case", func() bool {
		for _, id := range ids {
			if len(s.stepsOf(id, refundflow.StepSubmit)) == 0 {
				return false
			}
		}
		return true
	})
	s.sb.SetFaults(sandbox.Faults{})
	lifted := time.Now()
	for _, id := range ids {
		s.waitState(id, refundflow.StateWaitingSeller, 10*time.Second)
	}
	if took := time.Since(lifted); took > 5*time.Second {
		t.Errorf("all cases submitted %s after the limit lifted; want within seconds", took.Round(time.Millisecond))
	} else {
		t.Logf("all nine cases submitted %s after the limit lifted", took.Round(time.Millisecond))
	}
	st := s.httpStats()
	for _, ord := range orders {
		if n := st.RefundSubmissions[ord.key]; n != 1 {
			t.Errorf("submissions for %s = %d; want 1", ord.key, n)
		}
	}
	if st.DuplicateSubmissions != 0 {
		t.Errorf("duplicate_submissions = %d; want 0", st.DuplicateSubmissions)
	}
}

// Issue 11.11: eight 1688 cases wait for evidence that their create took
// effect (the answers were lost and no callback comes: an hour's grace),
// and a cancel for each waits too. With MaxAckPending 8 none of this may
// hold a consumer slot: a request for another order opens its case and
// submits within seconds. The waits are visible: the flag with its
// deadline, the deferred cancels, and both in the metrics.
func TestWaitingCasesHoldNoConsumerSlot(t *testing.T) {
	faults := sandbox.Faults{DropPushRate: 1,
		ForceErrors: []sandbox.ForcedError{{Endpoint: "alibaba_create_refund", Kind: sandbox.ErrHTTP503, Count: 8, AfterEffect: true}}}
	s := newStack(t, faults, quickSeller, 1, map[string]string{"WORKER_INTENT_GRACE": "1h",
		"WORKER_CONCURRENCY": "4", "WORKER_MAX_ACK_PENDING": "8"})
	s.sb.SetSeller(sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	w := s.start()
	var waiting []int64
	var orders []string
	for range 8 {
		o, _ := s.request(refundflow.Platform1688)
		orders = append(orders, o)
	}
	for _, o := range orders {
		waiting = append(waiting, s.caseFor(refundflow.Platform1688, o, ""))
	}
	waitFor(t, 20*time.Second, "eight cases waiting for evidence", func() bool {
		for _, id := range waiting {
			c, err := s.store.GetCase(context.Background(), id)
			if err != nil || c.AttentionCode != refundflow.AttnWaitingEvidence {
				return false
			}
		}
		return true
	})
	for _, o := range orders {
		s.publish(refundflow.Command{Kind: refundflow.InputCancel, Platform: refundflow.Platform1688, OrderID: o})
	}
	waitFor(t, 20*time.Second, "eight cancels waiting in the store", func() bool {
		n, err := s.store.CountDeferred(context.Background())
		return err == nil && n == 8
	})
	started := time.Now()
	o, so := s.request(refundflow.PlatformTaobao)
	id := s.caseFor(refundflow.PlatformTaobao, o, so)
	s.waitState(id, refundflow.StateWaitingSeller, 10*time.Second)
	if took := time.Since(started); took > 5*time.Second {
		t.Errorf("the other order's case reached the seller %s after its request; want within seconds", took.Round(time.Millisecond))
	}
	c, err := s.store.GetCase(context.Background(), waiting[0])
	if err != nil || c.State != string(refundflow.StateSubmitting) || !strings.Contains(c.AttentionMessage, "then parked") {
		t.Fatalf("a waiting case: %s %q, %v; want submitting, flagged with its deadline", c.State, c.AttentionMessage, err)
	}
	if v := metricValue(t, w.metricsURL(), `refundhub_worker_cases_attention{code="waiting_evidence"}`); v != "8" {
		t.Errorf("waiting_evidence gauge = %q; want 8", v)
	}
	// Every flag has its series, at 0 when no case carries it.
	if v := metricValue(t, w.metricsURL(), `refundhub_worker_cases_attention{code="return_waybill_differs"}`); v != "0" {
		t.Errorf("return_waybill_differs gauge = %q; want 0", v)
	}
	if v := metricValue(t, w.metricsURL(), "refundhub_worker_deferred_inputs"); v != "8" {
		t.Errorf("deferred inputs gauge = %q; want 8", v)
	}
	waitFor(t, 10*time.Second, "no message held by the consumer", func() bool {
		info, err := cons(s).Info(context.Background())
		return err == nil && info.NumAckPending == 0
	})
	if n := s.httpStats().RefundSubmissions["1688:"+orders[0]]; n != 1 {
		t.Errorf("creates for a waiting order = %d; want 1 (never sent again)", n)
	}
}

// Issue 11.12: a worker process is killed (SIGKILL) with messages in
// flight. A worker started in its place resumes within seconds: it takes
// over the dead process's case leases at once, and the consumer has room
// for new messages while the dead process's wait for WORKER_ACK_WAIT. The
// measure is the time from the restarted worker being ready to the next
// case reaching the seller, with the production defaults of AckWait,
// MaxAckPending and the lease TTL.
func TestWorkerResumesWithinSecondsAfterAKill(t *testing.T) {
	slow := sandbox.Faults{LatencyMin: 3 * time.Second, LatencyMax: 3 * time.Second, Endpoints: []string{"taobao_render"}}
	s := newStack(t, slow, quickSeller, 1, map[string]string{"UPSTREAM_TIMEOUT": "8s", "WORKER_CONCURRENCY": "4"})
	for _, k := range []string{"WORKER_ACK_WAIT", "WORKER_LEASE_TTL", "WORKER_MAX_ACK_PENDING"} {
		delete(s.env, k) // the production defaults
	}
	s.sb.SetSeller(sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	p := s.startProcess()
	var inFlight []string
	for range 8 {
		o, so := s.request(refundflow.PlatformTaobao)
		inFlight = append(inFlight, fmt.Sprintf("%s/%s", o, so))
	}
	waitFor(t, 20*time.Second, "forms being read", func() bool {
		return s.httpStats().APICalls["taobao_render"] >= 4
	})
	p.kill()
	s.sb.SetFaults(sandbox.Faults{})
	s.start()
	ready := time.Now()
	o, so := s.request(refundflow.PlatformTaobao)
	id := s.caseFor(refundflow.PlatformTaobao, o, so)
	s.waitState(id, refundflow.StateWaitingSeller, 30*time.Second)
	took := time.Since(ready)
	t.Logf("next case at the seller %s after the restarted worker was ready (%d requests were in flight at the kill)",
		took.Round(time.Millisecond), len(inFlight))
	if took > 5*time.Second {
		t.Errorf("the restarted worker took %s to finish a case; want about 5 s at most", took.Round(time.Millisecond))
	}
	s.noDuplicates()
}

// Issue 11.4: commands for one case apply in the order they were issued.
// Eight messages for one refund, published one after another while the
// platform answers each post slowly, reach the platform in that order.
func TestCommandsForOneCaseApplyInTheOrderIssued(t *testing.T) {
	s := newStack(t, sandbox.Faults{}, quickSeller, 1, map[string]string{"WORKER_CONCURRENCY": "8"})
	s.sb.SetSeller(sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	s.start()
	o, so := s.request(refundflow.PlatformTaobao)
	id := s.caseFor(refundflow.PlatformTaobao, o, so)
	c := s.waitState(id, refundflow.StateWaitingSeller, 20*time.Second)
	s.sb.SetFaults(sandbox.Faults{LatencyMin: 30 * time.Millisecond, LatencyMax: 60 * time.Millisecond, Endpoints: []string{"taobao_submit_message"}})
	var want []string
	for i := 1; i <= 8; i++ {
		text := fmt.Sprintf("ordered message %d", i)
		want = append(want, text)
		s.publish(refundflow.Command{Kind: refundflow.InputSendMessage, Platform: refundflow.PlatformTaobao, SubOrderID: so, Message: text})
	}
	var got []string
	waitFor(t, 20*time.Second, "eight messages on the platform", func() bool {
		got = got[:0]
		for _, m := range s.sandboxMessages(c.RefundID) {
			if strings.HasPrefix(m, "ordered message ") {
				got = append(got, m)
			}
		}
		return len(got) == len(want)
	})
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("messages on the platform in the order %q; want %q", got, want)
	}
}

// sandboxMessages returns the contents of a refund's messages, oldest first.
func (s *stack) sandboxMessages(refundID string) []string {
	s.t.Helper()
	resp, err := http.Get(s.sbURL + "/_sandbox/refunds/" + refundID)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var ref sandbox.Refund
	if err := json.NewDecoder(resp.Body).Decode(&ref); err != nil {
		s.t.Fatal(err)
	}
	var out []string
	for _, m := range ref.Messages {
		out = append(out, m.Content)
	}
	return out
}
