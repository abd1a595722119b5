package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/doctor"
	"github.com/refundhub/refundhub/internal/platform"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestWorkerWithDoctorsPatch: the platform speaks another profile
// (internal/doctor/testdata/another_platform.toml). Doctor, with the
// built-in profile, looks at refunds in every phase on both platforms; the
// operator makes the two decisions it leaves (the render's moved path, the
// not-found code); and the worker, started with the resulting patch as
// UPSTREAM_PROFILE, drives every end-to-end scenario to its end, agreeing
// with the platform.
func TestWorkerWithDoctorsPatch(t *testing.T) {
	truth, err := platform.Load("../../internal/doctor/testdata/another_platform.toml")
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, sandbox.Faults{}, quickSeller, 1, nil, func(c *sandbox.Config) {
		c.Profile, c.TaobaoNumericStatus = truth, true
	})
	ctx := context.Background()

	// Refunds in every phase for doctor to see, seeded: no case, no callback.
	manual := &sandbox.SellerPolicy{Decision: sandbox.DecisionManual}
	tbOrder := "7100000000000000001"
	var subs []sandbox.SubOrder
	for i := range platform.Phases() {
		subs = append(subs, sandbox.SubOrder{SubOrderID: fmt.Sprintf("71000000000000001%02d", i), Amount: 10000})
	}
	free := sandbox.SubOrder{SubOrderID: "7100000000000000199", Amount: 10000} // rendered, never refunded
	body, _ := json.Marshal(sandbox.CreateOrderRequest{Platform: sandbox.PlatformTaobao, OrderID: tbOrder,
		SubOrders: append(append([]sandbox.SubOrder(nil), subs...), free), Seller: manual})
	resp, err := http.Post(s.sbURL+"/_sandbox/orders", "application/json", bytes.NewReader(body))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("create order: %v %v", resp, err)
	}
	resp.Body.Close()
	abOpts := doctor.Options{Platform: doctor.Alibaba}
	for i, ph := range platform.Phases() {
		if _, err := s.sb.SeedRefund(sandbox.RefundSeed{Platform: sandbox.PlatformTaobao, OrderID: tbOrder, SubOrderID: subs[i].SubOrderID, Status: string(ph)}); err != nil {
			t.Fatal(err)
		}
		order, _ := s.order(sandbox.Platform1688, manual)
		ref, err := s.sb.SeedRefund(sandbox.RefundSeed{Platform: sandbox.Platform1688, OrderID: order, Status: string(ph)})
		if err != nil {
			t.Fatal(err)
		}
		abOpts.RefundIDs = append(abOpts.RefundIDs, ref.RefundID)
	}

	cfg := apiclient.Config{BaseURL: s.sbURL, AccessKey: e2eKey, AccessSecret: e2eSecret, UserID: "e2e-user", RateLimit: rate.Inf}
	tb, err := doctor.Run(ctx, cfg, doctor.Options{Platform: doctor.Taobao, OrderID: tbOrder, SubOrderID: free.SubOrderID})
	if err != nil {
		t.Fatal(err)
	}
	if tb.Result != doctor.ResultContradicted || len(tb.Decisions) != 2 {
		t.Fatalf("doctor taobao: %s, decisions %+v; want contradicted, and the render's path and the not-found code to decide", tb.Result, tb.Decisions)
	}
	patch := tb.Patch
	for from, to := range map[string]string{
		`# endpoints.taobao_render.path = "<the real path>"`: fmt.Sprintf("endpoints.taobao_render.path = %q", truth.Endpoint(platform.TaobaoRender).Path),
		`# error_codes.not_found = [40400, 4041]`:            `error_codes.not_found = [40400, 4041]`,
	} {
		if !strings.Contains(patch, from+"\n") {
			t.Fatalf("the patch lacks %q:\n%s", from, patch)
		}
		patch = strings.Replace(patch, from+"\n", to+"\n", 1)
	}
	prof, err := platform.Parse([]byte(patch), "taobao patch")
	if err != nil {
		t.Fatalf("the decided patch: %v", err)
	}
	cfg.Profile, abOpts.Override = prof, []byte(patch)
	ab, err := doctor.Run(ctx, cfg, abOpts)
	if err != nil {
		t.Fatal(err)
	}
	if ab.Result != doctor.ResultContradicted || len(ab.Decisions) != 0 || ab.PatchError != "" {
		t.Fatalf("doctor 1688: %s, decisions %+v, patch error %q; want contradicted (its statuses, yuan), nothing to decide", ab.Result, ab.Decisions, ab.PatchError)
	}
	file := filepath.Join(t.TempDir(), "profile.toml")
	if err := os.WriteFile(file, []byte(ab.Patch), 0o600); err != nil {
		t.Fatal(err)
	}

	s.env["UPSTREAM_PROFILE"] = file
	s.start()
	s.runScenarios(30 * time.Second)
}
