package casestore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestCaseToDecideReadsOnlyItsOrdersEvents: the read before each decision
// (CaseToDecide) finds a case's unseen order events through its own
// order's entries of order_events_order, on both stores, not through every
// newer event of its platform. On PostgreSQL, order_events.order_id had
// the database's default collation and cases.order_id "C" until migration
// 18: the join's order_id condition could not use the index, which then
// matched the platform and the id only, so each decision of a case with an
// unseen event read every event its platform received since the case last
// looked (714 rows for one read in the worker bench; in production, every
// order's events since then).
func TestCaseToDecideReadsOnlyItsOrdersEvents(t *testing.T) {
	eachBackend(t, testCaseToDecideReadsOnlyItsOrdersEvents)
}

func testCaseToDecideReadsOnlyItsOrdersEvents(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	const others, own = 1000, 2
	var c Case
	if err := s.Update(ctx, func(tx *Tx) error {
		var err error
		if c, err = tx.CreateCase(ctx, NewCase{Platform: "taobao", OrderID: "o-own", SubOrderID: "s1", State: "requested",
			Request: []byte(`{}`)}); err != nil {
			return err
		}
		for i := range others + own {
			order := fmt.Sprintf("o-%d", i)
			if i >= others {
				order = "o-own"
			}
			ev := OrderEvent{Platform: "taobao", OrderID: order, MsgID: fmt.Sprintf("m-%d", i), MessageType: "ORDER_STATUS",
				Kind: "order_status", OrderStatus: "WAIT_SELLER_SEND_GOODS", ReceivedAt: time.Now()}
			if _, _, _, err := tx.RecordOrderEvent(ctx, ev, OrderEventEntry{Summary: "order status"}, false); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_, _, evs, err := s.CaseToDecide(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != own {
		t.Fatalf("CaseToDecide: %d unseen order events; want the case's order's %d", len(evs), own)
	}
	for _, ev := range evs {
		if ev.OrderID != "o-own" {
			t.Errorf("CaseToDecide: event %d of order %s; want only order o-own's", ev.ID, ev.OrderID)
		}
	}

	if !s.r.pg {
		// SQLite: the plan (the worker never runs ANALYZE there).
		plan := sqlitePlan(t, s, caseToDecide, c.ID)
		const want = "SEARCH e USING INDEX order_events_order (platform=? AND order_id=? AND id>?)"
		if !strings.Contains(strings.Join(plan, "\n"), want) {
			t.Errorf("CaseToDecide's plan does not read %q:\n%s", want, strings.Join(plan, "\n"))
		}
		return
	}
	// PostgreSQL: what the read touched of order_events, with statistics
	// as autovacuum would keep them.
	if _, err := s.w.ExecContext(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	var out []byte
	if err := s.r.Get(&out, "EXPLAIN (ANALYZE, FORMAT JSON) "+caseToDecide, c.ID); err != nil {
		t.Fatal(err)
	}
	var plans []struct{ Plan planNode }
	if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
		t.Fatalf("EXPLAIN: %v\n%s", err, out)
	}
	var walk func(n planNode)
	walk = func(n planNode) {
		if n.Relation == "order_events" || strings.HasPrefix(n.Index, "order_events") {
			if read := n.Rows*max(n.Loops, 1) + n.Filtered + n.Rechecked; read > own {
				t.Errorf("CaseToDecide read %.0f rows of order_events in a %s node (%s %s); want at most the %d of its order",
					read, n.Type, n.Index, n.Cond, own)
			}
		}
		for _, k := range n.Plans {
			walk(k)
		}
	}
	walk(plans[0].Plan)
}

// planNode is a node of PostgreSQL's EXPLAIN (FORMAT JSON).
type planNode struct {
	Type      string     `json:"Node Type"`
	Relation  string     `json:"Relation Name"`
	Index     string     `json:"Index Name"`
	Cond      string     `json:"Index Cond"`
	Rows      float64    `json:"Actual Rows"` // fractional (an average per loop) from PostgreSQL 18
	Loops     float64    `json:"Actual Loops"`
	Filtered  float64    `json:"Rows Removed by Filter"`
	Rechecked float64    `json:"Rows Removed by Index Recheck"`
	Plans     []planNode `json:"Plans"`
}

// sqlitePlan is SQLite's EXPLAIN QUERY PLAN of query: one line per step.
func sqlitePlan(t *testing.T, s *Store, query string, args ...any) []string {
	t.Helper()
	var rows []struct {
		ID      int    `db:"id"`
		Parent  int    `db:"parent"`
		NotUsed int    `db:"notused"`
		Detail  string `db:"detail"`
	}
	if err := s.r.Select(&rows, "EXPLAIN QUERY PLAN "+query, args...); err != nil {
		t.Fatal(err)
	}
	var plan []string
	for _, r := range rows {
		plan = append(plan, r.Detail)
	}
	return plan
}
