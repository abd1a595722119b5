package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// caseJSON is the stable JSON form of a case.
type caseJSON struct {
	ID               int64  `json:"id"`
	Platform         string `json:"platform"`
	OrderID          string `json:"orderId"`
	SubOrderID       string `json:"subOrderId,omitempty"`
	RefundID         string `json:"refundId,omitempty"`
	State            string `json:"state"`
	ParkedState      string `json:"parkedState,omitempty"`
	Version          int64  `json:"version"`
	PlatformStatus   string `json:"platformStatus,omitempty"`
	AttentionCode    string `json:"attentionCode,omitempty"`
	AttentionMessage string `json:"attentionMessage,omitempty"`
	OpenedBy         string `json:"openedBy,omitempty"` // the id of the request command that opened the case
	// UnreadSellerMessages counts the seller's messages no operator has
	// read yet (refundctl messages).
	UnreadSellerMessages int             `json:"unreadSellerMessages,omitempty"`
	Request              json.RawMessage `json:"request,omitempty"`
	Plan                 json.RawMessage `json:"plan,omitempty"`
	Shipment             json.RawMessage `json:"shipment,omitempty"`
	LastPlatformCheckAt  string          `json:"lastPlatformCheckAt,omitempty"`
	NextWakeAt           string          `json:"nextWakeAt,omitempty"`
	CreatedAt            string          `json:"createdAt"`
	UpdatedAt            string          `json:"updatedAt"`
	MovedAt              string          `json:"movedAt"` // when the case last moved: its idle time runs from it
}

func toCaseJSON(c casestore.Case) caseJSON {
	doc := func(d json.RawMessage) json.RawMessage {
		if s := strings.TrimSpace(string(d)); s == "" || s == "{}" || s == "null" {
			return nil
		}
		return rawJSON(string(d))
	}
	return caseJSON{
		ID: c.ID, Platform: string(c.Platform), OrderID: c.OrderID, SubOrderID: c.SubOrderID, RefundID: c.RefundID,
		State: c.State, ParkedState: c.ParkedState, Version: c.Version, PlatformStatus: c.PlatformStatus,
		AttentionCode: c.AttentionCode, AttentionMessage: c.AttentionMessage, OpenedBy: c.OpenedBy,
		UnreadSellerMessages: c.UnreadSellerMessages,
		Request:              doc(c.Request), Plan: doc(c.Plan), Shipment: doc(c.Shipment),
		LastPlatformCheckAt: timeJSON(c.LastPlatformCheckAt), NextWakeAt: timeJSON(c.NextWakeAt),
		CreatedAt: timeJSON(c.CreatedAt), UpdatedAt: timeJSON(c.UpdatedAt), MovedAt: timeJSON(c.IdleSince()),
	}
}

// stepJSON is the stable JSON form of a step attempt.
type stepJSON struct {
	ID             int64           `json:"id"`
	Step           string          `json:"step"`
	Status         string          `json:"status"`
	IdempotencyKey string          `json:"idempotencyKey,omitempty"`
	RequestID      string          `json:"requestId,omitempty"`
	ErrorCode      string          `json:"errorCode,omitempty"`
	ErrorMessage   string          `json:"errorMessage,omitempty"`
	Request        json.RawMessage `json:"request,omitempty"`
	Outcome        json.RawMessage `json:"outcome,omitempty"`
	Begins         int             `json:"begins"`
	Refusals       int             `json:"refusals"`
	StartedAt      string          `json:"startedAt"`
	FinishedAt     string          `json:"finishedAt,omitempty"`
}

// timelineJSON is the stable JSON form of a timeline entry.
type timelineJSON struct {
	ID      int64           `json:"id"`
	At      string          `json:"at"`
	Kind    string          `json:"kind"`
	Summary string          `json:"summary"`
	Detail  json.RawMessage `json:"detail,omitempty"`
}

// maxListTotal bounds list --limit: more than a screen's worth, read a
// page (casestore.MaxListLimit) at a time.
const maxListTotal = 100000

// listCursor is the cursor list prints when more cases match than it
// printed: the last id printed; --after takes it back.
func listCursor(id int64) string { return strconv.FormatInt(id, 10) }

// parseListCursor reads --after.
func parseListCursor(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 0 {
		return 0, usagef("--after %q: not a cursor (list prints one after \"more cases\")", excerpt.Of(s, 40))
	}
	return id, nil
}

