package events_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
)

func TestEnsureWorkStreams(t *testing.T) {
	ns := eventstest.Start(t)
	js := ns.JetStream()
	ctx := context.Background()
	cfg := events.DefaultWorkStreamsConfig()
	for i := range 2 {
		if err := events.EnsureWorkStreams(ctx, js, cfg); err != nil {
			t.Fatalf("EnsureWorkStreams #%d: %v", i+1, err)
		}
	}
	id := "cmd-00000001"
	subj := events.CommandSubject("taobao", "cancel", "taobao:123")
	for i := range 2 {
		ack, err := js.Publish(ctx, subj, []byte(`{}`), jetstream.WithMsgID(id))
		if err != nil {
			t.Fatal(err)
		}
		if ack.Stream != events.DefaultCommandStreamName || ack.Duplicate != (i == 1) {
			t.Errorf("publish #%d: %+v; want stream COMMANDS, duplicate=%v", i+1, ack, i == 1)
		}
	}
	ack, err := js.Publish(ctx, events.DeadLetterSubject("callbacks"), []byte(`{}`))
	if err != nil || ack.Stream != events.DefaultDeadLetterStreamName {
		t.Fatalf("dead letter publish: %+v, %v", ack, err)
	}
	bad := cfg
	bad.DeadLetterStream = bad.CommandStream
	if err := events.EnsureWorkStreams(ctx, js, bad); err == nil {
		t.Error("EnsureWorkStreams accepted identical stream names")
	}
	bad = cfg
	bad.Replicas = 0
	if err := events.EnsureWorkStreams(ctx, js, bad); err == nil {
		t.Error("EnsureWorkStreams accepted 0 replicas")
	}
}

// TestCommandSubjectNamesTheCase: a command's subject ends in its case's
// token, which CommandCaseFilter matches for every platform and kind and
// no other case's matches; a command naming no case keeps three tokens.
func TestCommandSubjectNamesTheCase(t *testing.T) {
	for _, c := range []struct{ key, subject string }{
		{"taobao:4410207788", "commands.taobao.cancel.taobao_4410207788"},
		{"case:12", "commands.taobao.cancel.case_12"},
		{"1688:a.b*c> d", "commands.taobao.cancel.1688_a_b_c__d"},
		{"", "commands.taobao.cancel"},
	} {
		if got := events.CommandSubject("taobao", "cancel", c.key); got != c.subject {
			t.Errorf("CommandSubject(taobao, cancel, %q) = %q; want %q", c.key, got, c.subject)
		}
	}
	filter := events.CommandCaseFilter("case:12")
	for subject, want := range map[string]bool{
		events.CommandSubject("taobao", "send_message", "case:12"): true,
		events.CommandSubject("1688", "resolve", "case:12"):        true,
		events.CommandSubject("taobao", "cancel", "case:123"):      false,
		events.CommandSubject("taobao", "cancel", ""):              false,
	} {
		if got := events.SubjectMatches(filter, subject); got != want {
			t.Errorf("%s matches %s: %v; want %v", filter, subject, got, want)
		}
	}
}

// FuzzCaseToken: whatever a case key holds, its token is one non-empty
// subject token, and its subject and filter are valid.
func FuzzCaseToken(f *testing.F) {
	for _, s := range []string{"", "taobao:1", "1688:x.y", "case:-1", "a b\tc", "*", ">", "订单", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		tok := events.CaseToken(key)
		if tok == "" || strings.ContainsAny(tok, ". \t\r\n*>") {
			t.Fatalf("CaseToken(%q) = %q: not one subject token", key, tok)
		}
		if filter := events.CommandCaseFilter(key); !events.ValidSubjectFilter(filter) ||
			(key != "" && !events.SubjectMatches(filter, events.CommandSubject("taobao", "cancel", key))) {
			t.Fatalf("key %q: filter %q does not match its own subject", key, filter)
		}
	})
}
