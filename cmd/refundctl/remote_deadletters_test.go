package main

import (
	"context"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/opcommands"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// TestRemoteDeadLetters runs refundctl dead-letters against the console's
// API over real HTTP, on dead letters the real worker made (commands for
// cases and an order that do not exist, bytes that are no command): list
// and show print the same bytes as on the host, text and --json; retry
// (--dry-run, --force) and discard act under the token's account, not
// --operator; every refusal has the host's words and exit status 4, a
// missing letter exit 1; a viewer reads but cannot act. No token appears
// in any output (remoteRun).
func TestRemoteDeadLetters(t *testing.T) {
	e := newEnv(t)
	startStack(e)
	url := startConsole(e)
	remote := func(args ...string) result { return e.remoteRun(url, consoleOperatorToken, args...) }
	ctx := context.Background()

	// The worker's dead letters: two commands for missing cases
	// (permanent_error), one for an order without a case (unknown_case,
	// after WORKER_UNKNOWN_CASE_WAIT), bytes that are no command (invalid_command,
	// not UTF-8: shown as base64).
	for _, c := range []refundflow.Command{
		{Kind: refundflow.InputCancel, Platform: "taobao", CaseID: 4242},
		{Kind: refundflow.InputCancel, Platform: "taobao", CaseID: 4343},
		{Kind: refundflow.InputCancel, Platform: "1688", OrderID: "3305075341149139999"},
	} {
		id, err := opcommands.NewID()
		if err != nil {
			t.Fatal(err)
		}
		c.ID, c.Operator, c.IssuedAt = id, "alice", time.Now().UTC().Truncate(time.Millisecond)
		if _, err := opcommands.Publish(ctx, e.js, c); err != nil {
			t.Fatalf("publish %+v: %v", c, err)
		}
	}
	junk := &nats.Msg{Subject: events.CommandSubject("1688", "cancel", ""), Data: []byte{0xff, 0xfe, 'x', 0}, Header: nats.Header{}}
	junk.Header.Set(events.HeaderMsgID, "junk-0001")
	junk.Header.Set("X-Test", "not a command")
	if _, err := e.js.PublishMsg(ctx, junk); err != nil {
		t.Fatalf("publish junk: %v", err)
	}
	st := e.openStore()
	byReason := waitDeadLetters(t, st, 4)
	perm, unknown, invalid := byReason["permanent_error"], byReason["unknown_case"], byReason["invalid_command"]
	if len(perm) != 2 || len(unknown) != 1 || len(invalid) != 1 {
		t.Fatalf("dead letters by reason = %v; want 2 permanent_error, 1 unknown_case, 1 invalid_command", byReason)
	}
	id := func(n int64) string { return strconv.FormatInt(n, 10) }

	// same runs args both ways and wants the same output and exit status.
	same := func(args ...string) result {
		t.Helper()
		d, r := e.run(args...), remote(args...)
		if d.code() != r.code() || d.stdout != r.stdout || d.stderr != r.stderr || d.line() != r.line() {
			t.Errorf("refundctl %v through the console = exit %d\n%s%s%s\nwant as on the host, exit %d\n%s%s%s",
				args, r.code(), r.stdout, r.stderr, r.line(), d.code(), d.stdout, d.stderr, d.line())
		}
		return d
	}
	reads := func() {
		t.Helper()
		for _, args := range [][]string{
			{"dead-letters", "list"}, {"dl", "list", "--json"}, {"dead-letters", "list", "--pending", "--json"},
			{"dead-letters", "list", "--all"}, {"dead-letters", "list", "--discarded", "--json"},
			{"dead-letters", "list", "--reason", "permanent_error"}, {"dead-letters", "list", "--limit", "1", "--after-id", id(perm[0])},
		} {
			if r := same(args...); r.err != nil {
				t.Errorf("refundctl %v: exit %d (%s)", args, r.code(), r.line())
			}
		}
		all, err := st.DeadLetters(ctx, casestore.DeadLetterFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range all {
			same("dead-letters", "show", id(d.ID))
			same("dead-letters", "show", id(d.ID), "--json")
		}
	}
	reads()
	if out := e.run("dead-letters", "show", id(invalid[0])).stdout; !strings.Contains(out, "base64:") || !strings.Contains(out, "X-Test:") {
		t.Errorf("show of the invalid_command letter printed\n%s\nwant its headers and its payload as base64", out)
	}
	if r := same("dead-letters", "show", "999"); r.code() != 1 || r.line() != "refundctl: dead letter 999 not found" {
		t.Errorf("show 999 = exit %d %q; want 1, not found", r.code(), r.line())
	}
	if r := same("dead-letters", "discard", id(perm[0])); r.code() != 2 {
		t.Errorf("discard without --note = exit %d (%s); want 2", r.code(), r.line())
	}

	// Refused unforced, in the host's words (--force, not the console's
	// force box); a dry run publishes nothing, and names the token's
	// account, not --operator.
	n := e.streamCount(events.DefaultCommandStreamName)
	if r := same("dead-letters", "retry", id(perm[0])); r.code() != exitRefused || !strings.Contains(r.line(), "retry with --force once") {
		t.Errorf("retry of a permanent failure = exit %d %q; want 4 naming --force", r.code(), r.line())
	}
	d := e.run("dead-letters", "retry", id(unknown[0]), "--dry-run", "--json")
	r := remote("dead-letters", "retry", id(unknown[0]), "--dry-run", "--json", "--operator", "mallory")
	var dj, rj retried
	decodeJSON(t, d.stdout, &dj)
	decodeJSON(t, r.stdout, &rj)
	if by := rj.Headers[events.HeaderRetryBy]; !reflect.DeepEqual(by, []string{"olga"}) || !rj.DryRun {
		t.Errorf("remote retry --dry-run: %s = %v, dryRun %v; want olga (the token's account), a dry run", events.HeaderRetryBy, by, rj.DryRun)
	}
	if dj, rj = maskRetry(dj), maskRetry(rj); !reflect.DeepEqual(dj, rj) {
		t.Errorf("retry --dry-run --json through the console = %+v; want as on the host %+v", rj, dj)
	}
	d, r = e.run("dead-letters", "retry", id(unknown[0]), "--dry-run"), remote("dead-letters", "retry", id(unknown[0]), "--dry-run")
	if retrySuffix.ReplaceAllString(r.stdout, "-retry-X") != retrySuffix.ReplaceAllString(d.stdout, "-retry-X") || !strings.HasPrefix(r.stdout, "would republish") {
		t.Errorf("retry --dry-run through the console printed %q; want as on the host %q", r.stdout, d.stdout)
	}
	if got := e.streamCount(events.DefaultCommandStreamName); got != n {
		t.Errorf("COMMANDS holds %d messages after refusals and dry runs; want %d", got, n)
	}

	// Discard: one letter each way, printed alike, under the token's
	// account remotely; then every action on it is refused alike.
	d = e.run("dead-letters", "discard", id(perm[1]), "--note", "test command", "--operator", "olga")
	r = remote("dead-letters", "discard", id(perm[0]), "--note", "test command", "--operator", "mallory")
	if d.err != nil || r.err != nil || maskDL(r.stdout) != maskDL(d.stdout) || !strings.Contains(r.stdout, " by olga: test command") {
		t.Errorf("discard through the console = exit %d %q (%s); want as on the host %q, by olga", r.code(), r.stdout, r.line(), d.stdout)
	}
	for _, args := range [][]string{
		{"dead-letters", "retry", id(perm[0])}, {"dead-letters", "retry", id(perm[0]), "--force"},
		{"dead-letters", "retry", id(perm[0]), "--dry-run"}, {"dead-letters", "discard", id(perm[0]), "--note", "again"},
	} {
		if r := same(args...); r.code() != exitRefused || !strings.Contains(r.line(), "by olga (test command)") {
			t.Errorf("refundctl %v on a discarded letter = exit %d %q; want 4, naming the discard", args, r.code(), r.line())
		}
	}

	// Retry: republished under the token's account; then refused alike.
	r = remote("dead-letters", "retry", id(unknown[0]), "--operator", "mallory")
	m := e.lastMsg(events.DefaultCommandStreamName, "commands.1688.cancel.1688_3305075341149139999")
	if r.err != nil || !strings.HasPrefix(r.stdout, "republished dead letter "+id(unknown[0])+" to commands.1688.cancel.1688_3305075341149139999 (stream COMMANDS seq ") ||
		m.Header.Get(events.HeaderRetryBy) != "olga" || m.Header.Get(events.HeaderRetryOf) != id(unknown[0]) {
		t.Errorf("remote retry = exit %d %q (%s), published %v; want republished by olga", r.code(), r.stdout, r.line(), m.Header)
	}
	for _, args := range [][]string{{"dead-letters", "retry", id(unknown[0])}, {"dead-letters", "discard", id(unknown[0]), "--note", "late"}} {
		if r := same(args...); r.code() != exitRefused || !strings.Contains(r.line(), "retried at") {
			t.Errorf("refundctl %v on a retried letter = exit %d %q; want 4", args, r.code(), r.line())
		}
	}
	var forced retried
	r = remote("dead-letters", "retry", id(invalid[0]), "--force", "--json")
	decodeJSON(t, r.stdout, &forced)
	if r.err != nil || forced.ID != invalid[0] || forced.DryRun || forced.Stream != events.DefaultCommandStreamName || forced.Sequence == 0 {
		t.Errorf("remote retry --force --json = exit %d %+v (%s); want published to COMMANDS", r.code(), forced, r.line())
	}

	// A viewer reads, and cannot act.
	for _, args := range [][]string{{"dead-letters", "retry", id(perm[1])}, {"dead-letters", "discard", id(unknown[0]), "--note", "x"}} {
		r := e.remoteRun(url, consoleViewerToken, args...)
		if r.code() != 1 || r.line() != "refundctl: console: forbidden (403): retrying or discarding dead letters needs the operator role" {
			t.Errorf("viewer refundctl %v = exit %d %q; want 1, forbidden", args, r.code(), r.line())
		}
	}

	// Both retries die again (the order still has no case, the bytes still
	// do not parse): the new letters, naming olga, read alike too.
	byReason = waitDeadLetters(t, st, 6)
	if len(byReason["unknown_case"]) != 2 || len(byReason["invalid_command"]) != 2 {
		t.Fatalf("dead letters by reason after the retries = %v; want a second unknown_case and invalid_command", byReason)
	}
	// The viewer reads the list as the operator does. Compared only now
	// that the retries' new letters are in: before, one could land
	// between the two reads (it did, once in a full run).
	if v, o := e.remoteRun(url, consoleViewerToken, "dead-letters", "list", "--all"), remote("dead-letters", "list", "--all"); v.err != nil || v.stdout != o.stdout {
		t.Errorf("viewer dead-letters list = exit %d %q (%s); want the operator's %q", v.code(), v.stdout, v.line(), o.stdout)
	}
	reads()
	if out := remote("dead-letters", "show", id(byReason["unknown_case"][1])).stdout; !strings.Contains(out, events.HeaderRetryBy+":") || !strings.Contains(out, "olga") {
		t.Errorf("show of the retried command's new dead letter printed\n%s\nwant its %s header, olga", out, events.HeaderRetryBy)
	}
}

// waitDeadLetters waits until the store holds n dead letters and returns
// their ids by reason, in id order.
func waitDeadLetters(t *testing.T, st *casestore.Store, n int) map[string][]int64 {
	t.Helper()
	var all []casestore.DeadLetter
	eventstest.WaitFor(t, 30*time.Second, strconv.Itoa(n)+" dead letters", func() bool {
		var err error
		all, err = st.DeadLetters(context.Background(), casestore.DeadLetterFilter{})
		return err == nil && len(all) >= n
	})
	out := map[string][]int64{}
	for _, d := range all {
		out[d.Reason] = append(out[d.Reason], d.ID)
	}
	return out
}

// retrySuffix is the random part of a retry's message id.
var retrySuffix = regexp.MustCompile(`-retry-[0-9a-f]+`)

// maskRetry blanks what differs between two dry runs of one retry: the
// random part of the new message id, and who retries it.
func maskRetry(r retried) retried {
	r.MsgID = retrySuffix.ReplaceAllString(r.MsgID, "-retry-X")
	h := make(map[string][]string, len(r.Headers))
	for k, v := range r.Headers {
		h[k] = v
	}
	h[events.HeaderMsgID] = []string{r.MsgID}
	delete(h, events.HeaderRetryBy)
	r.Headers = h
	return r
}

// maskDL blanks the dead letter ids and times in a line of output.
func maskDL(s string) string {
	s = regexp.MustCompile(`dead letter \d+`).ReplaceAllString(s, "dead letter N")
	s = regexp.MustCompile(`\.case_\d+`).ReplaceAllString(s, ".case_N")
	return regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`).ReplaceAllString(s, "T")
}
