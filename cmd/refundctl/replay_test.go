package main

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/events"
)

// replayOut is the --json output of replay.
type replayOut struct {
	Source     string         `json:"source"`
	To         string         `json:"to"`
	DryRun     bool           `json:"dryRun"`
	Count      int            `json:"count"`
	Duplicates int            `json:"duplicates"`
	Items      []replayedJSON `json:"items"`
}

func seqs(o replayOut) []int64 {
	var out []int64
	for _, it := range o.Items {
		out = append(out, int64(it.Seq))
	}
	return out
}

// seedStream posts three callbacks through the real receiver and returns a
// time between the second and the third.
func seedStream(t *testing.T, e *env) time.Time {
	t.Helper()
	e.mustRun("trigger", "create", "--platform", "1688", "--order", "1")
	e.mustRun("trigger", "pay", "--platform", "taobao", "--order", "2")
	mark := time.Now()
	e.mustRun("trigger", "refund", "--platform", "1688", "--order", "3", "--refund", "TQ3", "--status", "WAIT_SELLER_AGREE")
	if n := e.streamCount(events.DefaultStreamName); n != 3 {
		t.Fatalf("seeded %d callbacks; want 3", n)
	}
	return mark
}

func (e *env) storedMsg(seq uint64) *nats.Msg {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), events.DefaultStreamName)
	if err != nil {
		e.t.Fatal(err)
	}
	m, err := s.GetMsg(context.Background(), seq)
	if err != nil {
		e.t.Fatalf("get seq %d: %v", seq, err)
	}
	return &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}
}

