package deadletters_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/deadletters"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// env is a case store in a temp dir and a JetStream server with the
// command stream, where retries of dead commands go.
type env struct {
	t  *testing.T
	st *casestore.Store
	js jetstream.JetStream
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st, err := casestore.Open(ctx, filepath.Join(t.TempDir(), "refunds.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	js := eventstest.Start(t).JetStream()
	if err := events.EnsureWorkStreams(ctx, js, events.DefaultWorkStreamsConfig()); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, st: st, js: js}
}

// seed stores dead letters and returns their ids.
func (e *env) seed(dls ...casestore.DeadLetter) []int64 {
	e.t.Helper()
	var ids []int64
	ctx := context.Background()
	err := e.st.Update(ctx, func(tx *casestore.Tx) error {
		for _, d := range dls {
			id, _, err := tx.InsertDeadLetter(ctx, d)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		e.t.Fatalf("seed: %v", err)
	}
	return ids
}

// stored is how many messages the command stream holds.
func (e *env) stored() uint64 {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), events.DefaultCommandStreamName)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Msgs
}

func (e *env) load(id int64) casestore.DeadLetter {
	e.t.Helper()
	d, err := e.st.DeadLetter(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func deadCommand(msgID string, caseID int64, reason events.DeadReason, errText string, at time.Time) casestore.DeadLetter {
	payload := `{"id":"` + msgID + `","kind":"cancel","platform":"taobao","caseId":` + itoa(caseID) + `}`
	return casestore.DeadLetter{MsgID: msgID, Subject: events.CommandSubject("taobao", "cancel", refundflow.OrderKey([]byte(payload))), Payload: []byte(payload),
		Headers: map[string][]string{"Cmd-Kind": {"cancel"}}, Reason: string(reason), Error: errText, Deliveries: 5, CreatedAt: at}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func refusal(err error) deadletters.Refusal {
	var r *deadletters.RefusedError
	if errors.As(err, &r) {
		return r.Reason
	}
	return ""
}

// TestRetry: a retry publishes the message once, with the operator's name,
// and marks the letter retried; a second retry is refused and publishes
// nothing; a permanent failure is refused without force, unchanged, and
// retried with it.
func TestRetry(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	ids := e.seed(deadCommand("cmd-1", 7, events.DeadMaxDeliveries, "refund.query: http status 502 Bad Gateway", now),
		deadCommand("cmd-2", 8, events.DeadPermanentError, "case 8 not found", now))
	s := deadletters.New(e.st, e.js, deadletters.Config{ForceName: "the force box"})

	r, err := s.Retry(ctx, ids[0], deadletters.RetryOptions{Operator: "olga"})
	if err != nil {
		t.Fatalf("Retry(%d) = %v", ids[0], err)
	}
	if r.Ack == nil || r.Ack.Stream != events.DefaultCommandStreamName || e.stored() != 1 {
		t.Fatalf("Retry(%d): ack %+v, %d stored; want one message in %s", ids[0], r.Ack, e.stored(), events.DefaultCommandStreamName)
	}
	m, err := e.js.Stream(ctx, events.DefaultCommandStreamName)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := m.GetMsg(ctx, r.Ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Header.Get(events.HeaderRetryBy) != "olga" || raw.Header.Get(events.HeaderRetryOf) != itoa(ids[0]) {
		t.Errorf("retried message headers %v; want %s olga and %s %d", raw.Header, events.HeaderRetryBy, events.HeaderRetryOf, ids[0])
	}
	if d := e.load(ids[0]); d.RetriedAt.IsZero() {
		t.Errorf("dead letter %d not marked retried", ids[0])
	}
	if _, err := s.Retry(ctx, ids[0], deadletters.RetryOptions{Operator: "olga", Force: true}); refusal(err) != deadletters.RefusedRetried {
		t.Errorf("second Retry(%d) = %v; want refused %s", ids[0], err, deadletters.RefusedRetried)
	}
	if n := e.stored(); n != 1 {
		t.Errorf("after a refused retry %d messages stored; want 1", n)
	}

	_, err = s.Retry(ctx, ids[1], deadletters.RetryOptions{Operator: "olga"})
	if refusal(err) != deadletters.RefusedPermanent || !strings.Contains(err.Error(), "the force box") {
		t.Errorf("Retry(permanent) = %v; want refused %s naming the force box", err, deadletters.RefusedPermanent)
	}
	if d := e.load(ids[1]); !d.RetriedAt.IsZero() || e.stored() != 1 {
		t.Errorf("a refused permanent retry changed something: retried %v, %d stored", d.RetriedAt, e.stored())
	}
	if _, err := s.Retry(ctx, ids[1], deadletters.RetryOptions{Operator: "olga", Force: true}); err != nil || e.stored() != 2 {
		t.Errorf("forced Retry(permanent) = %v, %d stored; want it published", err, e.stored())
	}
	if _, err := s.Retry(ctx, 999, deadletters.RetryOptions{}); !errors.Is(err, deadletters.ErrNotFound) {
		t.Errorf("Retry(999) = %v; want ErrNotFound", err)
	}
}

// TestDiscard: a discard needs a note and records who and why; a second
// discard and a retry after it are refused and change nothing.
func TestDiscard(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ids := e.seed(deadCommand("cmd-1", 7, events.DeadUnknownCase, "no case 7", time.Time{}))
	s := deadletters.New(e.st, e.js, deadletters.Config{})
	if _, err := s.Discard(ctx, ids[0], "olga", "  "); !errors.Is(err, deadletters.ErrNoteRequired) {
		t.Errorf("Discard without a note = %v; want ErrNoteRequired", err)
	}
	if d := e.load(ids[0]); !deadletters.Pending(d) {
		t.Fatalf("a refused discard changed the letter: %+v", d)
	}
	d, err := s.Discard(ctx, ids[0], "olga", " test command ")
	if err != nil || d.DiscardedBy != "olga" || d.DiscardNote != "test command" || d.DiscardedAt.IsZero() {
		t.Fatalf("Discard = %+v, %v; want discarded by olga with the note", d, err)
	}
	if _, err := s.Discard(ctx, ids[0], "otto", "again"); refusal(err) != deadletters.RefusedDiscarded {
		t.Errorf("second Discard = %v; want refused %s", err, deadletters.RefusedDiscarded)
	}
	if _, err := s.Retry(ctx, ids[0], deadletters.RetryOptions{Force: true}); refusal(err) != deadletters.RefusedDiscarded {
		t.Errorf("Retry after discard = %v; want refused %s", err, deadletters.RefusedDiscarded)
	}
	if got := e.load(ids[0]); got.DiscardedBy != "olga" || got.DiscardNote != "test command" || !got.RetriedAt.IsZero() || e.stored() != 0 {
		t.Errorf("after refusals: %+v, %d stored; want olga's discard unchanged and nothing published", got, e.stored())
	}
}

// TestGroups: letters group by reason and the platform's code in their
// error, each group with its count, first and last seen, the cases its
// commands name (in the payload or in their verdict), its subjects (a
// command's case token as '*') and its ids; filters by state, code and
// subject select exactly their letters.
func TestGroups(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 20, 8, 0, 0, 0, time.UTC)
	ids := e.seed(
		deadCommand("cmd-a", 7, events.DeadMaxDeliveries, `retry after 30s: refund.apply: platform error code 4001 "busy"`, t0),
		deadCommand("cmd-b", 9, events.DeadMaxDeliveries, `retry after 30s: refund.apply: platform error code 4001 "busy"`, t0.Add(2*time.Hour)),
		deadCommand("cmd-c", 0, events.DeadMaxDeliveries, `refund.query: http status 502 Bad Gateway`, t0.Add(time.Hour)),
		deadCommand("cmd-d", 7, events.DeadMaxDeliveries, `refund.apply: platform error code 4001 "busy"`, t0.Add(time.Hour)),
		casestore.DeadLetter{MsgID: "cb-1", Subject: "callbacks.1688.ORDER_CREATE", Payload: []byte{0xff}, Reason: string(events.DeadUndecodable),
			Error: "not an envelope", CreatedAt: t0.Add(3 * time.Hour)},
	)
	// cmd-c names no case; its verdict says which one it was refused on.
	if err := e.st.Update(ctx, func(tx *casestore.Tx) error {
		return tx.RecordCommandOutcome(ctx, casestore.CommandOutcome{CommandID: "cmd-c", Verdict: casestore.VerdictRejected,
			CaseID: 11, Code: string(events.DeadMaxDeliveries), DeadLetterID: ids[2]})
	}); err != nil {
		t.Fatal(err)
	}
	s := deadletters.New(e.st, e.js, deadletters.Config{})
	if _, err := s.Discard(ctx, ids[3], "olga", "duplicate"); err != nil {
		t.Fatal(err)
	}

	gs, truncated, err := deadletters.Groups(ctx, e.st, deadletters.Filter{State: deadletters.StateAll})
	if err != nil || truncated {
		t.Fatalf("Groups = %v, truncated %v", err, truncated)
	}
	type row struct {
		reason      events.DeadReason
		code        string
		count       int
		first, last time.Time
		cases, ids  []int64
		subjects    []string
	}
	want := []row{
		{events.DeadUndecodable, "", 1, t0.Add(3 * time.Hour), t0.Add(3 * time.Hour), nil, []int64{ids[4]}, []string{"callbacks.1688.ORDER_CREATE"}},
		{events.DeadMaxDeliveries, "4001", 3, t0, t0.Add(2 * time.Hour), []int64{7, 9}, []int64{ids[0], ids[1], ids[3]}, []string{"commands.taobao.cancel.*"}},
		{events.DeadMaxDeliveries, "http 502", 1, t0.Add(time.Hour), t0.Add(time.Hour), []int64{11}, []int64{ids[2]}, []string{"commands.taobao.cancel"}},
	}
	if len(gs) != len(want) {
		t.Fatalf("Groups = %+v; want %d groups", gs, len(want))
	}
	for i, w := range want {
		g := gs[i]
		if g.Reason != w.reason || g.Code != w.code || g.Count != w.count || !g.FirstSeen.Equal(w.first) || !g.LastSeen.Equal(w.last) ||
			!slices.Equal(g.Cases, w.cases) || !slices.Equal(g.IDs, w.ids) || !slices.Equal(g.Subjects, w.subjects) {
			t.Errorf("group %d = %+v; want %+v", i, g, w)
		}
	}
	if !gs[0].Permanent || gs[1].Permanent {
		t.Errorf("permanent: %v, %v; want undecodable permanent, max_deliveries not", gs[0].Permanent, gs[1].Permanent)
	}

	for _, tc := range []struct {
		f    deadletters.Filter
		want []int64
	}{
		{deadletters.Filter{}, []int64{ids[0], ids[1], ids[2], ids[4]}}, // pending by default
		{deadletters.Filter{State: deadletters.StateDiscarded}, []int64{ids[3]}},
		{deadletters.Filter{Code: "4001"}, []int64{ids[0], ids[1]}},
		{deadletters.Filter{Code: deadletters.NoCode}, []int64{ids[4]}},
		{deadletters.Filter{Subject: "callbacks.>"}, []int64{ids[4]}},
		{deadletters.Filter{Reason: events.DeadMaxDeliveries, Subject: "commands.*.cancel", Code: "http 502"}, []int64{ids[2]}},
		{deadletters.Filter{Subject: "commands.*.cancel.>"}, []int64{ids[0], ids[1]}}, // the cases' commands
	} {
		f, err := tc.f.Check()
		if err != nil {
			t.Fatalf("Check(%+v) = %v", tc.f, err)
		}
		dls, _, err := deadletters.Matching(ctx, e.st, f)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, d := range dls {
			got = append(got, d.ID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Matching(%+v) = %v; want %v", tc.f, got, tc.want)
		}
	}
	for _, bad := range []deadletters.Filter{{State: "new"}, {Reason: "oops"}, {Subject: "a..b"}} {
		if _, err := bad.Check(); err == nil {
			t.Errorf("Check(%+v) = nil; want an error", bad)
		}
	}
}

// TestRetryEach: a bulk retry acts on exactly the ids given; one settled
// in between is refused, not retried twice.
func TestRetryEach(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ids := e.seed(deadCommand("cmd-1", 1, events.DeadMaxDeliveries, "x", time.Time{}),
		deadCommand("cmd-2", 2, events.DeadMaxDeliveries, "x", time.Time{}),
		deadCommand("cmd-3", 3, events.DeadMaxDeliveries, "x", time.Time{}))
	s := deadletters.New(e.st, e.js, deadletters.Config{})
	if _, err := s.Discard(ctx, ids[1], "otto", "settled in between"); err != nil {
		t.Fatal(err)
	}
	vs := s.RetryEach(ctx, []int64{ids[0], ids[1]}, deadletters.RetryOptions{Operator: "olga"})
	var got []deadletters.Outcome
	for _, v := range vs {
		got = append(got, v.Outcome)
	}
	if want := []deadletters.Outcome{deadletters.OutcomeRetried, deadletters.OutcomeRefused}; !slices.Equal(got, want) {
		t.Errorf("RetryEach outcomes = %v (%+v); want %v", got, vs, want)
	}
	if n := e.stored(); n != 1 {
		t.Errorf("%d messages published; want 1", n)
	}
	if d := e.load(ids[2]); !deadletters.Pending(d) {
		t.Errorf("dead letter %d, not confirmed, was acted on: %+v", ids[2], d)
	}
}

// TestActionsNoteTheCase: a retry and a discard of dead commands are
// recorded on their case's timeline with the operator's name (and the
// note); a letter naming a case that does not exist is marked all the same.
func TestActionsNoteTheCase(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var k casestore.Case
	if err := e.st.Update(ctx, func(tx *casestore.Tx) error {
		var err error
		k, err = tx.CreateCase(ctx, casestore.NewCase{Platform: casestore.PlatformTaobao, OrderID: "100", SubOrderID: "101",
			State: "requested", OpenedBy: "cmd-open"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ids := e.seed(deadCommand("cmd-1", k.ID, events.DeadMaxDeliveries, "x", time.Time{}),
		deadCommand("cmd-2", k.ID, events.DeadMaxDeliveries, "x", time.Time{}),
		deadCommand("cmd-3", 4242, events.DeadMaxDeliveries, "x", time.Time{}))
	s := deadletters.New(e.st, e.js, deadletters.Config{})
	if _, err := s.Retry(ctx, ids[0], deadletters.RetryOptions{Operator: "olga"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Discard(ctx, ids[1], "otto", "sent twice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Retry(ctx, ids[2], deadletters.RetryOptions{Operator: "olga"}); err != nil {
		t.Errorf("Retry of a letter naming no existing case = %v; want it retried", err)
	}
	tl, err := e.st.Timeline(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, en := range tl {
		if en.Kind == casestore.KindNote {
			notes = append(notes, en.Summary)
		}
	}
	want := []string{fmt.Sprintf("dead letter %d (max_deliveries) retried by olga", ids[0]),
		fmt.Sprintf("dead letter %d (max_deliveries) discarded by otto: sent twice", ids[1])}
	if !slices.Equal(notes, want) {
		t.Errorf("case %d timeline notes = %q; want %q", k.ID, notes, want)
	}
}

// TestRetryJoinsTheRetriersTrace: a retried message carries the trace of
// the retry (the caller's span: refundctl's run, a console API caller's)
// as its traceparent, and the trace it died in as Rh-Traceparent, for the
// worker's span to link to; a retry without a span carries no traceparent,
// so the worker starts a trace, still linked to the first.
func TestRetryJoinsTheRetriersTrace(t *testing.T) {
	e := newEnv(t)
	const first = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	dead := func(id string) casestore.DeadLetter {
		d := deadCommand(id, 7, events.DeadMaxDeliveries, "refund.query: http status 502", time.Now())
		d.Headers[events.HeaderTraceParent] = []string{first}
		return d
	}
	ids := e.seed(dead("cmd-t1"), dead("cmd-t2"))
	s := deadletters.New(e.st, e.js, deadletters.Config{})
	retrier := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6},
		TraceFlags: trace.FlagsSampled})
	stream, err := e.js.Stream(context.Background(), events.DefaultCommandStreamName)
	if err != nil {
		t.Fatal(err)
	}
	for i, ctx := range []context.Context{trace.ContextWithSpanContext(context.Background(), retrier), context.Background()} {
		r, err := s.Retry(ctx, ids[i], deadletters.RetryOptions{Operator: "olga"})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := stream.GetMsg(context.Background(), r.Ack.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		want := ""
		if i == 0 {
			want = "00-" + retrier.TraceID().String() + "-" + retrier.SpanID().String() + "-01"
		}
		if got := raw.Header.Get(events.HeaderTraceParent); got != want {
			t.Errorf("retry %d: traceparent %q; want %q (the retrier's span, if any)", i+1, got, want)
		}
		if got := raw.Header.Get(events.HeaderRetryTraceParent); got != first {
			t.Errorf("retry %d: %s %q; want the trace it died in, %q", i+1, events.HeaderRetryTraceParent, got, first)
		}
	}
}
