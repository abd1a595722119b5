package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/envconfig/logtest"
	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/tracing/tracingtest"
)

// TestAPICommandIsOneTrace: a Taobao request sent to POST
// /api/v1/commands of the console run as cmd/console runs it (runTraced,
// its spans in memory), and handled by the in-process worker (its spans
// in the same exporter), is one trace whose root is the console's span
// for the command: the worker's span for the message beneath it, the
// decision and the commit beneath that, and the platform calls beneath
// the worker's span, each with its HTTP round trip beneath it. The
// console's log line about the command carries that trace id, and no span
// holds a credential.
//
// A second command whose request carries a traceparent (refundctl in
// remote mode sends one) is issued beneath the caller's span, in its
// trace.
func TestAPICommandIsOneTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	s := startStackTraced(t, tp.Tracer("worker"))
	base, logs, stop := startConsoleTraced(t, consoleEnv(s.natsURL, s.dbPath), tracingtest.Kept{InMemoryExporter: exp})
	st, err := casestore.OpenReadOnly(context.Background(), s.dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	const id = "trace-console-0001"
	body := `{"id":"` + id + `","kind":"request_refund","platform":"taobao","orderId":"3296711100591134701","subOrderId":"1034499579120189701",
		"request":{"returnGoods":true,"goodsStatus":"3","reasonId":4005,"description":"trace test"}}`
	if r := apiPost(t, base+"/api/v1/commands?wait=10s", operatorToken, body); r.status != http.StatusOK {
		t.Fatalf("POST /api/v1/commands = %d %s; want 200 with the verdict", r.status, r.body)
	}
	var k casestore.Case
	eventstest.WaitFor(t, 45*time.Second, "case of "+id+" waiting for the return shipment", func() bool {
		k, err = st.CaseOpenedBy(context.Background(), id)
		return err == nil && k.State == string(refundflow.StateWaitingReturnShipment)
	})

	spans := exp.GetSpans()
	var issue *tracetest.SpanStub
	for i := range spans {
		if spans[i].Name == "issue command" && attrOf(spans[i], "command") == id {
			issue = &spans[i]
		}
	}
	if issue == nil {
		t.Fatalf("no console span issue command for %s; spans:\n%s", id, spanTree(spans))
	}
	if issue.Parent.IsValid() {
		t.Errorf("issue command has parent %s; want it to start the trace", issue.Parent.SpanID())
	}
	traceID := issue.SpanContext.TraceID()
	var inTrace tracetest.SpanStubs
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, sp := range spans {
		if sp.SpanContext.TraceID() == traceID {
			inTrace = append(inTrace, sp)
			byID[sp.SpanContext.SpanID()] = sp
		}
	}
	parent := func(sp tracetest.SpanStub) string { return byID[sp.Parent.SpanID()].Name }
	// The worker's span for the command that opened the case.
	var handle *tracetest.SpanStub
	for i, sp := range inTrace {
		if sp.Name == "handle commands" && sp.Parent.SpanID() == issue.SpanContext.SpanID() && attrOf(sp, "result") == "applied" {
			handle = &inTrace[i]
		}
	}
	if handle == nil {
		t.Fatalf("no applied handle commands span beneath the console's span in trace %s:\n%s", traceID, spanTree(inTrace))
	}
	under := func(sp tracetest.SpanStub, ancestor tracetest.SpanStub) bool {
		for cur := sp; cur.Parent.IsValid(); {
			p, ok := byID[cur.Parent.SpanID()]
			if !ok {
				return false
			}
			if p.SpanContext.SpanID() == ancestor.SpanContext.SpanID() {
				return true
			}
			cur = p
		}
		return false
	}
	var decides, commits, calls, roundTrips int
	for _, sp := range inTrace {
		switch {
		case sp.Name == "decide" && sp.Parent.SpanID() == handle.SpanContext.SpanID():
			decides++
		case sp.Name == "commit" && sp.Parent.SpanID() == handle.SpanContext.SpanID():
			commits++
		case strings.HasPrefix(sp.Name, "taobao_") && under(sp, *handle):
			calls++
		case strings.HasPrefix(sp.Name, "HTTP ") && strings.HasPrefix(parent(sp), "taobao_") && under(sp, *handle):
			roundTrips++
		}
	}
	if decides == 0 || commits == 0 || calls == 0 || roundTrips == 0 {
		t.Errorf("beneath the worker's span: %d decide, %d commit, %d platform call, %d HTTP round trip spans; want each at least once. Trace:\n%s",
			decides, commits, calls, roundTrips, spanTree(inTrace))
	}
	if got := attrOf(*issue, "verdict"); got != "applied" {
		t.Errorf("issue command verdict = %q; want applied", got)
	}
	if got := attrOf(*issue, "case"); got == "" || got == "0" {
		t.Errorf("issue command case = %q; want the new case's id", got)
	}

	// A caller's traceparent is continued.
	callerTrace, callerSpan := "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/commands?wait=0s", strings.NewReader(
		`{"id":"trace-console-0002","kind":"send_message","caseId":`+attrOf(*issue, "case")+`,"message":"trace test"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+operatorToken)
	req.Header.Set("traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST message command with traceparent = %d; want 2xx", resp.StatusCode)
	}
	var continued bool
	for _, sp := range exp.GetSpans() {
		if sp.Name == "issue command" && attrOf(sp, "command") == "trace-console-0002" {
			continued = sp.SpanContext.TraceID().String() == callerTrace && sp.Parent.SpanID().String() == callerSpan
			if !continued {
				t.Errorf("issue command for trace-console-0002: trace %s parent %s; want the caller's %s/%s",
					sp.SpanContext.TraceID(), sp.Parent.SpanID(), callerTrace, callerSpan)
			}
		}
	}
	if !continued {
		t.Errorf("no issue command span continued the caller's trace %s", callerTrace)
	}

	for _, sp := range exp.GetSpans() {
		for _, a := range append(sp.Attributes, sp.Resource.Attributes()...) {
			for _, secret := range append(testSecrets(), stackSecret, stackKey) {
				if strings.Contains(a.Value.Emit(), secret) {
					t.Errorf("span %s attribute %s holds a credential", sp.Name, a.Key)
				}
			}
		}
	}

	stop(30 * time.Second)
	var logged bool
	for _, line := range logtest.Parse(t, logs.String()) {
		if line["msg"] == "command issued" && line["command"] == id {
			logged = line["trace_id"] == traceID.String()
			if !logged {
				t.Errorf("log line command issued for %s: trace_id %v; want %s", id, line["trace_id"], traceID)
			}
		}
	}
	if !logged {
		t.Errorf("no command issued log line for %s carries its trace id", id)
	}
}

// attrOf is a span attribute's value as text, "" when absent.
func attrOf(sp tracetest.SpanStub, key string) string {
	for _, a := range sp.Attributes {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}

// spanTree lists spans with their parents' names, for failure messages.
func spanTree(spans tracetest.SpanStubs) string {
	names := map[trace.SpanID]string{}
	for _, sp := range spans {
		names[sp.SpanContext.SpanID()] = sp.Name
	}
	var b strings.Builder
	for _, sp := range spans {
		b.WriteString(sp.Name + " (parent " + names[sp.Parent.SpanID()] + ", trace " + sp.SpanContext.TraceID().String()[:8] + ")\n")
	}
	return b.String()
}
