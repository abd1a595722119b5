package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/opcommands"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// commandIDRE is the command id syntax refundflow.Command.Validate accepts.
var commandIDRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{8,64}$`)

// caseSelector names a case by its order instead of its id.
type caseSelector struct {
	platform, order, subOrder string
	command                   string // the request command that opened the case
}

func addSelectorFlags(cmd *cobra.Command, s *caseSelector) {
	f := cmd.Flags()
	f.StringVar(&s.platform, "platform", "", "with --order/--sub-order: the case's platform (taobao or 1688)")
	f.StringVar(&s.order, "order", "", "select the newest case of this order instead of giving CASE")
	f.StringVar(&s.subOrder, "sub-order", "", "select the newest case of this sub-order instead of giving CASE")
	f.StringVar(&s.command, "command", "", "select the case opened by this request command id (as printed by refundctl request)")
}

// set reports whether the selector was given.
func (s caseSelector) set() bool {
	return s.platform != "" || s.order != "" || s.subOrder != "" || s.command != ""
}

// resolve checks the case designation: exactly one of a CASE argument
// or a selector. It returns the id (0 when the selector is used).
func (s caseSelector) resolve(args []string) (int64, error) {
	switch {
	case len(args) == 1 && s.set():
		return 0, usagef("give CASE or a selector (--command, --platform with --order/--sub-order), not both")
	case len(args) == 1:
		return parseID("case id", args[0])
	case !s.set():
		return 0, usagef("give CASE, --command, or --platform with --order or --sub-order")
	case s.command != "":
		if s.platform != "" || s.order != "" || s.subOrder != "" {
			return 0, usagef("--command selects the case by itself: drop --platform, --order and --sub-order")
		}
		if !commandIDRE.MatchString(s.command) {
			return 0, usagef("--command %q: not a command id", cell(s.command, 70))
		}
		return 0, nil
	}
	if s.platform == "" {
		return 0, usagef("--platform is required with --order/--sub-order")
	}
	if !refundflow.Platform(s.platform).Valid() {
		return 0, usagef("--platform %q: want taobao or 1688", cell(s.platform, 40))
	}
	if s.order == "" && s.subOrder == "" {
		return 0, usagef("--platform needs --order or --sub-order")
	}
	for flag, v := range map[string]string{"--order": s.order, "--sub-order": s.subOrder} {
		if v != "" && !orderIDPattern.MatchString(v) {
			return 0, usagef("%s %q: want 1 to 24 digits", flag, cell(v, 40))
		}
	}
	return 0, nil
}

// find returns the newest case matching the selector, or ErrNotFound.
func (s caseSelector) find(ctx context.Context, st *casestore.Store) (casestore.Case, error) {
	var best casestore.Case
	f := casestore.CaseFilter{Platform: s.platform, Limit: 1000}
	for {
		page, err := st.ListCases(ctx, f)
		if err != nil {
			return casestore.Case{}, err
		}
		for _, c := range page {
			if (s.order == "" || c.OrderID == s.order) && (s.subOrder == "" || c.SubOrderID == s.subOrder) {
				best = c
			}
		}
		if len(page) < f.Limit {
			break
		}
		f.AfterID = page[len(page)-1].ID
	}
	if best.ID == 0 {
		return casestore.Case{}, casestore.ErrNotFound
	}
	return best, nil
}

func (s caseSelector) String() string {
	if s.command != "" {
		return "command " + s.command
	}
	var parts []string
	if s.order != "" {
		parts = append(parts, "order "+s.order)
	}
	if s.subOrder != "" {
		parts = append(parts, "sub-order "+s.subOrder)
	}
	return s.platform + " " + strings.Join(parts, " ")
}

// notFoundError says that no case matches; wait keeps polling on it.
type notFoundError struct {
	msg string
	// undecided is the command id of a lookup by command that found no
	// verdict and nothing the worker keeps: where JetStream has it may
	// be said (a.whereUndecided).
	undecided string
}

func (e *notFoundError) Error() string { return e.msg }

// lookup loads the case named by id or, when id is 0, by the selector.
func (s caseSelector) lookup(ctx context.Context, st *casestore.Store, id int64) (casestore.Case, error) {
	if id > 0 {
		c, err := st.GetCase(ctx, id)
		if errors.Is(err, casestore.ErrNotFound) {
			return casestore.Case{}, &notFoundError{msg: fmt.Sprintf("case %d not found", id)}
		}
		return c, err
	}
	if s.command != "" {
		return commandCase(ctx, st, s.command)
	}
	c, err := s.find(ctx, st)
	if errors.Is(err, casestore.ErrNotFound) {
		return casestore.Case{}, &notFoundError{msg: "no case for " + s.String()}
	}
	return c, err
}

// commandCase is the case of a command: the one it opened or, from the
// worker's verdict, the one it was applied to or duplicates. A command the
// worker rejected otherwise has no case to wait for: that is a refusal, not
// something to wait out.
func commandCase(ctx context.Context, st *casestore.Store, id string) (casestore.Case, error) {
	c, err := st.CaseOpenedBy(ctx, id)
	if !errors.Is(err, casestore.ErrNotFound) {
		return c, err
	}
	o, err := st.CommandOutcome(ctx, id)
	switch {
	case errors.Is(err, casestore.ErrNotFound):
		o.Verdict = opcommands.VerdictPending
		if v, err := opcommands.Pending(ctx, st, id); err == nil {
			o.Reason = v.Reason // kept by the worker for its case: where and why
		}
	case err != nil:
		return casestore.Case{}, err
	}
	caseID, err := verdictCase(id, o.Verdict, o.CaseID, o.Code, o.Reason)
	if err != nil {
		return casestore.Case{}, err
	}
	return st.GetCase(ctx, caseID)
}

// verdictCase is the case a command's verdict leads wait and show to, on
// the host and through the console alike: the case it was applied to, or
// the one it duplicates. Any other rejection is a refusal, not something to
// wait out; while there is no verdict (pending) there is no case yet, and
// the reason a pending verdict carries (kept by the worker: where, until
// when) says why.
func verdictCase(id, verdict string, caseID int64, code, reason string) (int64, error) {
	switch {
	case verdict == opcommands.VerdictPending && reason != "":
		return 0, &notFoundError{msg: "no case for command " + id + " yet: " + reason}
	case verdict == opcommands.VerdictPending:
		return 0, &notFoundError{msg: "no case for command " + id + " (no verdict from the worker yet)", undecided: id}
	case caseID > 0 && (verdict == casestore.VerdictApplied || code == refundflow.CodeDuplicate):
		return caseID, nil
	}
	return 0, refusedf("command %s was rejected (%s): %s", id, code, cell(reason, 0))
}

func (a *app) waitCommand() *cobra.Command {
	var sel caseSelector
	var states []string
	var deadline, interval time.Duration
	cmd := &cobra.Command{
		Use:   "wait [CASE]",
		Short: "Wait until a case exists or reaches a state (for scripts and walkthroughs)",
		Long: "Polls the case store until the case (by id, or the newest case of an order) exists and,\n" +
			"with --state, is in one of the given states. Fails when the deadline passes or the case\n" +
			"finishes in a state that was not asked for.",
		Example: "  refundctl wait --platform taobao --sub-order 3305075341149134261 --state waiting_seller\n" +
			"  refundctl wait 12 --state succeeded,closed --deadline 5m",
		Args: cobra.MaximumNArgs(1),
	}
	addSelectorFlags(cmd, &sel)
	f := cmd.Flags()
	f.StringSliceVar(&states, "state", nil, "states to wait for (repeatable or comma-separated; default: the case exists)")
	f.DurationVar(&deadline, "deadline", 2*time.Minute, "give up after this long")
	f.DurationVar(&interval, "interval", 200*time.Millisecond, "poll interval")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		id, err := sel.resolve(args)
		if err != nil {
			return err
		}
		for _, s := range states {
			if !refundflow.State(s).Valid() {
				return usagef("--state %q: want one of %s", cell(s, 40), strings.Join(stateNames(), ", "))
			}
		}
		if deadline <= 0 || interval <= 0 {
			return usagef("--deadline and --interval must be positive")
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), deadline)
		defer cancel()
		b, err := a.backend()
		if err != nil {
			return err
		}
		defer b.close()
		start := a.now()
		var last casestore.Case
		seen := false
		noted := false         // the case was seen stopped, and the operator told
		var why *notFoundError // the last look's reason there is no case (a kept command says where it waits)
		for {
			c, err := b.lookupCase(ctx, sel, id)
			var nf *notFoundError
			switch {
			case err == nil:
				last, seen = c, true
				if len(states) == 0 || slices.Contains(states, c.State) {
					if a.cfg.JSON {
						return writeJSON(a.stdout, toCaseJSON(c))
					}
					line := fmt.Sprintf("case %d is %s (after %s)", c.ID, c.State, a.now().Sub(start).Round(time.Millisecond))
					if c.AttentionCode != "" || c.AttentionMessage != "" {
						// On the same line: scripts take the case id from its second word.
						line += ": " + attentionText(c.AttentionCode, c.AttentionMessage)
						if c.State == string(refundflow.StateNeedsAttention) {
							line += "; " + stoppedNextStep(c.AttentionCode, c.ID, string(c.Platform), c.ParkedState)
						}
					}
					_, err := fmt.Fprintln(a.stdout, line)
					return err
				}
				if refundflow.State(c.State).Terminal() {
					return fmt.Errorf("case %d finished as %s, not %s", c.ID, c.State, strings.Join(states, " or "))
				}
				if c.State == string(refundflow.StateNeedsAttention) && !noted {
					// It may still move on (a seller who agrees after all),
					// but most often it waits for the operator: say so now,
					// not at the deadline.
					noted = true
					dl, _ := ctx.Deadline()
					fmt.Fprintf(a.stderr, "refundctl: case %d stopped: %s; %s; still waiting for %s, in case it moves on, until %s (--deadline)\n", c.ID,
						withAttention(c.State, c.AttentionCode, c.AttentionMessage), strings.TrimSuffix(stoppedNextStep(c.AttentionCode, c.ID, string(c.Platform), c.ParkedState), "."),
						strings.Join(states, " or "), dl.UTC().Format("15:04:05 UTC"))
				}
			case ctx.Err() != nil:
			case errors.As(err, &nf):
				why = nf
			default:
				return err
			}
			select {
			case <-ctx.Done():
				if cmd.Context().Err() != nil {
					return cmd.Context().Err()
				}
				if !seen {
					if why != nil {
						return fmt.Errorf("timed out after %s: %s", deadline, a.whereUndecided(cmd.Context(), b, why).msg)
					}
					what := sel.String()
					if id > 0 {
						what = fmt.Sprintf("case %d", id)
					}
					return fmt.Errorf("timed out after %s: no case for %s", deadline, what)
				}
				err := fmt.Errorf("timed out after %s: case %d is %s, not %s", deadline, last.ID,
					withAttention(last.State, last.AttentionCode, last.AttentionMessage), strings.Join(states, " or "))
				if last.State == string(refundflow.StateNeedsAttention) {
					err = fmt.Errorf("%w; %s", err, stoppedNextStep(last.AttentionCode, last.ID, string(last.Platform), last.ParkedState))
				}
				return err
			case <-time.After(interval):
			}
		}
	})
	return cmd
}

// whereLookMax bounds whereUndecided's look at JetStream: wait's
// --deadline overrun by no more than this.
const whereLookMax = 2 * time.Second

// whereUndecided is nf, or, for a command without a verdict or anything
// the worker keeps (nf.undecided), nf saying where JetStream has it
// (backend.commandWhere), when that can be said: "is the worker
// running?" answered, for the operator who waited and got no case.
func (a *app) whereUndecided(ctx context.Context, b backend, nf *notFoundError) *notFoundError {
	if nf.undecided == "" {
		return nf
	}
	ctx, cancel := context.WithTimeout(ctx, min(a.cfg.Timeout, whereLookMax))
	defer cancel()
	where := b.commandWhere(ctx, nf.undecided)
	if where == "" {
		return nf
	}
	return &notFoundError{msg: "no case for command " + nf.undecided + " yet: " + where}
}
