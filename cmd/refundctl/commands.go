package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// target is how a command names its case.
type target struct {
	platform   string
	orderID    string
	subOrderID string
	caseID     int64
	id         string
}

func addTargetFlags(cmd *cobra.Command, t *target) {
	f := cmd.Flags()
	f.StringVar(&t.platform, "platform", "", "taobao or 1688 (required)")
	f.StringVar(&t.orderID, "order", "", "order id (1688 cases are one per order)")
	f.StringVar(&t.subOrderID, "sub-order", "", "sub-order id (Taobao cases are one per sub-order)")
	f.Int64Var(&t.caseID, "case", 0, "case id, instead of the order, for an existing case")
	f.StringVar(&t.id, "id", "", "command id (default: random); reuse it to retry a publish safely")
	_ = cmd.MarkFlagRequired("platform")
}

// newCommandID returns a random command id: "cmd-" and 24 hex digits.
func newCommandID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("command id: %w", err)
	}
	return "cmd-" + hex.EncodeToString(b[:]), nil
}

func (a *app) newCommand(t target, kind refundflow.InputKind) (refundflow.Command, error) {
	id := t.id
	if id == "" {
		var err error
		if id, err = newCommandID(); err != nil {
			return refundflow.Command{}, err
		}
	}
	if t.platform == string(refundflow.Platform1688) && t.subOrderID != "" {
		return refundflow.Command{}, usagef("--sub-order: 1688 cases are one per order; leave it out (--order-entry names the sub-orders a request concerns)")
	}
	return refundflow.Command{
		ID: id, Kind: kind, Platform: refundflow.Platform(t.platform),
		OrderID: t.orderID, SubOrderID: t.subOrderID, CaseID: t.caseID,
		Operator: a.cfg.Operator, IssuedAt: a.now().UTC().Truncate(time.Millisecond),
	}, nil
}

// commandResult is the --json output of the command verbs.
type commandResult struct {
	ID        string             `json:"id"`
	Subject   string             `json:"subject"`
	Stream    string             `json:"stream"`
	Sequence  uint64             `json:"seq"`
	Duplicate bool               `json:"duplicate"`
	Command   refundflow.Command `json:"command"`
	// Verdict is the worker's verdict (absent with --no-wait).
	Verdict *verdictJSON `json:"verdict,omitempty"`
}

// publishCommand validates c, publishes it with Nats-Msg-Id = c.ID, waits
// for the PubAck and then, unless --no-wait, for the worker's verdict,
// which decides the exit status (see verdictErr).
func (a *app) publishCommand(ctx context.Context, c refundflow.Command, vo verdictOptions) error {
	if err := c.Validate(); err != nil {
		return usagef("invalid %s command: %s", c.Kind, errorLine(err))
	}
	var st *casestore.Store
	if !vo.noWait {
		if vo.wait <= 0 {
			return usagef("--wait %s: must be positive (or --no-wait)", vo.wait)
		}
		// Before publishing: a command whose verdict cannot be read is
		// better not sent than sent blind.
		var err error
		if st, err = a.openStore(ctx); err != nil {
			return fmt.Errorf("%w (the verdict is read there; --no-wait publishes without it)", err)
		}
		defer st.Close()
	}
	res, err := a.publish(ctx, c)
	if err != nil {
		return err
	}
	if vo.noWait {
		if a.cfg.JSON {
			return writeJSON(a.stdout, res)
		}
		if res.Duplicate {
			_, err = fmt.Fprintf(a.stdout, "%s (duplicate: a command with this id is already stored)\n", c.ID)
			return err
		}
		_, err = fmt.Fprintln(a.stdout, c.ID)
		return err
	}
	v, err := a.awaitVerdict(ctx, st, c, vo.wait)
	if err != nil {
		fmt.Fprintln(a.stdout, c.ID)
		return fmt.Errorf("command %s published; reading its verdict: %w", c.ID, err)
	}
	res.Verdict = &v
	if a.cfg.JSON {
		if err := writeJSON(a.stdout, res); err != nil {
			return err
		}
		return verdictErr(v, vo.wait)
	}
	if _, err := fmt.Fprintln(a.stdout, c.ID); err != nil {
		return err
	}
	if v.Verdict == casestore.VerdictApplied {
		_, err := fmt.Fprintln(a.stdout, verdictLine(v, vo.wait))
		return err
	}
	return verdictErr(v, vo.wait)
}

// publish publishes c and waits for the PubAck.
func (a *app) publish(ctx context.Context, c refundflow.Command) (commandResult, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return commandResult{}, fmt.Errorf("encode command: %w", err)
	}
	nc, js, err := a.connect()
	if err != nil {
		return commandResult{}, err
	}
	defer nc.Close()
	subject := events.CommandSubject(string(c.Platform), string(c.Kind))
	m := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	m.Header.Set(events.HeaderCommandKind, string(c.Kind))
	if c.Operator != "" {
		m.Header.Set(events.HeaderCommandIssuer, c.Operator)
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	ack, err := js.PublishMsg(ctx, m, jetstream.WithMsgID(c.ID))
	if err != nil {
		return commandResult{}, publishErr(subject, err)
	}
	return commandResult{ID: c.ID, Subject: subject, Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate, Command: c}, nil
}