func (a *app) listCommand() *cobra.Command {
	var platform, after, export string
	var states, attention []string
	var open bool
	var olderThan time.Duration
	var limit int
	var afterID int64
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List cases (filter by platform, state, age)",
		Long: "List cases in id order, at most --limit of them. When more match, the last line says\n" +
			"so with a cursor (on stderr with --json, so stdout stays one JSON array): repeat the\n" +
			"command with --after CURSOR for the next ones.",
		Example: "  refundctl list --open --older-than 2h\n  refundctl list --platform 1688 --state needs_attention --json\n" +
			"  refundctl list --attention waiting_evidence   # cases whose side effect cannot be confirmed yet\n" +
			"  refundctl list --limit 5000 --after 1000\n" +
			"  refundctl list --open --export csv > open.csv   # the columns of request --file",
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&platform, "platform", "", "taobao or 1688")
	f.StringSliceVar(&states, "state", nil, "case state (repeatable or comma-separated)")
	f.StringSliceVar(&attention, "attention", nil, "only cases with this attention code (repeatable or comma-separated; 'any' for every flagged case), e.g. waiting_evidence")
	f.BoolVar(&open, "open", false, "only cases that are not finished")
	f.DurationVar(&olderThan, "older-than", 0, "only cases that have not moved for this long (e.g. 2h): state, attention, refund and platform status unchanged (the worker's checks that find nothing new do not count)")
	f.IntVar(&limit, "limit", 100, fmt.Sprintf("at most this many cases (1 to %d; read %d at a time)", maxListTotal, casestore.MaxListLimit))
	f.StringVar(&after, "after", "", "the cursor a previous list printed: only the cases after it")
	f.Int64Var(&afterID, "after-id", 0, "paging: only cases with a greater id (the cursor is that id; prefer --after)")
	f.StringVar(&export, "export", "", "csv: write the cases in request --file's columns (then case-id, state, attention), for spreadsheets")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		filter := casestore.CaseFilter{Platform: platform, OpenOnly: open, AfterID: afterID}
		if platform != "" && !refundflow.Platform(platform).Valid() {
			return usagef("--platform %q: want taobao or 1688", platform)
		}
		for _, s := range states {
			if !refundflow.State(s).Valid() {
				return usagef("--state %q: want one of %s", s, strings.Join(stateNames(), ", "))
			}
			filter.States = append(filter.States, s)
		}
		for _, code := range attention {
			switch {
			case code == "any":
				filter.AnyAttention = true
			case slices.Contains(refundflow.AttentionCodes(), code):
				filter.Attention = append(filter.Attention, code)
			default:
				return usagef("--attention %q: want any or one of %s", code, strings.Join(refundflow.AttentionCodes(), ", "))
			}
		}
		if olderThan < 0 {
			return usagef("--older-than %s: must not be negative", olderThan)
		}
		if olderThan > 0 {
			filter.MovedBefore = a.now().Add(-olderThan)
		}
		if err := checkExport(export, a.cfg.JSON); err != nil {
			return err
		}
		if limit < 1 || limit > maxListTotal {
			return usagef("--limit %d: want 1 to %d", limit, maxListTotal)
		}
		if afterID < 0 {
			return usagef("--after-id %d: must not be negative", afterID)
		}
		if after != "" {
			if cmd.Flags().Changed("after-id") {
				return usagef("--after and --after-id: give one (the cursor is the id)")
			}
			var err error
			if filter.AfterID, err = parseListCursor(after); err != nil {
				return err
			}
		}
		b, err := a.backend()
		if err != nil {
			return err
		}
		defer b.close()
		cases, more, err := b.listCases(cmd.Context(), filter, limit)
		if err != nil {
			return err
		}
		var next string
		if more && len(cases) > 0 {
			next = "more cases: repeat with --after " + listCursor(cases[len(cases)-1].ID)
		}
		if export != "" {
			if next != "" {
				fmt.Fprintln(a.stderr, "refundctl: "+next) // stdout stays one CSV file
			}
			return writeCasesCSV(a.stdout, cases)
		}
		if a.cfg.JSON {
			out := make([]caseJSON, len(cases))
			for i, c := range cases {
				out[i] = toCaseJSON(c)
			}
			if next != "" {
				fmt.Fprintln(a.stderr, "refundctl: "+next)
			}
			return writeJSON(a.stdout, out)
		}
		if len(cases) == 0 {
			_, err := fmt.Fprintln(a.stdout, "no cases")
			return err
		}
		if err := a.printCases(cases); err != nil {
			return err
		}
		if next != "" {
			_, err = fmt.Fprintln(a.stdout, next)
		}
		return err
	})
	return cmd
}

