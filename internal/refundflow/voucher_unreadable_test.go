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
// voucher file the worker cannot send: not in its voucher directory,
// empty, or no directory configured at all. The case stopped as
// platform_error, whose advice is "fix the cause on the platform": the
// cause is on the worker's host, and nothing reached the platform. It
// stops as voucher_unreadable, naming the file and what is wrong; once
// the file is right, a retry files the refund, once.
func TestAVoucherTheWorkerCannotReadSaysWhereToPutIt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		source bool     // a voucher directory is configured
		want   []string // in the attention text
	}{
		{"not in the directory", true, []string{`voucher "missing.png"`, "open /srv/vouchers/missing.png: file does not exist", "WORKER_VOUCHER_DIR"}},
		{"empty", true, []string{`voucher "empty.png"`, "file is empty", "WORKER_VOUCHER_DIR"}},
		{"no directory", false, []string{`voucher "photo-1.png"`, "WORKER_VOUCHER_DIR is empty", "restart"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, fast)
			var there atomic.Bool
			engine := func(withSource bool) *refundflow.Engine {
				cfg := refundflow.EngineConfig{Store: r.store, Client: r.client, Policy: testPolicy, Owner: "engine-vouchers", RetryDelay: 50 * time.Millisecond}
				if withSource {
					cfg.Vouchers = func(_ context.Context, ref string) (string, []byte, error) {
						switch {
						case there.Load():
						case ref == "missing.png":
							return "", nil, fmt.Errorf("open /srv/vouchers/%s: %w", ref, fs.ErrNotExist)
						case ref == "empty.png":
							return ref, nil, nil
						}
						return ref, []byte("\x89PNG\r\n\x1a\n fake image " + ref), nil
					}
				}
				e, err := refundflow.NewEngine(cfg)
				if err != nil {
					t.Fatal(err)
				}
				return e
			}
			r.setEngine(engine(tc.source))
			o, _ := r.order(sandbox.Platform1688, nil)
			cmd := r.command(refundflow.InputRequestRefund, refundflow.Platform1688, o, "")
			cmd.Request = alibabaRequest(true, true)
			cmd.Request.Vouchers = []string{"photo-1.png", "missing.png", "empty.png"}
			if tc.name == "empty" {
				cmd.Request.Vouchers = []string{"photo-1.png", "empty.png"}
			}
			h := r.handle(cmd)
			c := r.waitState(h.CaseID, refundflow.StateNeedsAttention)
			if c.AttentionCode != refundflow.AttnVoucherUnreadable || c.ParkedState != string(refundflow.StateUploadingVouchers) {
				t.Fatalf("%s: %s at %s %q; want %s at %s", tc.name, c.AttentionCode, c.ParkedState, c.AttentionMessage,
					refundflow.AttnVoucherUnreadable, refundflow.StateUploadingVouchers)
			}
			for _, w := range tc.want {
				if !strings.Contains(c.AttentionMessage, w) {
					t.Errorf("%s: attention %q; want %q in it", tc.name, c.AttentionMessage, w)
				}
			}
			if n := r.sb.Stats().RefundSubmissions["1688:"+o]; n != 0 {
				t.Fatalf("%d submissions; want none while a voucher cannot be sent", n)
			}

			// The file put right (the directory configured and the worker
			// restarted): a retry files the refund.
			there.Store(true)
			r.setEngine(engine(true))
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
		})
	}
}
