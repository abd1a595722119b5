package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/deadletters"
	"github.com/refundhub/refundhub/internal/envconfig/logtest"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/opcommands"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestOneCallbackOneTrace: the seller's decision on a refund reaches the
// worker as a callback through the real receiver, JetStream and the worker
// (run), which reads the refund from the sandbox over HTTP. With spans
// going to an in-memory exporter, that callback is one trace: the
// receiver's span, its publish beneath it, the worker's span for the
// message beneath that, the decision beneath the worker's span, the
// platform call beneath the decision and its HTTP round trip beneath the
// call. The worker's log lines about the case carry its trace id, the
// callback's timeline entry its lag and the stream message it came from
// (stream, seq, msgId), and the lag histogram counts it.
func TestOneCallbackOneTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	s := newStackTraced(t, tp.Tracer("receiver"), sandbox.Faults{}, sandbox.SellerPolicy{Decision: sandbox.DecisionManual}, 1,
		map[string]string{"LOG_LEVEL": "debug", "WORKER_RECONCILE_INTERVAL": "1h", "WORKER_TIMER_INTERVAL": "1s"})
	w := s.startTraced(exp)
	o, so := s.order(sandbox.PlatformTaobao, nil)
	// The request as refundctl sends it, inside a span of its own.
	cctx, cmdSpan := tp.Tracer("refundctl").Start(context.Background(), "refundctl request")
	if _, err := opcommands.Publish(cctx, s.js, refundflow.Command{ID: "trace-cmd-1", IssuedAt: time.Now().UTC(),
		Kind: refundflow.InputRequestRefund, Platform: refundflow.PlatformTaobao, OrderID: o, SubOrderID: so,
		Request: &refundflow.Request{GoodsStatus: "1", ReasonID: 1001, Amount: 6000, Description: "不想要了"}}); err != nil {
		t.Fatal(err)
	}
	cmdSpan.End()
	id := s.caseFor(refundflow.PlatformTaobao, o, so)
	c := s.waitState(id, refundflow.StateWaitingSeller, 20*time.Second)

	b, _ := json.Marshal(sandbox.RefundAction{Action: "agree"})
	resp, err := http.Post(s.sbURL+"/_sandbox/refunds/"+c.RefundID+"/actions", "application/json", bytes.NewReader(b))
	if err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("agree: %v %v", resp, err)
	}
	resp.Body.Close()
	s.waitState(id, refundflow.StateSucceeded, 20*time.Second)

	// The worker's span for the callback that moved the case: applied, on
	// this case, and the decision beneath it read the platform.
	spans := exp.GetSpans()
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, sp := range spans {
		byID[sp.SpanContext.SpanID()] = sp
	}
	parentOf := func(sp tracetest.SpanStub) (tracetest.SpanStub, bool) {
		p, ok := byID[sp.Parent.SpanID()]
		return p, ok && sp.Parent.IsValid() && p.SpanContext.TraceID() == sp.SpanContext.TraceID()
	}
	var chain []tracetest.SpanStub // HTTP attempt, API call, decide, handle, publish, receive
	for _, sp := range spans {
		if !strings.HasPrefix(sp.Name, "HTTP ") {
			continue
		}
		cand := []tracetest.SpanStub{sp}
		for cur := sp; ; {
			p, ok := parentOf(cur)
			if !ok {
				break
			}
			cand, cur = append(cand, p), p
		}
		names := make([]string, len(cand))
		for i, c := range cand {
			names[i] = c.Name
		}
		if strings.Join(names[1:], " < ") == "taobao_query < decide < handle callbacks < publish callback < receive callback" &&
			attr(cand[3], "case") == strconv.FormatInt(id, 10) {
			chain = cand
			break
		}
	}
	if chain == nil {
		var got []string
		for _, sp := range spans {
			p, _ := parentOf(sp)
			got = append(got, sp.Name+" (parent "+p.Name+")")
		}
		t.Fatalf("no trace HTTP attempt < taobao_query < decide < handle callbacks < publish callback < receive callback for case %d; spans:\n%s",
			id, strings.Join(got, "\n"))
	}
	root := chain[len(chain)-1]
	if root.Parent.IsValid() {
		t.Errorf("receive callback has a parent %s; want it to start the trace", root.Parent.SpanID())
	}
	traceID := root.SpanContext.TraceID()
	handle := chain[3]
	var commits int
	for _, sp := range spans {
		if sp.SpanContext.TraceID() != traceID {
			continue
		}
		if sp.Name == "commit" && sp.Parent.SpanID() == handle.SpanContext.SpanID() {
			commits++
		}
		for _, a := range sp.Attributes {
			v := a.Value.Emit()
			if strings.Contains(v, e2eSecret) || strings.Contains(v, e2eKey) || strings.Contains(v, e2eToken) {
				t.Errorf("span %s attribute %s carries a credential or the callback token", sp.Name, a.Key)
			}
		}
	}
	if commits == 0 {
		t.Errorf("no commit span beneath the worker's span in trace %s", traceID)
	}
	if got := attr(handle, "result"); got != "applied" {
		t.Errorf("worker span result = %q; want applied", got)
	}
	// The command continued refundctl's trace.
	var cmdHandled bool
	for _, sp := range spans {
		cmdHandled = cmdHandled || sp.Name == "handle commands" && sp.Parent.SpanID() == cmdSpan.SpanContext().SpanID() &&
			sp.SpanContext.TraceID() == cmdSpan.SpanContext().TraceID()
	}
	if !cmdHandled {
		t.Errorf("no worker span for the command beneath refundctl's span %s", cmdSpan.SpanContext().SpanID())
	}

	series := `refundhub_worker_callback_lag_seconds_count{outcome="applied",platform="taobao"}`
	if v := metricValue(t, w.metricsURL(), series); v == "" || v == "0" {
		t.Errorf("%s = %q; want at least 1", series, v)
	}

	// Log lines about the case inside that trace carry case and trace_id.
	w.stop()
	var correlated, commandLogged bool
	for _, line := range logtest.Parse(t, w.errs.String()) {
		if line["trace_id"] == cmdSpan.SpanContext().TraceID().String() && line["case"] == float64(id) {
			commandLogged = commandLogged || line["command"] == "trace-cmd-1"
		}
		if line["trace_id"] == traceID.String() {
			if line["case"] != float64(id) {
				t.Errorf("log line %q in the callback's trace: case = %v; want %d", line["msg"], line["case"], id)
			}
			correlated = true
		}
	}
	if !commandLogged {
		t.Errorf("no worker log line in the command's trace names case %d and command trace-cmd-1", id)
	}
	if !correlated {
		t.Errorf("no worker log line carries the callback's trace_id %s", traceID)
	}

	// The callback's timeline entry has its lag, and so does the histogram.
	tl, err := s.store.Timeline(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var lagged int
	for _, e := range tl {
		if e.Kind != casestore.KindCallback || !strings.HasPrefix(e.Summary, "callback ") {
			continue // order events are kept by the store with their own detail
		}
		var d struct {
			LagMs  *int64 `json:"lagMs"`
			Stream string `json:"stream"`
			Seq    uint64 `json:"seq"`
			MsgID  string `json:"msgId"`
		}
		if err := json.Unmarshal(e.Detail, &d); err != nil || d.LagMs == nil || *d.LagMs < 0 || *d.LagMs > 20000 {
			t.Errorf("callback timeline entry %q detail %s; want lagMs between 0 and 20000", e.Summary, e.Detail)
			continue
		}
		// It names the stream message it came from: that message is the
		// callback, with that Nats-Msg-Id.
		if d.Stream != events.DefaultStreamName || d.Seq == 0 || d.MsgID == "" {
			t.Errorf("callback timeline entry %q detail %s; want stream %s, seq and msgId", e.Summary, e.Detail, events.DefaultStreamName)
			continue
		}
		st, err := s.js.Stream(context.Background(), d.Stream)
		if err != nil {
			t.Fatal(err)
		}
		m, err := st.GetMsg(context.Background(), d.Seq)
		if err != nil {
			t.Fatalf("get %s seq %d: %v", d.Stream, d.Seq, err)
		}
		if got := m.Header.Get(events.HeaderMsgID); got != d.MsgID || !strings.HasPrefix(m.Subject, events.SubjectAccepted+".taobao.") {
			t.Errorf("stream message %d: subject %s, Nats-Msg-Id %q; want a taobao callback with %q", d.Seq, m.Subject, got, d.MsgID)
		}
		lagged++
	}
	if lagged == 0 {
		t.Errorf("no callback entry on case %d's timeline", id)
	}
}