// listCases reads up to limit cases matching f, a page at a time, and
// whether more match after them.
func listCases(ctx context.Context, st *casestore.Store, f casestore.CaseFilter, limit int) ([]casestore.Case, bool, error) {
	var out []casestore.Case
	for {
		f.Limit = min(limit-len(out), casestore.MaxListLimit)
		page, more, err := st.ListCasesPage(ctx, f)
		if err != nil {
			return nil, false, err
		}
		out = append(out, page...)
		if !more || len(out) >= limit {
			return out, more, nil
		}
		f.AfterID = page[len(page)-1].ID
	}
}

// printCases prints the list table.
func (a *app) printCases(cases []casestore.Case) error {
	now := a.now()
	tw := newTable(a.stdout)
	fmt.Fprintln(tw, "ID\tPLATFORM\tORDER\tSUB-ORDER\tREFUND\tSTATE\tAGE\tIDLE\tATTENTION")
	for _, c := range cases {
		state := c.State
		if c.ParkedState != "" && c.State == string(refundflow.StateNeedsAttention) {
			state += " (at " + c.ParkedState + ")"
		}
		// The attention column keeps the code and the start of the
		// platform's message; show prints the message whole.
		attention := strings.TrimSuffix(c.AttentionCode+": "+c.AttentionMessage, ": ")
		if c.UnreadSellerMessages > 0 {
			// First, so that no cut hides it: the seller is waiting for us.
			attention = strings.TrimSuffix(fmt.Sprintf("%d new seller message(s); %s", c.UnreadSellerMessages, attention), "; ")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Platform, cell(c.OrderID, 24),
			cell(c.SubOrderID, 24), cell(c.RefundID, 24), cell(state, 48), ago(now, c.CreatedAt), ago(now, c.IdleSince()),
			cell(attention, 80))
	}
	return tw.Flush()
}

func stateNames() []string {
	var out []string
	for _, s := range refundflow.States() {
		out = append(out, string(s))
	}
	return out
}

// parseID parses a positive decimal id argument.
func parseID(what, s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usagef("%s %q: want a positive integer", what, cell(s, 40))
	}
	return id, nil
}

func (a *app) showCommand() *cobra.Command {
	var sel caseSelector
	cmd := &cobra.Command{
		Use:     "show CASE",
		Short:   "Show a case with its full history: step attempts, callbacks, commands, decisions",
		Example: "  refundctl show 12\n  refundctl show 12 --json\n  refundctl show --platform taobao --sub-order 3305075341149134261",
		Args:    cobra.MaximumNArgs(1),
	}
	addSelectorFlags(cmd, &sel)
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		id, err := sel.resolve(args)
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		b, err := a.backend()
		if err != nil {
			return err
		}
		defer b.close()
		c, err := b.lookupCase(ctx, sel, id)
		if nf := (*notFoundError)(nil); errors.As(err, &nf) {
			return a.whereUndecided(ctx, b, nf)
		}
		if err != nil {
			return err
		}
		id = c.ID
		steps, timeline, err := b.history(ctx, id)
		if err != nil {
			return err
		}
		if a.cfg.JSON {
			out := struct {
				Case     caseJSON       `json:"case"`
				Steps    []stepJSON     `json:"steps"`
				Timeline []timelineJSON `json:"timeline"`
			}{Case: toCaseJSON(c), Steps: []stepJSON{}, Timeline: []timelineJSON{}}
			for _, s := range steps {
				out.Steps = append(out.Steps, stepJSON{ID: s.ID, Step: s.Step, Status: string(s.Status),
					IdempotencyKey: s.IdempotencyKey, RequestID: s.RequestID, ErrorCode: s.ErrorCode,
					ErrorMessage: s.ErrorMessage, Request: rawJSON(s.Request), Outcome: rawJSON(s.Outcome),
					Begins: s.Begins, Refusals: s.Refusals, StartedAt: timeJSON(s.StartedAt), FinishedAt: timeJSON(s.FinishedAt)})
			}
			for _, e := range timeline {
				var detail json.RawMessage
				if d := strings.TrimSpace(string(e.Detail)); d != "" && d != "{}" {
					detail = rawJSON(d)
				}
				out.Timeline = append(out.Timeline, timelineJSON{ID: e.ID, At: timeJSON(e.At), Kind: string(e.Kind),
					Summary: e.Summary, Detail: detail})
			}
			return writeJSON(a.stdout, out)
		}
		return a.printCase(c, steps, timeline)
	})
	return cmd
}