func TestReplayFromStream(t *testing.T) {
	e := newEnv(t)
	e.startReceiver()
	mark := seedStream(t, e)
	got := e.capture("callbacks.>")
	posted := func() int { return len(e.recv.requests()) }

	t.Run("sequence range into the stream", func(t *testing.T) {
		var o replayOut
		decodeJSON(t, e.mustRun("replay", "--from-seq", "2", "--to-seq", "3", "--to", "stream", "--json").stdout, &o)
		if o.Count != 2 || o.Duplicates != 2 || !equalIDs(seqs(o), []int64{2, 3}) || o.To != "stream" || o.Source != "stream CALLBACKS" {
			t.Errorf("replay = %+v; want seqs 2 and 3, both duplicates inside the window", o)
		}
		msgs := got.waitN(t, 2)
		for i, m := range msgs {
			want := e.storedMsg(uint64(i + 2))
			if m.Subject != want.Subject || string(m.Data) != string(want.Data) {
				t.Errorf("republished %s %s; want %s %s", m.Subject, m.Data, want.Subject, want.Data)
			}
			for _, h := range []string{events.HeaderMsgID, events.HeaderPlatform, events.HeaderType, events.HeaderReceivedAt, events.HeaderRequestID} {
				if m.Header.Get(h) == "" || m.Header.Get(h) != want.Header.Get(h) {
					t.Errorf("header %s = %q; want the original %q", h, m.Header.Get(h), want.Header.Get(h))
				}
			}
		}
		if n := e.streamCount(events.DefaultStreamName); n != 3 {
			t.Errorf("stream holds %d; want 3 (duplicates dropped)", n)
		}
	})

	t.Run("time range through the receiver", func(t *testing.T) {
		before := posted()
		var o replayOut
		decodeJSON(t, e.mustRun("replay", "--since", mark.UTC().Format(time.RFC3339Nano), "--json").stdout, &o)
		if !equalIDs(seqs(o), []int64{3}) || o.Items[0].Status != 200 || o.To != "receiver" {
			t.Fatalf("replay --since = %+v; want seq 3 posted", o)
		}
		reqs := e.recv.requests()[before:]
		if len(reqs) != 1 || string(reqs[0].Body) != string(e.storedMsg(3).Data) || reqs[0].Path != "/callbacks/"+testToken ||
			reqs[0].ContentType != "application/json" {
			t.Errorf("receiver got %d requests; want the stored bytes of seq 3", len(reqs))
		}
		decodeJSON(t, e.mustRun("replay", "--until", mark.UTC().Format(time.RFC3339Nano), "--dry-run", "--json").stdout, &o)
		if !equalIDs(seqs(o), []int64{1, 2}) || !o.DryRun || o.Items[0].Body != string(e.storedMsg(1).Data) || o.Items[0].StoredAt == "" {
			t.Errorf("replay --until --dry-run = %+v; want seqs 1, 2 with bodies", o)
		}
		if posted() != before+1 {
			t.Errorf("dry run posted")
		}
	})

	t.Run("subject filter", func(t *testing.T) {
		var o replayOut
		decodeJSON(t, e.mustRun("replay", "--subject", "callbacks.1688.>", "--json").stdout, &o)
		if !equalIDs(seqs(o), []int64{1, 3}) {
			t.Errorf("replay --subject callbacks.1688.> = %v; want 1, 3", seqs(o))
		}
		decodeJSON(t, e.mustRun("replay", "--subject", "callbacks.*.ORDER_PAY_SUCCESS", "--subject", "callbacks.1688.ORDER_CREATE", "--dry-run", "--json").stdout, &o)
		if !equalIDs(seqs(o), []int64{1, 2}) {
			t.Errorf("two subject filters = %v; want 1, 2", seqs(o))
		}
		decodeJSON(t, e.mustRun("replay", "--subject", "parked.callbacks.>", "--json").stdout, &o)
		if o.Count != 0 || o.Items == nil {
			t.Errorf("no parked callbacks: %+v", o)
		}
	})

	t.Run("human output, limit, empty range", func(t *testing.T) {
		var o replayOut
		r := e.mustRun("replay", "--all")
		lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "seq 1\tcallbacks.1688.ORDER_CREATE\t") || !strings.HasSuffix(lines[0], "receiver 200") ||
			lines[3] != "replayed 3 callbacks from stream CALLBACKS to the receiver" {
			t.Errorf("replay --all:\n%s", r.stdout)
		}
		r = e.mustRun("replay", "--all", "--limit", "2", "--to", "stream")
		if !strings.Contains(r.stdout, "duplicate of stream seq 1") || !strings.HasSuffix(r.stdout, "replayed 2 callbacks from stream CALLBACKS to the stream (2 already stored: duplicates)\n") {
			t.Errorf("replay --limit 2 --to stream:\n%s", r.stdout)
		}
		decodeJSON(t, e.mustRun("replay", "--seq", "2", "--json").stdout, &o)
		if !equalIDs(seqs(o), []int64{2}) {
			t.Errorf("replay --seq 2 = %v", seqs(o))
		}
		r = e.mustRun("replay", "--from-seq", "10")
		if r.stdout != "replayed 0 callbacks from stream CALLBACKS to the receiver\n" {
			t.Errorf("empty range: %q", r.stdout)
		}
		r = e.mustRun("replay", "--all", "--dry-run")
		if !strings.Contains(r.stdout, "would send") || !strings.HasSuffix(r.stdout, "dry run: would replay 3 callbacks from stream CALLBACKS to the receiver\n") {
			t.Errorf("dry run:\n%s", r.stdout)
		}
	})

	t.Run("progress bar", func(t *testing.T) {
		r := e.mustRun("replay", "--all", "--dry-run", "--progress")
		if !strings.Contains(r.stderr, "replay (dry run)") || !strings.Contains(r.stderr, "3/3") {
			t.Errorf("stderr = %q; want a progress bar", r.stderr)
		}
		if strings.Contains(r.stdout, "would send") {
			t.Errorf("per-callback lines printed under the progress bar")
		}
	})

	t.Run("bounded by the last sequence at start", func(t *testing.T) {
		// A message without Nats-Msg-Id is stored again on every replay into
		// the stream; the replay must not read its own output.
		if _, err := e.js.PublishMsg(t.Context(), &nats.Msg{Subject: "callbacks.1688.ORDER_CREATE", Data: []byte(`{}`), Header: nats.Header{"Cb-Type": {"ORDER_CREATE"}}}); err != nil {
			t.Fatal(err)
		}
		var o replayOut
		decodeJSON(t, e.mustRun("replay", "--all", "--to", "stream", "--json").stdout, &o)
		if o.Count != 4 || o.Duplicates != 3 || o.Items[3].Duplicate || o.Items[3].StreamSeq != 5 {
			t.Errorf("replay = %+v; want 4 items, the id-less one stored as seq 5", o)
		}
		if n := e.streamCount(events.DefaultStreamName); n != 5 {
			t.Errorf("stream holds %d; want 5", n)
		}
	})
}

