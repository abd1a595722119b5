package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/opcommands"
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

func addTargetFlags(cmd *cobra.Command, t *target, r rules) {
	f := cmd.Flags()
	f.StringVar(&t.platform, "platform", "", "taobao or 1688 (required unless --case names the case)")
	f.StringVar(&t.orderID, "order", "", "order id; 1688 (one case per order): "+r.alibabaOrder+"; Taobao: request needs it besides --sub-order")
	f.StringVar(&t.subOrderID, "sub-order", "", "sub-order id; Taobao (one case per sub-order): "+r.taobaoSubOrder+"; never with 1688")
	f.Int64Var(&t.caseID, "case", 0, "case id of an existing case, instead of --platform/--order/--sub-order (read from the case store)")
	f.StringVar(&t.id, "id", "", "command id, "+r.id+" (default: random); reuse it to retry a publish safely")
}

// newCommandID returns a random command id (opcommands.NewID).
func newCommandID() (string, error) { return opcommands.NewID() }

// newCommand builds the command t names, as far as the flags say: with
// --case alone, publishCommand reads the platform and the order from the
// case store (caseTarget).
func (a *app) newCommand(t target, kind refundflow.InputKind) (refundflow.Command, error) {
	if t.caseID < 0 {
		return refundflow.Command{}, usagef("--case %d: must be positive", t.caseID)
	}
	if t.platform == "" && t.caseID == 0 {
		return refundflow.Command{}, usagef("--platform: required (taobao or 1688), unless --case names the case")
	}
	if t.platform != "" && !refundflow.Platform(t.platform).Valid() {
		return refundflow.Command{}, usagef("--platform %q: want taobao or 1688", excerpt.Of(t.platform, 40))
	}
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

// caseArg takes the case named as the command's argument (`refundctl
// cancel 12`, as modify, resolve, show and wait take it) into t: the same
// as --case 12, which it must not contradict.
func (a *app) caseArg(cmd *cobra.Command, args []string, t *target) error {
	if len(args) == 0 {
		return nil
	}
	id, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || id <= 0 {
		return usagef("CASE %q: want a case id (a positive integer; refundctl list shows them)", excerpt.Of(args[0], 40))
	}
	if cmd.Flags().Changed("case") && t.caseID != id {
		return usagef("CASE %d and --case %d name different cases: give one", id, t.caseID)
	}
	t.caseID, a.caseNamed = id, "CASE"
	return nil
}

// caseTarget completes c from the case --case names, read through b: its
// platform, order and (Taobao) sub-order (opcommands.ApplyTarget, which
// the console's API applies too). A flag that contradicts the case is a
// usage error naming it. A case that does not exist is an error unless
// --platform was given: then the command goes to the worker, whose
// verdict says the case is unknown.
func (a *app) caseTarget(ctx context.Context, b backend, c *refundflow.Command, noWait bool) error {
	k, err := b.lookupCase(ctx, caseSelector{}, c.CaseID)
	var nf *notFoundError
	switch {
	case errors.As(err, &nf) && c.Platform != "":
		return nil
	case errors.As(err, &nf):
		return a.targetErr(c.CaseID, fmt.Errorf("case %d: %w", c.CaseID, opcommands.ErrUnknownCase))
	case err != nil && noWait:
		return fmt.Errorf("%w (%s is looked up there; give --platform too to send it unchecked)", err, a.caseName())
	case err != nil:
		return err
	}
	return a.targetErr(c.CaseID, opcommands.ApplyTarget(k, c))
}

// targetErr explains an error of opcommands.CompleteTarget in terms of the
// flags; where names the store (or the console) --case was looked up in.
func (a *app) targetErr(caseID int64, err error) error {
	var te *opcommands.TargetError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &te):
		flag := fieldFlags[te.Field]
		return usagef("%s %s: case %d is for %s %s; leave %s out or fix %s", flag, excerpt.Of(te.Given, 40), te.CaseID, te.What, te.Is, flag, a.caseName())
	case errors.Is(err, opcommands.ErrUnknownCase):
		return fmt.Errorf("%s %d: no such case in %s", a.caseName(), caseID, a.source())
	}
	return err
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

