package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/platform"
)

// triggerTypes maps accepted TYPE spellings to wire message types.
var triggerTypes = map[string]string{
	callback.TypeOrderCreate:      callback.TypeOrderCreate,
	callback.TypeOrderCancel:      callback.TypeOrderCancel,
	callback.TypeOrderPaySuccess:  callback.TypeOrderPaySuccess,
	callback.TypeOrderPriceModify: callback.TypeOrderPriceModify,
	callback.TypeOrderRefund:      callback.TypeOrderRefund,
	"CREATE":                      callback.TypeOrderCreate,
	"CANCEL":                      callback.TypeOrderCancel,
	"PAY":                         callback.TypeOrderPaySuccess,
	"PRICE":                       callback.TypeOrderPriceModify,
	"REFUND":                      callback.TypeOrderRefund,
}

var (
	orderIDPattern  = regexp.MustCompile(`^[0-9]{1,24}$`)
	refundIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// triggerOrderBody is an order message body with the documented field order
// (reference §3.2); amounts in fen.
type triggerOrderBody struct {
	OrderID       string  `json:"orderId"`
	OrderNo       string  `json:"orderNo"`
	OrderStatus   string  `json:"orderStatus"`
	PayStatus     int     `json:"payStatus"`
	TotalAmount   int64   `json:"totalAmount"`
	ShippingFee   int64   `json:"shippingFee"`
	ProductAmount int64   `json:"productAmount"`
	RefundAmount  int64   `json:"refundAmount"`
	RefundStatus  *string `json:"refundStatus"`
	CloseReason   *string `json:"closeReason"`
	TbCreateTime  string  `json:"tbCreateTime"`
	PayTime       *string `json:"payTime"`
}

// triggerRefundBody is a refund message body: refundId and orderId are
// documented; subOrderId, refundStatus and refundAmount are INFERRED.
type triggerRefundBody struct {
	RefundID     string `json:"refundId"`
	OrderID      string `json:"orderId"`
	SubOrderID   string `json:"subOrderId,omitempty"`
	RefundStatus string `json:"refundStatus,omitempty"`
	RefundAmount *int64 `json:"refundAmount,omitempty"`
}

// triggerEnvelope is callback.Envelope with the timestamp as the documented
// string of milliseconds and the documented field order.
type triggerEnvelope struct {
	MessageType     string `json:"messageType"`
	MessageBody     string `json:"messageBody"`
	MessagePlatform int    `json:"messagePlatform"`
	Timestamp       string `json:"timestamp"`
}

type triggerOptions struct {
	platform, order, subOrder, refund, status, orderNo string
	amount                                             int64
	timestampMS                                        int64
}

func knownTriggerTypes() string {
	seen := map[string]bool{}
	var out []string
	for _, t := range triggerTypes {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// buildTrigger synthesises the envelope bytes for typ.
func buildTrigger(typ string, o triggerOptions, now time.Time, prof *platform.Profile) ([]byte, error) {
	wire, ok := triggerTypes[strings.ToUpper(strings.TrimSpace(typ))]
	if !ok {
		return nil, usagef("unknown message type %q: want one of %s (or create, cancel, pay, price, refund)", cell(typ, 60), knownTriggerTypes())
	}
	var platform int
	switch o.platform {
	case "taobao":
		platform = int(callback.PlatformTaobao)
	case "1688":
		platform = int(callback.Platform1688)
	default:
		return nil, usagef("--platform %q: want taobao or 1688", cell(o.platform, 40))
	}
	if !orderIDPattern.MatchString(o.order) {
		return nil, usagef("--order %q: want 1 to 24 digits", cell(o.order, 40))
	}
	if o.subOrder != "" && !orderIDPattern.MatchString(o.subOrder) {
		return nil, usagef("--sub-order %q: want 1 to 24 digits", cell(o.subOrder, 40))
	}
	if o.status != "" && !refundIDPattern.MatchString(o.status) {
		return nil, usagef("--status %q: want 1 to 64 of A-Z a-z 0-9 _ . -", cell(o.status, 40))
	}
	if o.amount < 0 {
		return nil, usagef("--amount %d: must not be negative", o.amount)
	}
	if o.timestampMS < 0 {
		return nil, usagef("--timestamp %d: must not be negative", o.timestampMS)
	}
	ts := o.timestampMS
	if ts == 0 {
		ts = now.UnixMilli()
	}
	at := time.UnixMilli(ts)
	var body []byte
	var err error
	if wire == callback.TypeOrderRefund {
		if o.refund == "" {
			return nil, usagef("--refund is required for %s", wire)
		}
		if !refundIDPattern.MatchString(o.refund) {
			return nil, usagef("--refund %q: want 1 to 64 of A-Z a-z 0-9 _ . -", cell(o.refund, 40))
		}
		b := triggerRefundBody{RefundID: o.refund, OrderID: o.order, SubOrderID: o.subOrder,
			RefundStatus: wireStatus(prof, o.platform == "1688", o.status)}
		if o.amount > 0 {
			b.RefundAmount = &o.amount
		}
		body, err = json.Marshal(b)
	} else {
		if o.refund != "" {
			return nil, usagef("--refund applies only to %s", callback.TypeOrderRefund)
		}
		if o.subOrder != "" {
			return nil, usagef("--sub-order applies only to %s", callback.TypeOrderRefund)
		}
		created := prof.FormatTime(at.Add(-time.Minute)) // written as the profile says the platform writes times
		paid := prof.FormatTime(at)
		b := triggerOrderBody{OrderID: o.order, OrderNo: o.orderNo, PayStatus: 1,
			TotalAmount: 10000, ShippingFee: 500, TbCreateTime: created}
		if b.OrderNo == "" {
			suffix := o.order
			if len(suffix) > 4 {
				suffix = suffix[len(suffix)-4:]
			}
			b.OrderNo = fmt.Sprintf("PO%s%04s", at.Format("20060102"), suffix)
		}
		switch wire {
		case callback.TypeOrderCreate:
			b.OrderStatus = "WAITING_FOR_PAYMENT"
		case callback.TypeOrderCancel:
			b.OrderStatus = "CANCEL"
			reason := "buyer_cancel"
			b.CloseReason = &reason
			b.PayTime = &paid
		case callback.TypeOrderPaySuccess:
			b.OrderStatus, b.PayStatus, b.PayTime = "WAITING_FOR_SENT", 2, &paid
		case callback.TypeOrderPriceModify:
			b.OrderStatus, b.TotalAmount = "WAITING_FOR_PAYMENT", 9800
		}
		if o.amount > 0 {
			b.TotalAmount = o.amount
		}
		if b.TotalAmount < b.ShippingFee {
			b.ShippingFee = 0
		}
		b.ProductAmount = b.TotalAmount - b.ShippingFee
		if o.status != "" {
			b.OrderStatus = o.status
		}
		body, err = json.Marshal(b)
	}
	if err != nil {
		return nil, fmt.Errorf("encode body: %w", err)
	}
	env, err := json.Marshal(triggerEnvelope{MessageType: wire, MessageBody: string(body), MessagePlatform: platform,
		Timestamp: strconv.FormatInt(ts, 10)})
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	return env, nil
}

func (a *app) triggerCommand() *cobra.Command {
	var o triggerOptions
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "trigger TYPE",
		Short: "Synthesise a platform callback and POST it to the receiver (like stripe trigger)",
		Long: "Builds a valid callback envelope of TYPE for an order or refund, exactly in the\n" +
			"documented form (messageBody a JSON string, timestamp milliseconds as a string),\n" +
			"and POSTs it to RECEIVER_URL/callbacks/<CALLBACK_TOKEN>, printing the receiver's answer.\n\n" +
			"TYPE: " + knownTriggerTypes() + "\n(short forms: create, cancel, pay, price, refund; any case)",
		Example: "  refundctl trigger ORDER_PAY_SUCCESS --platform 1688 --order 3305075341149134260\n" +
			"  refundctl trigger refund --platform taobao --order 3305075341149134260 --sub-order 3305075341149134261 --refund TQ123 --status wait_seller_agree\n" +
			"  refundctl trigger create --platform 1688 --order 1 --dry-run >> callbacks.jsonl",
		Args: cobra.ExactArgs(1),
	}
	f := cmd.Flags()
	f.StringVar(&o.platform, "platform", "", "taobao or 1688 (required)")
	f.StringVar(&o.order, "order", "", "order id (required)")
	f.StringVar(&o.subOrder, "sub-order", "", "sub-order id (refund messages, Taobao)")
	f.StringVar(&o.refund, "refund", "", "refund id (required for refund messages)")
	f.StringVar(&o.status, "status", "", "orderStatus (order messages) or refundStatus (refund messages); for refunds a phase (wait_seller_agree, seller_refused, wait_buyer_return, wait_seller_receive, success, closed) is sent as the platform profile names it")
	f.StringVar(&o.orderNo, "order-no", "", "orderNo of order messages (default PO<date>…)")
	f.Int64Var(&o.amount, "amount", 0, "totalAmount (order messages) or refundAmount (refund messages), fen")
	f.Int64Var(&o.timestampMS, "timestamp", 0, "envelope timestamp in Unix ms (default now)")
	f.BoolVar(&dryRun, "dry-run", false, "print the envelope (one JSON line, usable with replay --file); send nothing")
	_ = cmd.MarkFlagRequired("platform")
	_ = cmd.MarkFlagRequired("order")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		prof, err := platform.Load(a.cfg.ProfilePath)
		if err != nil {
			return fmt.Errorf("UPSTREAM_PROFILE: %w", err)
		}
		env, err := buildTrigger(args[0], o, a.now(), prof)
		if err != nil {
			return err
		}
		parser, err := a.callbackParser()
		if err != nil {
			return err
		}
		ev, err := parser.Parse(env)
		if err != nil || ev.Parked() {
			return fmt.Errorf("internal: synthesised envelope does not validate: %v %s", err, ev.Park)
		}
		subject := events.AcceptedSubject(ev.Platform.String(), ev.Type)
		out := struct {
			Envelope json.RawMessage `json:"envelope"`
			MsgID    string          `json:"msgId"`
			Subject  string          `json:"subject"`
			DryRun   bool            `json:"dryRun"`
			Status   int             `json:"status,omitempty"`
			Response string          `json:"response,omitempty"`
		}{Envelope: env, MsgID: ev.ID, Subject: subject, DryRun: dryRun}
		if dryRun {
			if a.cfg.JSON {
				return writeJSON(a.stdout, out)
			}
			_, err := fmt.Fprintf(a.stdout, "%s\n", env)
			return err
		}
		p, err := a.newPoster()
		if err != nil {
			return err
		}
		res, err := p.post(cmd.Context(), env)
		if err != nil {
			return err
		}
		if !res.ok() {
			return fmt.Errorf("receiver answered %s", res)
		}
		out.Status, out.Response = res.Status, res.Body
		if a.cfg.JSON {
			return writeJSON(a.stdout, out)
		}
		_, err = fmt.Fprintf(a.stdout, "sent %s (%s, msg id %s): receiver answered %s\n", ev.Type, subject, ev.ID, res)
		return err
	})
	return cmd
}

// wireStatus is a refund status as the platform would send it: a phase
// (wait_seller_agree, …) by the profile's name for it, anything else as given.
func wireStatus(prof *platform.Profile, is1688 bool, status string) string {
	ph := platform.Phase(status)
	switch {
	case !slices.Contains(platform.Phases(), ph):
		return status
	case is1688:
		return prof.AlibabaName(ph)
	}
	return prof.TaobaoName(ph)
}
