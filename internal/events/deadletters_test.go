package events_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
)

// original is a callback as a consumer receives it, with a header the server
// owns in canonical and in wire case, and the marks of an earlier retry.
func original() nats.Header {
	return nats.Header{
		"Nats-Msg-Id":                   {"0123456789abcdef0123456789abcdef"},
		"nats-expected-last-sequence":   {"41"},
		events.HeaderPlatform:           {"1688"},
		events.HeaderType:               {"ORDER_CREATE"},
		events.HeaderRequestID:          {"req-1"},
		events.HeaderRetryOf:            {"3"},
		events.HeaderRetryOriginalMsgID: {"0123456789abcdef0123456789abcdef"},
	}
}

func TestDeadLetterMsg(t *testing.T) {
	d := events.DeadLetter{Source: "callbacks", MsgID: "0123456789abcdef0123456789abcdef", Subject: "callbacks.1688.ORDER_CREATE",
		Stream: "CALLBACKS", Sequence: 42, Deliveries: 12, Header: original(), Data: []byte(`{"x":1}`),
		Reason: events.DeadMaxDeliveries, Error: "platform unreachable"}
	m := d.Msg()
	if m.Subject != "deadletters.callbacks" || string(m.Data) != `{"x":1}` {
		t.Errorf("Msg() = %s %s; want deadletters.callbacks with the original payload", m.Subject, m.Data)
	}
	want := map[string]string{
		"Nats-Msg-Id":                   "dl:0123456789abcdef0123456789abcdef",
		events.HeaderPlatform:           "1688",
		events.HeaderType:               "ORDER_CREATE",
		events.HeaderRequestID:          "req-1",
		events.HeaderRetryOf:            "3", // it was a retry of dead letter 3: the copy says so
		events.HeaderRetryOriginalMsgID: "0123456789abcdef0123456789abcdef",
		"Dl-Reason":                     "max_deliveries",
		"Dl-Error":                      "platform unreachable",
		"Dl-Subject":                    "callbacks.1688.ORDER_CREATE",
		"Dl-Stream":                     "CALLBACKS",
		"Dl-Stream-Seq":                 "42",
		"Dl-Deliveries":                 "12",
	}
	checkHeader(t, "DeadLetter.Msg", m.Header, want)

	// The original's headers are left as they were.
	if got := d.Header.Get("Nats-Msg-Id"); got != "0123456789abcdef0123456789abcdef" || len(d.Header) != len(original()) {
		t.Errorf("Msg changed the original's headers: %v", d.Header)
	}

	// An input that waited in the store has no headers: the copy has the Dl-* ones.
	d.Header = nil
	if h := d.Msg().Header; h.Get("Dl-Reason") != "max_deliveries" || h.Get(events.HeaderPlatform) != "" {
		t.Errorf("Msg() without original headers = %v", h)
	}
}

// TestDeadLetterMsgStoredOnce: the copy lands in DEADLETTERS, and a move
// repeated (the Term after it failed) is stored once.
func TestDeadLetterMsgStoredOnce(t *testing.T) {
	ns := eventstest.Start(t)
	js := ns.JetStream()
	ctx := context.Background()
	if err := events.EnsureWorkStreams(ctx, js, events.DefaultWorkStreamsConfig()); err != nil {
		t.Fatal(err)
	}
	d := events.DeadLetter{Source: "commands", MsgID: "cmd-1", Subject: "commands.taobao.cancel", Stream: "COMMANDS", Sequence: 1,
		Deliveries: 1, Header: nats.Header{"Nats-Msg-Id": {"cmd-1"}, events.HeaderCommandKind: {"cancel"}}, Data: []byte(`{}`),
		Reason: events.DeadInvalidCommand, Error: "no kind"}
	for i := range 2 {
		ack, err := js.PublishMsg(ctx, d.Msg())
		if err != nil {
			t.Fatalf("publish #%d: %v", i+1, err)
		}
		if ack.Stream != events.DefaultDeadLetterStreamName || ack.Sequence != 1 || ack.Duplicate != (i == 1) {
			t.Errorf("publish #%d: %+v; want DEADLETTERS seq 1, duplicate=%v", i+1, ack, i == 1)
		}
	}
}

