package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/platform"
)

func persistConfig(file string, seller SellerPolicy) Config {
	return Config{AccessKey: testKey, AccessSecret: testSecret, AutoCreate: true, Seller: seller, Seed: 42, StateFile: file}
}

// refundJSON is a refund as the admin API shows it.
func refundJSON(t *testing.T, e *testEnv, id string) string {
	t.Helper()
	_, b := e.admin(http.MethodGet, "/_sandbox/refunds/"+id, nil)
	return string(b)
}

// TestStateSurvivesARestart: with a state file, a sandbox stopped and
// started again has the orders, refunds (their status, messages and
// history), counters and the one-open-refund rule it had, and its seller
// goes on deciding the refunds left waiting. (It forgot them: a case open
// across a restart of the developer's stack found no refund and parked
// refund_missing.)
func TestStateSurvivesARestart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sandbox-state.json")
	manual := SellerPolicy{Decision: DecisionManual}
	e, stop := startWith(t, persistConfig(file, manual))
	prof := e.s.prof
	refused := e.tbSubmit("5001", prof.Taobao.RefundType.RefundOnly, prof.Taobao.GoodsStatus.NotShipped, 1001, 100)
	e.adminOK(http.MethodPost, "/_sandbox/refunds/"+refused+"/actions", RefundAction{Action: "refuse", Reason: "商品已发出"}, nil)
	waiting := e.abCreate(3700000000000000001, "refund", "refundWaitSellerSend", 20001, 100, nil)

	// Written while it runs, not only when it stops (a developer's stack
	// may be killed).
	waitFor(t, "the state file to hold both refunds", func() bool {
		b, err := os.ReadFile(file)
		return err == nil && bytes.Contains(b, []byte(refused)) && bytes.Contains(b, []byte(waiting))
	})
	before := map[string]string{refused: refundJSON(t, e, refused), waiting: refundJSON(t, e, waiting)}
	statsBefore := e.s.Stats()
	stop()

	// Started again, the seller now deciding at once: the refused refund
	// is as it was, the waiting one is decided.
	agree := SellerPolicy{Decision: DecisionAgree, DecideAfter: time.Millisecond, ReceiveAfter: time.Millisecond}
	e2, _ := startWith(t, persistConfig(file, agree))
	if got := refundJSON(t, e2, refused); got != before[refused] {
		t.Errorf("refund %s after the restart:\n%s\nwant as before:\n%s", refused, got, before[refused])
	}
	waitFor(t, "the seller to decide the refund left waiting", func() bool {
		return e2.refund(waiting).Phase == platform.PhaseSuccess
	})
	st := e2.s.Stats()
	if !reflect.DeepEqual(st.RefundSubmissions, statsBefore.RefundSubmissions) || !reflect.DeepEqual(st.APICalls, statsBefore.APICalls) {
		t.Errorf("counters after the restart: submissions %v, calls %v; want %v, %v", st.RefundSubmissions, st.APICalls, statsBefore.RefundSubmissions, statsBefore.APICalls)
	}
	// The refused refund still holds its sub-order: a second submission
	// is a duplicate, as before the restart.
	var resp submitRefundResp
	r := e2.call(http.MethodPost, paths.TaobaoSubmit, submitRefundReq{SubOrderID: "5001", RefundType: prof.Taobao.RefundType.RefundOnly,
		GoodsStatus: prof.Taobao.GoodsStatus.NotShipped, ReasonID: 1001, RefundFee: 100, RefundDesc: "again"})
	_ = json.Unmarshal(r.Data, &resp)
	if resp.SubmitSuccess || e2.s.Stats().DuplicateSubmissions != statsBefore.DuplicateSubmissions+1 {
		t.Errorf("a second submission on sub-order 5001 after the restart: %s; want it refused as a duplicate", r.Raw)
	}
	// The order the refund was auto-created on is there, with its ids.
	var o Order
	e2.adminOK(http.MethodGet, "/_sandbox/orders/3700000000000000001?platform=1688", nil, &o)
	if len(o.RefundIDs) != 1 || o.RefundIDs[0] != waiting {
		t.Errorf("order 3700000000000000001 after the restart: refund ids %v; want [%s]", o.RefundIDs, waiting)
	}
}

