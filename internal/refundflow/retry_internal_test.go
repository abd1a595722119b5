package refundflow

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
)

func TestBackoffDelay(t *testing.T) {
	for n, want := range map[int]time.Duration{0: time.Second, 1: 2 * time.Second, 2: 4 * time.Second, 3: 8 * time.Second,
		4: 10 * time.Second, 1000: 10 * time.Second} {
		if got := backoff(time.Second, 10*time.Second, n); got != want {
			t.Errorf("backoff(1s, 10s, %d) = %s; want %s", n, got, want)
		}
	}
}

func TestFailedAttempts(t *testing.T) {
	t0 := time.Date(2026, 5, 20, 8, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	retry := func(s, attempt int) casestore.TimelineEntry {
		d, _ := json.Marshal(retryDetail{Attempt: attempt})
		return casestore.TimelineEntry{At: at(s), Kind: casestore.KindTimer, Summary: retryPrefix + "fetch: HTTP 503", Detail: d}
	}
	note := func(s int, k casestore.TimelineKind) casestore.TimelineEntry {
		return casestore.TimelineEntry{At: at(s), Kind: k, Summary: string(k)}
	}
	decision := func(s int, outcome Outcome, from, to State, step StepName) casestore.TimelineEntry {
		d, _ := json.Marshal(map[string]any{"outcome": outcome, "from": from, "to": to, "step": step})
		return casestore.TimelineEntry{At: at(s), Kind: casestore.KindDecision, Summary: string(outcome), Detail: d}
	}
	step := func(s int, summary string) casestore.TimelineEntry {
		return casestore.TimelineEntry{At: at(s), Kind: casestore.KindStep, Summary: summary}
	}
	for _, tc := range []struct {
		name  string
		tl    []casestore.TimelineEntry
		check int // seconds after t0 of the last platform check; -1: never
		want  int
	}{
		{"empty", nil, -1, 0},
		{"no retry", []casestore.TimelineEntry{note(1, casestore.KindCommand), decision(1, OutcomeAct, StateRequested, StateRendering, StepRender),
			step(2, "render ok")}, 1, 0},
		{"first failure after progress", []casestore.TimelineEntry{step(2, "render ok")}, 1, 0},
		{"fetch failures in a row", []casestore.TimelineEntry{step(1, "submit ok"), retry(5, 0), retry(6, 1), retry(8, 2)}, 1, 3},
		{"an old entry without detail counts as the first", []casestore.TimelineEntry{
			{At: at(5), Kind: casestore.KindReconcile, Summary: retryPrefix + "x"}}, 1, 1},
		{"a transient step failure and the decision to run it keep the run", []casestore.TimelineEntry{retry(5, 2), note(7, casestore.KindTimer),
			decision(7, OutcomeAct, StateRendering, StateRendering, StepRender), step(7, "render failed transiently (HTTP 503): x")}, 1, 3},
		{"a fetch in the failing input itself keeps the run", []casestore.TimelineEntry{retry(5, 1), note(7, casestore.KindTimer),
			decision(7, OutcomeAct, StateReturnSubmitting, StateReturnSubmitting, StepReturnSubmit),
			step(8, "return_submit failed transiently (HTTP 500): x; intent left open")}, 7, 2},
		{"a step that worked resets", []casestore.TimelineEntry{retry(5, 4), step(7, "render ok")}, 1, 0},
		{"a step that failed for good resets", []casestore.TimelineEntry{retry(5, 4), step(7, "render failed (4091): illegal state")}, 1, 0},
		{"a decision that moved the case resets", []casestore.TimelineEntry{retry(5, 4),
			decision(7, OutcomeAct, StateWaitingSeller, StateWaitingReturnShipment, "")}, 7, 0},
		{"a decision that moved the case and then failed its step resets", []casestore.TimelineEntry{retry(5, 4),
			decision(7, OutcomeAct, StateWaitingReturnShipment, StateReturnRendering, StepReturnRender),
			step(7, "return_render failed transiently (HTTP 503): x")}, 7, 0},
		{"a no-op decision resets", []casestore.TimelineEntry{retry(5, 4), note(7, casestore.KindCallback),
			decision(7, OutcomeNoOp, StateWaitingSeller, StateWaitingSeller, "")}, 7, 0},
		{"a quiet successful check since the last retry resets", []casestore.TimelineEntry{retry(5, 4)}, 9, 0},
		{"a quiet check between the retry and the failing input resets", []casestore.TimelineEntry{retry(5, 4), note(12, casestore.KindTimer),
			decision(12, OutcomeAct, StateRendering, StateRendering, StepRender), step(13, "render failed transiently (HTTP 503): x")}, 9, 0},
		{"a check before the last retry does not reset", []casestore.TimelineEntry{retry(3, 0), retry(5, 1)}, 4, 2},
		{"an operator note resets", []casestore.TimelineEntry{retry(5, 4), {At: at(7), Kind: casestore.KindNote, Summary: "retried by ops"}}, 1, 0},
	} {
		var check time.Time
		if tc.check >= 0 {
			check = at(tc.check)
		}
		got, decided := failedAttempts(tc.tl, check)
		if got != tc.want {
			t.Errorf("%s: failedAttempts = %d; want %d", tc.name, got, tc.want)
		}
		// Undecided only when every row may belong to the failing run (an
		// older row, not in this tail, decides).
		allPart := true
		for _, e := range tc.tl {
			allPart = allPart && !strings.HasPrefix(e.Summary, retryPrefix) && partOfFailedInput(e)
		}
		if decided == allPart {
			t.Errorf("%s: decided = %v; want %v", tc.name, decided, !allPart)
		}
	}
}
