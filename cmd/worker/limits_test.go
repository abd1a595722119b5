package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// advise publishes a delivery limit advisory as the server would (the
// server publishes it only when a consumer gives a message up; here the
// test says when), and returns its sequence in the limit stream. It names
// consumer in its body, on the subject of the stack's consumer: the
// stream keeps no other's, and only a rename leaves another's there.
func (s *stack) advise(stream, consumer string, seq, deliveries uint64) uint64 {
	s.t.Helper()
	b, err := json.Marshal(map[string]any{"type": "io.nats.jetstream.advisory.v1.max_deliver", "id": "test",
		"timestamp": time.Now().UTC(), "stream": stream, "consumer": consumer, "stream_seq": seq, "deliveries": deliveries})
	if err != nil {
		s.t.Fatal(err)
	}
	return s.publishAdvisory(events.MaxDeliveriesSubject(stream, s.env["WORKER_CONSUMER"]), b)
}

func (s *stack) publishAdvisory(subject string, data []byte) uint64 {
	s.t.Helper()
	ack, err := s.js.Publish(context.Background(), subject, data)
	if err != nil {
		s.t.Fatalf("publish advisory on %s: %v", subject, err)
	}
	if ack.Stream != events.DefaultLimitStreamName {
		s.t.Fatalf("advisory kept in %s; want %s", ack.Stream, events.DefaultLimitStreamName)
	}
	return ack.Sequence
}

// limitsSettled waits until the worker's limit consumer has settled every
// advisory up to seq (acked or terminated).
func (s *stack) limitsSettled(seq uint64) {
	s.t.Helper()
	waitFor(s.t, 15*time.Second, "the delivery limit advisories settled", func() bool {
		c, err := s.js.Consumer(context.Background(), events.DefaultLimitStreamName, s.env["WORKER_CONSUMER"])
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.AckFloor.Stream >= seq && info.NumAckPending == 0
	})
}

// TestADeliveryLimitOfASettledMessageLeavesNoDeadLetter: the server's
// advisory can name a message that was settled after all (a process ended
// after its commit, before its ack): applied, or given its verdict. It
// becomes no dead letter. Neither does an advisory of another consumer, or
// one that does not read.
func TestADeliveryLimitOfASettledMessageLeavesNoDeadLetter(t *testing.T) {
	s := newStack(t, sandbox.Faults{}, quickSeller, 1, nil)
	w := s.start()
	defer w.stop()
	ctx := context.Background()
	s.publish(refundflow.Command{ID: "settled-1", Kind: refundflow.InputRequestRefund, Platform: refundflow.Platform1688, OrderID: func() string {
		o, _ := s.order(sandbox.Platform1688, nil)
		return o
	}(), Request: &refundflow.Request{GoodsStatus: "refundWaitSellerSend", ReasonID: 20001, Amount: 3000, Description: "不想要了"}})
	waitFor(t, 20*time.Second, "the case applied and every callback settled", func() bool {
		c, err := s.store.CaseOpenedBy(ctx, "settled-1")
		if err != nil || refundflow.State(c.State) != refundflow.StateSucceeded {
			return false
		}
		st, err := s.js.Stream(ctx, events.DefaultStreamName)
		if err != nil || st.CachedInfo().State.Msgs == 0 {
			return false
		}
		cb, err := s.js.Consumer(ctx, events.DefaultStreamName, s.env["WORKER_CONSUMER"])
		if err != nil {
			return false
		}
		info, err := cb.Info(ctx)
		if err != nil || info.AckFloor.Stream < st.CachedInfo().State.LastSeq || info.NumAckPending != 0 {
			return false
		}
		kept, err := s.store.CountDeferred(ctx)
		return err == nil && kept == 0
	})
	consumer := s.env["WORKER_CONSUMER"]
	s.advise(events.DefaultCommandStreamName, consumer, 1, 63)
	s.advise(events.DefaultStreamName, consumer, 1, 63) // the case's first callback, applied
	s.advise(events.DefaultCommandStreamName, "another-consumer", 1, 5)
	last := s.publishAdvisory(events.MaxDeliveriesSubject(events.DefaultCommandStreamName, consumer), []byte(`{"type":"not an advisory"}`))
	s.limitsSettled(last)
	if dls, err := s.store.DeadLetters(ctx, casestore.DeadLetterFilter{}); err != nil || len(dls) != 0 {
		t.Fatalf("dead letters %+v, %v; want none: every message named was settled", dls, err)
	}
	logs := w.errs.String()
	for _, want := range []string{`"settled":"its verdict is recorded (applied)"`, `"settled":"applied"`,
		"delivery limit advisory of another consumer: left alone", "delivery limit advisory unreadable: dropped"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the worker's log does not say %s:\n%s", want, logs)
		}
	}
}

