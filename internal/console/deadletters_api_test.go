package console

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/events"
)

// TestDeadLetterListAndRetryAnswers: the dead-letter list filters by
// discarded and reason (an older worker's spelling included) and gives
// each letter's headers; a bad filter is 400 naming its parameter. A
// retry answers what it published, a dry run what it would publish,
// publishing and marking nothing; a discard refuses dryRun. These are what
// refundctl reads through REFUNDHUB_URL.
func TestDeadLetterListAndRetryAnswers(t *testing.T) {
	s := newDLServer(t)
	ids := s.seed(deadCmd(1, 7, events.DeadMaxDeliveries, busy, t0), deadCmd(2, 8, events.DeadPermanentError, "bad", t0),
		deadCmd(3, 9, "permanent", "an older worker's spelling", t0))
	if r := s.apiPost(fmt.Sprintf("/api/v1/dead-letters/%d/discard", ids[1]), operatorToken, `{"note":"test"}`); r.status != 200 {
		t.Fatalf("discard = %d %s", r.status, r.body)
	}

	list := func(query string) []int64 {
		t.Helper()
		r := s.do("GET", "/api/v1/dead-letters"+query, viewerToken, nil)
		var page deadLettersJSON
		if err := json.Unmarshal([]byte(r.body), &page); err != nil || r.status != 200 {
			t.Fatalf("GET /api/v1/dead-letters%s = %d %s", query, r.status, r.body)
		}
		var got []int64
		for _, d := range page.DeadLetters {
			if len(d.Headers["Cmd-Kind"]) != 1 {
				t.Errorf("GET /api/v1/dead-letters%s: letter %d headers = %v; want its Cmd-Kind", query, d.ID, d.Headers)
			}
			got = append(got, d.ID)
		}
		return got
	}
	for _, tc := range []struct {
		query string
		want  []int64
	}{
		{"", ids},
		{"?discarded=false", []int64{ids[0], ids[2]}},
		{"?discarded=true", []int64{ids[1]}},
		{"?reason=permanent_error", []int64{ids[1], ids[2]}},
		{"?reason=permanent_error&discarded=false&pending=true", []int64{ids[2]}},
	} {
		if got := list(tc.query); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("GET /api/v1/dead-letters%s = ids %v; want %v", tc.query, got, tc.want)
		}
	}
	for _, q := range []string{"?discarded=yes", "?reason=nope"} {
		if r := s.do("GET", "/api/v1/dead-letters"+q, viewerToken, nil); r.status != 400 || errorCode(t, r.body) != CodeInvalidArgument {
			t.Errorf("GET /api/v1/dead-letters%s = %d %s; want 400 %s", q, r.status, r.body, CodeInvalidArgument)
		}
	}

	retry := fmt.Sprintf("/api/v1/dead-letters/%d/retry", ids[0])
	var dry retryAnswer
	r := s.apiPost(retry, operatorToken, `{"dryRun":true}`)
	if err := json.Unmarshal([]byte(r.body), &dry); err != nil || r.status != 200 {
		t.Fatalf("dry-run retry = %d %s", r.status, r.body)
	}
	if !dry.Retry.DryRun || dry.Retry.MsgID == "" || fmt.Sprint(dry.Retry.Headers[events.HeaderRetryBy]) != "[otto]" || dry.Retry.Stream != "" ||
		dry.State != "pending" || s.published() != 0 || !s.letter(ids[0]).RetriedAt.IsZero() {
		t.Errorf("dry-run retry = %s, %d published; want the message by otto (the token's account), nothing published or marked", r.body, s.published())
	}
	if r := s.apiPost(fmt.Sprintf("/api/v1/dead-letters/%d/discard", ids[0]), operatorToken, `{"note":"x","dryRun":true}`); r.status != 400 ||
		errorCode(t, r.body) != CodeInvalidArgument || !s.letter(ids[0]).DiscardedAt.IsZero() {
		t.Errorf("discard with dryRun = %d %s; want 400, nothing discarded", r.status, r.body)
	}
	var done retryAnswer
	r = s.apiPost(retry, operatorToken, "")
	if err := json.Unmarshal([]byte(r.body), &done); err != nil || r.status != 200 {
		t.Fatalf("retry = %d %s", r.status, r.body)
	}
	if done.Retry.DryRun || done.Retry.Stream != events.DefaultCommandStreamName || done.Retry.Sequence != 1 || done.State != "retried" ||
		done.Retry.MsgID == dry.Retry.MsgID || s.published() != 1 {
		t.Errorf("retry = %s, %d published; want published as seq 1 under a new message id, marked retried", r.body, s.published())
	}
	if at := s.letter(ids[0]).RetriedAt; at.IsZero() || time.Since(at) > time.Minute {
		t.Errorf("retried at %v; want now", at)
	}
}
