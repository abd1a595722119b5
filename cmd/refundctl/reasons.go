package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// reasonsOptions are the flags of reasons.
type reasonsOptions struct {
	platform, order, subOrder, goodsStatus, typ string
}

// reasonJSON is one reason the platform offers, in --json output.
type reasonJSON struct {
	Type        string `json:"type"`        // refund or return (Taobao); any (1688: the reasons do not depend on it)
	GoodsStatus string `json:"goodsStatus"` // as --goods-status takes it
	ID          int64  `json:"id"`          // for --reason-id
	Reason      string `json:"reason"`      // for --reason
	// NeedVoucher: 1688 says whether the reason needs a voucher; Taobao's
	// form does not (null), its tip may.
	NeedVoucher *bool  `json:"needVoucher"`
	NoCarriage  bool   `json:"noCarriage,omitempty"` // 1688: no freight refunded with this reason
	Tip         string `json:"tip,omitempty"`
}

// formJSON is one call's answer: the reasons for one type and goods status,
// or why the platform gave none.
type formJSON struct {
	Type        string `json:"type"`
	GoodsStatus string `json:"goodsStatus"`
	RequestID   string `json:"requestId,omitempty"`
	MaxFee      *int64 `json:"maxFee,omitempty"` // Taobao: what --amount max asks for, fen
	Error       string `json:"error,omitempty"`
}

// reasonsJSON is reasons' --json output.
type reasonsJSON struct {
	Platform   string       `json:"platform"`
	OrderID    string       `json:"orderId,omitempty"`
	SubOrderID string       `json:"subOrderId,omitempty"`
	Reasons    []reasonJSON `json:"reasons"`
	Forms      []formJSON   `json:"forms"`
}

// validate checks the flags. Taobao renders the refund form of a
// sub-order; 1688 looks the reasons up by order (a number).
func (o reasonsOptions) validate() error {
	switch o.platform {
	case string(refundflow.PlatformTaobao):
		if o.subOrder == "" {
			return usagef("--sub-order: required for taobao (the reasons come from the sub-order's refund form)")
		}
	case string(refundflow.Platform1688):
		if o.order == "" {
			return usagef("--order: required for 1688")
		}
		if o.subOrder != "" {
			return usagef("--sub-order: 1688 reasons are per order; leave it out")
		}
		if o.typ != "" {
			return usagef("--type: 1688 offers the same reasons for a refund and a return; leave it out")
		}
	default:
		return usagef("--platform %q: want taobao or 1688", excerpt.Of(o.platform, 40))
	}
	for flag, v := range map[string]string{"--order": o.order, "--sub-order": o.subOrder} {
		if v != "" && !orderIDPattern.MatchString(v) {
			return usagef("%s %q: want 1 to 24 digits", flag, excerpt.Of(v, 40))
		}
	}
	if o.platform == string(refundflow.Platform1688) && strings.HasPrefix(o.order, "0") {
		return usagef("--order %q: want a positive integer", o.order)
	}
	if o.typ != "" && o.typ != "refund" && o.typ != "return" {
		return usagef("--type %q: want refund or return", excerpt.Of(o.typ, 40))
	}
	if o.goodsStatus != "" && !slices.Contains(goodsStatuses(o.platform), o.goodsStatus) {
		return usagef("--goods-status %q: want one of %s for %s", excerpt.Of(o.goodsStatus, 40), strings.Join(goodsStatuses(o.platform), ", "), o.platform)
	}
	return nil
}

// goodsStatuses is the --goods-status vocabulary of request for a platform.
// 1688's words are the default profile's goodsStatus values in lifecycle
// order (refundflow's vocabulary; TestGoodsStatusesAreRequests checks they
// agree).
func goodsStatuses(p string) []string {
	if p == string(refundflow.PlatformTaobao) {
		return []string{"1", "2", "3"}
	}
	return platform.Default().Alibaba.GoodsStatus.All()
}

// taobaoGoodsWire is the goodsStatus integer the profile sends for a Taobao
// --goods-status, as refundflow sends it for a request.
func taobaoGoodsWire(prof *platform.Profile, code string) int {
	g := prof.Taobao.GoodsStatus
	return map[string]int{"1": g.NotShipped, "2": g.NotReceived, "3": g.Received}[code]
}

// alibabaGoodsWire is the goodsStatus string the profile sends for a 1688
// --goods-status: the profile's value at the word's place in the lifecycle.
func alibabaGoodsWire(prof *platform.Profile, word string) string {
	i := slices.Index(goodsStatuses(string(refundflow.Platform1688)), word)
	if i < 0 {
		return ""
	}
	return prof.Alibaba.GoodsStatus.All()[i]
}

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
			"whether a reason needs a voucher (VOUCHER ?); its tip may.\n\n" +
			"Exit status: 0 listed; 1 the platform refused or did not answer every call, or the\n" +
			"configuration is wrong; 2 usage.",
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
		cfg, err := loadUpstream(a.getenv)
		if err != nil {
			return err
		}
		client, err := apiclient.New(cfg)
		if err != nil {
			return fmt.Errorf("configuration: %w", err)
		}
		out := a.listReasons(cmd.Context(), client, o)
		if a.cfg.JSON {
			if err := writeJSON(a.stdout, out); err != nil {
				return err
			}
		} else if err := writeReasons(a, out); err != nil {
			return err
		}
		return reasonsErr(out)
	})
	return cmd
}