// attr is a span attribute's value as text, "" when absent.
func attr(sp tracetest.SpanStub, key string) string {
	for _, a := range sp.Attributes {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}

// TestRetriedDeadLetterJoinsTheRetriersTrace: a dead request command,
// retried by an operator in a span of their own (refundctl dead-letters
// retry), is handled by the worker in that operator's trace: the worker's
// span for it is a child of the retrier's span and links to the trace the
// command first died in (Rh-Traceparent), rather than continuing that
// trace days later.
func TestRetriedDeadLetterJoinsTheRetriersTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	s := newStackTraced(t, tp.Tracer("receiver"), sandbox.Faults{}, sandbox.SellerPolicy{Decision: sandbox.DecisionManual}, 1,
		map[string]string{"WORKER_RECONCILE_INTERVAL": "1h", "WORKER_TIMER_INTERVAL": "1s"})
	s.startTraced(exp)
	o, so := s.order(sandbox.PlatformTaobao, nil)
	cmd := refundflow.Command{ID: "trace-dead-1", IssuedAt: time.Now().UTC(), Kind: refundflow.InputRequestRefund,
		Platform: refundflow.PlatformTaobao, OrderID: o, SubOrderID: so,
		Request: &refundflow.Request{GoodsStatus: "1", ReasonID: 1001, Amount: 6000, Description: "不想要了"}}
	payload, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	// The command as it died: in the trace of the refundctl run that
	// first sent it.
	_, firstSpan := tp.Tracer("refundctl").Start(context.Background(), "refundctl request")
	firstSpan.End()
	first := firstSpan.SpanContext()
	ctx := context.Background()
	var dlID int64
	if err := s.store.Update(ctx, func(tx *casestore.Tx) error {
		dlID, _, err = tx.InsertDeadLetter(ctx, casestore.DeadLetter{MsgID: cmd.ID,
			Subject: events.CommandSubject(string(cmd.Platform), string(cmd.Kind), refundflow.OrderKey(payload)), Payload: payload,
			Headers: map[string][]string{events.HeaderCommandKind: {string(cmd.Kind)},
				events.HeaderTraceParent: {"00-" + first.TraceID().String() + "-" + first.SpanID().String() + "-01"}},
			Reason: string(events.DeadMaxDeliveries), Error: "taobao_render: http status 502", Deliveries: 5, CreatedAt: time.Now()})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	rctx, retrySpan := tp.Tracer("refundctl").Start(ctx, "refundctl dead-letters retry")
	if _, err := deadletters.New(s.store, s.js, deadletters.Config{}).Retry(rctx, dlID, deadletters.RetryOptions{Operator: "olga"}); err != nil {
		t.Fatal(err)
	}
	retrySpan.End()
	s.waitState(s.caseFor(refundflow.PlatformTaobao, o, so), refundflow.StateWaitingSeller, 20*time.Second)

	var handle *tracetest.SpanStub
	waitFor(t, 10*time.Second, "the worker's span for the retried command", func() bool {
		for _, sp := range exp.GetSpans() {
			if sp.Name == "handle commands" && strings.HasPrefix(attr(sp, "msg_id"), cmd.ID+"-retry-") {
				handle = &sp
				return true
			}
		}
		return false
	})
	if handle.Parent.SpanID() != retrySpan.SpanContext().SpanID() || handle.SpanContext.TraceID() != retrySpan.SpanContext().TraceID() {
		t.Errorf("handle commands: trace %s parent %s; want the retrier's span %s in its trace %s", handle.SpanContext.TraceID(),
			handle.Parent.SpanID(), retrySpan.SpanContext().SpanID(), retrySpan.SpanContext().TraceID())
	}
	if len(handle.Links) != 1 || handle.Links[0].SpanContext.TraceID() != first.TraceID() ||
		handle.Links[0].SpanContext.SpanID() != first.SpanID() {
		t.Errorf("handle commands links %+v; want one, to the trace the command died in (%s)", handle.Links, first.TraceID())
	}
}
