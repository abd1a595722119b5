package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/refundhub/refundhub/internal/refundflow"
)

// resolveCommand is the operator's way out of needs_attention. It names the
// case by id only: resolving is about a case the operator has looked at,
// never whichever case an order has open. The worker decides it like any
// command, and its verdict says what happened (or why not, and what to do).
func (a *app) resolveCommand() *cobra.Command {
	var vo verdictOptions
	var retry, closeIt bool
	var note, id, adopt string
	cmd := &cobra.Command{
		Use:   "resolve CASE (--retry | --close --note TEXT | --adopt REFUND)",
		Short: "Take a case out of needs_attention: retry where it stopped, close it locally with a note, or follow a refund filed outside it",
		Long: "resolve acts on a case in needs_attention (refundctl list --attention any).\n\n" +
			"--retry asks the platform again and, if nothing there moves the case, runs the step\n" +
			"it stopped at again: always for a read (form, reasons, carriers), and for a submission,\n" +
			"return or cancel only where the platform shows it did not happen, so nothing is ever\n" +
			"done twice. The verdict says when a retry cannot help, and why.\n\n" +
			"--close ends the case as closed_locally with your note, which the timeline keeps.\n" +
			"Nothing is sent to the platform; the order is free for a new request.\n\n" +
			"--adopt REFUND, for a case stopped refund_exists, makes the open refund that blocks it\n" +
			"(the buyer's, filed on the platform's site) the case's own: the case follows it to its end.\n" +
			"For a case stopped intent_unverifiable or intent_resends_failed at submitting, it takes the\n" +
			"refund found in the platform's back office for the submission's, which is closed unconfirmed.\n" +
			"Nothing is sent; the platform is asked that the refund is the case's sub-order's (order's\n" +
			"on 1688), and the verdict says why not if it is not.\n\n" +
			"docs/runbook.md lists every attention reason and which way out fits it.",
		Example: "  refundctl resolve 12 --retry\n" +
			"  refundctl resolve 12 --close --note 'the seller refunded by bank transfer'\n" +
			"  refundctl resolve 14 --adopt 4102938475610293847",
		Args: cobra.ExactArgs(1),
	}
	addVerdictFlags(cmd, &vo)
	f := cmd.Flags()
	f.BoolVar(&retry, "retry", false, "retry where the case stopped (never repeats a side effect the platform may have)")
	f.BoolVar(&closeIt, "close", false, "close the case locally, without the platform (needs --note)")
	f.StringVar(&adopt, "adopt", "", "the platform's id of the refund for the case to follow as its own (refund_exists; intent_unverifiable at submitting)")
	f.StringVar(&note, "note", "", fmt.Sprintf("why: kept on the timeline (required with --close; at most %d characters)", refundflow.MaxNote))
	f.StringVar(&id, "id", "", "command id (default: random); 8-64 of [A-Za-z0-9_.:-]; reuse it to retry a publish safely")
	cmd.MarkFlagsMutuallyExclusive("retry", "close", "adopt")
	cmd.MarkFlagsOneRequired("retry", "close", "adopt")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		caseID, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil || caseID <= 0 {
			return usagef("CASE %q: want a case id (a positive integer; refundctl list shows them)", args[0])
		}
		r := &refundflow.Resolve{Action: refundflow.ResolveRetry, Note: note}
		switch {
		case closeIt:
			r.Action = refundflow.ResolveClose
		case cmd.Flags().Changed("adopt"):
			r.Action, r.Refund = refundflow.ResolveAdopt, strings.TrimSpace(adopt)
		}
		if err := r.Validate(); err != nil {
			// Each problem names its flag: refund is --adopt's, note --note's.
			parts := strings.Split(errorLine(err), "; ")
			for i, p := range parts {
				for field, flag := range map[string]string{"refund: ": "--adopt: ", "note: ": "--note: "} {
					if rest, ok := strings.CutPrefix(p, field); ok {
						parts[i] = flag + rest
					}
				}
			}
			return usagef("%s", strings.Join(parts, "; "))
		}
		c, err := a.caseByID(cmd.Context(), caseID)
		if err != nil {
			return err
		}
		command, err := a.newCommand(target{platform: string(c.Platform), caseID: caseID, id: id}, refundflow.InputResolve)
		if err != nil {
			return err
		}
		command.Resolve = r
		return a.publishCommand(cmd.Context(), command, vo)
	})
	return cmd
}
