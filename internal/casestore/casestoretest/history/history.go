// Package history writes a case store's history through the store's own
// API, for tests of what reads or copies a whole store (refundctl
// migrate-store): cases in several states with their steps and timelines,
// the inbox, dead letters, command outcomes, order events, deferred inputs,
// seller messages, console accounts and tokens.
package history

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/platform"
)

// Password is the console account Account's password: a copied store must
// still let it log in.
const Password = "correct horse battery staple"

// Account is the console account Write adds.
const Account = "alice"

// states are the states Write leaves its cases in, in turn.
var states = []string{"requested", "submitted", "needs_attention", "succeeded", "closed", "closed_locally"}

// Write adds n cases and their history to st, in transactions of up to 100
// cases. Every case has a step, two timeline entries and an inbox message;
// some have a dead letter, an order event, a deferred input or seller
// messages. One console account (Account, Password) with one token is
// added too, and the row the worker's probe of the store writes.
func Write(t testing.TB, st *casestore.Store, n int) {
	t.Helper()
	ctx := context.Background()
	hash, err := casestore.HashPassword(Password, 4) // bcrypt's least cost: tests need not be slow
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PingWrite(ctx); err != nil { // the worker's probe row (store_probe), as after an outage
		t.Fatal(err)
	}
	if err := st.Update(ctx, func(tx *casestore.Tx) error {
		if err := tx.AddAccount(ctx, casestore.NewAccount{Name: Account, Role: casestore.RoleOperator, PasswordHash: hash, By: "tester"}); err != nil {
			return err
		}
		_, err := tx.AddToken(ctx, casestore.NewAPIToken{Account: Account, Label: "laptop", Hash: casestore.HashToken("tok-history"), By: "tester"})
		return err
	}); err != nil {
		t.Fatalf("add account: %v", err)
	}
	for lo := 0; lo < n; lo += 100 {
		if err := st.Update(ctx, func(tx *casestore.Tx) error {
			for i := lo; i < min(lo+100, n); i++ {
				if err := writeCase(ctx, tx, i); err != nil {
					return fmt.Errorf("case %d: %w", i, err)
				}
			}
			return nil
		}); err != nil {
			t.Fatalf("write history: %v", err)
		}
	}
}

