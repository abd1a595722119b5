package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/platform"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// outageEnv is the worker's environment for the store-outage tests, with
// extra added: three deliveries 50 ms apart, which an outage of a second
// would use up if it counted, and an ack wait of a second, after which a
// held message not kept in progress would be redelivered, counted.
func outageEnv(extra map[string]string) map[string]string {
	env := map[string]string{"WORKER_CONCURRENCY": "8",
		"WORKER_MAX_DELIVER": "3", "WORKER_RETRY_BASE": "50ms", "WORKER_RETRY_MAX": "100ms", "WORKER_ACK_WAIT": "1s"}
	maps.Copy(env, extra)
	return env
}

// outageWorker is what the outage tests read of a worker, run in this
// process (workerProc) or as a child process (osProc).
type outageWorker interface {
	logs() string
	metricsURL() string
	exited() (error, bool)
}

func (w *workerProc) logs() string { return w.errs.String() }

func (w *workerProc) exited() (error, bool) {
	select {
	case err := <-w.done:
		w.done <- err
		return err, true
	default:
		return nil, false
	}
}

func (p *osProc) logs() string { return p.errs.String() }

func (p *osProc) metricsURL() string {
	m := metricsLine.FindStringSubmatch(p.errs.String())
	if m == nil {
		return ""
	}
	return "http://" + m[1] + "/metrics"
}

func (p *osProc) exited() (error, bool) {
	select {
	case <-p.done:
		return fmt.Errorf("%v", p.cmd.ProcessState), true
	default:
		return nil, false
	}
}