func (a *app) requestCommand() *cobra.Command {
	var t target
	var vo verdictOptions
	var typ string
	var r refundflow.Request
	cmd := &cobra.Command{
		Use:   "request",
		Short: "Start a refund case (refund only, or return and refund)",
		Example: "  refundctl request --platform taobao --order 3305075341149134260 --sub-order 3305075341149134261 \\\n" +
			"      --type refund --goods-status 1 --reason-id 5 --amount 0 --description 'not shipped in time'\n" +
			"  refundctl request --platform 1688 --order 3305075341149134260 --type return \\\n" +
			"      --goods-status refundBuyerReceived --reason 'quality problem' --amount 9500 --description 'broken on arrival' --voucher crack.jpg",
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	addTargetFlags(cmd, &t)
	addVerdictFlags(cmd, &vo)
	f.StringVar(&typ, "type", "refund", "refund (refund only) or return (return goods and refund)")
	f.StringVar(&r.GoodsStatus, "goods-status", "", "Taobao: 1 not shipped, 2 shipped not received, 3 received; 1688: refundWaitSellerSend, refundWaitBuyerReceive, refundBuyerReceived, aftersaleBuyerNotReceived, aftersaleBuyerReceived")
	f.Int64Var(&r.ReasonID, "reason-id", 0, "platform reason id")
	f.StringVar(&r.Reason, "reason", "", "reason text (matched against the platform's reasons), instead of --reason-id")
	f.Int64Var(&r.Amount, "amount", 0, "amount in fen (Taobao: 0 = the most allowed; 1688: required)")
	f.Int64Var(&r.Carriage, "carriage", 0, "freight to claim back in fen (1688)")
	f.StringVar(&r.Description, "description", "", "description for the seller")
	f.StringArrayVar(&r.Vouchers, "voucher", nil, "evidence image (repeatable): 1688, a file name in the worker's WORKER_VOUCHER_DIR, uploaded first; Taobao, an image URL")
	f.Int64SliceVar(&r.OrderEntryIDs, "order-entry", nil, "1688 sub-order ids concerned (repeatable)")
	_ = cmd.MarkFlagRequired("goods-status")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		switch strings.ToLower(typ) {
		case "refund":
			r.ReturnGoods = false
		case "return":
			r.ReturnGoods = true
		default:
			return usagef("--type %q: want refund or return", typ)
		}
		c, err := a.newCommand(t, refundflow.InputRequestRefund)
		if err != nil {
			return err
		}
		req := r
		c.Request = &req
		return a.publishCommand(cmd.Context(), c, vo)
	})
	return cmd
}

func (a *app) shipCommand() *cobra.Command {
	var t target
	var vo verdictOptions
	var s refundflow.Shipment
	cmd := &cobra.Command{
		Use:     "ship",
		Short:   "Report the return shipment of a case (logistics company and waybill)",
		Example: "  refundctl ship --platform taobao --sub-order 3305075341149134261 --company SF --waybill SF1234567890",
		Args:    cobra.NoArgs,
	}
	f := cmd.Flags()
	addTargetFlags(cmd, &t)
	addVerdictFlags(cmd, &vo)
	f.StringVar(&s.Company, "company", "", "logistics company code (Taobao logisticsCompanyCode, 1688 companyNo)")
	f.StringVar(&s.Waybill, "waybill", "", "waybill number")
	f.StringVar(&s.Phone, "phone", "", "sender phone (optional)")
	f.StringVar(&s.Description, "description", "", "note for the seller (optional)")
	_ = cmd.MarkFlagRequired("company")
	_ = cmd.MarkFlagRequired("waybill")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		c, err := a.newCommand(t, refundflow.InputReportShipment)
		if err != nil {
			return err
		}
		sh := s
		c.Shipment = &sh
		return a.publishCommand(cmd.Context(), c, vo)
	})
	return cmd
}

func (a *app) cancelCommand() *cobra.Command {
	var t target
	var vo verdictOptions
	cmd := &cobra.Command{
		Use:     "cancel",
		Short:   "Cancel a case's refund",
		Example: "  refundctl cancel --platform taobao --case 12",
		Args:    cobra.NoArgs,
	}
	addTargetFlags(cmd, &t)
	addVerdictFlags(cmd, &vo)
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		c, err := a.newCommand(t, refundflow.InputCancel)
		if err != nil {
			return err
		}
		return a.publishCommand(cmd.Context(), c, vo)
	})
	return cmd
}

func (a *app) messageCommand() *cobra.Command {
	var t target
	var vo verdictOptions
	var text string
	cmd := &cobra.Command{
		Use:     "message",
		Short:   "Send a message to the seller about a case",
		Example: "  refundctl message --platform 1688 --order 3305075341149134260 --text 'photos attached'",
		Args:    cobra.NoArgs,
	}
	addTargetFlags(cmd, &t)
	addVerdictFlags(cmd, &vo)
	cmd.Flags().StringVar(&text, "text", "", "message text")
	_ = cmd.MarkFlagRequired("text")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		c, err := a.newCommand(t, refundflow.InputSendMessage)
		if err != nil {
			return err
		}
		c.Message = text
		return a.publishCommand(cmd.Context(), c, vo)
	})
	return cmd
}