func TestRetryMsg(t *testing.T) {
	stored := original()
	stored["dl-reason"] = []string{"written by hand in wire case"}
	d := events.StoredDeadLetter{ID: 7, MsgID: "0123456789abcdef0123456789abcdef", Subject: "callbacks.1688.ORDER_CREATE",
		Header: stored, Data: []byte(`{"x":1}`)}
	m, err := events.RetryMsg(d)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != d.Subject || string(m.Data) != `{"x":1}` {
		t.Errorf("RetryMsg = %s %s; want the original subject and payload", m.Subject, m.Data)
	}
	id := m.Header.Get("Nats-Msg-Id")
	if !strings.HasPrefix(id, "0123456789abcdef0123456789abcdef-retry-") || len(id) != len("0123456789abcdef0123456789abcdef-retry-")+8 {
		t.Errorf("Nats-Msg-Id = %q; want the original id, -retry- and 8 hex digits", id)
	}
	checkHeader(t, "RetryMsg", m.Header, map[string]string{
		"Nats-Msg-Id":                   id,
		events.HeaderPlatform:           "1688",
		events.HeaderType:               "ORDER_CREATE",
		events.HeaderRequestID:          "req-1",
		events.HeaderRetryOf:            "7", // this retry's, not the earlier one's 3
		events.HeaderRetryOriginalMsgID: "0123456789abcdef0123456789abcdef",
	})
	again, err := events.RetryMsg(d)
	if err != nil {
		t.Fatal(err)
	}
	if again.Header.Get("Nats-Msg-Id") == id {
		t.Errorf("two retries share the Nats-Msg-Id %q; the duplicate window would drop the second", id)
	}
	if len(stored) != len(original())+1 || stored.Get(events.HeaderRetryOf) != "3" {
		t.Errorf("RetryMsg changed the stored headers: %v", stored)
	}

	// A dead letter stored without a message id is named by its row.
	m, err = events.RetryMsg(events.StoredDeadLetter{ID: 9, Subject: "commands.taobao.cancel"})
	if err != nil {
		t.Fatal(err)
	}
	if id := m.Header.Get("Nats-Msg-Id"); !strings.HasPrefix(id, "dl-9-retry-") {
		t.Errorf("Nats-Msg-Id without an original id = %q; want dl-9-retry-…", id)
	}
	checkHeader(t, "RetryMsg without id", m.Header, map[string]string{"Nats-Msg-Id": m.Header.Get("Nats-Msg-Id"), events.HeaderRetryOf: "9"})
}

// TestDeadLetterRoundTrip: a message dead-lettered and retried goes back as
// it came, with a new id and the retry's marks, whatever it carried before.
func TestDeadLetterRoundTrip(t *testing.T) {
	orig := nats.Header{"Nats-Msg-Id": {"cmd-2"}, events.HeaderCommandKind: {"cancel"}, events.HeaderCommandIssuer: {"alice", "bob"}}
	dead := events.DeadLetter{Source: "commands", MsgID: "cmd-2", Subject: "commands.taobao.cancel", Header: orig, Data: []byte(`{}`),
		Reason: events.DeadUnknownCase}
	// The row keeps the headers as delivered (casestore.DeadLetter.Headers).
	m, err := events.RetryMsg(events.StoredDeadLetter{ID: 1, MsgID: dead.MsgID, Subject: dead.Subject, Header: dead.Header, Data: dead.Data})
	if err != nil {
		t.Fatal(err)
	}
	want := nats.Header{events.HeaderCommandKind: {"cancel"}, events.HeaderCommandIssuer: {"alice", "bob"},
		events.HeaderRetryOf: {"1"}, events.HeaderRetryOriginalMsgID: {"cmd-2"}, "Nats-Msg-Id": m.Header.Values("Nats-Msg-Id")}
	if !maps.EqualFunc(m.Header, want, slices.Equal) {
		t.Errorf("retried headers = %v; want %v", m.Header, want)
	}
}

func TestRepublishHeader(t *testing.T) {
	h := original()
	got := events.RepublishHeader(h)
	for k := range got {
		if strings.HasPrefix(strings.ToLower(k), "nats-") {
			t.Errorf("RepublishHeader kept the server's %s", k)
		}
	}
	if len(got) != len(h)-2 || got.Get(events.HeaderPlatform) != "1688" || got.Get(events.HeaderRetryOf) != "3" {
		t.Errorf("RepublishHeader(%v) = %v; want all but the two Nats-* headers", h, got)
	}
	got[events.HeaderPlatform][0] = "taobao"
	if h.Get(events.HeaderPlatform) != "1688" {
		t.Error("RepublishHeader shares value slices with its input")
	}
	if got := events.RepublishHeader(nil); got == nil || len(got) != 0 {
		t.Errorf("RepublishHeader(nil) = %v; want an empty, usable header", got)
	}
}

