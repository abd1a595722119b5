package refundflow_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// TestEngineAfterMigrateStore: an installation moves from SQLite to
// PostgreSQL in the middle of its work. One Taobao refund has succeeded and
// a return waits for its shipment when the worker stops; after
// casestore.MigrateStore the PostgreSQL store holds both cases as the
// SQLite one did, and a worker on it takes the return to success without
// submitting anything twice.
func TestEngineAfterMigrateStore(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, fast)

	o1, so1 := r.order(sandbox.PlatformTaobao, nil)
	done := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o1, so1)
	done.Request = taobaoRequest(false)
	a := r.waitState(r.handle(done).CaseID, refundflow.StateSucceeded)

	o2, so2 := r.order(sandbox.PlatformTaobao, nil)
	ret := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o2, so2)
	ret.Request = taobaoRequest(true)
	b := r.waitState(r.handle(ret).CaseID, refundflow.StateWaitingReturnShipment)

	// The worker stops (its engine is replaced below); the store moves.
	sqlite := r.store
	dst := pgtest.NewDatabase(t)
	// Cleanups run last first: the pump stops before the database is
	// dropped under a callback it is still applying.
	t.Cleanup(r.stop)
	rep, err := casestore.MigrateStore(ctx, r.dbPath, dst, casestore.MigrateOptions{})
	if err != nil || !rep.Match() {
		t.Fatalf("MigrateStore: %+v, %v", rep, err)
	}
	pg, err := casestore.Open(ctx, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{a.ID, b.ID} {
		c1, _ := sqlite.GetCase(ctx, id)
		c2, err := pg.GetCase(ctx, id)
		if err != nil || !reflect.DeepEqual(c1, c2) {
			t.Errorf("case %d: SQLite %+v; PostgreSQL %+v (%v)", id, c1, c2, err)
		}
	}
	tl1, _ := sqlite.Timeline(ctx, b.ID)
	tl2, err := pg.Timeline(ctx, b.ID)
	if err != nil || len(tl1) == 0 || !reflect.DeepEqual(tl1, tl2) {
		t.Errorf("case %d timeline: SQLite %d entries; PostgreSQL %d (%v)", b.ID, len(tl1), len(tl2), err)
	}
	if err := sqlite.Close(); err != nil {
		t.Fatal(err)
	}

	// The worker starts on PostgreSQL (DB_URL) and goes on.
	r.store = pg
	r.setEngine(r.newEngine("engine-b"))
	ship := r.command(refundflow.InputReportShipment, refundflow.PlatformTaobao, "", so2)
	ship.Shipment = &refundflow.Shipment{Company: "SF", Waybill: "SF1234567890"}
	r.handle(ship)
	r.waitState(b.ID, refundflow.StateSucceeded)
	r.noDuplicates()
}
