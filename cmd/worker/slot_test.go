package main

import (
	"context"
	"io"
	"net/http"
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
// Five commands, not two: the consumer also prefetches messages (as many as
// the concurrency) that wait in the client's buffer while the one before
// them waits for the slot; they were not reported in progress, and one was
// redelivered after AckWait (delivered 6 for 5 commands).
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