func TestDeadReasonPermanent(t *testing.T) {
	want := map[events.DeadReason]bool{
		events.DeadUndecodable:    true,
		events.DeadInvalidCommand: true,
		events.DeadPermanentError: true,
		events.DeadUnknownCase:    false,
		events.DeadMaxDeliveries:  false,
		events.DeadWorkerFailed:   true,
		events.DeadDeliveryLimit:  true,
		"from_a_newer_worker":     false,
	}
	for _, r := range events.DeadReasons() {
		if _, ok := want[r]; !ok {
			t.Errorf("reason %s: add it to this table, permanent or not", r)
		}
	}
	for r, p := range want {
		if r.Permanent() != p {
			t.Errorf("%s.Permanent() = %v; want %v", r, r.Permanent(), p)
		}
	}
	for stored, r := range map[string]events.DeadReason{"permanent": events.DeadPermanentError, "permanent_error": events.DeadPermanentError,
		"max_deliveries": events.DeadMaxDeliveries, "something_new": "something_new"} {
		if got := events.StoredDeadReason(stored); got != r {
			t.Errorf("StoredDeadReason(%q) = %q; want %q", stored, got, r)
		}
	}
}

func checkHeader(t *testing.T, what string, got nats.Header, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if g := got.Values(k); len(g) != 1 || g[0] != v {
			t.Errorf("%s: header %s = %q; want [%q]", what, k, g, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected header %s = %q", what, k, got[k])
		}
	}
}

// TestRetryMsgKeepsTheFirstTraceApart: a retried message does not carry
// the trace it died in as its own (a retry joins its retrier's trace); the
// stored traceparent and tracestate, whatever the case of their stored
// names, move to Rh-Traceparent and Rh-Tracestate, which RetriedTrace
// reads back as the span context to link to. An earlier retry's Rh-* trace
// gives way to the trace the message was in when it died this time, and
// stays when it died in none (an untraced retry).
func TestRetryMsgKeepsTheFirstTraceApart(t *testing.T) {
	const first = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	stored := original()
	stored["Traceparent"] = []string{first}
	stored["tracestate"] = []string{"vendor=1"}
	stored[events.HeaderRetryTraceParent] = []string{"00-11111111111111111111111111111111-2222222222222222-01"}
	m, err := events.RetryMsg(events.StoredDeadLetter{ID: 7, MsgID: "m-1", Subject: "commands.taobao.cancel", Header: stored, Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	for k := range m.Header {
		if strings.EqualFold(k, events.HeaderTraceParent) || strings.EqualFold(k, events.HeaderTraceState) {
			t.Errorf("retried message carries %s %q; want the first trace under Rh-* only", k, m.Header[k])
		}
	}
	if got := m.Header.Get(events.HeaderRetryTraceParent); got != first {
		t.Errorf("%s = %q; want the stored traceparent %q", events.HeaderRetryTraceParent, got, first)
	}
	if got := m.Header.Get(events.HeaderRetryTraceState); got != "vendor=1" {
		t.Errorf("%s = %q; want the stored tracestate", events.HeaderRetryTraceState, got)
	}
	sc, ok := events.RetriedTrace(m.Header)
	if !ok || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.SpanID().String() != "00f067aa0ba902b7" ||
		sc.TraceState().Get("vendor") != "1" || !sc.IsRemote() {
		t.Errorf("RetriedTrace = %v, %v; want the first trace's remote span context with its tracestate", sc, ok)
	}

	for name, h := range map[string]nats.Header{
		"none":      {},
		"malformed": {events.HeaderRetryTraceParent: {"00-zz-yy-01"}},
	} {
		if sc, ok := events.RetriedTrace(h); ok || sc.IsValid() {
			t.Errorf("RetriedTrace(%s) = %v, true; want nothing to link to", name, sc)
		}
	}
	// Retried untraced, died again: the stored headers hold only the
	// Rh-* trace, which the next retry keeps.
	again, err := events.RetryMsg(events.StoredDeadLetter{ID: 9, Subject: "commands.taobao.cancel", Header: m.Header, Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if got := again.Header.Get(events.HeaderRetryTraceParent); got != first || again.Header.Get(events.HeaderRetryTraceState) != "vendor=1" {
		t.Errorf("a second retry of an untraced retry: %s %q; want the first trace kept, %q", events.HeaderRetryTraceParent, got, first)
	}
	noTrace, err := events.RetryMsg(events.StoredDeadLetter{ID: 8, Subject: "commands.taobao.cancel", Header: original(), Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := events.RetriedTrace(noTrace.Header); ok || noTrace.Header.Get(events.HeaderRetryTraceParent) != "" {
		t.Errorf("a dead letter without a trace: %v; want no Rh-Traceparent", noTrace.Header)
	}
}
