package opcommands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// TestPublish: a command is stored on its subject with its kind and
// operator in the headers and its id as Nats-Msg-Id, so publishing it
// again stores nothing new; with no stream for the subject the error
// names it.
func TestPublish(t *testing.T) {
	ns := eventstest.Start(t)
	js := ns.JetStream()
	ctx := context.Background()
	id, err := NewID()
	if err != nil || !regexp.MustCompile(`^cmd-[0-9a-f]{24}$`).MatchString(id) {
		t.Fatalf("NewID = %q, %v; want cmd- and 24 hex digits", id, err)
	}
	c := refundflow.Command{ID: id, Kind: refundflow.InputResolve, Platform: refundflow.PlatformTaobao, CaseID: 7,
		Resolve: &refundflow.Resolve{Action: refundflow.ResolveClose, Note: "done"}, Operator: "olga", IssuedAt: time.Now().UTC()}
	var pe *PublishError
	if _, err := Publish(ctx, js, c); !errors.As(err, &pe) || pe.Subject != events.CommandSubject("taobao", "resolve", "case:7") {
		t.Fatalf("Publish without a stream = %v; want a *PublishError naming the subject", err)
	}
	if err := events.EnsureWorkStreams(ctx, js, events.DefaultWorkStreamsConfig()); err != nil {
		t.Fatal(err)
	}
	ack, err := Publish(ctx, js, c)
	if err != nil || ack.Duplicate || ack.Subject != events.CommandSubject("taobao", "resolve", "case:7") {
		t.Fatalf("Publish = %+v, %v; want stored on the resolve subject", ack, err)
	}
	again, err := Publish(ctx, js, c)
	if err != nil || !again.Duplicate || again.Sequence != ack.Sequence {
		t.Errorf("Publish again = %+v, %v; want the first message, as a duplicate", again, err)
	}
	stream, err := js.Stream(ctx, ack.Stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	for h, want := range map[string]string{"Nats-Msg-Id": id, events.HeaderCommandKind: "resolve", events.HeaderCommandIssuer: "olga"} {
		if got := m.Header.Get(h); got != want {
			t.Errorf("header %s = %q; want %q", h, got, want)
		}
	}
	var back refundflow.Command
	if err := json.Unmarshal(m.Data, &back); err != nil || back.ID != id || back.Resolve == nil || back.Resolve.Note != "done" {
		t.Errorf("stored command = %+v, %v; want the command as published", back, err)
	}
}

// TestAwaitOutcome: a command without a verdict is ErrPending after the
// wait; one with a verdict is returned.
func TestAwaitOutcome(t *testing.T) {
	ctx := context.Background()
	st, err := casestore.Open(ctx, filepath.Join(t.TempDir(), "refunds.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := AwaitOutcome(ctx, st, "cmd-none-yet", 50*time.Millisecond, 10*time.Millisecond); !errors.Is(err, ErrPending) {
		t.Errorf("AwaitOutcome without a verdict = %v; want ErrPending", err)
	}
	if err := st.Update(ctx, func(tx *casestore.Tx) error {
		return tx.RecordCommandOutcome(ctx, casestore.CommandOutcome{CommandID: "cmd-decided", Verdict: casestore.VerdictApplied, CaseID: 3})
	}); err != nil {
		t.Fatal(err)
	}
	o, err := AwaitOutcome(ctx, st, "cmd-decided", time.Second, 10*time.Millisecond)
	if err != nil || o.Verdict != casestore.VerdictApplied || o.CaseID != 3 {
		t.Errorf("AwaitOutcome = %+v, %v; want applied on case 3", o, err)
	}
}

// TestNotStored: what a failed Publish proves. A command that failed
// before it was published (it would not encode) or that the client would
// not send is certainly not stored; one sent and not confirmed may be.
// (A failure before publishing was called possibly stored.)
func TestNotStored(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"would not encode", fmt.Errorf("%w: %w", ErrNotEncoded, &json.UnsupportedValueError{Str: "NaN"}), true},
		{"not Publish's", errors.New("something else"), false},
		{"no stream", &PublishError{Err: jetstream.ErrNoStreamResponse}, true},
		{"refused by JetStream", &PublishError{Err: &jetstream.APIError{Code: 503, ErrorCode: 10077}}, true},
		{"too large", &PublishError{Err: nats.ErrMaxPayload}, true},
		{"connection draining", &PublishError{Err: nats.ErrConnectionDraining}, true},
		{"reconnect buffer full", &PublishError{Err: nats.ErrReconnectBufExceeded}, true},
		{"no acknowledgement in time", &PublishError{Err: context.DeadlineExceeded}, false},
		{"its id being stored by an earlier publish", &PublishError{Err: &jetstream.APIError{Code: 409, ErrorCode: 10158,
			Description: "duplicate message id is in process"}}, false},
		{"connection closed while waiting", &PublishError{Err: nats.ErrConnectionClosed}, false},
		{"no error", nil, false},
	} {
		if got := NotStored(tc.err); got != tc.want {
			t.Errorf("%s: NotStored(%v) = %v; want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