// TestACopyAppliedAfterItsDeliveryLimitDiscardsItsDeadLetter: a process
// that fetched a copy before the server stopped delivering the message
// applies it after the limit's dead letter was written. The command's
// verdict is the decision's, and the dead letter is discarded by the
// worker, saying why, rather than left for an operator to retry a command
// that took effect. (The worker keeps every copy it holds in progress and
// pulls none it has no slot for, so here the test publishes the advisory
// while the command waits behind the only slot: the worker's side is the
// same as for a copy the server gave up on after a process ended with it.)
func TestACopyAppliedAfterItsDeliveryLimitDiscardsItsDeadLetter(t *testing.T) {
	s, dl := waitingCopyWithDeadLetter(t)
	ctx := context.Background()
	waitFor(t, 30*time.Second, "the waiting copy applied and the dead letter discarded", func() bool {
		d, err := s.store.DeadLetter(ctx, dl.ID)
		return err == nil && !d.DiscardedAt.IsZero()
	})
	d, _ := s.store.DeadLetter(ctx, dl.ID)
	if d.DiscardedBy != "worker" || !strings.Contains(d.DiscardNote, "settled after all") {
		t.Errorf("discarded by %q: %q; want the worker, saying the message was settled after all", d.DiscardedBy, d.DiscardNote)
	}
	c, err := s.store.CaseOpenedBy(ctx, "waited-1")
	if err != nil {
		t.Fatalf("the case the waiting command opened: %v", err)
	}
	if o, err := s.store.CommandOutcome(ctx, "waited-1"); err != nil || o.Verdict != casestore.VerdictApplied || o.CaseID != c.ID || o.DeadLetterID != 0 {
		t.Errorf("verdict %+v, %v; want applied to case %d", o, err, c.ID)
	}
}

// TestACopyWhoseDeliveryLimitAnOperatorDiscardedIsNotApplied: an operator
// who discarded the delivery_limit dead letter decided the command is not
// to be done; a copy a process still held is terminated, not applied.
func TestACopyWhoseDeliveryLimitAnOperatorDiscardedIsNotApplied(t *testing.T) {
	s, dl := waitingCopyWithDeadLetter(t)
	ctx := context.Background()
	if err := s.store.Update(ctx, func(tx *casestore.Tx) error { return tx.DiscardDeadLetter(ctx, dl.ID, "ops", "not wanted any more") }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the waiting copy settled", func() bool {
		info, err := cons(s).Info(ctx)
		return err == nil && info.AckFloor.Stream >= 2 && info.NumAckPending == 0
	})
	if c, err := s.store.CaseOpenedBy(ctx, "waited-1"); err == nil {
		t.Errorf("case %d opened by a command whose dead letter an operator discarded", c.ID)
	}
	if o, err := s.store.CommandOutcome(ctx, "waited-1"); err != nil || o.Verdict != casestore.VerdictRejected || o.DeadLetterID != dl.ID {
		t.Errorf("verdict %+v, %v; want the dead letter's (rejected)", o, err)
	}
	if d, err := s.store.DeadLetter(ctx, dl.ID); err != nil || d.DiscardedBy != "ops" {
		t.Errorf("dead letter %+v, %v; want it as the operator discarded it", d, err)
	}
}

