package refundflow_test

import (
	"context"
	"fmt"
	"io/fs"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestAVoucherTheWorkerCannotReadSaysWhereToPutIt: a 1688 request names a
// voucher file the worker's voucher directory does not have. The case
// stopped as platform_error, whose advice is "fix the cause on the
// platform": the cause is on the worker's host, and nothing reached the
// platform. It stops as voucher_unreadable, naming the file and the
// error; once the file is there, a retry files the refund, once.
func TestAVoucherTheWorkerCannotReadSaysWhereToPutIt(t *testing.T) {
	r := newRig(t, fast)
	var there atomic.Bool
	e, err := refundflow.NewEngine(refundflow.EngineConfig{Store: r.store, Client: r.client, Policy: testPolicy, Owner: "engine-vouchers",
		RetryDelay: 50 * time.Millisecond,
		Vouchers: func(_ context.Context, ref string) (string, []byte, error) {
			if ref == "missing.png" && !there.Load() {
				return "", nil, fmt.Errorf("open /srv/vouchers/%s: %w", ref, fs.ErrNotExist)
			}
			return ref, []byte("\x89PNG\r\n\x1a\n fake image " + ref), nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	r.setEngine(e)
	o, _ := r.order(sandbox.Platform1688, nil)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.Platform1688, o, "")
	cmd.Request = alibabaRequest(true, true)
	cmd.Request.Vouchers = []string{"photo-1.png", "missing.png"}
	h := r.handle(cmd)
	c := r.waitState(h.CaseID, refundflow.StateNeedsAttention)
	if c.AttentionCode != refundflow.AttnVoucherUnreadable || c.ParkedState != string(refundflow.StateUploadingVouchers) ||
		!strings.Contains(c.AttentionMessage, `voucher "missing.png"`) || !strings.Contains(c.AttentionMessage, "open /srv/vouchers/missing.png: file does not exist") ||
		!strings.Contains(c.AttentionMessage, "WORKER_VOUCHER_DIR") {
		t.Fatalf("a voucher the worker cannot read: %s at %s %q; want %s at %s naming the file, the error and WORKER_VOUCHER_DIR",
			c.AttentionCode, c.ParkedState, c.AttentionMessage, refundflow.AttnVoucherUnreadable, refundflow.StateUploadingVouchers)
	}
	if n := r.sb.Stats().RefundSubmissions["1688:"+o]; n != 0 {
		t.Fatalf("%d submissions; want none while a voucher cannot be read", n)
	}

	there.Store(true)
	retry := r.command(refundflow.InputResolve, refundflow.Platform1688, o, "")
	retry.CaseID, retry.Resolve = c.ID, &refundflow.Resolve{Action: refundflow.ResolveRetry}
	if h := r.handle(retry); h.Outcome != refundflow.OutcomeAct {
		t.Fatalf("resolve --retry once the file is there: %+v; want applied", h)
	}
	r.waitState(c.ID, refundflow.StateWaitingSeller)
	r.noDuplicates()
	if n := r.sb.Stats().RefundSubmissions["1688:"+o]; n != 1 {
		t.Errorf("%d submissions; want 1", n)
	}
}
