package casestore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRecentStepErrorsByWhenTheyHappened: the overview's last platform
// errors are ordered by when each happened (StepAttempt.ErrorAt), not by
// when its step began. An open intent keeps the error of its newest
// attempt (MarkAttempt): a resend refused now, of an intent begun hours
// ago, sorted by started_at came after every error since the intent began,
// and off a short list. The order is read from step_attempts_error_times,
// with no sort, on both stores.
func TestRecentStepErrorsByWhenTheyHappened(t *testing.T) {
	eachBackend(t, testRecentStepErrorsByWhenTheyHappened)
}

func testRecentStepErrorsByWhenTheyHappened(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	clock := t0
	s.now = func() time.Time { return clock }
	c := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "submitting"})
	update := func(fn func(tx *Tx) error) {
		t.Helper()
		if err := s.Update(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	update(func(tx *Tx) error { _, _, err := tx.BeginStep(ctx, c.ID, "submit", "case:1:submit", `{}`); return err })
	clock = t0.Add(time.Hour)
	update(func(tx *Tx) error {
		return tx.RecordStep(ctx, c.ID, "query", `{}`, StepResult{Status: StepFailed, ErrorCode: "http_500", ErrorMessage: "busy"})
	})
	clock = t0.Add(2 * time.Hour) // the submission sent again, and refused
	update(func(tx *Tx) error {
		if _, _, err := tx.BeginStep(ctx, c.ID, "submit", "case:1:submit", `{}`); err != nil {
			return err
		}
		return tx.MarkAttempt(ctx, "case:1:submit", "4091", "refused", true)
	})
	errs, err := s.RecentStepErrors(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range errs {
		got = append(got, fmt.Sprintf("%s %s %s", e.Step, e.ErrorCode, e.ErrorAt().Format("15:04")))
	}
	if want := "submit 4091 10:00, query http_500 09:00"; strings.Join(got, ", ") != want {
		t.Errorf("RecentStepErrors = %s; want %s", strings.Join(got, ", "), want)
	}

	// The plan, with enough errors that sorting them all would cost more
	// than reading the index's newest entries.
	update(func(tx *Tx) error {
		for i := range 3000 {
			clock = t0.Add(time.Duration(i) * time.Second)
			if err := tx.RecordStep(ctx, c.ID, "query", `{}`, StepResult{Status: StepFailed, ErrorCode: "http_500"}); err != nil {
				return err
			}
		}
		return nil
	})
	var plan []string
	if s.r.pg {
		if _, err := s.w.ExecContext(ctx, `ANALYZE step_attempts`); err != nil {
			t.Fatal(err)
		}
		if err := s.r.Select(&plan, "EXPLAIN "+recentStepErrors, 10); err != nil {
			t.Fatal(err)
		}
	} else {
		plan = sqlitePlan(t, s, recentStepErrors, 10)
	}
	text := strings.Join(plan, "\n")
	if !strings.Contains(text, "step_attempts_error_times") || strings.Contains(text, "Sort") || strings.Contains(text, "TEMP B-TREE") {
		t.Errorf("RecentStepErrors' plan does not read step_attempts_error_times in order:\n%s", text)
	}
}
