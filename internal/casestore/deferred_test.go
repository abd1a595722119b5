package casestore

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestDueDeferredCasesCountsTheOldestInputOnly: 200 cases each have an
// input queued behind a first one that waits again (an hour on), while the
// one behind keeps its older, due time. Those cases are not due (their
// first input is not), so they cannot crowd out a case whose only input is
// due.
func TestDueDeferredCasesCountsTheOldestInputOnly(t *testing.T) {
	eachBackend(t, testDueDeferredCasesCountsTheOldestInputOnly)
}

func testDueDeferredCasesCountsTheOldestInputOnly(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	now := time.Now()
	var victim int64
	if err := s.Update(ctx, func(tx *Tx) error {
		for i := range 201 {
			c, err := tx.CreateCase(ctx, NewCase{Platform: PlatformTaobao, OrderID: "1", SubOrderID: fmt.Sprint(1000 + i), State: "waiting_seller"})
			if err != nil {
				return err
			}
			if i == 200 {
				victim = c.ID
				return tx.Defer(ctx, DeferredInput{CaseID: c.ID, MsgID: "v", Source: SourceCommands, Payload: []byte("{}"), NotBefore: now.Add(-time.Second)})
			}
			if err := tx.Defer(ctx, DeferredInput{CaseID: c.ID, MsgID: fmt.Sprint("a", i), Source: SourceCommands, Payload: []byte("{}"), NotBefore: now.Add(time.Hour)}); err != nil {
				return err
			}
			if err := tx.Defer(ctx, DeferredInput{CaseID: c.ID, MsgID: fmt.Sprint("b", i), Source: SourceCommands, Payload: []byte("{}"), NotBefore: now.Add(-time.Minute)}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ids, err := s.DueDeferredCases(ctx, now, 200)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != victim {
		t.Errorf("due cases %v; want only case %d (the others' first inputs are due in an hour)", ids, victim)
	}
}
