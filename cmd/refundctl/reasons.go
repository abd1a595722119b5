package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/reasons"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// reasonsOptions are the flags of reasons.
type reasonsOptions struct {
	platform, order, subOrder, goodsStatus, typ string
}

// reasonFlags are reasons' flags by the request field a
// reasons.FieldError names.
var reasonFlags = map[string]string{"platform": "--platform", "orderId": "--order", "subOrderId": "--sub-order",
	"goodsStatus": "--goods-status", "type": "--type"}

// validate checks the flags as reasons.Query.Check does, naming the flag.
func (o reasonsOptions) validate() error {
	err := o.query().Check()
	var fe *reasons.FieldError
	if errors.As(err, &fe) {
		if fe.Given != "" {
			return usagef("%s %q: %s", reasonFlags[fe.Field], fe.Given, fe.Rule)
		}
		return usagef("%s: %s", reasonFlags[fe.Field], fe.Rule)
	}
	return err
}

// query is what the flags ask.
func (o reasonsOptions) query() reasons.Query {
	return reasons.Query{Platform: o.platform, OrderID: o.order, SubOrderID: o.subOrder, GoodsStatus: o.goodsStatus, Type: o.typ}
}

// goodsStatuses is the --goods-status vocabulary of request for a platform.
func goodsStatuses(p string) []string { return reasons.GoodsStatuses(p) }

func (a *app) reasonsCommand() *cobra.Command {
	var o reasonsOptions
	cmd := &cobra.Command{
		Use:   "reasons --platform taobao|1688 (--sub-order ID | --order ID) [--goods-status S] [--type refund|return]",
		Short: "List the refund reasons the platform offers for an order, with ids and whether a voucher is needed",
		Long: "Asks the platform configured by UPSTREAM_* (as doctor and the worker read it) which refund\n" +
			"reasons it offers: Taobao renders the sub-order's refund form (read-only) for each refund\n" +
			"type and goods status, 1688 looks the reasons up by order for each goods status. Without\n" +
			"--goods-status (and on Taobao --type) every combination is asked. Use an id with\n" +
			"`request --reason-id`, or the text with `request --reason`. Taobao's form does not say\n" +
			"whether a reason needs a voucher (VOUCHER ?); its tip may. With REFUNDHUB_URL set the\n" +
			"console asks, with its own platform credentials (an operator's token).\n\n" +
			"Exit status: 0 listed; 1 the platform refused or did not answer every call, the console\n" +
			"refused (a viewer's token, no platform credentials there), or the configuration is\n" +
			"wrong; 2 usage.",
		Example: "  refundctl reasons --platform taobao --order 3305075341149134260 --sub-order 3305075341149134261 --goods-status 1\n" +
			"  refundctl reasons --platform 1688 --order 3305075341149134262 --json",
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&o.platform, "platform", "", "taobao or 1688 (required)")
	f.StringVar(&o.order, "order", "", "order id (1688: required; Taobao: shown only, the form is the sub-order's)")
	f.StringVar(&o.subOrder, "sub-order", "", "Taobao sub-order id (required for Taobao)")
	f.StringVar(&o.goodsStatus, "goods-status", "", "only this goods status, as request takes it (Taobao 1, 2, 3; 1688 refundWaitSellerSend, …)")
	f.StringVar(&o.typ, "type", "", "Taobao: only refund or return (default both)")
	_ = cmd.MarkFlagRequired("platform")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		if err := o.validate(); err != nil {
			return err
		}
		out, err := a.lookupReasons(cmd.Context(), o.query())
		if err != nil {
			return err
		}
		if a.cfg.JSON {
			if err := writeJSON(a.stdout, out); err != nil {
				return err
			}
		} else if err := writeReasons(a, out); err != nil {
			return err
		}
		return out.Err()
	})
	return cmd
}

// lookupReasons asks the platform configured by UPSTREAM_*, or with
// REFUNDHUB_URL set the console, which asks its own (GET /api/v1/reasons):
// an operator away from the host has no platform credentials.
func (a *app) lookupReasons(ctx context.Context, q reasons.Query) (reasons.Result, error) {
	if a.cfg.ConsoleURL != "" {
		r, err := a.newRemote()
		if err != nil {
			return reasons.Result{}, err
		}
		defer r.close()
		return r.reasons(ctx, q)
	}
	cfg, err := loadUpstream(a.getenv)
	if err != nil {
		return reasons.Result{}, err
	}
	client, err := apiclient.New(cfg)
	if err != nil {
		return reasons.Result{}, fmt.Errorf("configuration: %w", err)
	}
	return reasons.Lookup(ctx, client, q), nil
}

// writeReasons prints the reasons as a table, then the calls that failed
// and, for Taobao, the most each form allows.
func writeReasons(a *app, out reasons.Result) error {
	ew := &errWriter{w: a.stdout}
	if len(out.Reasons) > 0 {
		tw := newTable(ew)
		// The reason and its tip last: Chinese text is two columns wide
		// per character, which tabwriter does not know.
		fmt.Fprintln(tw, "TYPE\tGOODS-STATUS\tID\tVOUCHER\tREASON (TIP)")
		for _, r := range out.Reasons {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", r.Type, r.GoodsStatus, r.ID, r.VoucherNeed("?"), cell(r.WithTip(), 0))
		}
		_ = tw.Flush()
	} else if out.Answered() {
		ew.printf("no reasons offered\n")
	}
	for _, f := range out.Forms {
		switch {
		case f.Error != "":
			ew.printf("%s %s: %s\n", f.Type, f.GoodsStatus, f.Error)
		case f.MaxFee != nil && out.Platform == string(refundflow.PlatformTaobao):
			ew.printf("%s %s: the form allows up to %d fen (--amount max)\n", f.Type, f.GoodsStatus, *f.MaxFee)
		}
	}
	return ew.err
}