// waitingCopyWithDeadLetter is a 1688 request, waited-1 (command stream
// #2), waiting behind a worker's only slot, taken for 10 s by
// a Taobao render that does not answer, and the pending delivery_limit
// dead letter the server's advisory (published by the test) made of it.
func waitingCopyWithDeadLetter(t *testing.T) (*stack, casestore.DeadLetter) {
	t.Helper()
	faults := sandbox.Faults{TimeoutAfter: 30 * time.Second,
		ForceErrors: []sandbox.ForcedError{{Endpoint: "taobao_render", Kind: sandbox.ErrTimeout, Count: 1}}}
	s := newStack(t, faults, quickSeller, 1, map[string]string{"WORKER_CONCURRENCY": "1", "WORKER_ACK_WAIT": "1s",
		"UPSTREAM_TIMEOUT": "10s", "WORKER_STEP_TIMEOUT": "11s", "WORKER_LEASE_TTL": "15s"})
	s.start()
	ctx := context.Background()
	s.request(refundflow.PlatformTaobao)
	waitFor(t, 10*time.Second, "the render holding the slot", func() bool { return s.httpStats().APICalls["taobao_render"] >= 1 })
	o, _ := s.order(sandbox.Platform1688, nil)
	s.publish(refundflow.Command{ID: "waited-1", Kind: refundflow.InputRequestRefund, Platform: refundflow.Platform1688, OrderID: o,
		Request: &refundflow.Request{GoodsStatus: "refundWaitSellerSend", ReasonID: 20001, Amount: 3000, Description: "不想要了"}})
	s.advise(events.DefaultCommandStreamName, s.env["WORKER_CONSUMER"], 2, 63)
	var dl casestore.DeadLetter
	// Written once the advisory is WORKER_ACK_WAIT (1 s) old; the slot
	// stays taken for the render's 10 s.
	waitFor(t, 8*time.Second, "the delivery limit's dead letter, while the copy waits", func() bool {
		dls, err := s.store.DeadLetters(ctx, casestore.DeadLetterFilter{})
		if err != nil || len(dls) != 1 {
			return false
		}
		dl = dls[0]
		return true
	})
	if dl.MsgID != "waited-1" || dl.Reason != string(events.DeadDeliveryLimit) || !dl.DiscardedAt.IsZero() {
		t.Fatalf("dead letter %+v; want waited-1's, delivery_limit, pending", dl)
	}
	if o, err := s.store.CommandOutcome(ctx, "waited-1"); err != nil || o.Verdict != casestore.VerdictRejected {
		t.Fatalf("verdict while the copy waits: %+v, %v; want the dead letter's", o, err)
	}
	return s, dl
}

// TestAWorkerStartsBesideAStreamThatKeepsTheAdvisoriesAlready: a server
// with a stream on $JS.EVENT.> (monitoring) refuses the limit stream, its
// subjects overlapping. The worker said "streams not ready" and retried
// for ever, consuming nothing; it now works without, saying so at error.
func TestAWorkerStartsBesideAStreamThatKeepsTheAdvisoriesAlready(t *testing.T) {
	s := newStack(t, sandbox.Faults{}, quickSeller, 1, nil)
	ctx := context.Background()
	if _, err := s.js.CreateStream(ctx, jetstream.StreamConfig{Name: "MONITOR", Subjects: []string{"$JS.EVENT.>"}}); err != nil {
		t.Fatal(err)
	}
	w := s.start()
	defer w.stop()
	o, _ := s.order(sandbox.Platform1688, nil)
	s.publish(refundflow.Command{ID: "beside-monitor-1", Kind: refundflow.InputRequestRefund, Platform: refundflow.Platform1688, OrderID: o,
		Request: &refundflow.Request{GoodsStatus: "refundWaitSellerSend", ReasonID: 20001, Amount: 3000, Description: "不想要了"}})
	waitFor(t, 20*time.Second, "the command applied", func() bool {
		o, err := s.store.CommandOutcome(ctx, "beside-monitor-1")
		return err == nil && o.Verdict == casestore.VerdictApplied
	})
	if logs := w.errs.String(); !strings.Contains(logs, "running without the delivery limit stream") || !strings.Contains(logs, `"level":"ERROR"`) {
		t.Errorf("the worker's log does not say at error that it runs without the limit stream:\n%s", logs)
	}
}
