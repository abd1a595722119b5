package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// exampleOrder is a Taobao order the documentation's examples use, with
// its sub-order.
type exampleOrder struct{ order, subOrder string }

// exampleOrders are the Taobao orders the README, the walkthrough and
// refundctl's --help name, order and sub-order together. The sandbox
// creates an unknown id on first use, but a Taobao call names only the
// sub-order (render, submit) or only the order (the refund list), so an
// order made for a sub-order takes the sub-order's id: the walkthrough's
// case would then name an order the sandbox does not file its sub-order
// under, which the worker notices only when a submission's answer is lost
// (it stops the case, as it must with a mistyped order). Made up front,
// they hold together as on the platform.
var exampleOrders = []exampleOrder{
	{"3296711100591134260", "1034499579120189839"}, // README and walkthrough: a return
	{"3296711100591134270", "1034499579120189870"}, // README: a refused refund
	{"3305075341149134260", "3305075341149134261"}, // refundctl --help, docs/refundctl.md
}

// seedExampleOrders creates exampleOrders on the sandbox at sandboxURL. An
// order it holds already (its state kept across a restart, or made by an
// earlier call) answers 409 and is left as it is. It reports what it could
// not create on w: the stack runs all the same.
func seedExampleOrders(ctx context.Context, w io.Writer, sandboxURL string) {
	client := &http.Client{Timeout: 5 * time.Second}
	for _, o := range exampleOrders {
		if ctx.Err() != nil {
			return // stopping: nothing to warn about
		}
		body, _ := json.Marshal(map[string]any{"platform": "taobao", "order_id": o.order,
			"sub_orders": []map[string]any{{"sub_order_id": o.subOrder, "amount": 10000}}})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, sandboxURL+"/_sandbox/orders", bytes.NewReader(body))
		if err != nil {
			fmt.Fprintf(w, "devstack: warning: example order %s: %v\n", o.order, err)
			continue
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			fmt.Fprintf(w, "devstack: warning: example order %s: %v\n", o.order, err)
			continue
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		resp.Body.Close()
		switch {
		case resp.StatusCode/100 == 2:
		case resp.StatusCode == http.StatusConflict && holds(ctx, client, sandboxURL, o):
		case resp.StatusCode == http.StatusConflict:
			fmt.Fprintf(w, "devstack: warning: the sandbox does not file example sub-order %s under order %s (an earlier run made "+
				"one of them on first use): the examples' cases will name an order it does not; to start the platform afresh, "+
				"stop the stack, remove sandbox-state.json from the data directory and start it again\n", o.subOrder, o.order)
		default:
			fmt.Fprintf(w, "devstack: warning: example order %s (sub-order %s) not created: HTTP %d %s\n",
				o.order, o.subOrder, resp.StatusCode, bytes.TrimSpace(msg))
		}
	}
}

// holds reports whether the sandbox's Taobao order o.order holds o.subOrder.
func holds(ctx context.Context, client *http.Client, sandboxURL string, o exampleOrder) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, sandboxURL+"/_sandbox/orders/"+o.order+"?platform=taobao", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var got struct {
		SubOrders []struct {
			SubOrderID string `json:"sub_order_id"`
		} `json:"sub_orders"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&got) != nil {
		return false
	}
	for _, so := range got.SubOrders {
		if so.SubOrderID == o.subOrder {
			return true
		}
	}
	return false
}
