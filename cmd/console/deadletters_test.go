package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/opcommands"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// apiPost posts a JSON body with a bearer token.
func apiPost(t *testing.T, u, token, body string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b)}
}

// TestDeadLetterRetryThroughTheWorker: a command the real worker gives up
// on (a case that does not exist) is a dead letter the console groups; its
// retry is refused without force, and with it goes back to the worker,
// which gives up again: the new dead letter's history names the letter it
// retried and the operator who did. A bulk discard with the right count
// then settles both, through the console run as cmd/console runs it.
func TestDeadLetterRetryThroughTheWorker(t *testing.T) {
	s := startStack(t)
	base, _ := startConsole(t, consoleEnv(s.natsURL, s.dbPath))
	st, err := casestore.OpenReadOnly(context.Background(), s.dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	id, err := opcommands.NewID()
	if err != nil {
		t.Fatal(err)
	}
	cmd := refundflow.Command{ID: id, Kind: refundflow.InputCancel, Platform: refundflow.Platform("taobao"), CaseID: 4242,
		Operator: "olga", IssuedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if _, err := opcommands.Publish(context.Background(), s.js, cmd); err != nil {
		t.Fatal(err)
	}
	var dead []casestore.DeadLetter
	waitDead := func(n int) {
		t.Helper()
		eventstest.WaitFor(t, 20*time.Second, fmt.Sprintf("%d dead letter(s)", n), func() bool {
			dead, err = st.DeadLetters(context.Background(), casestore.DeadLetterFilter{})
			return err == nil && len(dead) == n
		})
	}
	waitDead(1)
	first := dead[0]

	r := get(t, base+"/api/v1/dead-letters/groups", viewerToken)
	var groups struct {
		Groups []struct {
			Reason string  `json:"reason"`
			Count  int     `json:"count"`
			Cases  []int64 `json:"cases"`
		} `json:"groups"`
	}
	if err := json.Unmarshal([]byte(r.body), &groups); err != nil || len(groups.Groups) != 1 || groups.Groups[0].Count != 1 ||
		groups.Groups[0].Reason != first.Reason || len(groups.Groups[0].Cases) != 1 || groups.Groups[0].Cases[0] != 4242 {
		t.Fatalf("groups = %d %s; want one group of 1 on case 4242", r.status, r.body)
	}

	retry := fmt.Sprintf("%s/api/v1/dead-letters/%d/retry", base, first.ID)
	if r := apiPost(t, retry, operatorToken, ""); r.status != http.StatusConflict || !strings.Contains(r.body, "permanent_failure") {
		t.Fatalf("retry without force = %d %s; want 409 permanent_failure", r.status, r.body)
	}
	if r := apiPost(t, retry, operatorToken, `{"force":true}`); r.status != http.StatusOK || !strings.Contains(r.body, `"state":"retried"`) {
		t.Fatalf("forced retry = %d %s", r.status, r.body)
	}
	waitDead(2)
	again := dead[1]
	r = get(t, fmt.Sprintf("%s/api/v1/dead-letters/%d", base, again.ID), viewerToken)
	if want := fmt.Sprintf("a retry of dead letter %d, retried by olga", first.ID); !strings.Contains(r.body, want) {
		t.Errorf("the retry's dead letter %d lacks %q in its history:\n%s", again.ID, want, r.body)
	}

	bulk := base + "/api/v1/dead-letters/bulk"
	if r := apiPost(t, bulk, operatorToken, `{"action":"discard","expect":2,"note":"no such case"}`); r.status != http.StatusConflict ||
		!strings.Contains(r.body, "count_changed") {
		t.Errorf("bulk discard expecting 2 of 1 pending = %d %s; want 409 count_changed", r.status, r.body)
	}
	if r := apiPost(t, bulk, operatorToken, `{"action":"discard","expect":1,"note":"no such case"}`); r.status != http.StatusOK ||
		!strings.Contains(r.body, `"outcome":"discarded"`) {
		t.Errorf("bulk discard = %d %s", r.status, r.body)
	}
	if d, err := st.DeadLetter(context.Background(), again.ID); err != nil || d.DiscardedBy != "olga" || d.DiscardNote != "no such case" {
		t.Errorf("dead letter %d after the bulk discard = %+v, %v; want discarded by olga", again.ID, d, err)
	}
}