// rideOutAStoreOutage runs 40 Taobao requests through w (started with
// outageEnv and a manual seller), half of them before the case store goes
// away (down), half and one command that can only be a dead letter while
// it is away, and brings it back (up) 4 s later. It requires what holding
// messages through an outage promises: the worker says the store is
// unreachable and that it is back, /readyz and store_up say so meanwhile,
// and then every request waits for the seller with the refund the sandbox
// holds, none submitted twice, the bad command dead-lettered once as
// invalid after one delivery, and the process never exited.
func rideOutAStoreOutage(t *testing.T, s *stack, w outageWorker, prefix string, down, up func()) {
	t.Helper()
	const n = 40
	cmds := taobaoRequests(s, prefix, n)
	for _, c := range cmds[:n/2] {
		s.publish(c)
	}
	waitFor(t, 30*time.Second, "a few refunds submitted", func() bool { return len(s.sb.Stats().RefundSubmissions) >= 5 })
	down()
	for _, c := range cmds[n/2:] { // more work arrives while the store is away
		s.publish(c)
	}
	// And a command that can only be a dead letter: written once, when the
	// store is back, as an invalid command (not as one out of deliveries).
	badID := prefix + "-bad"
	bad := nats.NewMsg(events.CommandSubject("taobao", "request_refund", ""))
	bad.Data = []byte(`{"id":"` + badID + `","kind":"request_refund","platform":"taobao"`)
	if _, err := s.js.PublishMsg(context.Background(), bad, jetstream.WithMsgID(badID)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the worker to say the store is unreachable", func() bool {
		return strings.Contains(w.logs(), "case store unreachable")
	})
	if code := readyz(t, w); code != http.StatusServiceUnavailable {
		t.Errorf("readyz with the store away: %d; want 503", code)
	}
	if m := scrape(t, w.metricsURL()); !strings.Contains(m, "\nrefundhub_worker_store_up 0\n") || !strings.Contains(m, "refundhub_worker_consumer_pending{") {
		t.Errorf("metrics with the store away: want store_up 0 and the consumers' lag still there:\n%s", m)
	}
	// The outage itself (the scenario, not a wait for anything): 80 times
	// the whole backoff of a message's three deliveries, 4 ack waits.
	<-time.After(4 * time.Second)
	up()
	waitFor(t, 30*time.Second, "the worker to say the store is back", func() bool {
		return strings.Contains(w.logs(), "case store reachable again")
	})

	// Every request ends waiting for the seller, with the refund the
	// platform holds.
	ctx := context.Background()
	pending := func() []string {
		var out []string
		for _, cmd := range cmds {
			c, err := s.store.CaseOpenedBy(ctx, cmd.ID)
			switch {
			case err != nil:
				out = append(out, fmt.Sprintf("%s: %v", cmd.ID, err))
			case c.State != string(refundflow.StateWaitingSeller) || c.RefundID == "":
				out = append(out, fmt.Sprintf("%s: case %d %s %s", cmd.ID, c.ID, c.State, c.AttentionMessage))
			}
		}
		return out
	}
	for deadline := time.Now().Add(60 * time.Second); len(pending()) > 0; <-time.After(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			dl, _ := s.store.DeadLetters(ctx, casestore.DeadLetterFilter{})
			for _, d := range dl {
				t.Logf("dead letter %s after %d deliveries: %s", d.Reason, d.Deliveries, d.Error)
			}
			t.Fatalf("after 60 s, %d requests not waiting for the seller:\n%s\nworker log:\n%s",
				len(pending()), strings.Join(pending(), "\n"), w.logs())
		}
	}
	for _, cmd := range cmds {
		c, _ := s.store.CaseOpenedBy(ctx, cmd.ID)
		if got := s.sandboxStatus(c.RefundID); got != s.sbProf.TaobaoName(platform.PhaseWaitSellerAgree) {
			t.Errorf("case %d's refund %s is %q on the platform; want it waiting for the seller", c.ID, c.RefundID, got)
		}
	}
	s.noDuplicates()
	all, err := s.store.DeadLetters(ctx, casestore.DeadLetterFilter{})
	if err != nil {
		t.Fatal(err)
	}
	// A message the consumer stopped delivering while it waited (a
	// delivery_limit dead letter) whose copy was applied after all is
	// discarded by the worker: not a dead letter.
	var dl []casestore.DeadLetter
	for _, d := range all {
		if d.DiscardedBy != casestore.WorkerDiscards {
			dl = append(dl, d)
		}
	}
	if len(dl) != 1 || dl[0].MsgID != badID || dl[0].Reason != string(events.DeadInvalidCommand) || dl[0].Deliveries != 1 {
		for _, d := range dl {
			t.Errorf("dead letter %s: %s after %d deliveries: %s (discarded by %q: %s)", d.MsgID, d.Reason, d.Deliveries, d.Error, d.DiscardedBy, d.DiscardNote)
		}
		t.Errorf("want one dead letter: %s, %s, after 1 delivery", badID, events.DeadInvalidCommand)
	}
	if err, gone := w.exited(); gone {
		t.Fatalf("the worker exited: %v\n%s", err, w.logs())
	}
	if code := readyz(t, w); code != http.StatusOK {
		t.Errorf("readyz with the store back: %d; want 200", code)
	}
	if m := scrape(t, w.metricsURL()); !strings.Contains(m, "\nrefundhub_worker_store_up 1\n") {
		t.Errorf("metrics with the store back: want store_up 1:\n%s", m)
	}
}

// readyz is the worker's /readyz status code.
func readyz(t *testing.T, w outageWorker) int {
	t.Helper()
	u := strings.TrimSuffix(w.metricsURL(), "/metrics") + "/readyz"
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("readyz: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// aRequestWaitsForTheSeller publishes a Taobao refund request with id and
// waits until the store at target (a DB_PATH or DB_URL a worker writes,
// other than the stack's) shows its case waiting for the seller.
func aRequestWaitsForTheSeller(t *testing.T, s *stack, id, target string) {
	t.Helper()
	o, so := s.order(sandbox.PlatformTaobao, nil)
	s.publish(refundflow.Command{ID: id, Kind: refundflow.InputRequestRefund, Platform: refundflow.PlatformTaobao,
		OrderID: o, SubOrderID: so, Operator: "t", Request: &refundflow.Request{GoodsStatus: "1", ReasonID: 1001, Description: "不想要了"}})
	store, err := casestore.OpenReadOnly(context.Background(), target, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	waitFor(t, 30*time.Second, "request "+id+"'s case waiting for the seller", func() bool {
		c, err := store.CaseOpenedBy(context.Background(), id)
		return err == nil && c.State == string(refundflow.StateWaitingSeller)
	})
}
