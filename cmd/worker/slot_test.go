package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestWaitForSlotNotRedelivered: with one handling slot, a command that
// waits for it several AckWaits long (the slot is busy with a slow platform
// call) is kept in progress while it waits: JetStream never redelivers it,
// so waiting never counts towards MaxDeliver.
//
// Five commands, not two: the worker consumed with a pull buffer (nats.go's
// Consume) that prefetched messages (as many as the concurrency) into the
// client while the one before them waited for the slot; they were not
// reported in progress, and one was redelivered after AckWait (delivered 6
// for 5 commands). It now pulls only as many as it has free slots.
func TestWaitForSlotNotRedelivered(t *testing.T) {
	const commands = 5
	faults := sandbox.Faults{LatencyMin: 2500 * time.Millisecond, Endpoints: []string{"taobao_render"}}
	s := newStack(t, faults, quickSeller, 1, map[string]string{"WORKER_CONCURRENCY": "1", "WORKER_MAX_ACK_PENDING": "4",
		"WORKER_ACK_WAIT": "1s", "WORKER_MAX_DELIVER": "2", "UPSTREAM_TIMEOUT": "8s", "WORKER_LEASE_TTL": "10s",
		"WORKER_STEP_TIMEOUT": "1m", "WORKER_RECONCILE_AGE": "1m"})
	w := s.start()
	var ids []int64
	var orders [][2]string
	for range commands {
		o, so := s.order(sandbox.PlatformTaobao, nil)
		orders = append(orders, [2]string{o, so})
		s.publish(refundflow.Command{Kind: refundflow.InputRequestRefund, Platform: refundflow.PlatformTaobao, OrderID: o, SubOrderID: so,
			Request: &refundflow.Request{GoodsStatus: "1", ReasonID: 1001, Description: "不想要了"}})
	}
	for _, o := range orders {
		ids = append(ids, s.caseFor(refundflow.PlatformTaobao, o[0], o[1]))
	}
	for _, id := range ids {
		c := s.waitState(id, refundflow.StateSucceeded, 60*time.Second)
		s.agrees(c)
	}
	s.noDuplicates()
	// Each command was delivered once: handled (applied) exactly once and
	// never seen again as a redelivered duplicate.
	waitFor(t, 20*time.Second, "every command acked", func() bool {
		info, err := cons(s).Info(context.Background())
		return err == nil && info.NumAckPending == 0 && info.AckFloor.Consumer >= commands
	})
	body := scrape(t, w.metricsURL())
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "refundhub_worker_messages_total{") && strings.Contains(line, `source="commands"`) {
			t.Log(line)
			if !strings.Contains(line, `result="applied"`) && !strings.HasSuffix(line, " 0") {
				t.Errorf("%s; want only applied commands (a waiting command was redelivered)", line)
			}
		}
	}
	if info, err := cons(s).Info(context.Background()); err != nil || info.Delivered.Consumer != commands {
		t.Errorf("commands consumer delivered %d messages, %v; want %d (no redelivery)", info.Delivered.Consumer, err, commands)
	}
	dls, err := s.store.DeadLetters(context.Background(), casestore.DeadLetterFilter{})
	if err != nil || len(dls) != 0 {
		t.Errorf("dead letters %+v, %v; want none", dls, err)
	}
}

