package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// replayServer is a dead-letter console (it has the write handle a replay
// is noted through) with the callback stream holding two callbacks, and a
// case whose timeline has a callback entry for each, as the worker
// records them (refundflow.CallbackDetail).
type replayServer struct {
	*dlServer
	k      casestore.Case
	stream jetstream.Stream
	got    chan *nats.Msg // every message published on callbacks.>, stored or not
}

func newReplayServer(t *testing.T) *replayServer {
	t.Helper()
	return newReplayServerTraced(t, nil)
}

// newReplayServerTraced is newReplayServer with tracer (nil: tracing off).
func newReplayServerTraced(t *testing.T, tracer trace.Tracer) *replayServer {
	t.Helper()
	ctx := context.Background()
	s := &replayServer{dlServer: newDLServerTraced(t, tracer), got: make(chan *nats.Msg, 16)}
	var err error
	if s.stream, err = events.EnsureStream(ctx, s.js, events.DefaultStreamConfig()); err != nil {
		t.Fatal(err)
	}
	sub, err := s.js.Conn().ChanSubscribe(events.SubjectAccepted+".>", s.got)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	hdr := events.CallbackHeaders{Platform: "taobao", Type: "TB_REFUND_STATUS", Received: time.Now(), RequestID: "req-1"}.Header()
	// seq 1 carries its Nats-Msg-Id, as the receiver stores every callback;
	// seq 2 has none, so the stream stores every replay of it again.
	if _, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: "callbacks.taobao.TB_REFUND_STATUS", Data: []byte(`{"n":1}`), Header: hdr},
		jetstream.WithMsgID("cb-one")); err != nil {
		t.Fatal(err)
	}
	hdr2 := events.CallbackHeaders{Platform: "taobao", Type: "TB_REFUND_STATUS", Received: time.Now(), RequestID: "req-2"}.Header()
	if _, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: "callbacks.taobao.TB_REFUND_STATUS", Data: []byte(`{"n":2}`), Header: hdr2}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		<-s.got // the seeding publishes
	}
	err = s.w.Update(ctx, func(tx *casestore.Tx) error {
		k, err := tx.CreateCase(ctx, casestore.NewCase{Platform: casestore.PlatformTaobao, OrderID: "900", SubOrderID: "901",
			State: string(refundflow.StateWaitingSeller), Request: json.RawMessage(`{"reasonId":1}`), OpenedBy: "cmd-seed-replay"})
		if err != nil {
			return err
		}
		s.k = k
		for _, d := range []refundflow.CallbackDetail{{Stream: events.DefaultStreamName, Seq: 1, MsgID: "cb-one"},
			{Stream: events.DefaultStreamName, Seq: 2, MsgID: events.DefaultStreamName + ":2"}} {
			b, _ := json.Marshal(d)
			if err := tx.AppendTimeline(ctx, casestore.TimelineEntry{CaseID: k.ID, Kind: casestore.KindCallback,
				Summary: fmt.Sprintf("callback %d", d.Seq), Detail: b}); err != nil {
				return err
			}
		}
		return tx.AppendTimeline(ctx, casestore.TimelineEntry{CaseID: k.ID, Kind: casestore.KindDecision, Summary: "a decision"})
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stored is how many messages the callback stream holds.
func (s *replayServer) stored() uint64 {
	s.t.Helper()
	info, err := s.stream.Info(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	return info.State.Msgs
}

// republished is the next message published on callbacks.>.
func (s *replayServer) republished() *nats.Msg {
	s.t.Helper()
	select {
	case m := <-s.got:
		return m
	case <-time.After(5 * time.Second):
		s.t.Fatal("nothing was published on callbacks.>")
		return nil
	}
}

// nothingPublished fails when a message was published on callbacks.>.
func (s *replayServer) nothingPublished(what string) {
	s.t.Helper()
	select {
	case m := <-s.got:
		s.t.Errorf("%s: published %s %s; want nothing", what, m.Subject, m.Data)
	default:
	}
}

// sameMessage fails unless m is stream message seq again: its subject,
// bytes and the headers the receiver set.
func (s *replayServer) sameMessage(m *nats.Msg, seq uint64) {
	s.t.Helper()
	want, err := s.stream.GetMsg(context.Background(), seq)
	if err != nil {
		s.t.Fatalf("get seq %d: %v", seq, err)
	}
	if m.Subject != want.Subject || string(m.Data) != string(want.Data) {
		s.t.Errorf("replayed %s %s; want seq %d: %s %s", m.Subject, m.Data, seq, want.Subject, want.Data)
	}
	for _, h := range []string{events.HeaderMsgID, events.HeaderPlatform, events.HeaderType, events.HeaderReceivedAt, events.HeaderRequestID} {
		if m.Header.Get(h) != want.Header.Get(h) {
			s.t.Errorf("replayed header %s = %q; want seq %d's %q", h, m.Header.Get(h), seq, want.Header.Get(h))
		}
	}
}

// TestReplayForm: the case page offers operators a Replay button on each
// callback entry that names its stream message, and none to viewers; the
// button re-delivers exactly that message into the stream, says what the
// stream did with it, and notes it on the timeline with the operator's
// name. A viewer, a post without the CSRF token, a sequence that is not
// the case's and a message the stream no longer holds are refused, and
// nothing is published.
func TestReplayForm(t *testing.T) {
	s := newReplayServer(t)
	op, viewer := s.login(operatorName), s.login(viewerName)
	csrf := s.srv.sessions.csrf(op.Value)
	path := fmt.Sprintf("/cases/%d", s.k.ID)
	action := path + "/replay"

	page := s.do("GET", path, "cookie:"+op.Value, nil)
	for _, seq := range []string{"1", "2"} {
		if !strings.Contains(page.body, `<input type="hidden" name="seq" value="`+seq+`">`) {
			t.Errorf("operator's case page has no Replay button for seq %s:\n%s", seq, page.body)
		}
	}
	if n := strings.Count(page.body, `action="`+action+`"`); n != 2 {
		t.Errorf("operator's case page has %d Replay buttons; want 2 (the decision has none)", n)
	}
	if vpage := s.do("GET", path, "cookie:"+viewer.Value, nil); strings.Contains(vpage.body, "/replay") {
		t.Errorf("viewer's case page offers a Replay button")
	}

	before := s.stored()
	for _, tc := range []struct {
		who, cookie string
		form        url.Values
	}{
		{"viewer with its CSRF token", viewer.Value, url.Values{"seq": {"1"}, "csrf": {s.srv.sessions.csrf(viewer.Value)}}},
		{"operator without a CSRF token", op.Value, url.Values{"seq": {"1"}}},
		{"operator with another session's CSRF token", op.Value, url.Values{"seq": {"1"}, "csrf": {s.srv.sessions.csrf(viewer.Value)}}},
	} {
		if r := s.do("POST", action, "cookie:"+tc.cookie, tc.form); r.status != http.StatusForbidden || !strings.Contains(r.body, CodeForbidden) {
			t.Errorf("replay by %s = %d; want 403 forbidden", tc.who, r.status)
		}
	}
	s.nothingPublished("refused replays")

	// Seq 1 is inside the duplicate window: published again, not stored again.
	r := s.do("POST", action, "cookie:"+op.Value, url.Values{"seq": {"1"}, "csrf": {csrf}})
	loc := r.header.Get("Location")
	if r.status != http.StatusSeeOther || loc != path+"?duplicate=true&replayed=1&stored=1" {
		t.Fatalf("replay seq 1 = %d, Location %q; want 303 to the case with the duplicate verdict", r.status, loc)
	}
	s.sameMessage(s.republished(), 1)
	if n := s.stored(); n != before {
		t.Errorf("stream holds %d after replaying seq 1; want %d (a duplicate)", n, before)
	}
	page = s.do("GET", loc, "cookie:"+op.Value, nil)
	for _, want := range []string{`id="replay-verdict"`, "Replayed callback seq 1: already stored (duplicate window)",
		"inbox drops a callback it has already applied", "callback seq 1 (callbacks.taobao.TB_REFUND_STATUS) replayed into CALLBACKS by otto"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("case page after the replay lacks %q:\n%s", want, page.body)
		}
	}

	// Seq 2 has no Nats-Msg-Id: stored again, as a new message.
	r = s.do("POST", action, "cookie:"+op.Value, url.Values{"seq": {"2"}, "csrf": {csrf}})
	if want := path + "?duplicate=false&replayed=2&stored=3"; r.status != http.StatusSeeOther || r.header.Get("Location") != want {
		t.Fatalf("replay seq 2 = %d, Location %q; want 303 to %s", r.status, r.header.Get("Location"), want)
	}
	s.sameMessage(s.republished(), 2)
	third := mustGet(t, s.stream, 3) // the copy the stream stored
	s.sameMessage(&nats.Msg{Subject: third.Subject, Data: third.Data, Header: third.Header}, 2)
	if page = s.do("GET", r.header.Get("Location"), "cookie:"+op.Value, nil); !strings.Contains(page.body, "Replayed callback seq 2: stored again as seq 3") {
		t.Errorf("case page after replaying seq 2 lacks its verdict:\n%s", page.body)
	}

	// Refusals are shown beside the timeline with their status.
	if err := s.stream.DeleteMsg(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		seq    string
		status int
		want   string
	}{
		{"1", http.StatusGone, "stream CALLBACKS message 1 is no longer in the stream"},
		{"3", http.StatusBadRequest, "seq 3: no callback on case"}, // in the stream, but not this case's
		{"x", http.StatusBadRequest, "seq: a stream sequence"},
	} {
		r := s.do("POST", action, "cookie:"+op.Value, url.Values{"seq": {tc.seq}, "csrf": {csrf}})
		if r.status != tc.status || !strings.Contains(r.body, `id="replay-error"`) || !strings.Contains(r.body, tc.want) {
			t.Errorf("replay seq %s = %d; want %d with %q beside the timeline:\n%s", tc.seq, r.status, tc.status, tc.want, r.body)
		}
	}
	s.nothingPublished("refused replays")
}

func mustGet(t *testing.T, st jetstream.Stream, seq uint64) *jetstream.RawStreamMsg {
	t.Helper()
	m, err := st.GetMsg(context.Background(), seq)
	if err != nil {
		t.Fatalf("get seq %d: %v", seq, err)
	}
	return m
}

// TestReplayAPI: POST /api/v1/replay re-delivers one message into the
// stream for an operator token, noting it on the case named by caseId,
// and answers refusals as JSON errors with stable codes.
func TestReplayAPI(t *testing.T) {
	s := newReplayServer(t)
	r := s.postJSON("/api/v1/replay", operatorToken, fmt.Sprintf(`{"seq":2,"caseId":%d}`, s.k.ID))
	var out replayJSON
	if err := json.Unmarshal([]byte(r.body), &out); err != nil || r.status != http.StatusOK {
		t.Fatalf("replay seq 2 = %d %s; want 200", r.status, r.body)
	}
	if out.Seq != 2 || out.StoredSeq != 3 || out.Duplicate || out.CaseID != s.k.ID || out.Stream != events.DefaultStreamName ||
		out.Subject != "callbacks.taobao.TB_REFUND_STATUS" || out.Verdict != "stored again as seq 3" || out.Note == "" {
		t.Errorf("replay seq 2 answered %+v; want stored again as seq 3, noted on case %d", out, s.k.ID)
	}
	s.sameMessage(s.republished(), 2)
	tl, err := s.w.Timeline(context.Background(), s.k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if last := tl[len(tl)-1]; last.Kind != casestore.KindNote || !strings.Contains(last.Summary, "replayed into CALLBACKS by otto: stored again as seq 3") {
		t.Errorf("last timeline entry %q (%s); want the replay noted with the operator", last.Summary, last.Kind)
	}

	// Without caseId it replays and notes nothing.
	r = s.postJSON("/api/v1/replay", operatorToken, `{"seq":1}`)
	out = replayJSON{}
	if err := json.Unmarshal([]byte(r.body), &out); err != nil || r.status != http.StatusOK || !out.Duplicate || out.StoredSeq != 1 || out.CaseID != 0 {
		t.Errorf("replay seq 1 = %d %s; want 200, a duplicate of seq 1, no case", r.status, r.body)
	}
	s.sameMessage(s.republished(), 1)

	if err := s.stream.DeleteMsg(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	before := s.stored()
	for _, tc := range []struct {
		name, token, body string
		status            int
		code              string
	}{
		{"viewer", viewerToken, `{"seq":2}`, http.StatusForbidden, CodeForbidden},
		{"no token", "wrong-token", `{"seq":2}`, http.StatusUnauthorized, CodeUnauthorized},
		{"gone", operatorToken, `{"seq":1}`, http.StatusGone, CodeMessageGone},
		{"never stored", operatorToken, `{"seq":99}`, http.StatusNotFound, CodeNotFound},
		{"no seq", operatorToken, `{}`, http.StatusBadRequest, CodeInvalidArgument},
		{"bad seq", operatorToken, `{"seq":-1}`, http.StatusBadRequest, CodeInvalidArgument},
		{"unknown field", operatorToken, `{"seq":2,"stream":"COMMANDS"}`, http.StatusBadRequest, CodeInvalidArgument},
		{"not the case's", operatorToken, fmt.Sprintf(`{"seq":3,"caseId":%d}`, s.k.ID), http.StatusBadRequest, CodeInvalidArgument},
		{"no such case", operatorToken, `{"seq":2,"caseId":424242}`, http.StatusNotFound, CodeNotFound},
	} {
		r := s.postJSON("/api/v1/replay", tc.token, tc.body)
		var e errorBody
		if err := json.Unmarshal([]byte(r.body), &e); err != nil || r.status != tc.status || e.Error.Code != tc.code || e.Error.Message == "" {
			t.Errorf("%s: POST %s = %d %s; want %d with code %s", tc.name, tc.body, r.status, r.body, tc.status, tc.code)
		}
	}
	s.nothingPublished("refused replays")
	if n := s.stored(); n != before {
		t.Errorf("stream holds %d after refused replays; want %d", n, before)
	}
}

// TestReplayStartsATrace: a replay through the console is an operator's
// command with a trace of its own, "replay callback", whose context the
// replayed message carries as its traceparent; the trace the stored
// callback was in (the receiver's) moves to Rh-Traceparent, for the
// worker's span to link to.
func TestReplayStartsATrace(t *testing.T) {
	exp, tracer := inMemoryTracer(t)
	s := newReplayServerTraced(t, tracer)
	hdr := events.CallbackHeaders{Platform: "taobao", Type: "TB_REFUND_STATUS", Received: time.Now(), RequestID: "req-3"}.Header()
	hdr.Set(events.HeaderTraceParent, first)
	ack, err := s.js.PublishMsg(context.Background(), &nats.Msg{Subject: "callbacks.taobao.TB_REFUND_STATUS", Data: []byte(`{"n":3}`), Header: hdr})
	if err != nil {
		t.Fatal(err)
	}
	<-s.got
	if r := s.postJSON("/api/v1/replay", operatorToken, fmt.Sprintf(`{"seq":%d}`, ack.Sequence)); r.status != http.StatusOK {
		t.Fatalf("replay = %d %s", r.status, r.body)
	}
	m := s.republished()
	var span *tracetest.SpanStub
	for _, sp := range exp.GetSpans() {
		if sp.Name == "replay callback" {
			span = &sp
		}
	}
	if span == nil {
		t.Fatal("no replay callback span")
	}
	want := "00-" + span.SpanContext.TraceID().String() + "-" + span.SpanContext.SpanID().String() + "-01"
	if got := m.Header.Get(events.HeaderTraceParent); got != want || span.Parent.IsValid() || attrOf(*span, "seq") != fmt.Sprint(ack.Sequence) {
		t.Errorf("replayed traceparent %q, span parent %v, seq %q; want the console's root span %s for seq %d", got, span.Parent.SpanID(),
			attrOf(*span, "seq"), want, ack.Sequence)
	}
	if got := m.Header.Get(events.HeaderRetryTraceParent); got != first {
		t.Errorf("replayed %s %q; want the stored callback's trace %q", events.HeaderRetryTraceParent, got, first)
	}
}
