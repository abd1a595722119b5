package refundflow_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// sellerSays makes the sandbox's seller write on a refund.
func (r *rig) sellerSays(refundID, content string, pushCallback bool) {
	r.t.Helper()
	r.adminPost("/_sandbox/refunds/"+refundID+"/messages", map[string]any{"author": "seller", "content": content,
		"images": []string{"https://img.example/a.png"}, "push_callback": pushCallback})
}

// TestSellerMessagesAppearOnceEach: seller messages that arrive with a
// callback and between callbacks are read when the case wakes, kept once
// each (timeline and conversation), counted as unread and observed.
func TestSellerMessagesAppearOnceEach(t *testing.T) {
	r := newRig(t, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	var observed atomic.Int64
	eng, err := refundflow.NewEngine(refundflow.EngineConfig{Store: r.store, Client: r.client, Policy: testPolicy, Owner: "conversation",
		MessagesInterval: time.Nanosecond, OnSellerMessages: func(_ refundflow.Platform, n int) { observed.Add(int64(n)) }})
	if err != nil {
		t.Fatal(err)
	}
	r.setEngine(eng)
	o, so := r.order(sandbox.PlatformTaobao, nil)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(false)
	h := r.handle(cmd)
	c := r.waitState(h.CaseID, refundflow.StateWaitingSeller)
	ctx := context.Background()
	sellerMessages := func() []casestore.CaseMessage {
		all, err := r.store.CaseMessages(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		var out []casestore.CaseMessage
		for _, m := range all {
			if m.Author == casestore.AuthorSeller {
				out = append(out, m)
			}
		}
		return out
	}
	r.sellerSays(c.RefundID, "请补充照片 (please add photos)", true)
	r.waitFor("the first seller message", func() bool { return len(sellerMessages()) == 1 })
	r.sellerSays(c.RefundID, "已收到 (received)", false) // no callback: read when the case next wakes
	for range 3 {
		if _, err := eng.Wake(ctx, c.ID, refundflow.InputTimer); err != nil {
			t.Fatal(err)
		}
	}
	got := sellerMessages()
	if len(got) != 2 || !strings.Contains(got[0].Content, "photos") || got[0].Images == "" || !strings.Contains(got[1].Content, "received") {
		t.Fatalf("seller messages %+v; want the two, in order, with the image", got)
	}
	tl, _ := r.store.Timeline(ctx, c.ID)
	lines := 0
	for _, e := range tl {
		if strings.HasPrefix(e.Summary, "seller message: ") {
			lines++
		}
	}
	if lines != 2 {
		t.Errorf("timeline has %d seller messages; want 2", lines)
	}
	if cs, _ := r.store.GetCase(ctx, c.ID); cs.UnreadSellerMessages != 2 {
		t.Errorf("unread seller messages %d; want 2", cs.UnreadSellerMessages)
	}
	if n := observed.Load(); n != 2 {
		t.Errorf("observed %d new seller messages; want 2", n)
	}
}