// cons is the worker's durable consumer on the command stream.
func cons(s *stack) jetstream.Consumer {
	s.t.Helper()
	c, err := s.js.Consumer(context.Background(), events.DefaultCommandStreamName, s.env["WORKER_CONSUMER"])
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// scrape returns the body of a metrics endpoint.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCommandsQueuedBehindTheirCaseAreNotAllPulled: commands for one case
// wait behind the one being handled, in the order they came, and take no
// slot meanwhile; the worker pulls no more of them than twice its
// concurrency, leaving the rest in the stream for whichever process has
// room. (It pulled the whole backlog into the one process, up to the
// consumer's MaxAckPending.) They still all reach the platform, in order,
// each delivered once.
func TestCommandsQueuedBehindTheirCaseAreNotAllPulled(t *testing.T) {
	const concurrency, messages = 2, 9
	s := newStack(t, sandbox.Faults{}, quickSeller, 1, map[string]string{"WORKER_CONCURRENCY": strconv.Itoa(concurrency),
		"WORKER_MAX_ACK_PENDING": "40", "UPSTREAM_TIMEOUT": "8s", "WORKER_LEASE_TTL": "10s", "WORKER_STEP_TIMEOUT": "1m"})
	s.sb.SetSeller(sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	s.start()
	o, so := s.request(refundflow.PlatformTaobao)
	id := s.caseFor(refundflow.PlatformTaobao, o, so)
	c := s.waitState(id, refundflow.StateWaitingSeller, 20*time.Second)
	s.sb.SetFaults(sandbox.Faults{LatencyMin: 2 * time.Second, Endpoints: []string{"taobao_submit_message"}})
	before, err := cons(s).Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 1; i <= messages; i++ {
		text := fmt.Sprintf("queued message %d", i)
		want = append(want, text)
		s.publish(refundflow.Command{Kind: refundflow.InputSendMessage, Platform: refundflow.PlatformTaobao, SubOrderID: so, Message: text})
	}
	// While the first post takes its 2 s, the others wait behind it.
	waitFor(t, 10*time.Second, "the first post under way", func() bool { return s.httpStats().APICalls["taobao_submit_message"] >= 1 })
	queued := func() []string {
		var out []string
		for _, m := range s.sandboxMessages(c.RefundID) {
			if strings.HasPrefix(m, "queued message ") {
				out = append(out, m)
			}
		}
		return out
	}
	most := 0
	waitFor(t, 20*time.Second, "the first queued message on the platform", func() bool {
		if info, err := cons(s).Info(context.Background()); err == nil {
			most = max(most, info.NumAckPending)
		}
		return len(queued()) > 0
	})
	// The one handled, and at most twice the concurrency queued behind it.
	if most > 1+2*concurrency {
		t.Errorf("the worker held %d commands at once while one was handled; want at most %d", most, 1+2*concurrency)
	}
	var got []string
	waitFor(t, 60*time.Second, "every message on the platform", func() bool {
		got = queued()
		return len(got) == messages
	})
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("messages on the platform in the order %q; want %q", got, want)
	}
	waitFor(t, 20*time.Second, "every command acked", func() bool {
		info, err := cons(s).Info(context.Background())
		return err == nil && info.NumAckPending == 0 && info.AckFloor.Consumer >= before.Delivered.Consumer+messages
	})
	if info, err := cons(s).Info(context.Background()); err != nil || info.Delivered.Consumer != before.Delivered.Consumer+messages {
		t.Errorf("commands consumer delivered %d messages, %v; want %d (each once)", info.Delivered.Consumer, err, before.Delivered.Consumer+messages)
	}
}

// TestCommandsQueuedBehindACaseRunInOrderAtAStop: a worker told to stop
// while a command for a case is handled and more wait behind it runs them
// after it, in order, within its grace, rather than hand them back:
// JetStream's redelivery queue does not keep their order (a version that
// handed them back had them posted 1, 3, 4, 2 by the next worker).
func TestCommandsQueuedBehindACaseRunInOrderAtAStop(t *testing.T) {
	const messages = 4
	q := queueMessages(t, "30s", time.Second, messages, "stopped message")
	q.w.stop()
	var got []string
	for _, m := range q.s.sandboxMessages(q.c.RefundID) {
		if strings.HasPrefix(m, "stopped message ") {
			got = append(got, m)
		}
	}
	if strings.Join(got, "|") != strings.Join(q.want, "|") {
		t.Fatalf("messages posted by the stopping worker, in the order %q; want %q", got, q.want)
	}
	if info, err := cons(q.s).Info(context.Background()); err != nil || info.Delivered.Consumer != q.delivered+messages {
		t.Errorf("commands consumer delivered %d messages, %v; want %d (none handed back)", info.Delivered.Consumer, err, q.delivered+messages)
	}
}

// queued is a worker posting the first of some messages to one case's
// refund, the others queued behind it.
type queued struct {
	s         *stack
	w         *workerProc
	c         casestore.Case
	want      []string // the messages, in the order published
	delivered uint64   // the command consumer's deliveries before them
}

// queueMessages starts a worker (WORKER_CONCURRENCY 2, the shutdown grace
// given) on a Taobao case at the seller and publishes n messages for it,
// "prefix 1" to "prefix n", each post taking latency; it returns once the
// first is being posted and the others wait behind it.
func queueMessages(t *testing.T, grace string, latency time.Duration, n int, prefix string) queued {
	t.Helper()
	s := newStack(t, sandbox.Faults{}, quickSeller, 1, map[string]string{"WORKER_CONCURRENCY": "2",
		"UPSTREAM_TIMEOUT": "8s", "WORKER_LEASE_TTL": "10s", "WORKER_STEP_TIMEOUT": "1m", "WORKER_SHUTDOWN_TIMEOUT": grace})
	s.sb.SetSeller(sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	q := queued{s: s, w: s.start()}
	o, so := s.request(refundflow.PlatformTaobao)
	id := s.caseFor(refundflow.PlatformTaobao, o, so)
	q.c = s.waitState(id, refundflow.StateWaitingSeller, 20*time.Second)
	s.sb.SetFaults(sandbox.Faults{LatencyMin: latency, Endpoints: []string{"taobao_submit_message"}})
	before, err := cons(s).Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	q.delivered = before.Delivered.Consumer
	for i := 1; i <= n; i++ {
		text := fmt.Sprintf("%s %d", prefix, i)
		q.want = append(q.want, text)
		s.publish(refundflow.Command{Kind: refundflow.InputSendMessage, Platform: refundflow.PlatformTaobao, SubOrderID: so, Message: text})
	}
	waitFor(t, 10*time.Second, "the first post under way and the rest queued", func() bool {
		info, err := cons(s).Info(context.Background())
		return s.httpStats().APICalls["taobao_submit_message"] >= 1 && err == nil && info.NumAckPending == n
	})
	return q
}

// TestCommandsQueuedPastAStopsGraceAreHandedBackUntried: when the stop's
// grace runs out while a command is handled, that one is cut and handed
// back; the commands queued behind it, never started, are handed back as
// they are, not run against the ended grace and logged as cut (nor, on a
// last delivery, dead-lettered for it).
func TestCommandsQueuedPastAStopsGraceAreHandedBackUntried(t *testing.T) {
	q := queueMessages(t, "1s", 5*time.Second, 4, "cut message")
	q.w.stop()
	// Commands only: a callback of the submission still waiting for the
	// case (its lease held by the post) is cut and handed back too, as it
	// should be, when the platform's push came late.
	n := 0
	for line := range strings.SplitSeq(q.w.errs.String(), "\n") {
		if strings.Contains(line, "cut by the shutdown timeout") && strings.Contains(line, `"source":"commands"`) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d commands logged as cut by the shutdown timeout; want 1, the one in flight:\n%s", n, q.w.errs.String())
	}
	if calls := q.s.httpStats().APICalls["taobao_submit_message"]; calls != 1 {
		t.Errorf("%d posts tried; want 1", calls)
	}
}
