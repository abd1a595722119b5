package refundflow

import (
	"context"
	"time"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/casestore"
)

// messagesPageSize and messagesMaxPages bound one read of a refund's
// conversation: 500 messages is far more than a refund has.
const (
	messagesPageSize = 50
	messagesMaxPages = 10
)

// readMessages reads the seller conversation of a Taobao case's refund when
// the case has just read its refund (it woke, or a callback came) and the
// last read (or the case's opening) is older than the interval, and keeps
// the new messages: on the
// timeline once each, the seller's counted as unread. It never stops the
// input: a failure is logged and the next read tries again.
func (e *Engine) readMessages(ctx context.Context, c casestore.Case, pv *PlatformView) {
	refundID := c.RefundID
	if refundID == "" && pv != nil && pv.Found {
		refundID = pv.RefundID
	}
	now := e.now()
	// A case never read counts from its opening: a refund just filed has
	// only the platform's own notice, and reading it on the first callback
	// would put a platform round trip on every new case's path.
	last := c.MessagesCheckedAt
	if last.IsZero() {
		last = c.CreatedAt
	}
	if Platform(c.Platform) != PlatformTaobao || refundID == "" || e.messagesEvery < 0 || State(c.State).Terminal() ||
		now.Sub(last) < e.messagesEvery {
		return
	}
	var msgs []casestore.CaseMessage
	for page := 1; page <= messagesMaxPages; page++ {
		r, err := e.client.TaobaoListMessages(ctx, apiclient.ListMessagesRequest{RefundID: refundID, PageNo: page, PageSize: messagesPageSize})
		if err != nil {
			e.logger(ctx).InfoContext(ctx, "read refund messages", "refund", refundID, "err", err)
			return
		}
		for _, m := range r.Data.List {
			cm := casestore.CaseMessage{MessageID: m.MessageID.String(), Author: m.Owner, Content: m.Content, Images: m.Images}
			if m.CreateTime > 0 {
				cm.SentAt = time.UnixMilli(int64(m.CreateTime)).UTC()
			}
			msgs = append(msgs, cm)
		}
		if len(r.Data.List) < messagesPageSize || page*messagesPageSize >= r.Data.Total {
			break
		}
	}
	var fresh []casestore.CaseMessage
	if err := e.store.Update(context.WithoutCancel(ctx), func(tx *casestore.Tx) error {
		var err error
		fresh, err = tx.RecordCaseMessages(ctx, c.ID, msgs, now)
		return err
	}); err != nil {
		e.logger(ctx).WarnContext(ctx, "keep refund messages", "err", err)
		return
	}
	seller := 0
	for _, m := range fresh {
		if m.Author == casestore.AuthorSeller {
			seller++
		}
	}
	if seller > 0 {
		e.logger(ctx).InfoContext(ctx, "new seller messages", "refund", refundID, "count", seller)
		if e.onSellerMessages != nil {
			e.onSellerMessages(Platform(c.Platform), seller)
		}
	}
}
