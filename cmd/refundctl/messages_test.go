package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
)

// TestMessagesShowsTheThreadAndMarksItRead: messages prints the
// conversation oldest first with images, marks the seller's new messages
// read (--keep-unread leaves them), and names a case that does not exist.
func TestMessagesShowsTheThreadAndMarksItRead(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	ctx := context.Background()
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	err := st.Update(ctx, func(tx *casestore.Tx) error {
		c, err := tx.CreateCase(ctx, casestore.NewCase{Platform: "taobao", OrderID: "100", SubOrderID: "101", State: "waiting_seller"})
		if err != nil {
			return err
		}
		_, err = tx.RecordCaseMessages(ctx, c.ID, []casestore.CaseMessage{
			{MessageID: "m2", Author: "seller", Content: "请补充照片 (please add photos)", Images: "https://img.example/a.png", SentAt: at.Add(time.Minute)},
			{MessageID: "m1", Author: "system", Content: "买家发起了退款申请", SentAt: at},
		}, at.Add(2*time.Minute))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if show, list := e.mustRun("show", "1").stdout, e.mustRun("list").stdout; !strings.Contains(show, "1 new message(s): refundctl messages 1") ||
		!strings.Contains(list, "1 new seller message(s)") {
		t.Errorf("show and list do not flag the unread seller message:\n%s\n%s", show, list)
	}
	kept := e.mustRun("messages", "1", "--keep-unread").stdout
	if c, _ := st.GetCase(ctx, 1); c.UnreadSellerMessages != 1 {
		t.Fatalf("--keep-unread: unread %d; want 1", c.UnreadSellerMessages)
	}
	out := e.mustRun("messages", "1").stdout
	for _, o := range []string{kept, out} {
		i, j := strings.Index(o, "system: 买家发起了退款申请"), strings.Index(o, "seller: 请补充照片")
		if i < 0 || j < i || !strings.Contains(o, "images: https://img.example/a.png") {
			t.Errorf("messages printed:\n%s\nwant the system message, then the seller's with its image", o)
		}
	}
	if !strings.Contains(out, "1 new from the seller, now marked read") {
		t.Errorf("messages did not say it marked the seller's message read:\n%s", out)
	}
	if c, _ := st.GetCase(ctx, 1); c.UnreadSellerMessages != 0 {
		t.Errorf("after messages: unread %d; want 0", c.UnreadSellerMessages)
	}
	var js []messageJSON
	if err := json.Unmarshal([]byte(e.mustRun("messages", "1", "--json").stdout), &js); err != nil || len(js) != 2 || js[1].MessageID != "m2" || js[1].SentAt == "" {
		t.Errorf("--json: %+v, %v; want m1 then m2 with times", js, err)
	}
	e.wantErr(1, "case 9: no such case", "messages", "9")
}