// TestAStateFileThatCannotBeReadIsRefused: New names the file and the way
// out, and starts nothing, for a file that is not a state, of another
// version, or inconsistent; a missing file is an empty sandbox.
func TestAStateFileThatCannotBeReadIsRefused(t *testing.T) {
	dir := t.TempDir()
	open := `{"platform":"taobao","refund_id":"R%d","order_id":"O1","sub_order_id":"S1","phase":"wait_seller_agree"}`
	for _, tc := range []struct{ name, doc, want string }{
		{"not JSON", `{"version":1,`, "not a sandbox state document"},
		{"another version", `{"version":2}`, "version 2: this sandbox reads version 1"},
		{"unknown phase", `{"version":1,"orders":[{"platform":"taobao","order_id":"O1","status":"WAITING_FOR_SENT","sub_orders":[{"sub_order_id":"S1"}]}],
			"refunds":[{"platform":"taobao","refund_id":"R1","order_id":"O1","sub_order_id":"S1","phase":"nonsense"}]}`, `phase "nonsense"`},
		{"a refund on another order's sub-order", `{"version":1,"orders":[{"platform":"taobao","order_id":"O1","status":"WAITING_FOR_SENT","sub_orders":[{"sub_order_id":"S1"}]}],
			"refunds":[{"platform":"taobao","refund_id":"R1","order_id":"O1","sub_order_id":"S2","phase":"success"}]}`, `sub-order "S2" is not one of order O1`},
		{"a 1688 order id that is not a number", `{"version":1,"orders":[{"platform":"1688","order_id":"A1","status":"WAITING_FOR_SENT","sub_orders":[{"sub_order_id":"1"}]}]}`,
			"1688 order ids are positive integers"},
		{"an order without sub-orders", `{"version":1,"orders":[{"platform":"taobao","order_id":"O1","status":"WAITING_FOR_SENT"}]}`, "no sub_orders"},
		{"refund without its order", `{"version":1,"refunds":[{"platform":"taobao","refund_id":"R1","order_id":"O9","phase":"success"}]}`, `no taobao order "O9"`},
		{"two open refunds on a sub-order", `{"version":1,"orders":[{"platform":"taobao","order_id":"O1","status":"WAITING_FOR_SENT","sub_orders":[{"sub_order_id":"S1"}]}],
			"refunds":[` + strings.Replace(open, "%d", "1", 1) + `,` + strings.Replace(open, "%d", "2", 1) + `]}`, "both open on taobao:S1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
			if err := os.WriteFile(file, []byte(tc.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := New(persistConfig(file, SellerPolicy{}))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), file) ||
				!strings.Contains(err.Error(), "remove the file to start empty") {
				t.Errorf("New with %s: %v; want an error naming %s, saying %q and the way out", tc.name, err, file, tc.want)
			}
		})
	}
	s, err := New(persistConfig(filepath.Join(dir, "missing.json"), SellerPolicy{}))
	if err != nil || len(s.orders) != 0 {
		t.Fatalf("New with a missing state file: %v; want an empty sandbox", err)
	}
}

// TestAStateThatCannotBeWrittenIsKeptForTheNextChange: a save that fails
// (the directory is gone) names the file and its cause, and the state stays
// marked changed, so the next save writes it.
func TestAStateThatCannotBeWrittenIsKeptForTheNextChange(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gone")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "state.json")
	s, err := New(persistConfig(file, SellerPolicy{Decision: DecisionManual}))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	s.markChanged()
	if err := s.saveState(); err == nil || !strings.Contains(err.Error(), file) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("saveState into a removed directory: %v; want the file and the cause", err)
	}
	if !s.changed.Load() {
		t.Error("after a failed save the state is not marked changed: the next change would be the only chance to write it")
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.saveState(); err != nil {
		t.Fatalf("saveState once the directory is back: %v", err)
	}
	if _, err := New(persistConfig(file, SellerPolicy{})); err != nil {
		t.Errorf("the saved state does not load: %v", err)
	}
}

// FuzzRestore: any file content is refused with an error or restored into
// a state that saves and restores again the same, without a panic.
func FuzzRestore(f *testing.F) {
	s, err := New(Config{AccessKey: testKey, AccessSecret: testSecret, AutoCreate: true, Seller: SellerPolicy{Decision: DecisionManual}, Seed: 1})
	if err != nil {
		f.Fatal(err)
	}
	s.mu.Lock()
	o := &Order{Platform: PlatformTaobao, OrderID: "O1", SubOrders: []*SubOrder{{SubOrderID: "S1"}}}
	if err := s.addOrderLocked(o); err != nil {
		s.mu.Unlock()
		f.Fatal(err)
	}
	s.refunds["R1"] = &Refund{Platform: PlatformTaobao, RefundID: "R1", OrderID: "O1", SubOrderID: "S1", Phase: platform.PhaseWaitSellerAgree}
	valid, err := json.Marshal(s.stateLocked())
	s.mu.Unlock()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"orders":[null],"refunds":[null]}`))
	f.Add([]byte(`{"version":1,"orders":[{"platform":"1688","order_id":"1","status":"CANCEL","sub_orders":[null]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := New(Config{AccessKey: testKey, AccessSecret: testSecret, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		if a.restore(b) != nil {
			return
		}
		a.mu.Lock()
		again, err := json.Marshal(a.stateLocked())
		a.mu.Unlock()
		if err != nil {
			t.Fatalf("a restored state does not marshal: %v", err)
		}
		c, _ := New(Config{AccessKey: testKey, AccessSecret: testSecret, Seed: 1})
		if err := c.restore(again); err != nil {
			t.Fatalf("a restored state, saved, does not restore: %v\n%s", err, again)
		}
	})
}

// TestTheLastSaveHoldsTheSellersLastMove: when Run ends, the state file
// holds the state as Run left it, the seller's moves made meanwhile
// included (the saver's last save could run before the scheduler's last
// move). Refunds decided at once keep the scheduler busy as Run ends.
func TestTheLastSaveHoldsTheSellersLastMove(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state.json")
	e, stop := startWith(t, persistConfig(file, SellerPolicy{Decision: DecisionAgree, DecideAfter: time.Millisecond, ReceiveAfter: time.Millisecond}))
	prof := e.s.prof
	for i := range 20 {
		e.tbSubmit("77"+strconv.Itoa(i), prof.Taobao.RefundType.RefundOnly, prof.Taobao.GoodsStatus.NotShipped, 1001, 100)
	}
	stop()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var saved stateDoc
	if err := json.Unmarshal(b, &saved); err != nil {
		t.Fatal(err)
	}
	e.s.mu.Lock()
	now := e.s.stateLocked()
	e.s.mu.Unlock()
	saved.SavedAt, now.SavedAt = time.Time{}, time.Time{}
	want, _ := json.Marshal(now)
	got, _ := json.Marshal(saved)
	if !bytes.Equal(got, want) {
		t.Errorf("the state file after Run ended differs from the state Run left:\n%s\nwant\n%s", got, want)
	}
}