// publishCommand validates c, sends it through the backend (with
// Nats-Msg-Id = c.ID, directly or by the console) and then, unless
// --no-wait, waits for the worker's verdict, which decides the exit status
// (see verdictErr).
//
// With --case the case names the platform and the order (caseTarget);
// fire-and-forget with --platform given does not read the store (the
// worker checks the case). Flags are checked before anything is opened
// whenever the platform is known, so bad input is reported as such.
func (a *app) publishCommand(ctx context.Context, c refundflow.Command, vo verdictOptions) error {
	if !vo.noWait && vo.wait <= 0 {
		return usagef("--wait %s: must be positive (or --no-wait)", vo.wait)
	}
	if c.Platform != "" {
		if err := validateCommand(c); err != nil {
			return err
		}
	}
	b, err := a.backend()
	if err != nil {
		return err
	}
	defer b.close()
	if c.CaseID > 0 && (c.Platform == "" || !vo.noWait) {
		if err := a.caseTarget(ctx, b, &c, vo.noWait); err != nil {
			return err
		}
		if err := opcommands.Check(c); err != nil {
			return usagef("invalid %s command for case %d: %s", c.Kind, c.CaseID, flagMessage(err))
		}
	}
	wait := vo.wait
	if vo.noWait {
		wait = 0
	}
	res, verdict, err := b.send(ctx, c, wait)
	if err != nil {
		if res.ID != "" {
			fmt.Fprintln(a.stdout, res.ID) // published: the id to follow it by
		}
		return err
	}
	c = res.Command
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
	v := toVerdictJSON(c, *verdict)
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

// unconfirmedError is a command sent whose storing was not confirmed (no
// PubAck in time, the console's answer lost): it may be stored, or not. The
// operator needs its id: sent again under the same id it is stored once,
// under a new one it could be applied twice.
type unconfirmedError struct {
	id  string
	err error
}

func (e *unconfirmedError) Error() string {
	return fmt.Sprintf("%v; command %s may have been stored: send it again with --id %s (an id is stored once), or follow it with: refundctl wait --command %s",
		e.err, e.id, e.id, e.id)
}

func (e *unconfirmedError) Unwrap() error { return e.err }

// validateCommand is the validation every operator command gets
// (opcommands.Check: the worker's own, and what a modification can be
// checked for) in terms of the flags: a usage error naming them.
func validateCommand(c refundflow.Command) error {
	if err := opcommands.Check(c); err != nil {
		return usagef("invalid %s command: %s", c.Kind, flagMessage(err))
	}
	return nil
}

// publish publishes c and waits for the PubAck.
func (a *app) publish(ctx context.Context, c refundflow.Command) (commandResult, error) {
	nc, js, err := a.connect()
	if err != nil {
		return commandResult{}, err
	}
	defer nc.Close()
	return a.publishOn(ctx, js, c)
}

// publishOn publishes c on js through opcommands.Publish (the one path
// the console shares) and waits for the PubAck within --timeout; a batch
// publishes all its rows on one connection.
func (a *app) publishOn(ctx context.Context, js jetstream.JetStream, c refundflow.Command) (commandResult, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	ack, err := opcommands.Publish(ctx, js, c)
	var pe *opcommands.PublishError
	if errors.As(err, &pe) {
		if opcommands.NotStored(err) {
			return commandResult{}, publishErr(pe.Subject, pe.Err)
		}
		// Sent, and not confirmed: JetStream may have stored it.
		return commandResult{}, &unconfirmedError{id: c.ID, err: publishErr(pe.Subject, pe.Err)}
	}
	if err != nil {
		return commandResult{}, err
	}
	return commandResult{ID: c.ID, Subject: ack.Subject, Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate, Command: c}, nil
}

// requestExamples are request's --help examples. They work as written
// against devstack's sandbox (which creates unknown orders on first use):
// the reasons are ones it offers for that type and goods status, without a
// voucher, as `refundctl reasons` lists them. TestHelpExamplesDoNotPark
// runs them against a real stack.
const requestExamples = `  refundctl request --platform taobao --order 3305075341149134260 --sub-order 3305075341149134261 \
      --type refund --goods-status 1 --reason-id 1004 --amount max --description 'not shipped in time'
  refundctl request --platform 1688 --order 3305075341149134262 --type return \
      --goods-status aftersaleBuyerReceived --reason '七天无理由退货' --amount 9500 --description 'no longer needed'`

// amountMax is --amount's word for Taobao's "the most the rendered form
// allows" (Request.Amount 0): refundflow's.
const amountMax = refundflow.AmountMax

// parseAmount reads --amount: fen, or max (Taobao only; 0 means the same,
// kept for scripts written before max).
func parseAmount(platform, s string) (int64, error) {
	n, err := refundflow.ParseAmount(refundflow.Platform(platform), s)
	if err != nil {
		return 0, usagef("--amount %s", err)
	}
	return n, nil
}

// requestInput is a request as the operator gives it: request's flags, or
// one row of a batch file (whose columns are named like the flags).
type requestInput struct {
	target
	typ     string // refund or return
	amount  string // fen or max; "" as when --amount is not given
	request refundflow.Request
}

// buildRequest turns in into a request_refund command and validates it as
// the worker will: the one path from flags (or a batch row) to a command.
// Errors are usage errors naming the flags.
func (a *app) buildRequest(in requestInput) (refundflow.Command, error) {
	req := in.request
	switch strings.ToLower(in.typ) {
	case "refund", "":
		req.ReturnGoods = false
	case "return":
		req.ReturnGoods = true
	default:
		return refundflow.Command{}, usagef("--type %q: want refund or return", excerpt.Of(in.typ, 40))
	}
	c, err := a.newCommand(in.target, refundflow.InputRequestRefund)
	if err != nil {
		return refundflow.Command{}, err
	}
	if in.amount != "" {
		if req.Amount, err = parseAmount(string(c.Platform), in.amount); err != nil {
			return refundflow.Command{}, err
		}
	}
	c.Request = &req
	if c.Platform == "" {
		return c, nil // --case alone: publishCommand validates once the case names the platform
	}
	if err := validateCommand(c); err != nil {
		return refundflow.Command{}, err
	}
	return c, nil
}

func (a *app) requestCommand() *cobra.Command {
	var in requestInput
	var vo verdictOptions
	var bo batchOptions
	rs := validationRules()
	cmd := &cobra.Command{
		Use:   "request",
		Short: "Start a refund case (refund only, or return and refund), or many from a file",
		Long: "Start a refund case: Taobao, one per sub-order (--order and --sub-order required); 1688, one\n" +
			"per order (--order required, no --sub-order). The reason must be one the platform offers for\n" +
			"the order, type and goods status: `refundctl reasons` lists them, with their ids and whether a\n" +
			"voucher is needed. A reason that is not offered parks the case (reason_not_offered).\n\n" +
			"--file starts one case per row of a CSV or JSON Lines file whose columns are named like the\n" +
			"flags (" + strings.Join(batchColumns, ", ") + "). Every row is checked first;\n" +
			"the valid rows are filed, each under a command id derived from its content (unless it has an\n" +
			"id), so running the same file again files nothing twice.",
		Example: requestExamples,
		Args:    cobra.NoArgs,
	}
	f := cmd.Flags()
	addTargetFlags(cmd, &in.target, rs)
	addVerdictFlags(cmd, &vo)
	addBatchFlags(cmd, &bo)
	r := &in.request
	f.StringVar(&in.typ, "type", "refund", "refund (refund only) or return (return goods and refund)")
	f.StringVar(&r.GoodsStatus, "goods-status", "", "required; Taobao: 1 not shipped, 2 shipped not received, 3 received; 1688: "+rs.alibabaGoods)
	f.Int64Var(&r.ReasonID, "reason-id", 0, "platform reason id (refundctl reasons lists them)")
	f.StringVar(&r.Reason, "reason", "", "reason text, exactly as the platform offers it (case aside), instead of --reason-id")
	f.StringVar(&in.amount, "amount", "", "amount in fen, or max; Taobao: max (or 0, as before) = the most the rendered form allows; 1688: "+rs.alibabaAmount)
	f.Int64Var(&r.Carriage, "carriage", 0, "freight to claim back in fen (1688 only)")
	f.StringVar(&r.Description, "description", "", "description for the seller; 1688: "+rs.alibabaDescription+"; Taobao: "+rs.taobaoDescription)
	f.StringArrayVar(&r.Vouchers, "voucher", nil, "evidence image (repeatable), needed by some reasons: 1688, a file name in the worker's WORKER_VOUCHER_DIR, uploaded first; Taobao, an image URL")
	f.Int64SliceVar(&r.OrderEntryIDs, "order-entry", nil, "1688 sub-order ids concerned (repeatable)")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		if bo.file != "" {
			return a.requestBatch(cmd, bo, vo)
		}
		if err := bo.withoutFile(cmd); err != nil {
			return err
		}
		if !cmd.Flags().Changed("goods-status") {
			return usagef(`required flag(s) "goods-status" not set`)
		}
		c, err := a.buildRequest(in)
		if err != nil {
			return err
		}
		return a.publishCommand(cmd.Context(), c, vo)
	})
	return cmd
}