func writeCase(ctx context.Context, tx *casestore.Tx, i int) error {
	plat, sub := platform.ID("1688"), ""
	if i%2 == 0 {
		plat, sub = "taobao", fmt.Sprintf("%d", 900000+i)
	}
	order := fmt.Sprintf("%d", 100000+i)
	cmd := fmt.Sprintf("cmd-history-%d", i)
	c, err := tx.CreateCase(ctx, casestore.NewCase{Platform: plat, OrderID: order, SubOrderID: sub, State: "requested",
		Request: json.RawMessage(fmt.Sprintf(`{"amount":%d,"reason":"七天无理由退货"}`, 100+i)), OpenedBy: cmd})
	if err != nil {
		return err
	}
	key := fmt.Sprintf("submit-%d", i)
	if _, _, err := tx.BeginStep(ctx, c.ID, "submit", key, `{"order":"`+order+`"}`); err != nil {
		return err
	}
	if i%3 != 1 { // every third step stays an intent, as when a worker stopped mid-call
		res := casestore.StepResult{Status: casestore.StepDone, Outcome: `{"refundId":"r` + order + `"}`, RequestID: "req-" + order}
		if i%5 == 0 {
			res = casestore.StepResult{Status: casestore.StepFailed, ErrorCode: "isv.timeout", ErrorMessage: "upstream timed out"}
		}
		if err := tx.FinishStep(ctx, key, res); err != nil {
			return err
		}
	} else if i%2 == 0 { // and some of those were sent again and refused
		if _, _, err := tx.BeginStep(ctx, c.ID, "submit", key, `{"order":"`+order+`"}`); err != nil {
			return err
		}
		if err := tx.MarkAttempt(ctx, key, "4091", "当前状态不允许此操作", true); err != nil {
			return err
		}
	}
	if err := tx.AppendTimeline(ctx,
		casestore.TimelineEntry{CaseID: c.ID, Kind: casestore.KindCommand, Summary: "request by tester", Detail: json.RawMessage(`{"command":"` + cmd + `"}`)},
		casestore.TimelineEntry{CaseID: c.ID, Kind: casestore.KindStep, Summary: fmt.Sprintf("submit %d", i)},
	); err != nil {
		return err
	}
	next := c
	next.State = states[i%len(states)]
	next.RefundID = "r" + order
	if next.State == "needs_attention" {
		next.ParkedState, next.AttentionCode, next.AttentionMessage = "submitted", "reason_not_offered", "the reason is not offered"
	}
	if next.State != c.State || next.RefundID != "" {
		if _, err := tx.UpdateCase(ctx, next); err != nil {
			return err
		}
	}
	if _, err := tx.InboxRecord(ctx, casestore.InboxEntry{MsgID: fmt.Sprintf("msg-%d", i), Stream: "CALLBACKS", StreamSeq: uint64(i + 1), Subject: "callbacks.taobao"}); err != nil {
		return err
	}
	if err := tx.RecordCommandOutcome(ctx, casestore.CommandOutcome{CommandID: cmd, Verdict: casestore.VerdictApplied, CaseID: c.ID}); err != nil {
		return err
	}
	if i%5 == 0 {
		// A payload of every byte value: BLOB on SQLite, BYTEA on PostgreSQL.
		payload := make([]byte, 256)
		for b := range payload {
			payload[b] = byte(b)
		}
		if _, _, err := tx.InsertDeadLetter(ctx, casestore.DeadLetter{MsgID: fmt.Sprintf("dead-%d", i), Subject: "callbacks.1688",
			Headers: map[string][]string{"Nats-Msg-Id": {fmt.Sprintf("dead-%d", i)}}, Payload: payload,
			Reason: "malformed", Error: "bad json", Deliveries: 3}); err != nil {
			return err
		}
	}
	if i%3 == 0 {
		if _, _, _, err := tx.RecordOrderEvent(ctx, casestore.OrderEvent{Platform: plat, OrderID: order, MsgID: fmt.Sprintf("order-%d", i),
			MessageType: "TRADE_STATUS", Kind: platform.KindOrderStatus, OrderStatus: "WAIT_BUYER_CONFIRM", TotalAmount: 1000 + int64(i),
			Body: json.RawMessage(`{"status":"WAIT_BUYER_CONFIRM"}`)}, casestore.OrderEventEntry{Summary: "order status WAIT_BUYER_CONFIRM",
			Detail: func(id int64) json.RawMessage { return json.RawMessage(fmt.Sprintf(`{"n":%d}`, id)) }}, false); err != nil {
			return err
		}
	}
	if i%7 == 0 {
		if err := tx.Defer(ctx, casestore.DeferredInput{CaseID: c.ID, MsgID: fmt.Sprintf("deferred-%d", i), Source: casestore.SourceCallbacks,
			Payload: []byte(`{"refund":"` + order + `"}`), Stream: "CALLBACKS", StreamSeq: uint64(i + 1), Subject: "callbacks.taobao",
			NotBefore: tx.Now().Add(time.Hour), Reason: "waiting_evidence"}); err != nil {
			return err
		}
	}
	if i%4 == 0 {
		if _, err := tx.RecordCaseMessages(ctx, c.ID, []casestore.CaseMessage{
			{MessageID: fmt.Sprintf("m-%d-1", i), Author: "seller", Content: "请提供照片", SentAt: tx.Now()},
			{MessageID: fmt.Sprintf("m-%d-2", i), Author: "buyer", Content: "ok", Images: "a.jpg"},
		}, tx.Now()); err != nil {
			return err
		}
	}
	return nil
}
