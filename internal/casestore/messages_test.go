package casestore

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestCaseMessagesKeptOnce: messages are kept once per platform id, each new
// one on the timeline; the seller's new ones count as unread until read;
// the check time is recorded without touching the case's version.
func TestCaseMessagesKeptOnce(t *testing.T) { eachBackend(t, testCaseMessagesKeptOnce) }

func testCaseMessagesKeptOnce(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	c := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "waiting_seller"})
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	msgs := []CaseMessage{
		{MessageID: "m1", Author: "system", Content: "买家发起了退款申请", SentAt: at},
		{MessageID: "m2", Author: AuthorSeller, Content: "请补充照片", Images: "https://img/1.png", SentAt: at.Add(time.Minute)},
	}
	record := func(ms []CaseMessage, checked time.Time) []CaseMessage {
		var fresh []CaseMessage
		if err := s.Update(ctx, func(tx *Tx) error {
			var err error
			fresh, err = tx.RecordCaseMessages(ctx, c.ID, ms, checked)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return fresh
	}
	if fresh := record(msgs, at.Add(2*time.Minute)); len(fresh) != 2 {
		t.Fatalf("first read: %d new; want 2", len(fresh))
	}
	more := append(msgs, CaseMessage{MessageID: "m3", Author: AuthorSeller, Content: "已收到", SentAt: at.Add(3 * time.Minute)})
	if fresh := record(more, at.Add(4*time.Minute)); len(fresh) != 1 || fresh[0].MessageID != "m3" {
		t.Fatalf("second read: %+v; want m3 only", fresh)
	}
	got, _ := s.GetCase(ctx, c.ID)
	if got.UnreadSellerMessages != 2 || !got.MessagesCheckedAt.Equal(at.Add(4*time.Minute)) || got.Version != c.Version {
		t.Fatalf("case: unread %d checked %v version %d; want 2, the second read, version %d", got.UnreadSellerMessages, got.MessagesCheckedAt, got.Version, c.Version)
	}
	all, _ := s.CaseMessages(ctx, c.ID)
	if len(all) != 3 || all[1].Images != "https://img/1.png" || all[2].MessageID != "m3" {
		t.Fatalf("conversation %+v; want m1, m2, m3 in order", all)
	}
	tl, _ := s.Timeline(ctx, c.ID)
	var sellerLines int
	for _, e := range tl {
		if strings.HasPrefix(e.Summary, "seller message: ") {
			sellerLines++
		}
	}
	if sellerLines != 2 {
		t.Errorf("timeline has %d seller messages; want 2 (once each)", sellerLines)
	}
	var n int
	if err := s.Update(ctx, func(tx *Tx) error {
		var err error
		n, err = tx.MarkMessagesRead(ctx, c.ID)
		return err
	}); err != nil || n != 2 {
		t.Fatalf("MarkMessagesRead = %d, %v; want 2", n, err)
	}
	if got, _ := s.GetCase(ctx, c.ID); got.UnreadSellerMessages != 0 {
		t.Errorf("unread after reading: %d", got.UnreadSellerMessages)
	}
}