func (a *app) shipCommand() *cobra.Command {
	var t target
	var vo verdictOptions
	var s refundflow.Shipment
	rs := validationRules()
	cmd := &cobra.Command{
		Use:   "ship [CASE]",
		Short: "Report the return shipment of a case (logistics company and waybill)",
		Long: "Report the return shipment of a case waiting for it. Name the case by its id (CASE, or\n" +
			"--case N: the platform and the order come from the case store), or with --platform and\n" +
			"Taobao --sub-order (required for Taobao) / 1688 --order.",
		// Run by TestHelpExamplesDoNotPark once request's 1688 example
		// waits for the return.
		Example: "  refundctl ship --platform 1688 --order 3305075341149134262 --company YTO --waybill YT1234567890\n" +
			"  refundctl ship 12 --company SF --waybill SF1234567890",
		Args: cobra.MaximumNArgs(1),
	}
	f := cmd.Flags()
	addTargetFlags(cmd, &t, rs)
	addVerdictFlags(cmd, &vo)
	f.StringVar(&s.Company, "company", "", "logistics company code (Taobao logisticsCompanyCode, 1688 companyNo): "+rs.company)
	f.StringVar(&s.Waybill, "waybill", "", "waybill number: "+rs.waybill)
	f.StringVar(&s.Phone, "phone", "", "sender phone (optional): "+rs.phone)
	f.StringVar(&s.Description, "description", "", "note for the seller (optional): "+rs.shipDescription)
	_ = cmd.MarkFlagRequired("company")
	_ = cmd.MarkFlagRequired("waybill")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		if err := a.caseArg(cmd, args, &t); err != nil {
			return err
		}
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
		Use:     "cancel [CASE]",
		Short:   "Cancel a case's refund (Taobao; 1688 has no cancel)",
		Example: "  refundctl cancel 12\n  refundctl cancel --platform taobao --sub-order 3305075341149134261",
		Args:    cobra.MaximumNArgs(1),
	}
	addTargetFlags(cmd, &t, validationRules())
	addVerdictFlags(cmd, &vo)
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		if err := a.caseArg(cmd, args, &t); err != nil {
			return err
		}
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
	rs := validationRules()
	cmd := &cobra.Command{
		Use:     "message [CASE]",
		Short:   "Send a message to the seller about a case (Taobao; on 1688, message on the platform)",
		Example: "  refundctl message 12 --text 'photos attached'\n  refundctl message --platform taobao --sub-order 3305075341149134261 --text 'photos attached'",
		Args:    cobra.MaximumNArgs(1),
	}
	addTargetFlags(cmd, &t, rs)
	addVerdictFlags(cmd, &vo)
	cmd.Flags().StringVar(&text, "text", "", "message text: "+rs.message)
	_ = cmd.MarkFlagRequired("text")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		if err := a.caseArg(cmd, args, &t); err != nil {
			return err
		}
		c, err := a.newCommand(t, refundflow.InputSendMessage)
		if err != nil {
			return err
		}
		c.Message = text
		return a.publishCommand(cmd.Context(), c, vo)
	})
	return cmd
}
