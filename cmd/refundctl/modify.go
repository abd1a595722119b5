package main

import (
	"strconv"

	"github.com/spf13/cobra"

	"github.com/refundhub/refundhub/internal/refundflow"
)

// modifyFlags are the flags that change a refused request; modify needs at
// least one of them.
var modifyFlags = []string{"reason-id", "reason", "amount", "description", "voucher"}

// modifyCommand changes a refund the Taobao seller refused and sends it
// again. Like resolve, it names the case by id only: a modification is
// about a refusal the operator has read, never whichever case an order has
// open. The worker decides it (reads the form again, checks the change
// against it, sends it under an intent) and its verdict says what happened.
func (a *app) modifyCommand() *cobra.Command {
	var vo verdictOptions
	var m refundflow.Modification
	var amount, description, id string
	rs := validationRules()
	cmd := &cobra.Command{
		Use:   "modify CASE [--reason-id N | --reason TEXT] [--amount FEN|max] [--description TEXT] [--voucher URL]...",
		Short: "Change a refund the seller refused and send it again (Taobao)",
		Long: "modify acts on a Taobao case the seller refused: in needs_attention with seller_refused\n" +
			"(refundctl list --attention seller_refused), or stopped in an earlier modification\n" +
			"(modify_rendering, or modifying with platform_error). Give at least one change; what you\n" +
			"leave out stays as filed.\n\n" +
			"The worker reads the refund form again (modify_rendering) and checks the change against it:\n" +
			"the reason must be one it offers, the amount within its bounds (--amount max takes the most\n" +
			"it allows). Then it sends the modification (modifying), recorded first so that it is never\n" +
			"sent twice, and the case waits for the seller again (waiting_seller). A change the form does\n" +
			"not allow stops the case with the reason (reason_not_offered, fee_out_of_bounds): modify again;\n" +
			"a form that allows no amount at all (nothing_refundable) leaves the refund as filed.\n\n" +
			"Instead of modifying: wait (a seller may still agree; the platform's next status moves the\n" +
			"case on), withdraw the refund with `refundctl cancel N`, or accept the refusal and\n" +
			"close the case with `refundctl resolve N --close --note TEXT`.\n\n" +
			"1688 cannot modify a refund through its API: the command is rejected (not_supported), and\n" +
			"the verdict says what the platform allows instead.",
		Example: "  refundctl modify 12 --amount 5000 --description 'half: the other item arrived fine'\n" +
			"  refundctl modify 12 --reason-id 1004 --amount max --voucher https://img.example/box.jpg",
		Args: cobra.ExactArgs(1),
	}
	addVerdictFlags(cmd, &vo)
	f := cmd.Flags()
	f.Int64Var(&m.ReasonID, "reason-id", 0, "new reason: platform reason id (refundctl reasons lists them)")
	f.StringVar(&m.Reason, "reason", "", "new reason: its text, exactly as the form offers it (case aside), instead of --reason-id")
	f.StringVar(&amount, "amount", "", "new amount in fen, or max = the most the form allows when it is read again")
	f.StringVar(&description, "description", "", "new description for the seller: "+rs.taobaoDescription)
	f.StringArrayVar(&m.Vouchers, "voucher", nil, "evidence image URL (repeatable): replaces the request's vouchers")
	f.StringVar(&id, "id", "", "command id, "+rs.id+" (default: random); reuse it to retry a publish safely")
	cmd.MarkFlagsMutuallyExclusive("reason-id", "reason")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		caseID, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil || caseID <= 0 {
			return usagef("CASE %q: want a case id (a positive integer; refundctl list --attention seller_refused shows them)", args[0])
		}
		changed := false
		for _, name := range modifyFlags {
			changed = changed || cmd.Flags().Changed(name)
		}
		if !changed {
			return usagef("nothing to change: give --reason-id or --reason, --amount, --description or --voucher")
		}
		if cmd.Flags().Changed("reason-id") && m.ReasonID <= 0 {
			return usagef("--reason-id %d: must be positive", m.ReasonID)
		}
		if cmd.Flags().Changed("reason") && m.Reason == "" {
			return usagef("--reason: must not be empty (or give --reason-id)")
		}
		if cmd.Flags().Changed("amount") {
			n, err := parseAmount(string(refundflow.PlatformTaobao), amount)
			if err != nil {
				return err
			}
			m.Amount = &n
		}
		if cmd.Flags().Changed("description") {
			m.Description = &description
		}
		c, err := a.caseByID(cmd.Context(), caseID)
		if err != nil {
			return err
		}
		command, err := a.newCommand(target{platform: string(c.Platform), caseID: caseID, id: id}, refundflow.InputModify)
		if err != nil {
			return err
		}
		command.Modify = &m
		return a.publishCommand(cmd.Context(), command, vo)
	})
	return cmd
}
