package apiclient_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/platform"
)

// Submitting a refund at most once: the client never repeats TaobaoSubmit, and
// OutcomeUnknown tells the caller when it must look before trying again.
func ExampleClient_TaobaoSubmit() {
	c, err := apiclient.New(apiclient.Config{
		BaseURL:   "https://api.pandapon.com",
		AccessKey: "your-access-key", AccessSecret: "your-access-secret", UserID: "your-user-id",
		Logger: slog.Default(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	res, err := c.TaobaoSubmit(ctx, apiclient.SubmitRefundRequest{SubOrderID: "1034499579120189839",
		RefundType: platform.Default().Taobao.RefundType.RefundOnly, GoodsStatus: platform.Default().Taobao.GoodsStatus.NotShipped, ReasonID: 1001, RefundFee: 100})
	var apiErr *apiclient.APIError
	switch {
	case err == nil:
		fmt.Println("refund", res.Data.RefundID, "requestId", res.RequestID)
	case apiclient.OutcomeUnknown(err):
		// The platform may have created the refund: reconcile (TaobaoList /
		// TaobaoQuery) before submitting again.
		fmt.Println("unknown outcome, reconcile:", err)
	case errors.Is(err, apiclient.ErrRetryable):
		fmt.Println("not done, safe to try again later:", err)
	case errors.As(err, &apiErr):
		fmt.Println("rejected with code", apiErr.Code, apiErr.Msg)
	default:
		fmt.Println(err)
	}
}
