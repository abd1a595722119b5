package casestore

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// TestAPostgreSQLCrashIsUnavailableUntilTheServerIsBack: while the server
// is down every write and read fails with an error Unavailable recognises
// and Ping fails; errors about the work itself never count as that; once
// the server is back (crash recovery done) Ping answers, the same Store
// writes again on new connections, and what it committed before the crash
// is there.
func TestAPostgreSQLCrashIsUnavailableUntilTheServerIsBack(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{Durable: true})
	ctx := context.Background()
	s, err := Open(ctx, pg.NewDatabase(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	create := func(order string) (int64, error) {
		var id int64
		err := s.Update(ctx, func(tx *Tx) error {
			c, err := tx.CreateCase(ctx, NewCase{Platform: "taobao", OrderID: order, SubOrderID: order + "-1", State: "requested"})
			id = c.ID
			return err
		})
		return id, err
	}
	id, err := create("o1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := create("o1"); err == nil || Unavailable(err) {
		t.Errorf("a second open case of the order: %v; want a constraint error, not Unavailable", err)
	}
	for _, err := range []error{nil, context.Canceled, fmt.Errorf("update: %w", ErrVersionConflict), ErrNotFound,
		errors.New("connection refused, said a platform")} {
		if Unavailable(err) {
			t.Errorf("Unavailable(%v) = true; want false", err)
		}
	}

	pg.Crash(t)
	if _, err := create("o2"); !Unavailable(err) {
		t.Errorf("a write with the server down: %v; want an error Unavailable recognises", err)
	}
	if _, err := s.GetCase(ctx, id); !Unavailable(err) {
		t.Errorf("a read with the server down: %v; want an error Unavailable recognises", err)
	}
	if err := s.Ping(ctx); !Unavailable(err) {
		t.Errorf("Ping with the server down: %v; want an error Unavailable recognises", err)
	}

	pg.Restart(t)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping with the server back: %v", err)
	}
	if _, err := create("o2"); err != nil {
		t.Errorf("a write with the server back: %v", err)
	}
	if c, err := s.GetCase(ctx, id); err != nil || c.OrderID != "o1" {
		t.Errorf("the case committed before the crash: %+v, %v", c, err)
	}
}