// reasonsErr fails the run when no call got an answer.
func reasonsErr(out reasonsJSON) error {
	var errs []string
	for _, f := range out.Forms {
		if f.Error == "" {
			return nil
		}
		errs = append(errs, f.Error)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("the platform listed no reasons: %s", errs[0])
}

// listReasons asks the platform once per type and goods status, and stops
// at the first call nothing answered.
func (a *app) listReasons(ctx context.Context, cl *apiclient.Client, o reasonsOptions) reasonsJSON {
	out := reasonsJSON{Platform: o.platform, OrderID: o.order, SubOrderID: o.subOrder, Reasons: []reasonJSON{}, Forms: []formJSON{}}
	goods := goodsStatuses(o.platform)
	if o.goodsStatus != "" {
		goods = []string{o.goodsStatus}
	}
	prof := cl.Profile()
	if o.platform == string(refundflow.Platform1688) {
		orderID, _ := strconv.ParseInt(o.order, 10, 64) // checked by validate
		for _, g := range goods {
			r, err := cl.AlibabaRefundReasons(ctx, apiclient.RefundReasonsRequest{OrderID: orderID, GoodsStatus: alibabaGoodsWire(prof, g)})
			form := formJSON{Type: "any", GoodsStatus: g, RequestID: r.RequestID}
			if err != nil {
				form.Error = err.Error()
			}
			out.Forms = append(out.Forms, form)
			if unanswered(err) {
				return out
			}
			for _, rr := range r.Data.Reasons {
				need := rr.NeedVoucher
				out.Reasons = append(out.Reasons, reasonJSON{Type: "any", GoodsStatus: g, ID: int64(rr.ID), Reason: rr.Name,
					NeedVoucher: &need, NoCarriage: rr.NoRefundCarriage, Tip: rr.Tip})
			}
		}
		return out
	}
	types := []string{"refund", "return"}
	if o.typ != "" {
		types = []string{o.typ}
	}
	for _, typ := range types {
		for _, g := range goods {
			if typ == "return" && g == "1" && o.goodsStatus == "" {
				continue // nothing to send back before it was shipped: the form refuses it
			}
			rt := prof.Taobao.RefundType.RefundOnly
			if typ == "return" {
				rt = prof.Taobao.RefundType.ReturnAndRefund
			}
			r, err := cl.TaobaoRender(ctx, apiclient.RenderRequest{SubOrderID: o.subOrder, RefundType: rt, GoodsStatus: taobaoGoodsWire(prof, g)})
			form := formJSON{Type: typ, GoodsStatus: g, RequestID: r.RequestID}
			if err != nil {
				form.Error = err.Error()
			} else {
				maxFee := int64(r.Data.RefundOrderTemplate.MaxRefundFee.MaxRefundFee)
				form.MaxFee = &maxFee
			}
			out.Forms = append(out.Forms, form)
			if unanswered(err) {
				return out
			}
			for _, rr := range r.Data.RefundOrderTemplate.RefundReasons {
				out.Reasons = append(out.Reasons, reasonJSON{Type: typ, GoodsStatus: g, ID: int64(rr.ReasonID), Reason: rr.ReasonDesc, Tip: rr.Tips})
			}
		}
	}
	return out
}

// unanswered reports a call the platform did not answer (as opposed to a
// refusal, which is about that type and goods status): asking the other
// combinations would only wait out the same timeouts again.
func unanswered(err error) bool {
	var apiErr *apiclient.APIError
	return err != nil && !errors.As(err, &apiErr)
}

// writeReasons prints the reasons as a table, then the calls that failed
// and, for Taobao, the most each form allows.
func writeReasons(a *app, out reasonsJSON) error {
	ew := &errWriter{w: a.stdout}
	if len(out.Reasons) > 0 {
		tw := newTable(ew)
		// The reason and its tip last: Chinese text is two columns wide
		// per character, which tabwriter does not know.
		fmt.Fprintln(tw, "TYPE\tGOODS-STATUS\tID\tVOUCHER\tREASON (TIP)")
		for _, r := range out.Reasons {
			voucher := "?"
			if r.NeedVoucher != nil {
				voucher = map[bool]string{true: "needed", false: "no"}[*r.NeedVoucher]
			}
			if r.NoCarriage {
				voucher += " (no freight)"
			}
			text := r.Reason
			if r.Tip != "" {
				text += " (" + r.Tip + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", r.Type, r.GoodsStatus, r.ID, voucher, cell(text, 0))
		}
		_ = tw.Flush()
	} else {
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