func (a *app) printCase(c casestore.Case, steps []casestore.StepAttempt, timeline []casestore.TimelineEntry) error {
	w := a.stdout
	fmt.Fprintf(w, "Case %d\n", c.ID)
	tw := newTable(w)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "  %s\t%s\n", k, cell(v, 200))
		}
	}
	row("Platform:", string(c.Platform))
	row("Order:", c.OrderID)
	row("Sub-order:", c.SubOrderID)
	row("Refund:", c.RefundID)
	state := c.State
	if c.ParkedState != "" {
		state += " (stopped at " + c.ParkedState + ")"
	}
	row("State:", state)
	row("Platform status:", c.PlatformStatus)
	row("Version:", strconv.FormatInt(c.Version, 10))
	row("Created:", timeHuman(c.CreatedAt))
	row("Updated:", timeHuman(c.UpdatedAt))
	row("Last moved:", timeHuman(c.IdleSince()))
	if !c.LastPlatformCheckAt.IsZero() {
		row("Last checked:", timeHuman(c.LastPlatformCheckAt))
	}
	if !c.NextWakeAt.IsZero() {
		row("Next wake:", timeHuman(c.NextWakeAt))
	}
	// The request as filed, what the worker chose for it from the
	// platform's form (sent with the submission, or to be) and the return
	// shipment, in words (a Taobao "amount": 0 is the most the form
	// allows, and the plan says how much that was); whole: the
	// description is the operator's own.
	for _, d := range []struct {
		k      string
		fields []refundflow.Field
	}{
		{"Request:", refundflow.DescribeRequest(refundflow.Platform(c.Platform), c.Request)},
		{"Planned:", refundflow.DescribePlan(c.Plan)},
		{"Shipment:", refundflow.DescribeShipment(c.Shipment)},
	} {
		if len(d.fields) > 0 {
			fmt.Fprintf(tw, "  %s\t\n", d.k)
			for _, f := range d.fields {
				fmt.Fprintf(tw, "    %s:\t%s\n", f.Name, cell(f.Value, 0))
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// The attention text is the platform's own words: printed whole,
	// wrapped, never cut before its cause.
	if c.AttentionCode != "" || c.AttentionMessage != "" {
		printWrapped(w, "  Attention:", strings.TrimSuffix(c.AttentionCode+": "+c.AttentionMessage, ": "))
		// What to do next: the runbook's advice, as the console shows it.
		if do := runbookAdvice(c.AttentionCode, c.ID, string(c.Platform), c.ParkedState); do != "" {
			printWrapped(w, "  To do:", do)
		}
	}
	if c.UnreadSellerMessages > 0 {
		fmt.Fprintf(w, "  Seller:    %d new message(s): refundctl messages %d\n", c.UnreadSellerMessages, c.ID)
	}

	fmt.Fprintf(w, "\nSteps (%d)\n", len(steps))
	if len(steps) > 0 {
		tw = newTable(w)
		fmt.Fprintln(tw, "  STARTED\tSTEP\tSTATUS\tREQUEST-ID\tERROR\tKEY\tOUTCOME")
		for _, s := range steps {
			errText := strings.TrimSuffix(s.ErrorCode+": "+s.ErrorMessage, ": ")
			errText = strings.TrimPrefix(errText, ": ")
			status := string(s.Status)
			switch {
			case s.Begins > 1 && s.Refusals > 0:
				status += fmt.Sprintf(" (begun %dx, refused %dx)", s.Begins, s.Refusals)
			case s.Begins > 1:
				status += fmt.Sprintf(" (begun %dx)", s.Begins)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", timeHuman(s.StartedAt), cell(s.Step, 32), status,
				cell(s.RequestID, 40), cell(errText, 60), cell(s.IdempotencyKey, 40), cell(s.Outcome, 60))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		// The table cuts errors to fit; each one follows in full.
		for _, s := range steps {
			if s.ErrorCode != "" || s.ErrorMessage != "" {
				printWrapped(w, fmt.Sprintf("  %s error (%s):", s.Step, timeHuman(s.StartedAt)),
					strings.TrimPrefix(strings.TrimSuffix(s.ErrorCode+": "+s.ErrorMessage, ": "), ": "))
			}
		}
	}

	fmt.Fprintf(w, "\nTimeline (%d)\n", len(timeline))
	if len(timeline) > 0 {
		tw = newTable(w)
		fmt.Fprintln(tw, "  AT\tKIND\tSUMMARY")
		for _, e := range timeline {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", timeHuman(e.At), e.Kind, cell(e.Summary, 0)) // the last column: whole
		}
		return tw.Flush()
	}
	return nil
}