func TestReplayFromFile(t *testing.T) {
	e := newEnv(t)
	e.startReceiver()
	dir := t.TempDir()
	known := `{"messageType":"ORDER_CREATE","messageBody":"{\"orderId\":\"3305075341149134260\",\"orderNo\":\"PO202605200001\",\"orderStatus\":\"WAITING_FOR_PAYMENT\",\"payStatus\":1,\"totalAmount\":10000,\"shippingFee\":500,\"productAmount\":9500,\"refundAmount\":0,\"refundStatus\":null,\"closeReason\":null,\"tbCreateTime\":\"2026-05-20 15:40:00\",\"payTime\":null}","messagePlatform":1,"timestamp":"1779263269913"}`
	unknown := `{"messageType":"TB_SOMETHING_NEW","messageBody":"{\"orderId\":\"9\"}","messagePlatform":0,"timestamp":1779263269999}`
	file := filepath.Join(dir, "callbacks.jsonl")
	if err := os.WriteFile(file, []byte("\xef\xbb\xbf"+known+"\r\n\n  "+unknown+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	parser, _ := callback.NewParser(callback.DefaultTypeNames())
	evKnown, _ := parser.Parse([]byte(known))
	evUnknown, _ := parser.Parse([]byte(unknown))

	got := e.capture("callbacks.>", "parked.callbacks.>")
	r := e.mustRun("replay", "--file", file, "--dry-run")
	if !strings.Contains(r.stdout, "line 1\tcallbacks.1688.ORDER_CREATE\t"+evKnown.ID) || !strings.Contains(r.stdout, "line 3\tparked.callbacks.taobao\t"+evUnknown.ID) {
		t.Errorf("dry run:\n%s", r.stdout)
	}
	if e.streamCount(events.DefaultStreamName) != 0 || len(e.recv.requests()) != 0 {
		t.Fatalf("dry run sent something")
	}

	var o replayOut
	decodeJSON(t, e.mustRun("replay", "--file", file, "--to", "stream", "--json").stdout, &o)
	if o.Count != 2 || o.Duplicates != 0 || o.Items[0].Line != 1 || o.Items[1].Line != 3 || o.Source != "file "+file {
		t.Errorf("replay --file --to stream = %+v", o)
	}
	cbs := got.waitN(t, 2)
	sort.Slice(cbs, func(i, j int) bool { return cbs[i].Subject < cbs[j].Subject }) // two subscriptions: no order between them
	if len(cbs) != 2 {
		t.Fatalf("captured %d callbacks; want 2", len(cbs))
	}
	if m := cbs[0]; m.Subject != "callbacks.1688.ORDER_CREATE" || string(m.Data) != known || m.Header.Get(events.HeaderMsgID) != evKnown.ID ||
		m.Header.Get(events.HeaderPlatform) != "1688" || m.Header.Get(events.HeaderType) != "ORDER_CREATE" || m.Header.Get(events.HeaderReceivedAt) == "" {
		t.Errorf("first: %s %v", m.Subject, m.Header)
	}
	if m := cbs[1]; m.Subject != "parked.callbacks.taobao" || string(m.Data) != unknown || m.Header.Get(events.HeaderParkReason) != string(callback.ParkUnknownType) ||
		m.Header.Get(events.HeaderMsgID) != evUnknown.ID {
		t.Errorf("second: %s %v", m.Subject, m.Header)
	}

	// Through the receiver: the exact bytes; the receiver computes the same
	// ids, so the stream stores nothing new.
	decodeJSON(t, e.mustRun("replay", "--file", file, "--json").stdout, &o)
	reqs := e.recv.requests()
	if o.Count != 2 || len(reqs) != 2 || string(reqs[0].Body) != known || string(reqs[1].Body) != unknown {
		t.Errorf("replay --file --to receiver: %+v, %d requests", o, len(reqs))
	}
	if n := e.streamCount(events.DefaultStreamName); n != 2 {
		t.Errorf("stream holds %d; want 2 (replayed callbacks deduped)", n)
	}

	// A bad line fails the whole file before anything is sent.
	bad := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(bad, []byte(known+"\n{\"messageType\":\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.wantErr(2, "replay file "+bad+": line 2: invalid_json", "replay", "--file", bad)
	if err := os.WriteFile(bad, []byte(known+"\n"+`{"messageType":"X","messageBody":"{}","messagePlatform":3,"timestamp":"1"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.wantErr(2, "line 2: invalid_platform", "replay", "--file", bad, "--to", "stream")
	e.wantErr(1, "replay file: open", "replay", "--file", filepath.Join(dir, "missing.jsonl"))
	if len(e.recv.requests()) != 2 || e.streamCount(events.DefaultStreamName) != 2 {
		t.Errorf("bad files sent something")
	}
}

func TestReplayErrors(t *testing.T) {
	e := newEnv(t)
	e.startReceiver()
	seedStream(t, e)
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	tests := []struct {
		name string
		code int
		want string
		args []string
	}{
		{"no selection", 2, "say what to replay", nil},
		{"file and range", 2, "--file replays a file: do not combine", []string{"--file", "x.jsonl", "--since", "1h"}},
		{"bad destination", 2, `--to "kafka": want receiver or stream`, []string{"--all", "--to", "kafka"}},
		{"bad time", 2, `--since "yesterday": want an RFC 3339 time`, []string{"--since", "yesterday"}},
		{"negative duration", 2, "a duration must not be negative", []string{"--since", "-2h"}},
		{"inverted time range", 2, "is not before --until", []string{"--since", "1h", "--until", "2h"}},
		{"future start", 2, "is in the future", []string{"--since", future}},
		{"mixed ranges", 2, "not both", []string{"--since", "1h", "--from-seq", "2"}},
		{"inverted seq range", 2, "--from-seq 5 is after --to-seq 2", []string{"--from-seq", "5", "--to-seq", "2"}},
		{"seq and range", 2, "--seq is one message", []string{"--seq", "2", "--to-seq", "3"}},
		{"malformed seq", 2, `invalid argument "two" for "--from-seq"`, []string{"--from-seq", "two"}},
		{"bad subject", 2, `--subject "callbacks.>.x"`, []string{"--subject", "callbacks.>.x"}},
		{"empty subject token", 2, `--subject "callbacks..x"`, []string{"--subject", "callbacks..x"}},
		{"negative limit", 2, "--limit -1", []string{"--all", "--limit", "-1"}},
		{"stray argument", 2, `unknown command "now"`, []string{"now"}},
		{"unknown stream", 1, "stream NOPE not found", []string{"--all", "--stream", "NOPE"}},
		{"nats down", 1, "connect to NATS at nats://127.0.0.1:1", []string{"--all", "--nats-url", "nats://127.0.0.1:1"}},
		{"receiver down", 1, "seq 1: post to http://127.0.0.1:1/callbacks/***", []string{"--all", "--receiver-url", "http://127.0.0.1:1", "--timeout", "2s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { e.wantErr(tt.code, tt.want, append([]string{"replay"}, tt.args...)...) })
	}
	e.vars["CALLBACK_TOKEN"] = ""
	e.wantErr(1, "CALLBACK_TOKEN is not set", "replay", "--all")
	// A dry run needs no token.
	e.mustRun("replay", "--all", "--dry-run")
	e.vars["CALLBACK_TOKEN"] = "another-token-0123456789"
	r := e.wantErr(1, "seq 1: receiver answered 401 Unauthorized", "replay", "--all")
	if strings.Contains(r.line(), "another-token") {
		t.Errorf("error shows the token: %s", r.line())
	}
	if n := e.streamCount(events.DefaultStreamName); n != 3 {
		t.Errorf("stream holds %d after failed replays; want 3", n)
	}
}

// TestReplayManyBatches covers ranges longer than one fetch batch (100).
func TestReplayManyBatches(t *testing.T) {
	e := newEnv(t)
	const n = 250
	for i := 1; i <= n; i++ {
		platform := "1688"
		if i%2 == 0 {
			platform = "taobao"
		}
		m := &nats.Msg{Subject: events.AcceptedSubject(platform, "ORDER_CREATE"), Data: []byte(`{"i":` + strconv.Itoa(i) + `}`), Header: nats.Header{}}
		if _, err := e.js.PublishMsg(t.Context(), m, jetstream.WithMsgID("id-"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	check := func(args []string, first, last, step int) {
		t.Helper()
		var o replayOut
		decodeJSON(t, e.mustRun(append([]string{"replay", "--dry-run", "--json"}, args...)...).stdout, &o)
		var want []int64
		for s := first; s <= last; s += step {
			want = append(want, int64(s))
		}
		if got := seqs(o); !equalIDs(got, want) {
			t.Errorf("replay %v: %d items (%v…); want %d from %d to %d", args, len(got), got[:min(len(got), 5)], len(want), first, last)
		}
	}
	check([]string{"--all"}, 1, n, 1)
	check([]string{"--from-seq", "50", "--to-seq", "199"}, 50, 199, 1)
	check([]string{"--subject", "callbacks.taobao.>"}, 2, n, 2)
	check([]string{"--subject", "callbacks.1688.>", "--from-seq", "101", "--limit", "60"}, 101, 219, 2)

	var o replayOut
	decodeJSON(t, e.mustRun("replay", "--all", "--to", "stream", "--json").stdout, &o)
	if o.Count != n || o.Duplicates != n {
		t.Errorf("replay into the stream: count %d duplicates %d; want %d and %d", o.Count, o.Duplicates, n, n)
	}
}
